//! The product's database in a restore point: a snapshot taken with the engine's own tools, and a
//! restore that gives back exactly the snapshot's schema and rows — objects created after it
//! (tables, views, sequences, functions, types, migration ledger rows) are gone too.
//!
//! - SQLite: the online backup API, both ways: pages are copied under SQLite's locks, and the
//!   restore is one write transaction on the live database (a crash rolls it back).
//! - PostgreSQL: `pg_dump -Fc`, given back by `pg_restore` through `psql` in one transaction
//!   that first empties the database (`postgres.rs` says why and how).
//! - MariaDB/MySQL: `mariadb-dump --single-transaction --routines --triggers --events` (or
//!   `mysqldump`), given back by emptying the database and loading the dump with `mariadb` (or
//!   `mysql`) (`mariadb.rs` says why).
//!
//! Each function takes what it needs explicitly — the database URL, the root a SQLite path lives
//! under, the restore point's directory and where the client programs are ([`Tools`]) — so the
//! caller decides whether there is a database to save at all.

mod mariadb;
mod postgres;
mod sqlite;

use std::ffi::OsString;
use std::fmt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::error::UpgradeError;
use crate::steps::migrations::db::{Url, redact};

/// The database engines a snapshot can be of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
    /// MariaDB, or MySQL.
    Mariadb,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mariadb => "MariaDB",
        })
    }
}

/// What a database snapshot holds: which engine and database it is of, and the file in the
/// restore point's directory that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSnapshot {
    pub engine: Engine,
    /// The database URL without its secrets.
    pub database: String,
    /// The snapshot's file; `None` for a SQLite database that did not exist, which a restore
    /// removes again.
    pub file: Option<SnapshotFile>,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// The server's version (the SQLite library's for SQLite).
    pub server_version: String,
    /// The program that wrote it, with its version (`pg_dump (PostgreSQL) 15.20`).
    pub tool: String,
}

/// A file of the restore point's directory, with what verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Its name in the restore point's directory.
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A client program a snapshot or a restore needs and cannot use, with the packages that
/// provide it: preflight makes each an inhibitor, so that it is no surprise mid-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingTool {
    /// The command (`pg_dump`).
    pub command: String,
    pub problem: ToolProblem,
    /// The package that provides it on Debian and Ubuntu (`postgresql-client-15`).
    pub debian: String,
    /// The package that provides it on RHEL and its rebuilds (`postgresql15`, from the PGDG
    /// repository for PostgreSQL; AppStream's `postgresql` of the same module stream does too).
    pub rhel: String,
}

/// Why a client program cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolProblem {
    /// Not on the search path.
    NotFound,
    /// Of an older major version than the server: `pg_dump` refuses to dump a newer server, and
    /// `pg_restore` and `psql` may not read what a newer `pg_dump` wrote.
    TooOld { found: String, server: String },
}

impl fmt::Display for MissingTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            ToolProblem::NotFound => write!(f, "`{}` is not installed", self.command)?,
            ToolProblem::TooOld { found, server } => write!(
                f,
                "`{}` is version {found}, older than the database server's {server}",
                self.command
            )?,
        }
        write!(
            f,
            ": install `{}` (Debian, Ubuntu) or `{}` (RHEL)",
            self.debian, self.rhel
        )
    }
}

/// How a client program reaches the database: its arguments, and the variables that carry the
/// password (never an argument, which `ps` shows to every user).
struct Login {
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
}

/// Where the database client programs are looked up, and the environment they run with: the
/// variables programs inherit (SPEC §6), and nothing else of ours.
#[derive(Debug, Clone)]
pub struct Tools {
    env: Vec<(OsString, OsString)>,
}

impl Tools {
    /// The programs on this process's `PATH`.
    pub fn from_env() -> Tools {
        Tools {
            env: crate::process::inherited_env(),
        }
    }

    /// The programs on `path` (a `PATH`-style list) instead.
    pub fn with_path(path: impl Into<OsString>) -> Tools {
        let mut tools = Tools::from_env();
        tools.env.retain(|(k, _)| k != "PATH");
        tools.env.push(("PATH".into(), path.into()));
        tools
    }

