//! Configuration files in a restore point: each path's content, mode, owner and modification
//! time, whether it was a symlink (and to what) or a directory, or that it did not exist — so
//! that putting them back also removes a file the release added.
//!
//! Paths are absolute inside the root (`/etc/demo/demo.conf`). Their directories are resolved
//! as if the root were `/`: a symlink among them is followed, but never out of the root, and the
//! last component is never followed — a symlink is saved and put back as a symlink, whatever it
//! points to. Contents are kept in the restore point's `files/` directory under their sha256,
//! so two identical files are kept once; each is verified when it is put back.
//!
//! Every file is put back by staging a copy beside it (`.NAME.upgrade-restore`), setting its
//! owner, mode and time, fsyncing it and renaming it over the path, and every directory touched
//! is fsynced: killed midway, each path is either as it was or as saved, and running the restore
//! again converges.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{HashingWriter, sync_dir};
use crate::error::UpgradeError;

/// The configuration directory saved whole, with the product's `rpm -qc` files.
const UPGRADE_ETC: &str = "/etc/upgrade";

/// Where saved contents live in the restore point's directory.
const CONTENTS: &str = "files";

/// How many symlinks resolving one path may follow (as the kernel's `ELOOP` limit).
const MAX_SYMLINKS: u32 = 40;

/// The saved state of a set of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesSnapshot {
    pub entries: Vec<FileEntry>,
}

/// One path and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute inside the root, as given to [`capture`].
    pub path: PathBuf,
    #[serde(flatten)]
    pub state: FileState,
}

/// What a path was when it was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FileState {
    /// Nothing was there: putting it back removes what is there now.
    Absent,
    /// A regular file; its content is `files/<sha256>` in the restore point.
    File {
        /// Permission bits, setuid, setgid and sticky (`st_mode & 0o7777`).
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        sha256: String,
        /// Modification time: seconds and nanoseconds since the epoch.
        mtime: i64,
        mtime_nsec: u32,
    },
    /// A symlink, saved as the link itself, never followed.
    Symlink {
        target: PathBuf,
        uid: u32,
        gid: u32,
    },
    Directory {
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// The extensions of what rpm sets beside an edited configuration file (`.rpmnew`) or moves
/// aside (`.rpmsave`).
pub const SET_ASIDE: [&str; 2] = ["rpmnew", "rpmsave"];

impl FilesSnapshot {
    /// How many configuration files a rollback puts back or removes, less the `.rpmnew` and
    /// `.rpmsave` files saved as absent (which it removes when rpm made them).
    pub fn shown(&self) -> usize {
        let set_aside = |p: &Path| {
            p.extension()
                .is_some_and(|e| SET_ASIDE.iter().any(|s| e == *s))
        };
        self.entries
            .iter()
            .filter(|e| !(e.state == FileState::Absent && set_aside(&e.path)))
            .count()
    }
}

/// Saves each of `paths` (absolute inside `root`) into `dir`, durably.
pub fn capture(root: &Path, paths: &[PathBuf], dir: &Path) -> Result<FilesSnapshot> {
    let contents = dir.join(CONTENTS);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&contents)
        .with_context(|| format!("failed to create `{}`", contents.display()))?;
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for path in paths {
        if !seen.insert(path.clone()) {
            continue;
        }
        let at = locate(root, path)?;
        let state = capture_one(&at, &contents)
            .with_context(|| format!("failed to save `{}`", at.display()))?;
        entries.push(FileEntry {
            path: path.clone(),
            state,
        });
    }
    sync_dir(&contents)?;
    sync_dir(dir)?;
    Ok(FilesSnapshot { entries })
}

