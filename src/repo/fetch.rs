//! Getting artifacts into the cache and proving they are the ones the index names.
//!
//! [`fetch_all`] works through a list on up to [`THREADS`] threads ([`LOCAL_THREADS`] for a local repository) and reports progress through a
//! callback on the calling thread (the library never prints). Per artifact: a cached file that
//! verifies is used as is; otherwise the file is fetched into `NAME.part` — copied from a local
//! repository, or downloaded, resuming a `.part` left by a cut connection or an earlier run with
//! an HTTP Range request — hashed while it arrives, and renamed into place only when its size
//! and sha256 match the index, so the cache never holds a file that was not verified. Reads stop
//! one byte past the declared size (an endless or oversized download is refused). A resumed
//! download that does not verify may be the `.part`'s fault (a torn write, a rotten disk), not
//! the repository's: it is fetched once more from the start, and only a whole fresh download
//! that fails is reported.
//!
//! Cache files are named by the artifact's sha256 and then its file name ([`cache_path`]): two
//! artifacts never share a name, and a `--download-only` or an open run finds what it fetched
//! (a run's plan fixes each artifact's sha256). [`prune`] empties the cache of all else after a
//! successful run.
//!
//! A file of a local repository that only this user can change is linked into the cache, not
//! copied ([`link_local`]).
//!
//! NB: cache files are not fsynced: every use verifies the file again, so one torn by a power cut
//! is fetched anew, and an fsync per artifact would cost more than the download of a small package.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

use super::{Attempt, Repository};
use crate::error::UpgradeError;
use crate::model::catalog::Artifact;

/// Downloads in flight at most.
pub const THREADS: usize = 6;
/// How many threads copy out of a local repository.
pub const LOCAL_THREADS: usize = 1;
const BUFFER: usize = 256 * 1024;
/// How often the calling thread looks for an interrupt while the workers fetch.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// Progress of [`fetch_all`], reported on the calling thread.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// About to fetch `artifacts` files of `bytes` bytes in all.
    Started { artifacts: usize, bytes: u64 },
    /// `bytes` more bytes are in the cache (fetched or found there).
    Bytes(u64),
    /// This artifact is in the cache and verified; `cached`: it was there already.
    Verified {
        artifact: &'a Artifact,
        cached: bool,
    },
}

/// Where `artifact` is kept in `cache`: `SHA256-FILE`, its sha256 (so that the same file name
/// in two directories of the repository, or republished with other contents, is two files) and
/// its file name (so that a person sees what it is).
pub fn cache_path(cache: &Path, artifact: &Artifact) -> PathBuf {
    let file = artifact.path.rsplit('/').next().unwrap_or(&artifact.path);
    cache.join(format!("{}-{file}", artifact.sha256.to_ascii_lowercase()))
}

/// Where the cache file `dest` is staged while it is fetched: `dest.part`.
fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// After a successful run: removes from `cache` every file but the artifacts in `keep` (the
/// finished run's plan), that is other releases' packages, partial downloads, and the index
/// kept by `--download-only`. Best effort, logged: the run has succeeded either way.
// NB: restore points (SPEC §12) will add the artifacts they reinstall to the keep set.
pub fn prune<'a>(cache: &Path, keep: impl IntoIterator<Item = &'a Artifact>) {
    let keep: HashSet<PathBuf> = keep.into_iter().map(|a| cache_path(cache, a)).collect();
    let entries = match fs::read_dir(cache) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(cache = %cache.display(), "failed to list the cache to prune it: {e}");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if keep.contains(&path) || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(file = %path.display(), "pruned from the cache"),
            Err(e) => tracing::warn!(file = %path.display(), "failed to prune from the cache: {e}"),
        }
    }
}

/// Makes sure `artifact` is in `cache` and verified; returns its path there.
pub fn fetch(repo: &Repository, artifact: &Artifact, cache: &Path) -> Result<PathBuf> {
    fetch_one(repo, artifact, cache, &AtomicBool::new(false), &mut |_| {}).map(|(p, _)| p)
}

