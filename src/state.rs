//! `state.db` (SQLite): the installed version, the history of runs, and the journal of the open
//! run with its stored plan.
//!
//! A run stays open (status `running`, `failed` or `reboot`) until it succeeds; the next
//! invocation resumes it. Every write is a transaction with `synchronous=FULL`, so what the journal
//! says is done survives a power cut.
//!
//! NB: hooks are the exception. A phase may run a thousand trivial hooks, and a SQLite commit per
//! hook costs as much as the hook itself; each finished hook is appended as one line to
//! `hooks.journal` beside the database instead (one `write`, durable against a crash at once),
//! and the phase's end moves those marks into the database in its own durable transaction. After
//! a power cut in the middle of a phase, the hooks since its start may run again (with
//! `UPGRADE_RESUMED=1`), as a hook cut off half-way always does.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::error::UpgradeError;
use crate::model::health::HealthReport;
use crate::model::journal::{JournalKey, RunStatus};
use crate::model::plan::Plan;

pub struct State {
    conn: Connection,
    hooks_journal: PathBuf,
    hooks_file: Option<File>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub from: Option<String>,
    pub to: String,
    pub status: RunStatus,
    pub attempts: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    pub step: JournalKey,
    pub done_at: String,
    pub detail: Option<String>,
}

/// An unfinished run: its stored plan and what is already done.
pub struct OpenRun {
    pub record: RunRecord,
    pub plan: Plan,
    pub done: HashSet<JournalKey>,
}

impl OpenRun {
    /// What it has done to the host: every journal key but the download's (the cache is not
    /// the host); empty when abandoning it loses nothing.
    pub fn changes(&self) -> Vec<&JournalKey> {
        let download = crate::model::plan::Step::Download.key();
        let mut keys: Vec<&JournalKey> = self.done.iter().filter(|k| **k != download).collect();
        keys.sort();
        keys
    }
}