fn capture_one(at: &Path, contents: &Path) -> Result<FileState> {
    let meta = match fs::symlink_metadata(at) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Ok(FileState::Absent),
        Err(e) => return Err(e.into()),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Ok(FileState::Symlink {
            target: fs::read_link(at)?,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    if kind.is_dir() {
        return Ok(FileState::Directory {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    if !kind.is_file() {
        anyhow::bail!("it is neither a file, a directory nor a symlink");
    }
    // NB: opened without following a symlink, and described by what was opened: a file
    // replaced between the two calls is saved as what it is now, consistently
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(at)?;
    let meta = file.metadata()?;
    let (size, sha256) = store(&mut file, contents)?;
    Ok(FileState::File {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size,
        sha256,
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    })
}

/// Copies `file` into `contents` under its sha256: its size and sha256.
fn store(file: &mut File, contents: &Path) -> Result<(u64, String)> {
    let staged = contents.join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_file(&staged);
    let copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("failed to create `{}`", staged.display()))?;
    let mut writer = HashingWriter::new(copy);
    io::copy(file, &mut writer)
        .with_context(|| format!("failed to write `{}`", staged.display()))?;
    writer
        .inner
        .sync_all()
        .with_context(|| format!("failed to sync `{}`", staged.display()))?;
    let (size, sha256) = writer.finish();
    let dst = contents.join(&sha256);
    if dst.exists() {
        // the same content, saved for another path (or by an earlier attempt)
        let _ = fs::remove_file(&staged);
    } else {
        fs::rename(&staged, &dst).with_context(|| {
            format!(
                "failed to move `{}` to `{}`",
                staged.display(),
                dst.display()
            )
        })?;
    }
    Ok((size, sha256))
}

/// Puts every path of `snapshot` back in `root` from `dir`: content, mode, owner and time; a
/// symlink as the same symlink; a path that did not exist removed (a directory only when empty:
/// what is in it was not saved, so it stays, and a warning says so).
pub fn restore_files(root: &Path, snapshot: &FilesSnapshot, dir: &Path) -> Result<()> {
    let depth = |e: &&FileEntry| e.path.components().count();
    // directories first, parents before children; then files and symlinks; then removals,
    // children before parents
    let mut dirs: Vec<&FileEntry> = Vec::new();
    let mut files: Vec<&FileEntry> = Vec::new();
    let mut absent: Vec<&FileEntry> = Vec::new();
    for entry in &snapshot.entries {
        match entry.state {
            FileState::Directory { .. } => dirs.push(entry),
            FileState::Absent => absent.push(entry),
            FileState::File { .. } | FileState::Symlink { .. } => files.push(entry),
        }
    }
    dirs.sort_by_key(depth);
    absent.sort_by_key(|e| std::cmp::Reverse(depth(e)));
    let contents = dir.join(CONTENTS);
    let mut touched = BTreeSet::new();
    for entry in dirs.into_iter().chain(files).chain(absent) {
        let at = locate(root, &entry.path)?;
        let parent = at.parent().unwrap_or(root).to_path_buf();
        restore_one(&at, &entry.state, &contents)
            .with_context(|| format!("failed to restore `{}`", at.display()))?;
        touched.insert(parent);
        crate::fault::point!("restore:file:{}", entry.path.display());
    }
    for dir in touched {
        if dir.exists() {
            sync_dir(&dir)?;
        }
    }
    Ok(())
}

fn restore_one(at: &Path, state: &FileState, contents: &Path) -> Result<()> {
    let parent = at.parent().expect("a located path has a parent");
    match state {
        FileState::Absent => remove(at),
        FileState::Directory { mode, uid, gid } => {
            match fs::symlink_metadata(at) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(at)?;
                    fs::create_dir(at)?;
                }
                Err(e) if is_absent(&e) => {
                    fs::create_dir_all(parent)?;
                    fs::create_dir(at)?;
                }
                Err(e) => return Err(e.into()),
            }
            std::os::unix::fs::lchown(at, Some(*uid), Some(*gid))?;
            fs::set_permissions(at, fs::Permissions::from_mode(*mode))?;
            Ok(())
        }
        FileState::Symlink { target, uid, gid } => {
            fs::create_dir_all(parent)?;
            let staged = staged_beside(at)?;
            std::os::unix::fs::symlink(target, &staged)
                .with_context(|| format!("failed to create symlink `{}`", staged.display()))?;
            std::os::unix::fs::lchown(&staged, Some(*uid), Some(*gid))?;
            replace(&staged, at)
        }
        FileState::File {
            mode,
            uid,
            gid,
            size,
            sha256,
            mtime,
            mtime_nsec,
        } => {
            fs::create_dir_all(parent)?;
            let saved = contents.join(sha256);
            let mut source = File::open(&saved)
                .with_context(|| format!("failed to open the saved copy `{}`", saved.display()))?;
            let staged = staged_beside(at)?;
            let out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&staged)
                .with_context(|| format!("failed to create `{}`", staged.display()))?;
            let mut writer = HashingWriter::new(out);
            io::copy(&mut source, &mut writer)
                .with_context(|| format!("failed to write `{}`", staged.display()))?;
            let out = &writer.inner;
            // NB: the owner before the mode: chown clears setuid and setgid bits
            std::os::unix::fs::fchown(out, Some(*uid), Some(*gid))?;
            out.set_permissions(fs::Permissions::from_mode(*mode))?;
            out.set_times(fs::FileTimes::new().set_modified(time(*mtime, *mtime_nsec)))?;
            out.sync_all()?;
            let (got_size, got_sha256) = writer.finish();
            if got_size != *size || got_sha256 != *sha256 {
                let _ = fs::remove_file(&staged);
                return Err(UpgradeError::step(
                    format!(
                        "the saved copy `{}` is damaged: {got_size} bytes with sha256 \
                         {got_sha256}, the restore point recorded {size} bytes with sha256 \
                         {sha256}",
                        saved.display()
                    ),
                    "the file was left as it is",
                )
                .into());
            }
            replace(&staged, at)
        }
    }
}

/// Renames `staged` over `at`, first removing an empty directory that is in the way.
fn replace(staged: &Path, at: &Path) -> Result<()> {
    if fs::symlink_metadata(at).is_ok_and(|m| m.is_dir())
        && let Err(e) = fs::remove_dir(at)
    {
        let _ = fs::remove_file(staged);
        return Err(e).context("a directory that is not empty is there now");
    }
    fs::rename(staged, at).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            staged.display(),
            at.display()
        )
    })
}

