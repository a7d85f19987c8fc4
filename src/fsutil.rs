//! Durable file writes: stage, fsync, rename, fsync the directory (STYLE 7).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    let staged = path.with_extension("tmp");
    let mut file = File::create(&staged)
        .with_context(|| format!("failed to create `{}`", staged.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write `{}`", staged.display()))?;
    fs::rename(&staged, path).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            staged.display(),
            path.display()
        )
    })?;
    // NB: the file is in place; a directory that cannot be synced is not an error here
    let _ = sync_dir(path);
    Ok(())
}

/// Makes the entry of `path` in its directory durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to sync `{}`", dir.display()))
}