    /// The first of `names` found on the search path.
    fn find(&self, names: &[&str]) -> Option<PathBuf> {
        let path = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/bin:/bin".into());
        names.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| {
                    std::fs::metadata(candidate)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
        })
    }

    /// `program` with this environment (and `extra`), no input, in a process group of its own,
    /// killed when the thread that started it ends.
    // NB: its own process group, like rpm's: a Ctrl-C at the terminal does not cut a restore
    // half way (on MariaDB that would leave a half-loaded database until the next restore).
    // But it dies with us: a run killed with `kill -9` must not leave a client loading a dump
    // while the resumed run empties the database and loads it again. (On PostgreSQL the dying
    // psql's transaction rolls back.)
    fn command(&self, program: &Path, extra: &[(&str, OsString)]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: prctl, getppid and raise are async-signal-safe, and the closure allocates
        // nothing, as code between fork and exec must.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // the parent died before prctl took effect
                if libc::getppid() as u32 != parent {
                    libc::raise(libc::SIGKILL);
                }
                Ok(())
            });
        }
        cmd
    }

    /// The first line `program --version` prints.
    fn version(&self, program: &Path) -> Result<String> {
        let mut cmd = self.command(program, &[]);
        let out = cmd
            .arg("--version")
            .stdout(Stdio::piped())
            .output()
            .with_context(|| format!("failed to run `{} --version`", program.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }
}

/// Takes a snapshot of the database at `url` (a SQLite path under `root`) into `dir`, durably:
/// written under a temporary name, fsynced, renamed, the directory fsynced.
///
/// Refuses, changing nothing, when a client program is missing or older than the server.
pub fn snapshot(url: &str, root: &Path, dir: &Path, tools: &Tools) -> Result<DbSnapshot> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let taken_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut snapshot = match Url::parse(url, root)? {
        Url::Sqlite(path) => sqlite::snapshot(&path, dir)?,
        Url::Postgres => postgres::snapshot(url, dir, tools)?,
        Url::Mysql(url) => mariadb::snapshot(&url, dir, tools)?,
    };
    snapshot.database = redact(url);
    snapshot.taken_at = taken_at;
    Ok(snapshot)
}

/// Gives the database at `url` back exactly the schema and rows of `snapshot`, whose file is in
/// `dir`: what was created since is dropped.
///
/// The snapshot's file is verified (size and sha256) before anything changes. Killed midway, it
/// can be run again and converges: on SQLite and PostgreSQL the restore is one transaction
/// (nothing is half restored), on MariaDB, whose DDL commits as it goes, the next restore
/// empties the database again and loads the whole dump.
pub fn restore(
    url: &str,
    root: &Path,
    snapshot: &DbSnapshot,
    dir: &Path,
    tools: &Tools,
) -> Result<()> {
    let target = Url::parse(url, root)?;
    let engine = match target {
        Url::Sqlite(_) => Engine::Sqlite,
        Url::Postgres => Engine::Postgres,
        Url::Mysql(_) => Engine::Mariadb,
    };
    if engine != snapshot.engine {
        return Err(UpgradeError::step(
            format!(
                "the restore point holds a {} snapshot of `{}`, but the database is now {} `{}`",
                snapshot.engine,
                snapshot.database,
                engine,
                redact(url)
            ),
            "set `[database] url` back to the database the restore point was taken of",
        )
        .into());
    }
    let file = match &snapshot.file {
        Some(file) => Some(verified(dir, file)?),
        None => None,
    };
    match (target, file) {
        (Url::Sqlite(path), file) => sqlite::restore(&path, file.as_deref()),
        (Url::Postgres, Some(file)) => postgres::restore(url, &file, tools),
        (Url::Mysql(url), Some(file)) => mariadb::restore(&url, &file, tools),
        (_, None) => Err(anyhow::anyhow!(
            "the restore point's {} snapshot has no file",
            snapshot.engine
        )),
    }
}

/// Drops the product's database objects for `uninstall --purge` (SPEC §14). SQLite: the file
/// is removed (with its `-wal`, `-shm` and `-journal`). PostgreSQL: every schema but `public`,
/// every object in `public`, the extensions the role may drop and the large objects, in one
/// transaction (what a restore empties first). MariaDB: every table, view, sequence, routine
/// and event of the database. The server-side database (and its owner and grants) stays,
/// empty: the product's role may not be allowed to create it again, and `rollback` restores
/// into it. Dropping again after a kill converges.
pub fn purge(url: &str, root: &Path) -> Result<()> {
    match Url::parse(url, root)? {
        Url::Sqlite(path) => sqlite::purge(&path),
        Url::Postgres => postgres::purge(url),
        Url::Mysql(url) => mariadb::purge(&url),
    }
}

/// About how many bytes a snapshot of the database at `url` takes, for the free-space check:
/// the database's size on the server (`pg_database_size`, the data and index lengths of
/// MariaDB's tables), the file's for SQLite (0 when it does not exist yet). A compressed
/// `pg_dump -Fc` is usually much smaller; a text dump of MariaDB's can be somewhat larger.
pub fn estimate_size(url: &str, root: &Path) -> Result<u64> {
    match Url::parse(url, root)? {
        Url::Sqlite(path) => sqlite::estimate_size(&path),
        Url::Postgres => postgres::estimate_size(url),
        Url::Mysql(url) => mariadb::estimate_size(&url),
    }
}