/// A path beside `at` to stage it under, with nothing left there from an earlier attempt.
fn staged_beside(at: &Path) -> Result<PathBuf> {
    let mut name = OsString::from(".");
    name.push(at.file_name().expect("a located path has a name"));
    name.push(".upgrade-restore");
    let staged = at.with_file_name(name);
    match fs::remove_file(&staged) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("failed to remove `{}`", staged.display()));
        }
    }
    Ok(staged)
}

/// Removes what is at `at` (an empty directory too); nothing there is fine.
fn remove(at: &Path) -> Result<()> {
    match fs::symlink_metadata(at) {
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(meta) if meta.is_dir() => match fs::remove_dir(at) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                tracing::warn!(
                    path = %at.display(),
                    "directory created since the restore point is not empty; left in place"
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        Ok(_) => Ok(fs::remove_file(at)?),
    }
}

fn time(secs: i64, nsec: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nsec));
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos,
    }
}

/// Nothing at that path: it does not exist, or one of its directories is not a directory.
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

/// Where `path` (absolute, inside the root) is on this host: its directories resolved as if
/// `root` were `/` — a symlink among them followed, an absolute target taken from the root,
/// `..` never above it — and its last component not followed.
// NB: resolved in user space, not with openat2(RESOLVE_IN_ROOT): the root's directories belong
// to root and nothing else runs while a restore point is taken or put back.
fn locate(root: &Path, path: &Path) -> Result<PathBuf> {
    let invalid = || {
        anyhow::anyhow!(
            "`{}` is not an absolute path to a file inside the root",
            path.display()
        )
    };
    if !path.is_absolute() {
        return Err(invalid());
    }
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return Err(invalid());
    };
    let mut todo: VecDeque<OsString> = parts(path.parent().unwrap_or(Path::new("/")));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    anyhow::bail!(
                        "`{}`: too many levels of symbolic links inside the root",
                        path.display()
                    );
                }
                let target = fs::read_link(&candidate)
                    .with_context(|| format!("failed to read symlink `{}`", candidate.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for part in parts(&target).into_iter().rev() {
                    todo.push_front(part);
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()).join(name))
}

