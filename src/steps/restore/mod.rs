//! The building blocks of a restore point (SPEC §12): the product's database saved with the
//! engine's own tools and given back exactly ([`database`]), and its configuration files saved
//! with their modes and owners and put back, a file that did not exist removed again
//! ([`files`]).
//!
//! Each block writes into the restore point's directory it is given and returns a serialisable
//! description of what it saved, which the caller keeps in the restore point's manifest; giving
//! it back takes that description and the same directory. Nothing here knows about runs, the
//! journal or the configuration: the caller says what to save (a `[database] migrate = false`
//! node passes no database, SPEC §15) and when.
//!
//! Every file a block writes is staged under a temporary name, fsynced, renamed into place and
//! its directory fsynced (STYLE 7), so that a restore point that says it holds a file holds all
//! of it after a power cut. Every restore can be run again after being killed midway and
//! converges to the same end state.

pub mod database;
pub mod files;
pub mod point;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

/// Fsyncs the staged file `staged`, renames it to `dst` and fsyncs the directory of `dst`.
fn commit(staged: &Path, dst: &Path) -> Result<()> {
    File::open(staged)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("failed to sync `{}`", staged.display()))?;
    std::fs::rename(staged, dst).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            staged.display(),
            dst.display()
        )
    })?;
    sync_dir(dst.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, so that the names created or removed in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to sync directory `{}`", dir.display()))
}

/// The size and sha256 (hex) of the file at `path`.
fn digest(path: &Path) -> Result<(u64, String)> {
    let mut file =
        File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut sink)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(sink.finish())
}

/// A writer that hashes and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The number of bytes written and their sha256 (hex).
    fn finish(self) -> (u64, String) {
        (self.len, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The first `n` lines of a program's error output, each cut at 300 characters, for a message:
/// the first error is the cause, and a client quotes the statement around it after it.
fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| match l.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads all of `reader` into a string (lossy), for a child's standard error.
fn read_lossy(mut reader: impl Read) -> String {
    let mut buf = Vec::new();
    let _ = reader.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