/// NB: one transaction, so that a new `state.db` costs one sync, not one per table.
const SCHEMA: &str = "
BEGIN;
CREATE TABLE IF NOT EXISTS installed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    from_version TEXT,
    to_version TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    plan TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    done_at TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS health (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    checked_at TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accepted_index (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sequence INTEGER NOT NULL,
    accepted_at TEXT NOT NULL
);
COMMIT;
";

/// Records an accepted index sequence; the stored value never decreases.
const ACCEPT_SEQUENCE: &str =
    "INSERT INTO accepted_index (id, sequence, accepted_at) VALUES (1, ?1, ?2)
     ON CONFLICT (id) DO UPDATE SET sequence = max(sequence, excluded.sequence),
     accepted_at = excluded.accepted_at";

pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl State {
    /// Opens (creating when missing) the state database at `path`.
    pub fn open(path: &Path) -> Result<State> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let unusable = |e| unusable(path, e);
        let new = std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == ErrorKind::NotFound);
        // NB: never through a symlink: under `--root`, a link could point at any file of the host
        let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).map_err(unusable)?;
        if new {
            // NB: a new database is made without SQLite's syncs (the rollback journal of the
            // switch to WAL, the schema's commit), then made durable once by a checkpoint (the
            // WAL with its directory, then the database file) and a sync of the directory that
            // names the file: 4 fsyncs where SQLite alone makes 7 (about 1 ms of a fresh
            // install), and no second open of the file. A crash meanwhile loses nothing: a file
            // that is empty or has no tables is made again by the next open.
            conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;")
                .and_then(|()| conn.execute_batch(SCHEMA))
                .and_then(|()| {
                    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(PASSIVE);")
                })
                .map_err(unusable)?;
            crate::fsutil::sync_dir(path)?;
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .and_then(|()| conn.execute_batch(SCHEMA))
        .map_err(unusable)?;
        let hooks_journal = path.with_file_name("hooks.journal");
        Ok(State {
            conn,
            hooks_journal,
            hooks_file: None,
        })
    }

    /// Opens the state database to read it only, when it exists: for the commands that change
    /// nothing (`status`, `history`, `plan`, `check`, `--dry-run`), which must work for a user
    /// who cannot write `/var/lib/upgrade` and on a read-only one.
    ///
    /// NB: reading a WAL database normally creates `state.db-shm` beside it; where that cannot
    /// be done, the file is read as immutable (a run that holds it open is then not seen
    /// mid-transaction; its committed journal is).
    pub fn open_existing_read(path: &Path) -> Result<Option<State>> {
        if !path.exists() {
            return Ok(None);
        }
        let unusable = |e| unusable(path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let probe = |conn: Connection| -> rusqlite::Result<Connection> {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(conn)
        };
        let conn = match Connection::open_with_flags(path, flags).and_then(probe) {
            Ok(conn) => conn,
            Err(_) => {
                let escaped = path
                    .display()
                    .to_string()
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23");
                let uri = format!("file:{escaped}?immutable=1");
                Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .and_then(probe)
                    .map_err(unusable)?
            }
        };
        Ok(Some(State {
            conn,
            hooks_journal: path.with_file_name("hooks.journal"),
            hooks_file: None,
        }))
    }

    /// Opens the state database when it exists; a host that never ran has none (and gets none).
    pub fn open_existing(path: &Path) -> Result<Option<State>> {
        if path.exists() {
            State::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn installed(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT version FROM installed WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .context("failed to read the installed version from state.db")
    }

    /// The highest index `sequence` this root has accepted (rollback protection, SPEC §4).
    pub fn accepted_sequence(&self) -> Result<Option<u64>> {
        self.conn
            .query_row(
                "SELECT sequence FROM accepted_index WHERE id = 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|s| s.map(|s| s as u64))
            .context("failed to read the accepted index sequence from state.db")
    }

    /// Records that an index with `sequence` was accepted; the stored value never decreases.
    pub fn accept_sequence(&self, sequence: u64) -> Result<()> {
        self.conn
            .execute(ACCEPT_SEQUENCE, params![sequence as i64, now()])
            .context("failed to record the accepted index sequence in state.db")?;
        Ok(())
    }

    pub fn open_run(&self) -> Result<Option<OpenRun>> {
        let open = RunStatus::OPEN.map(|s| format!("'{s}'")).join(", ");
        let row = self
            .conn
            .query_row(
                &format!("{RUN_COLUMNS}, plan FROM runs WHERE status IN ({open}) ORDER BY id DESC LIMIT 1"),
                [],
                |r| Ok((run_record(r)?, r.get::<_, String>(8)?)),
            )
            .optional()
            .context("failed to read the journal from state.db")?;
        let Some((record, plan)) = row else {
            return Ok(None);
        };
        let plan: Plan = serde_json::from_str(&plan)
            .with_context(|| format!("the stored plan of run {} is unreadable", record.id))?;
        let mut done: HashSet<JournalKey> = self
            .journal(record.id)?
            .into_iter()
            .map(|e| e.step)
            .collect();
        done.extend(self.hook_marks(record.id)?);
        Ok(Some(OpenRun { record, plan, done }))
    }

    /// Begins a run of `plan`; with `accepted`, records in the same transaction (one sync) that
    /// the index of that sequence was accepted (see [`State::accept_sequence`]).
    pub fn begin_run(&mut self, plan: &Plan, accepted: Option<u64>) -> Result<i64> {
        let json = serde_json::to_string(plan).context("failed to serialise the plan")?;
        let tx = self
            .conn
            .transaction()
            .context("failed to begin a transaction on state.db")?;
        if let Some(sequence) = accepted {
            tx.execute(ACCEPT_SEQUENCE, params![sequence as i64, now()])
                .context("failed to record the accepted index sequence in state.db")?;
        }
        tx.execute(
            "INSERT INTO runs (started_at, from_version, to_version, status, plan) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), plan.from, plan.to, RunStatus::Running, json],
        )
        .context("failed to record the run in state.db")?;
        let id = tx.last_insert_rowid();
        tx.commit()
            .context("failed to record the run in state.db")?;
        Ok(id)
    }

    /// Marks an open run as being attempted again.
    pub fn resume_run(&self, id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, attempts = attempts + 1, error = NULL WHERE id = ?1",
                params![id, RunStatus::Running],
            )
            .context("failed to update the run in state.db")?;
        Ok(())
    }

    /// Journals a hook as done: one appended line, durable against a crash at once.
    pub fn mark_hook_done(&mut self, run: i64, key: &JournalKey) -> Result<()> {
        crate::fault::point!("mark:{key}");
        let path = &self.hooks_journal;
        if self.hooks_file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .with_context(|| format!("failed to open `{}`", path.display()))?;
            self.hooks_file = Some(file);
        }
        let file = self.hooks_file.as_mut().expect("opened above");
        // NB: one write of one whole line; a line torn by a power cut lacks its newline and is
        // ignored when read back.
        file.write_all(format!("{run}\t{key}\n").as_bytes())
            .with_context(|| format!("failed to journal hook `{key}` in `{}`", path.display()))?;
        crate::fault::point!("marked:{key}");
        Ok(())
    }

    /// Makes the hook journal durable (before a reboot a hook asked for).
    pub fn sync_hook_marks(&self) -> Result<()> {
        if let Some(file) = &self.hooks_file {
            file.sync_all()
                .with_context(|| format!("failed to sync `{}`", self.hooks_journal.display()))?;
        }
        Ok(())
    }

    /// Hook keys of `run` in the hook journal.
    fn hook_marks(&self, run: i64) -> Result<Vec<JournalKey>> {
        let text = match std::fs::read_to_string(&self.hooks_journal) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to read `{}`", self.hooks_journal.display()));
            }
        };
        let run = run.to_string();
        Ok(text
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n')?.split_once('\t'))
            .filter(|(id, _)| *id == run)
            .map(|(_, key)| JournalKey::stored(key.to_string()))
            .collect())
    }

    /// Journals a hook phase as done with all its hooks, durably, and empties the hook journal.
    pub fn mark_phase_done(
        &mut self,
        run: i64,
        step: &JournalKey,
        hooks: &[JournalKey],
    ) -> Result<()> {
        crate::fault::point!("mark:{step}");
        let tx = self
            .conn
            .transaction()
            .context("failed to begin a transaction on state.db")?;
        {
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO journal (run_id, step, done_at) VALUES (?1, ?2, ?3)",
            )?;
            let at = now();
            for key in hooks.iter().chain([step]) {
                insert.execute(params![run, key, at])?;
            }
        }
        tx.commit()
            .with_context(|| format!("failed to journal step `{step}`"))?;
        self.hooks_file = None;
        if let Err(e) = File::create(&self.hooks_journal) {
            // harmless: its lines are in the database now
            tracing::warn!("failed to empty `{}`: {e}", self.hooks_journal.display());
        }
        crate::fault::point!("marked:{step}");
        Ok(())
    }

    /// Journals a step as done, durably (fsync) before returning.
    pub fn mark_done(&self, run: i64, step: &JournalKey, detail: Option<&str>) -> Result<()> {
        crate::fault::point!("mark:{step}");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO journal (run_id, step, done_at, detail) VALUES (?1, ?2, ?3, ?4)",
                params![run, step, now(), detail],
            )
            .with_context(|| format!("failed to journal step `{step}`"))?;
        crate::fault::point!("marked:{step}");
        Ok(())
    }

    /// Journals a step as not done, so that a resumed run does it again.
    pub fn unmark(&self, run: i64, step: &JournalKey) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM journal WHERE run_id = ?1 AND step = ?2",
                params![run, step],
            )
            .with_context(|| format!("failed to reopen step `{step}` in the journal"))?;
        Ok(())
    }

    /// Records `version` as installed and the step as done, in one transaction.
    pub fn record_installed(
        &mut self,
        run: i64,
        step: &JournalKey,
        version: Option<&str>,
    ) -> Result<()> {
        crate::fault::point!("mark:{step}");
        let tx = self
            .conn
            .transaction()
            .context("failed to begin a transaction on state.db")?;
        match version {
            Some(version) => tx.execute(
                "INSERT INTO installed (id, version, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                params![version, now()],
            )?,
            // nothing installed: the rollback of a fresh install
            None => tx.execute("DELETE FROM installed WHERE id = 1", [])?,
        };
        tx.execute(
            "INSERT OR REPLACE INTO journal (run_id, step, done_at) VALUES (?1, ?2, ?3)",
            params![run, step, now()],
        )?;
        tx.commit()
            .context("failed to record the installed version")?;
        crate::fault::point!("marked:{step}");
        Ok(())
    }

    /// Records an installation that predates this tool: its version, and a closed `adopted` run
    /// in the history.
    pub fn record_adoption(&mut self, plan: &Plan) -> Result<i64> {
        let json = serde_json::to_string(plan).context("failed to serialise the plan")?;
        let tx = self
            .conn
            .transaction()
            .context("failed to begin a transaction on state.db")?;
        tx.execute(
            "INSERT INTO runs (started_at, finished_at, from_version, to_version, status, plan)
             VALUES (?1, ?1, NULL, ?2, ?3, ?4)",
            params![now(), plan.to, RunStatus::Adopted, json],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO installed (id, version, updated_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            params![plan.to, now()],
        )?;
        tx.commit()
            .context("failed to record the adoption in state.db")?;
        Ok(id)
    }

    /// Closes or leaves open a run, as its status says.
    pub fn set_status(&self, run: i64, status: RunStatus, error: Option<&str>) -> Result<()> {
        let finished = (!status.is_open()).then(now);
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![run, status, error, finished],
            )
            .context("failed to update the run in state.db")?;
        Ok(())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{RUN_COLUMNS} FROM runs ORDER BY id"))?;
        let rows = stmt.query_map([], run_record)?;
        rows.collect::<Result<_, _>>()
            .context("failed to read the history from state.db")
    }

    pub fn run(&self, id: i64) -> Result<Option<(RunRecord, Plan)>> {
        let row = self
            .conn
            .query_row(
                &format!("{RUN_COLUMNS}, plan FROM runs WHERE id = ?1"),
                [id],
                |r| Ok((run_record(r)?, r.get::<_, String>(8)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((rec, plan)) => Ok(Some((rec, serde_json::from_str(&plan)?))),
        }
    }

    /// Records the health checks' report of run `run` (SPEC §13); each evaluation is kept.
    pub fn record_health(&self, run: i64, report: &HealthReport) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO health (run_id, checked_at, report) VALUES (?1, ?2, ?3)",
                params![run, now(), serde_json::to_string(report)?],
            )
            .context("failed to record the health checks in state.db")?;
        Ok(())
    }

    /// The last health report of run `run`, and when it was made; `None` when its checks never
    /// ran (or `state.db` predates them).
    pub fn health(&self, run: i64) -> Result<Option<(String, HealthReport)>> {
        let exists: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'health'",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT checked_at, report FROM health WHERE run_id = ?1 ORDER BY rowid DESC LIMIT 1",
                [run],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .context("failed to read the health checks from state.db")?;
        match row {
            None => Ok(None),
            Some((at, report)) => Ok(Some((at, serde_json::from_str(&report)?))),
        }
    }

    pub fn journal(&self, run: i64) -> Result<Vec<JournalEntry>> {
        let mut stmt = self.conn.prepare(
            "SELECT step, done_at, detail FROM journal WHERE run_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([run], |r| {
            Ok(JournalEntry {
                step: r.get(0)?,
                done_at: r.get(1)?,
                detail: r.get(2)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("failed to read the journal from state.db")
    }
}

const RUN_COLUMNS: &str =
    "SELECT id, started_at, finished_at, from_version, to_version, status, attempts, error";

fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        error: r.get(7)?,
    })
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        RunStatus::parse(text).ok_or_else(|| {
            FromSqlError::Other(format!("unknown run status `{text}` in state.db").into())
        })
    }
}