/// The names in `path`, `..` kept, `/` and `.` dropped.
fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The configuration files of the product's packages (`rpm -qc`, those of packages not
/// installed are none) and everything under `/etc/upgrade` (itself included; symlinks listed,
/// not followed), sorted, each once.
pub fn product_config_files(root: &Path, package_names: &[String]) -> Result<Vec<PathBuf>> {
    let mut paths = BTreeSet::new();
    if !package_names.is_empty() && has_rpm_database(root) {
        let output = crate::host::rpm(root)
            .arg("-qc")
            .args(package_names)
            .output()
            .context("failed to run `rpm -qc`; is rpm installed?")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut not_installed = 0;
        for line in stdout.lines() {
            if line.starts_with('/') {
                paths.insert(PathBuf::from(line));
            } else if line.starts_with("package ") && line.ends_with(" is not installed") {
                not_installed += 1;
            }
        }
        // NB: rpm exits with the number of packages it could not query
        if !output.status.success() && output.status.code() != Some(not_installed) {
            return Err(UpgradeError::step(
                format!(
                    "`rpm -qc {}` on root `{}` failed: {}",
                    package_names.join(" "),
                    root.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                "check the rpm database with `rpm --root ROOT --dbpath /var/lib/rpm -qa`",
            )
            .into());
        }
    }
    let etc = PathBuf::from(UPGRADE_ETC);
    let at = locate(root, &etc)?;
    if let Ok(meta) = fs::symlink_metadata(&at) {
        paths.insert(etc.clone());
        if meta.is_dir() {
            walk(&at, &etc, &mut paths)?;
        }
    }
    Ok(paths.into_iter().collect())
}

/// The configuration files the package files `rpm_files` would install (what `rpm -qcp` says,
/// read from their headers in this process: no rpm to start, on the path of every run): the
/// ones a release adds are saved as absent, so that putting the restore point back removes them.
pub fn config_files_of_package_files(rpm_files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut paths = BTreeSet::new();
    for file in rpm_files {
        let meta = rpm::PackageMetadata::open(file)
            .map_err(|e| anyhow::anyhow!("failed to read RPM package `{}`: {e}", file.display()))?;
        let entries = meta.get_file_entries().map_err(|e| {
            anyhow::anyhow!("failed to list the files of `{}`: {e}", file.display())
        })?;
        paths.extend(
            entries
                .iter()
                .filter(|e| e.flags().contains(rpm::FileFlags::CONFIG))
                .map(|e| e.path())
                .filter(|p| p.is_absolute()),
        );
    }
    Ok(paths.into_iter().collect())
}

fn has_rpm_database(root: &Path) -> bool {
    let db = root.join(crate::host::DBPATH.trim_start_matches('/'));
    fs::read_dir(db).is_ok_and(|mut d| d.next().is_some())
}

/// Adds everything under `dir` (on this host; `name` inside the root) to `paths`, descending
/// into directories but not into symlinks.
fn walk(dir: &Path, name: &Path, paths: &mut BTreeSet<PathBuf>) -> Result<()> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("failed to read `{}`", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let child = name.join(entry.file_name());
        // NB: `DirEntry::file_type` does not follow symlinks
        let is_dir = entry
            .file_type()
            .with_context(|| format!("failed to stat `{}`", entry.path().display()))?
            .is_dir();
        paths.insert(child.clone());
        if is_dir {
            walk(&entry.path(), &child, paths)?;
        }
    }
    Ok(())
}

/// Each of `paths` (absolute inside `root`) and, for a directory, everything under it (a
/// symlink is listed, never followed), parents before children.
pub fn tree(root: &Path, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(path) = todo.pop() {
        let at = locate(root, &path)?;
        let is_dir = fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
        out.push(path.clone());
        if is_dir {
            let mut children: Vec<PathBuf> = fs::read_dir(&at)
                .with_context(|| format!("failed to read `{}`", at.display()))?
                .map(|e| e.map(|e| path.join(e.file_name())))
                .collect::<io::Result<_>>()
                .with_context(|| format!("failed to read `{}`", at.display()))?;
            children.sort();
            todo.extend(children.into_iter().rev());
        }
    }
    Ok(out)
}

/// Deletes each of `paths` (absolute inside `root`) with all it holds, but never a path under
/// one of `keep` nor a directory on the way to one (what else is in it goes). Deleting again
/// after a kill converges.
pub fn purge(root: &Path, paths: &[PathBuf], keep: &[PathBuf]) -> Result<()> {
    for path in paths {
        purge_one(root, path, keep)?;
    }
    Ok(())
}

fn purge_one(root: &Path, path: &Path, keep: &[PathBuf]) -> Result<()> {
    if keep.iter().any(|k| path.starts_with(k)) {
        return Ok(());
    }
    let at = locate(root, path)?;
    let meta = match fs::symlink_metadata(&at) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", at.display())),
    };
    let holds_kept = keep.iter().any(|k| k.starts_with(path));
    let removed = match (meta.is_dir(), holds_kept) {
        (true, true) => {
            let children =
                fs::read_dir(&at).with_context(|| format!("failed to read `{}`", at.display()))?;
            for child in children {
                let child = child.with_context(|| format!("failed to read `{}`", at.display()))?;
                purge_one(root, &path.join(child.file_name()), keep)?;
            }
            return Ok(());
        }
        (true, false) => fs::remove_dir_all(&at),
        (false, _) => fs::remove_file(&at),
    };
    removed.with_context(|| format!("failed to delete `{}`", at.display()))?;
    if let Some(parent) = at.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Puts back from `dir` the paths of `snapshot` under one of `keep` that are gone from `root`
