//! One run per root: an exclusive `flock` on `/var/lib/upgrade/lock`, holding the owner's PID.
//!
//! The kernel drops the lock when its holder dies, so a killed run never blocks the next one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::error::UpgradeError;

/// Held for the life of a run; released when dropped or when the process dies (and the rpm
/// transaction it started, if one still runs: [`crate::process::output_holding_run_lock`]).
pub struct RunLock {
    _file: File,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        crate::process::set_run_lock(None);
    }
}

impl RunLock {
    pub fn acquire(path: &Path) -> Result<RunLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // NB: never through a symlink: truncating the lock must not truncate another file
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("failed to open lock file `{}`", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let pid = match pid.parse::<u32>() {
                    Err(_) => "unknown".to_string(),
                    Ok(n) if Path::new(&format!("/proc/{n}")).exists() => pid.to_string(),
                    // NB: the run is gone and its rpm transaction still runs (and holds the lock)
                    Ok(_) => format!("{pid}, killed; its rpm transaction is still running"),
                };
                return Err(UpgradeError::Locked { pid }.into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("failed to lock `{}`", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("failed to write the lock file `{}`", path.display()))?;
        crate::process::set_run_lock(Some(std::os::fd::AsRawFd::as_raw_fd(&file)));
        Ok(RunLock { _file: file })
    }
}

/// The PID of the process holding the lock at `path`, if one does; reads `/proc/locks` rather
/// than probing with a lock of its own, so asking never makes a starting run fail.
pub fn holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE START END`
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&id.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}
