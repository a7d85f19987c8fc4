//! SQLite: the online backup API copies the database page by page, both ways.
//!
//! The snapshot is a consistent copy taken under a read lock, whatever the journal mode. The
//! restore copies the snapshot's pages over the live database in one step, which SQLite does in
//! one write transaction on it: a crash midway is rolled back from the journal (or the WAL) the
//! next time the database is opened, and the schema, rows, `sqlite_sequence` and `user_version`
//! are those of the snapshot, byte for byte.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OpenFlags, backup::Backup};

use super::{DbSnapshot, Engine};

const FILE: &str = "database.sqlite";

/// How long to wait between attempts while another connection holds a lock, and at most.
const BUSY_PAUSE: Duration = Duration::from_millis(100);
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn snapshot(path: &Path, dir: &Path) -> Result<DbSnapshot> {
    let mut snapshot = DbSnapshot {
        engine: Engine::Sqlite,
        database: String::new(),
        file: None,
        taken_at: String::new(),
        server_version: rusqlite::version().to_string(),
        tool: format!("SQLite {} online backup", rusqlite::version()),
    };
    // NB: a database that does not exist yet (a fresh install) is recorded as absent, not
    // created: its restore removes what the run created.
    if !path.exists() {
        return Ok(snapshot);
    }
    let source = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("failed to open SQLite database `{}`", path.display()))?;
    source.busy_timeout(BUSY_TIMEOUT)?;
    let staged = super::staging(dir, FILE)?;
    {
        let mut copy = Connection::open(&staged)
            .with_context(|| format!("failed to create `{}`", staged.display()))?;
        copy_all(&source, &mut copy).with_context(|| {
            format!(
                "failed to copy SQLite database `{}` to `{}`",
                path.display(),
                staged.display()
            )
        })?;
    }
    snapshot.file = Some(super::finish(&staged, dir, FILE)?);
    Ok(snapshot)
}

pub(super) fn restore(path: &Path, file: Option<&Path>) -> Result<()> {
    let Some(file) = file else {
        return remove(path);
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    let source = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("failed to open snapshot `{}`", file.display()))?;
    let mut live = Connection::open(path)
        .with_context(|| format!("failed to open SQLite database `{}`", path.display()))?;
    live.busy_timeout(BUSY_TIMEOUT)?;
    copy_all(&source, &mut live).with_context(|| {
        format!(
            "failed to restore SQLite database `{}` from `{}`",
            path.display(),
            file.display()
        )
    })?;
    live.close()
        .map_err(|(_, e)| e)
        .with_context(|| format!("failed to close `{}`", path.display()))
}

/// Copies every page of `from` over `to` in one step: one read transaction on `from`, one write
/// transaction on `to`, retried while either is locked, for at most [`BUSY_TIMEOUT`].
fn copy_all(from: &Connection, to: &mut Connection) -> Result<()> {
    use rusqlite::backup::StepResult;
    let backup = Backup::new(from, to)?;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // NB: -1 copies every page in this one step (rusqlite's `run_to_completion` takes no -1)
        // otherwise Busy or Locked (More, which -1 never returns, would just step again)
        if backup.step(-1)? == StepResult::Done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the database stayed locked by another connection for {}",
                humantime::format_duration(BUSY_TIMEOUT)
            );
        }
        std::thread::sleep(BUSY_PAUSE);
    }
}

/// `uninstall --purge` (SPEC §14): the file goes, with its journal files.
pub(super) fn purge(path: &Path) -> Result<()> {
    remove(path)
}

/// The database did not exist when the snapshot was taken: it goes, with its journal files.
fn remove(path: &Path) -> Result<()> {
    let mut removed = false;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to remove `{}`", Path::new(&name).display()));
            }
        }
    }
    if removed && let Some(parent) = path.parent() {
        super::super::sync_dir(parent)?;
    }
    Ok(())
}

pub(super) fn estimate_size(path: &Path) -> Result<u64> {
    let mut size = 0;
    for suffix in ["", "-wal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::metadata(&name) {
            Ok(m) => size += m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to stat `{}`", Path::new(&name).display()));
            }
        }
    }
    Ok(size)
}