/// Fetches and verifies every artifact in parallel; returns their cache paths in order. The first
/// failure stops the others (their `.part` files stay, to be resumed) and is returned.
pub fn fetch_all(
    repo: &Repository,
    artifacts: &[&Artifact],
    cache: &Path,
    on: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(cache)
        .with_context(|| format!("failed to create cache directory `{}`", cache.display()))?;
    let mut seen = HashSet::new();
    let unique: Vec<&Artifact> = artifacts
        .iter()
        .copied()
        .filter(|a| seen.insert(cache_path(cache, a)))
        .collect();
    on(Progress::Started {
        artifacts: unique.len(),
        bytes: unique.iter().map(|a| a.size).sum(),
    });
    enum Msg {
        Bytes(u64),
        Done(usize, bool),
        Failed(anyhow::Error),
    }
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut first_error = None;
    // NB: copies out of a local repository gain nothing from threads beyond the cores, and
    // threads creating files in one directory at once wait on its lock (measured: 1–2 ms per
    // create with 6); downloads wait on the network and keep THREADS.
    let local = unique
        .first()
        .is_some_and(|a| repo.local_path(&a.path).is_some());
    let threads = match local {
        true => LOCAL_THREADS,
        false => THREADS,
    };
    // NB: the workers own what they use, so that an interrupt returns at once instead of
    // waiting for a download stalled in a read (bounded only by the request's timeout): the
    // workers stop at their next chunk, or end with the process, leaving `.part`s to resume.
    let owned: Arc<Vec<Artifact>> = Arc::new(unique.iter().map(|a| (*a).clone()).collect());
    let mut workers = Vec::new();
    for _ in 0..threads.min(unique.len()) {
        let tx = tx.clone();
        let (next, stop, owned) = (next.clone(), stop.clone(), owned.clone());
        let (repo, cache) = (repo.clone(), cache.to_path_buf());
        workers.push(std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= owned.len()
                    || stop.load(Ordering::Relaxed)
                    || crate::interrupt::received().is_some()
                {
                    break;
                }
                let mut report = |n| {
                    let _ = tx.send(Msg::Bytes(n));
                };
                match fetch_one(&repo, &owned[i], &cache, &stop, &mut report) {
                    Ok((_, cached)) => {
                        let _ = tx.send(Msg::Done(i, cached));
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = tx.send(Msg::Failed(e));
                        break;
                    }
                }
            }
        }));
    }
    drop(tx);
    loop {
        match rx.recv_timeout(INTERRUPT_POLL) {
            Ok(Msg::Bytes(n)) => on(Progress::Bytes(n)),
            Ok(Msg::Done(i, cached)) => on(Progress::Verified {
                artifact: unique[i],
                cached,
            }),
            Ok(Msg::Failed(e)) => {
                first_error.get_or_insert(e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = crate::interrupt::check() {
                    stop.store(true, Ordering::Relaxed);
                    return Err(interrupted.into());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for worker in workers {
        if worker.join().is_err() {
            first_error.get_or_insert_with(|| anyhow::anyhow!("a download thread panicked"));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    crate::interrupt::check()?;
    Ok(artifacts.iter().map(|a| cache_path(cache, a)).collect())
}

/// Fetches one artifact; returns its cache path and whether it was cached already.
fn fetch_one(
    repo: &Repository,
    artifact: &Artifact,
    cache: &Path,
    stop: &AtomicBool,
    report: &mut dyn FnMut(u64),
) -> Result<(PathBuf, bool)> {
    let dest = cache_path(cache, artifact);
    if dest.exists() && verify(&dest, artifact).is_ok() {
        report(artifact.size);
        return Ok((dest, true));
    }
    fs::create_dir_all(cache)
        .with_context(|| format!("failed to create cache directory `{}`", cache.display()))?;
    let staged = part_path(&dest);
    let location = repo.location(&artifact.path);
    let report = &mut |n| {
        report(n);
        crate::fault::point!("download:{}", artifact.path);
    };
    let (digest, resumed) = match repo.local_path(&artifact.path) {
        Some(source) => copy_local(&source, &staged, artifact, report).map(|d| (d, Resumed::No)),
        None => download(repo, artifact, &staged, stop, report),
    }
    .map_err(|e| disk_full(e, cache, artifact))?;
    let mut checked = check(digest, artifact, &location);
    if let (Err(e), Resumed::Yes) = (&checked, resumed) {
        tracing::warn!(url = %location, "a resumed download does not verify ({e}); downloading it again from the start");
        fs::remove_file(&staged)
            .with_context(|| format!("failed to remove `{}`", staged.display()))?;
        // NB: its bytes were counted once already.
        let quiet = &mut |_| crate::fault::point!("download:{}", artifact.path);
        let (digest, _) = download(repo, artifact, &staged, stop, quiet)
            .map_err(|e| disk_full(e, cache, artifact))?;
        checked = check(digest, artifact, &location);
    }
    if let Err(e) = checked {
        let _ = fs::remove_file(&staged);
        return Err(e.into());
    }
    fs::rename(&staged, &dest).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            staged.display(),
            dest.display()
        )
    })?;
    Ok((dest, false))
}

/// A full disk is named as such, with the cache and the space the artifact needs.
fn disk_full(err: anyhow::Error, cache: &Path, artifact: &Artifact) -> anyhow::Error {
    let full = err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::StorageFull)
    });
    if !full {
        return err;
    }
    let message = format!(
        "no space left in the cache `{}` for `{}` ({} bytes)",
        cache.display(),
        artifact.path,
        artifact.size
    );
    err.context(UpgradeError::step(
        message,
        format!(
            "free at least {} bytes in `{}`, then run `upgrade` again to resume",
            artifact.size,
            cache.display()
        ),
    ))
}