/// now; returns them.
pub fn put_back_missing(
    root: &Path,
    snapshot: &FilesSnapshot,
    dir: &Path,
    keep: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let mut missing = FilesSnapshot::default();
    for entry in &snapshot.entries {
        if entry.state == FileState::Absent || !keep.iter().any(|k| entry.path.starts_with(k)) {
            continue;
        }
        let at = locate(root, &entry.path)?;
        if fs::symlink_metadata(&at).is_err() {
            missing.entries.push(entry.clone());
        }
    }
    restore_files(root, &missing, dir)?;
    Ok(missing.entries.into_iter().map(|e| e.path).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_spares_what_is_kept_and_the_kept_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let write = |p: &str, text: &str| {
            let at = root.join(p);
            fs::create_dir_all(at.parent().unwrap()).unwrap();
            fs::write(at, text).unwrap();
        };
        write("data/a/one", "1");
        write("data/keep/key", "k");
        write("data/keep/more/two", "2");
        write("data/b", "b");
        let data = PathBuf::from("/data");
        let keep = vec![PathBuf::from("/data/keep")];
        let all = tree(&root, std::slice::from_ref(&data)).unwrap();
        assert_eq!(all.first(), Some(&data));
        assert!(all.contains(&PathBuf::from("/data/keep/more/two")));
        let saved = capture(&root, &all, &dir.path().join("point")).unwrap();

        purge(&root, &[data.clone(), PathBuf::from("/absent")], &keep).unwrap();
        assert!(!root.join("data/a").exists() && !root.join("data/b").exists());
        assert_eq!(
            fs::read_to_string(root.join("data/keep/more/two")).unwrap(),
            "2"
        );
        // again, after a kill: nothing more to do
        purge(&root, std::slice::from_ref(&data), &keep).unwrap();

        // what took the kept paths, they are put back; what is not kept stays gone
        fs::remove_dir_all(root.join("data")).unwrap();
        let back = put_back_missing(&root, &saved, &dir.path().join("point"), &keep).unwrap();
        assert!(back.contains(&PathBuf::from("/data/keep/key")));
        assert_eq!(fs::read_to_string(root.join("data/keep/key")).unwrap(), "k");
        assert_eq!(
            fs::read_to_string(root.join("data/keep/more/two")).unwrap(),
            "2"
        );
        assert!(!root.join("data/a").exists());
    }

    #[test]
    fn locate_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("opt/conf")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/opt/conf", root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../opt/conf", root.join("etc/rel")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("etc/loop")).unwrap();
        let at = |p: &str| locate(root, Path::new(p));
        assert_eq!(at("/etc/abs/x.conf").unwrap(), root.join("opt/conf/x.conf"));
        assert_eq!(at("/etc/rel/x.conf").unwrap(), root.join("opt/conf/x.conf"));
        assert_eq!(at("/etc/up/etc/x").unwrap(), root.join("etc/x"));
        assert_eq!(at("/../../etc/x").unwrap(), root.join("etc/x"));
        // the last component is never followed
        assert_eq!(at("/etc/abs").unwrap(), root.join("etc/abs"));
        assert_eq!(at("/missing/dir/x").unwrap(), root.join("missing/dir/x"));
        assert!(at("/etc/loop/x").is_err());
        assert!(at("etc/x").is_err());
        assert!(at("/").is_err());
        assert!(at("/etc/..").is_err());
    }

    #[test]
    fn a_snapshot_round_trips_through_json() {
        let snapshot = FilesSnapshot {
            entries: vec![
                FileEntry {
                    path: "/etc/a".into(),
                    state: FileState::Absent,
                },
                FileEntry {
                    path: "/etc/b".into(),
                    state: FileState::Symlink {
                        target: "a".into(),
                        uid: 1,
                        gid: 2,
                    },
                },
            ],
        };
        let json = serde_json::to_string(&snapshot).unwrap();
        assert!(
            json.contains(r#"{"path":"/etc/a","kind":"absent"}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<FilesSnapshot>(&json).unwrap(),
            snapshot
        );
    }
}