impl ToSql for JournalKey {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for JournalKey {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(JournalKey::stored(value.as_str()?.to_string()))
    }
}

/// The journal of one open run, as the steps see it: what is done, and marking more done.
pub struct Journal<'a> {
    state: &'a mut State,
    run: i64,
    done: HashSet<JournalKey>,
}

impl<'a> Journal<'a> {
    /// The journal of open run `run`, with the keys already done (a resumed run).
    pub fn new(state: &'a mut State, run: i64, done: HashSet<JournalKey>) -> Journal<'a> {
        Journal { state, run, done }
    }

    pub fn run_id(&self) -> i64 {
        self.run
    }

    pub fn is_done(&self, key: &JournalKey) -> bool {
        self.done.contains(key)
    }

    /// Journals a step as done, durably, with an optional JSON `detail`.
    pub fn mark(&mut self, key: &JournalKey, detail: Option<&str>) -> Result<()> {
        self.state.mark_done(self.run, key, detail)?;
        self.done.insert(key.clone());
        Ok(())
    }

    /// Journals one hook as done (one appended line; see the module doc).
    pub fn mark_hook(&mut self, key: &JournalKey) -> Result<()> {
        self.state.mark_hook_done(self.run, key)?;
        self.done.insert(key.clone());
        Ok(())
    }

    /// Makes the hook marks durable (before a reboot a hook asked for).
    pub fn sync_hooks(&self) -> Result<()> {
        self.state.sync_hook_marks()
    }

    /// Journals a hook phase as done with all its hooks, durably.
    pub fn mark_phase(&mut self, key: &JournalKey, hooks: &[JournalKey]) -> Result<()> {
        self.state.mark_phase_done(self.run, key, hooks)?;
        self.done.extend(hooks.iter().cloned());
        self.done.insert(key.clone());
        Ok(())
    }

    /// Journals a step as not done, so that a resumed run does it again.
    pub fn unmark(&mut self, key: &JournalKey) -> Result<()> {
        self.state.unmark(self.run, key)?;
        self.done.remove(key);
        Ok(())
    }

    /// Records the run's health report (see [`State::record_health`]).
    pub fn record_health(&self, report: &HealthReport) -> Result<()> {
        self.state.record_health(self.run, report)
    }

    /// Records `version` as installed and the step as done, in one transaction.
    pub fn record_installed(&mut self, key: &JournalKey, version: Option<&str>) -> Result<()> {
        self.state.record_installed(self.run, key, version)?;
        self.done.insert(key.clone());
        Ok(())
    }
}

/// `state.db` at `path` cannot be opened or prepared.
fn unusable(path: &Path, e: rusqlite::Error) -> UpgradeError {
    UpgradeError::StateUnusable {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}