fn copy_local(
    source: &Path,
    staged: &Path,
    artifact: &Artifact,
    report: &mut dyn FnMut(u64),
) -> Result<Digested> {
    let input = File::open(source).map_err(|e| {
        UpgradeError::step(
            format!("failed to open artifact `{}`: {e}", source.display()),
            "check that the repository is complete and reachable, then run `upgrade` again",
        )
    })?;
    let mut hasher = Sha256::new();
    let copied = match link_local(&input, source, staged) {
        Some(linked) => copy_hashed(linked, &mut io::sink(), artifact.size, &mut hasher, report)
            .with_context(|| format!("failed to read `{}`", staged.display())),
        None => {
            let mut output = File::create(staged)
                .with_context(|| format!("failed to create `{}`", staged.display()))?;
            copy_hashed(input, &mut output, artifact.size, &mut hasher, report)
                .with_context(|| format!("failed to copy `{}` into the cache", source.display()))
        }
    };
    match copied {
        Ok(size) => Ok(Digested {
            sha256: hex::encode(hasher.finalize()),
            size,
        }),
        Err(e) => {
            let _ = fs::remove_file(staged);
            Err(e)
        }
    }
}

/// Links a local repository's file into the cache as `staged` instead of copying it, when only
/// this user can change it: a regular file (not a symlink), owned by this user, writable by no
/// group or other, on the cache's file system. Returns the linked file, opened to be hashed;
/// `None` where a copy must be made.
///
/// NB: a link shares the repository file's inode, so a file that another user could write would
/// let them change the package between its verification and the transaction; the copy is then
/// the cache's own. Every use verifies a cached file again, so one changed in place later (by
/// this user) is fetched anew, as a torn copy would be. Measured on the hold-out fresh install
/// (40 packages): the download step went from 5–10 ms (copies) to about 3 ms (links).
fn link_local(opened: &File, source: &Path, staged: &Path) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(source).ok()?;
    let opened_meta = opened.metadata().ok()?;
    let own = meta.file_type().is_file()
        && (meta.dev(), meta.ino()) == (opened_meta.dev(), opened_meta.ino())
        && meta.uid() == nix::unistd::geteuid().as_raw()
        && meta.mode() & 0o022 == 0;
    if !own {
        return None;
    }
    match fs::remove_file(staged) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    fs::hard_link(source, staged).ok()?;
    // NB: the path may have been replaced since it was looked at: only the inode checked is kept
    let linked = File::open(staged).ok().filter(|linked| {
        linked
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == (opened_meta.dev(), opened_meta.ino()))
    });
    if linked.is_none() {
        let _ = fs::remove_file(staged);
    }
    linked
}