/// The client programs a snapshot and a restore of the database at `url` need and cannot use:
/// not on the search path of `tools`, or (PostgreSQL) of an older major version than the
/// server, whose version it asks. Empty for SQLite, which needs none.
pub fn missing_tools(url: &str, tools: &Tools) -> Result<Vec<MissingTool>> {
    // NB: a SQLite path is not looked at, so any root does
    match Url::parse(url, Path::new("/"))? {
        Url::Sqlite(_) => Ok(Vec::new()),
        Url::Postgres => postgres::missing_tools(url, tools),
        Url::Mysql(url) => mariadb::missing_tools(&url, tools),
    }
}

/// The path of `file` in `dir`, once its size and sha256 are what the snapshot recorded.
fn verified(dir: &Path, file: &SnapshotFile) -> Result<PathBuf> {
    let path = dir.join(&file.name);
    let (size, sha256) = super::digest(&path)?;
    if size != file.size || sha256 != file.sha256 {
        return Err(UpgradeError::step(
            format!(
                "the database snapshot `{}` is damaged: {size} bytes with sha256 {sha256}, the \
                 restore point recorded {} bytes with sha256 {}",
                path.display(),
                file.size,
                file.sha256
            ),
            "nothing was restored; the database is as it was",
        )
        .into());
    }
    Ok(path)
}

/// The longest a dump may run.
const DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Runs the dump `program` (`pg_dump`, `mariadb-dump`) with `args` to its end, `env` added to
/// the environment of `tools`; unless it exits 0, removes what it wrote to `staged` and fails
/// with the last lines it printed.
fn dump(
    tools: &Tools,
    program: &Path,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    dir: &Path,
    url: &str,
    staged: &Path,
) -> Result<()> {
    let name = program
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let options = crate::process::RunOptions {
        program: program.to_path_buf(),
        args,
        env: tools
            .env
            .iter()
            .cloned()
            .chain(env.into_iter().map(|(k, v)| (k.into(), v)))
            .collect(),
        cwd: dir.to_path_buf(),
        timeout: DUMP_TIMEOUT,
        keep_lines: 10,
        // NB: nothing has changed yet: an interrupt may cut a dump
        interruptible: true,
    };
    let finished = crate::process::run(&options, &mut |line| {
        tracing::debug!(program = %name, "{line}");
    });
    if finished.as_ref().is_ok_and(|f| f.success()) {
        return Ok(());
    }
    let _ = std::fs::remove_file(staged);
    let finished = finished?;
    Err(UpgradeError::step(
        format!(
            "`{name}` of `{}` {}: {}",
            redact(url),
            finished.status,
            finished.last_lines.join("\n")
        ),
        "nothing was changed; fix the cause, then run `upgrade` again",
    )
    .into())
}

/// Runs `cmd` (its standard error piped) to its end; an error quoting the last lines of its
/// standard error unless it exits 0.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {what}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "{what} failed ({}): {}",
        out.status,
        super::first_lines(&String::from_utf8_lossy(&out.stderr), 3)
    ))
}

/// The error for a client program that is `missing`, naming its package; `doing` says what it
/// stops.
fn refusal(missing: &MissingTool, doing: &str) -> anyhow::Error {
    UpgradeError::step(
        format!("cannot {doing}: {missing}"),
        "install it, then run `upgrade` again; `real-upgrade check` lists what is missing",
    )
    .into()
}

/// Stages the snapshot `name` in `dir`: an empty file only its owner may read (a dump holds
/// every row), which the dump program then fills; nothing is left from an earlier attempt.
fn staging(dir: &Path, name: &str) -> Result<PathBuf> {
    let staged = dir.join(format!(".{name}.tmp"));
    match std::fs::remove_file(&staged) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("failed to remove `{}`", staged.display()));
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("failed to create `{}`", staged.display()))?;
    Ok(staged)
}

/// Makes the staged snapshot `staged` durable as `name` in `dir`, and describes it.
fn finish(staged: &Path, dir: &Path, name: &str) -> Result<SnapshotFile> {
    let dst = dir.join(name);
    super::commit(staged, &dst)?;
    let (size, sha256) = super::digest(&dst)?;
    Ok(SnapshotFile {
        name: name.to_string(),
        size,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_program_dies_with_the_thread_that_started_it() {
        let tools = Tools::from_env();
        let sleep = tools.find(&["sleep"]).unwrap();
        // NB: the parent-death signal follows the thread that forked, as it would the process
        let mut child = std::thread::spawn(move || tools.command(&sleep, &[]).arg("300").spawn())
            .join()
            .unwrap()
            .unwrap();
        let pid = child.id();
        let gone = (0..250).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.split(' ').nth(2) == Some("Z")
        });
        if !gone {
            let _ = child.kill();
        }
        let _ = child.wait();
        assert!(gone, "`sleep` ({pid}) outlived the thread that started it");
    }
}
