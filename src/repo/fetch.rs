//! Getting an artifact into the cache and proving it is the one the index names.
//!
//! Reads stop one byte past the declared size (an endless or oversized file is refused), the
//! sha256 is computed while copying, and the file is staged then renamed into place, so the cache
//! never holds a file that was not verified. NB: cache files are not fsynced: every use verifies
//! the file again, so one torn by a power cut is fetched anew, and an fsync per artifact would
//! cost more than the download of a small package.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

use super::Repository;
use super::index::Artifact;
use crate::error::UpgradeError;

/// Where `artifact` is kept in `cache`.
pub fn cache_path(cache: &Path, artifact: &Artifact) -> PathBuf {
    let file = artifact.path.rsplit('/').next().unwrap_or(&artifact.path);
    cache.join(file)
}

/// Makes sure `artifact` is in `cache` and verified; returns its path there.
pub fn fetch(repo: &Repository, artifact: &Artifact, cache: &Path) -> Result<PathBuf> {
    let dest = cache_path(cache, artifact);
    if dest.exists() && verify(&dest, artifact).is_ok() {
        return Ok(dest);
    }
    fs::create_dir_all(cache)
        .with_context(|| format!("failed to create cache directory `{}`", cache.display()))?;
    let source = repo.artifact(&artifact.path);
    let input = File::open(&source).map_err(|e| {
        UpgradeError::step(
            format!("failed to open artifact `{}`: {e}", source.display()),
            "check that the repository is complete and reachable, then run `upgrade` again",
        )
    })?;
    let staged = dest.with_extension("part");
    let mut output = File::create(&staged)
        .with_context(|| format!("failed to create `{}`", staged.display()))?;
    let digest = copy_hashed(input, &mut output, artifact.size)
        .with_context(|| format!("failed to copy `{}` into the cache", source.display()));
    let digest = match digest {
        Ok(d) => d,
        Err(e) => {
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
    };
    if let Err(e) = check(digest, artifact, &source) {
        let _ = fs::remove_file(&staged);
        return Err(e.into());
    }
    drop(output);
    fs::rename(&staged, &dest).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            staged.display(),
            dest.display()
        )
    })?;
    Ok(dest)
}

/// Checks the file at `path` against the size and sha256 the index declares.
pub fn verify(path: &Path, artifact: &Artifact) -> Result<()> {
    let file = File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    let digest = copy_hashed(file, &mut io::sink(), artifact.size)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    check(digest, artifact, path)?;
    Ok(())
}

struct Digested {
    sha256: String,
    size: u64,
}

fn check(d: Digested, artifact: &Artifact, path: &Path) -> Result<(), UpgradeError> {
    let hint = "the repository or the cache holds a file other than the index names; \
                ask the vendor for a consistent repository, then run `upgrade` again";
    if d.size != artifact.size {
        let size = if d.size > artifact.size {
            format!("more than the declared {} bytes", artifact.size)
        } else {
            format!("{} bytes, the index declares {}", d.size, artifact.size)
        };
        return Err(UpgradeError::step(
            format!(
                "artifact `{}` (`{}`) is {size}",
                artifact.nevra(),
                path.display()
            ),
            hint,
        ));
    }
    if !d.sha256.eq_ignore_ascii_case(&artifact.sha256) {
        return Err(UpgradeError::step(
            format!(
                "artifact `{}` (`{}`) has sha256 {}, the index says {}",
                artifact.nevra(),
                path.display(),
                d.sha256,
                artifact.sha256
            ),
            hint,
        ));
    }
    Ok(())
}

/// Copies at most `limit + 1` bytes, hashing them.
fn copy_hashed(input: impl Read, output: &mut impl Write, limit: u64) -> io::Result<Digested> {
    let mut input = input.take(limit + 1);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok(Digested {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// The sha256 and size of a whole file (the vendor side uses it to write the index).
pub fn digest_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    let d = copy_hashed(file, &mut io::sink(), u64::MAX - 1)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok((d.sha256, d.size))
}