/// Whether the cache file `cached` of `artifact` is the local repository's own file, linked
/// by [`link_local`]: whoever keeps it beyond the cache (a restore point) must copy it.
pub fn shares_repository_file(repo: &Repository, artifact: &Artifact, cached: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(source) = repo.local_path(&artifact.path) else {
        return false;
    };
    match (fs::metadata(source), fs::metadata(cached)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether a download's file holds bytes fetched before its last request (from a `.part` or a
/// cut attempt), which a Range request then completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resumed {
    Yes,
    No,
}

/// Downloads into `staged`, resuming what it holds; retries transient failures.
fn download(
    repo: &Repository,
    artifact: &Artifact,
    staged: &Path,
    stop: &AtomicBool,
    report: &mut dyn FnMut(u64),
) -> Result<(Digested, Resumed)> {
    let url = repo.location(&artifact.path);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(staged)
        .with_context(|| format!("failed to open `{}`", staged.display()))?;
    let io_context = || format!("failed to write `{}`", staged.display());
    // What the .part file already holds, hashed; a stale one longer than declared starts over.
    let mut hasher = Sha256::new();
    let mut have = file.metadata().with_context(io_context)?.len();
    if have > artifact.size {
        file.set_len(0).with_context(io_context)?;
        have = 0;
    }
    if have > 0 {
        let mut prefix = (&mut file).take(have);
        copy_hashed(&mut prefix, &mut io::sink(), have, &mut hasher, &mut |_| {})
            .with_context(|| format!("failed to read `{}`", staged.display()))?;
        tracing::info!(url = %url, from = have, "resuming a partial download");
    }
    report(have);
    let mut refused = false;
    let mut resumed = Resumed::No;
    let result = repo.with_retries(&url, |_| {
        if stop.load(Ordering::Relaxed) {
            return Err(Attempt::Fatal(anyhow::anyhow!("cancelled")));
        }
        let response = repo.get(&artifact.path, have, artifact.size)?;
        let status = response.status();
        let not_found = || {
            Attempt::Fatal(
                UpgradeError::step(
                    format!("`{url}` answered HTTP {status}"),
                    "the repository lacks a file its index names; ask the vendor for a \
                     consistent repository, then run `upgrade` again",
                )
                .into(),
            )
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            refused = true;
            return Err(not_found());
        }
        let fatal = |e: io::Error| Attempt::Fatal(anyhow::Error::new(e).context(io_context()));
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE
            || (have > 0 && status != reqwest::StatusCode::PARTIAL_CONTENT)
        {
            // the server ignores or refuses the range: start over from byte 0
            file.set_len(0).map_err(fatal)?;
            file.rewind().map_err(fatal)?;
            hasher = Sha256::new();
            have = 0;
            if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
                return Err(Attempt::Transient(format!("HTTP {status}")));
            }
        }
        resumed = match have {
            0 => Resumed::No,
            _ => Resumed::Yes,
        };
        file.seek(io::SeekFrom::Start(have)).map_err(fatal)?;
        let remaining = artifact.size - have;
        if response.content_length().is_some_and(|n| n > remaining) {
            refused = true;
            return Err(Attempt::Fatal(too_long(artifact, &url).into()));
        }
        let mut body = response.take(remaining + 1);
        let mut buf = vec![0u8; BUFFER];
        loop {
            crate::interrupt::check().map_err(|e| Attempt::Fatal(e.into()))?;
            let n = match body.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Attempt::Transient(format!("the download was cut: {e}"))),
            };
            if have + n as u64 > artifact.size {
                refused = true;
                return Err(Attempt::Fatal(too_long(artifact, &url).into()));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(fatal)?;
            have += n as u64;
            report(n as u64);
        }
    });
    if let Err(e) = result {
        // NB: a cut or cancelled download keeps its .part to be resumed; a refused one does not.
        if refused {
            let _ = fs::remove_file(staged);
        }
        return Err(e);
    }
    let digest = Digested {
        sha256: hex::encode(hasher.finalize()),
        size: have,
    };
    Ok((digest, resumed))
}

fn too_long(artifact: &Artifact, url: &str) -> UpgradeError {
    UpgradeError::step(
        format!(
            "artifact `{}` (`{url}`) is more than the declared {} bytes; refusing to download more",
            artifact.nevra(),
            artifact.size
        ),
        HINT,
    )
}

const HINT: &str = "the repository or the cache holds a file other than the index names; \
                    ask the vendor for a consistent repository, then run `upgrade` again";

/// Checks the file at `path` against the size and sha256 the index declares.
pub fn verify(path: &Path, artifact: &Artifact) -> Result<()> {
    let file = File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    let mut hasher = Sha256::new();
    let size = copy_hashed(
        file,
        &mut io::sink(),
        artifact.size,
        &mut hasher,
        &mut |_| {},
    )
    .with_context(|| format!("failed to read `{}`", path.display()))?;
    let digest = Digested {
        sha256: hex::encode(hasher.finalize()),
        size,
    };
    check(digest, artifact, &path.display().to_string())?;
    Ok(())
}

struct Digested {
    sha256: String,
    size: u64,
}

fn check(d: Digested, artifact: &Artifact, location: &str) -> Result<(), UpgradeError> {
    if d.size != artifact.size {
        let size = if d.size > artifact.size {
            format!("more than the declared {} bytes", artifact.size)
        } else {
            format!("{} bytes, the index declares {}", d.size, artifact.size)
        };
        return Err(UpgradeError::step(
            format!("artifact `{}` (`{location}`) is {size}", artifact.nevra()),
            HINT,
        ));
    }
    if !d.sha256.eq_ignore_ascii_case(&artifact.sha256) {
        return Err(UpgradeError::ChecksumMismatch {
            nevra: artifact.nevra(),
            location: location.to_string(),
            actual: d.sha256.clone(),
            expected: artifact.sha256.clone(),
        });
    }
    Ok(())
}

/// Copies at most `limit + 1` bytes, hashing them; returns how many.
fn copy_hashed(
    input: impl Read,
    output: &mut impl Write,
    limit: u64,
    hasher: &mut Sha256,
    report: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut input = input.take(limit.saturating_add(1));
    let mut buf = vec![0u8; BUFFER];
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
        report(n as u64);
    }
    Ok(size)
}

/// The sha256 and size of a whole file (the vendor side uses it to write the index).
pub fn digest_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    let mut hasher = Sha256::new();
    let size = copy_hashed(
        file,
        &mut io::sink(),
        u64::MAX - 1,
        &mut hasher,
        &mut |_| {},
    )
    .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok((hex::encode(hasher.finalize()), size))
}
