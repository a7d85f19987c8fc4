//! The three databases migrations run against, behind one [`Database`] trait: SQLite (embedded,
//! `rusqlite`), PostgreSQL (`postgres`) and MariaDB/MySQL (`mysql`), chosen by `[database] url`.
//!
//! Each owns its ledger table, its lock (a `flock` beside the SQLite file, a PostgreSQL
//! transaction-scoped advisory lock, MariaDB `GET_LOCK`, each with a bounded wait) and how a batch of SQL migrations commits.
//!
//! A database a fleet shares (SPEC §15) says which node applied each migration (the ledger's
//! `node`) and which release each node runs (`upgrade_nodes`, written when a run records its
//! installed version), so that `migrations finalize` can refuse while nodes disagree.
//!
//! NB: the ledger never disagrees with the schema, even when a migration ends its transaction
//! (`COMMIT`, `ROLLBACK`, `END`). Planning refuses migrations that say so
//! ([`super::ensure_runnable`]), but a reader of SQL can be fooled, so applying checks as well:
//! on SQLite and PostgreSQL each migration runs under a savepoint, and a savepoint that is gone
//! after a migration means its transaction ended. What committed is then whatever the ledger
//! holds, and the migration is recorded as failed (it may be half applied) so that nobody builds
//! on it until `migrations repair`, as on MariaDB, where DDL commits as it goes anyway.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::Migration;
use crate::error::UpgradeError;
use crate::model::migration::{Dialect, scan_sql};

/// A row of `upgrade_migrations`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerRow {
    pub version: String,
    pub sequence: u32,
    pub name: String,
    pub sha256: String,
    pub applied_at: String,
    pub duration_ms: i64,
    pub success: bool,
    /// The node that applied it; `None` in rows written before nodes were recorded.
    pub node: Option<String>,
}

/// A row of `upgrade_nodes`: a node of the fleet and the release it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    pub node: String,
    pub version: String,
}

/// What a batch of SQL migrations did: the durations of those applied, the first ones of the
/// batch in order, then the migration that stopped it (its index in the batch) and why.
pub struct BatchOutcome {
    pub applied: Vec<Duration>,
    pub failed: Option<(usize, anyhow::Error)>,
}

pub trait Database {
    /// The database as messages name it (no password).
    fn describe(&self) -> String;
    fn prepare_ledger(&mut self) -> Result<()>;
    /// Takes the migration lock, waiting at most `timeout`.
    fn lock(&mut self, timeout: Duration) -> Result<()>;
    fn unlock(&mut self);
    fn ledger(&mut self) -> Result<Vec<LedgerRow>>;
    /// Applies SQL migrations in order, each with its ledger row, stopping at the first failure.
    fn apply_sql(&mut self, batch: &[&Migration], sql: &[String]) -> BatchOutcome;
    /// Writes (or replaces) the ledger row of `m`.
    fn record(&mut self, m: &Migration, success: bool, took: Duration) -> Result<()>;
    /// Deletes the failed rows; returns them.
    fn repair(&mut self) -> Result<Vec<LedgerRow>>;
    /// What to do after a failed migration on this database.
    fn failure_hint(&self) -> String;
    /// Records the release this node runs in `upgrade_nodes`.
    fn record_node(&mut self, version: &str) -> Result<()>;
    /// Every node of `upgrade_nodes`, by name (the table is [`Database::prepare_ledger`]'s).
    fn nodes(&mut self) -> Result<Vec<NodeRow>>;
}

const LOCK_NAME: &str = "upgrade_migrations";
/// The advisory lock key on PostgreSQL: "upgrade!" as a big-endian i64 (the key older versions
/// took as a session lock: the two exclude each other).
const PG_LOCK_KEY: i64 = 0x7570_6772_6164_6521;

/// Opens the database of `url` as `node` (what the ledger's rows and `upgrade_nodes` name this
/// host); SQLite paths are resolved under `root`.
pub fn connect(url: &str, root: &Path, node: &str) -> Result<Box<dyn Database>> {
    let node = node.to_string();
    match Url::parse(url, root)? {
        Url::Sqlite(path) => Ok(Box::new(Sqlite::open(url, path, node)?)),
        Url::Postgres => Ok(Box::new(Postgres::connect(url, node)?)),
        Url::Mysql(url) => Ok(Box::new(Mysql::connect(&url, node)?)),
    }
}

/// Like [`connect`], but `None` for a SQLite database that does not exist yet (nothing to read,
/// and reading must not create it).
pub fn connect_existing(url: &str, root: &Path, node: &str) -> Result<Option<Box<dyn Database>>> {
    if let Url::Sqlite(path) = Url::parse(url, root)?
        && !path.exists()
    {
        return Ok(None);
    }
    connect(url, root, node).map(Some)
}

/// The URL handed to executable migrations: a SQLite path is made absolute on this host.
pub fn url_for_programs(url: &str, root: &Path) -> Result<String> {
    Ok(match Url::parse(url, root)? {
        Url::Sqlite(path) => format!("sqlite://{}", path.display()),
        _ => url.to_string(),
    })
}

/// The dialect migrations for the database at `url` are written in (SQLite for a URL that
/// [`connect`] refuses).
pub fn dialect(url: &str) -> Dialect {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Dialect::Postgres,
        Some("mysql" | "mariadb") => Dialect::Mysql,
        _ => Dialect::Sqlite,
    }
}

/// A `[database] url`, parsed: which engine, and where.
pub(crate) enum Url {
    /// The database file, under the root.
    Sqlite(PathBuf),
    Postgres,
    /// The URL as the `mysql` crate takes it (`mariadb://` becomes `mysql://`).
    Mysql(String),
}

impl Url {
    pub(crate) fn parse(url: &str, root: &Path) -> Result<Url, UpgradeError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if !path.starts_with('/') {
                return Err(UpgradeError::input_hint(
                    format!(
                        "database url `{}`: the SQLite path must be absolute",
                        redact(url)
                    ),
                    "write `sqlite:///var/lib/PRODUCT/PRODUCT.db` (three slashes)",
                ));
            }
            return Ok(Url::Sqlite(root.join(path.trim_start_matches('/'))));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Url::Postgres);
        }
        if url.starts_with("mysql://") {
            return Ok(Url::Mysql(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("mariadb://") {
            return Ok(Url::Mysql(format!("mysql://{rest}")));
        }
        Err(UpgradeError::input_hint(
            format!("database url `{}`: unsupported scheme", redact(url)),
            "use sqlite:///PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB",
        ))
    }
}

/// Query parameters that carry a password (compared ignoring case).
const SECRET_PARAMETERS: [&str; 3] = ["password", "pass", "sslpassword"];

/// The URL without its secrets, for messages and output:
/// `scheme://user:secret@host/db?sslmode=require&password=secret` →
/// `scheme://user@host/db?sslmode=require`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // NB: the user part ends at the last `@` before the path: a password may hold an `@`.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let query = query.map(|query| {
        let (query, fragment) = match query.split_once('#') {
            Some((query, fragment)) => (query, format!("#{fragment}")),
            None => (query, String::new()),
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                !SECRET_PARAMETERS
                    .iter()
                    .any(|secret| key.eq_ignore_ascii_case(secret))
            })
            .collect();
        match kept.is_empty() {
            true => fragment,
            false => format!("?{}{fragment}", kept.join("&")),
        }
    });
    format!("{scheme}://{authority}{path}{}", query.unwrap_or_default())
}

fn unreachable_db(url: &str, e: impl std::fmt::Display) -> anyhow::Error {
    UpgradeError::step(
        format!("cannot connect to database `{}`: {e}", redact(url)),
        "check that the database server is running and `[database] url` is right, then run `upgrade` again",
    )
    .into()
}

fn lock_timed_out(db: &str, timeout: Duration) -> anyhow::Error {
    UpgradeError::LockTimeout {
        database: db.to_string(),
        timeout,
    }
    .into()
}

/// The context of a failure to record `node`'s release in `database`.
fn node_failed(node: &str, database: &str) -> String {
    format!("failed to record node `{node}` in `{database}`")
}

/// The savepoint each SQL migration runs under on SQLite and PostgreSQL.
const SAVEPOINT: &str = "upgrade_migration";

/// A database where an SQL migration commits together with its ledger row (SQLite, PostgreSQL).
trait Transactional: Database {
    /// Runs one or more statements.
    fn exec(&mut self, sql: &str) -> Result<()>;
    /// Runs `m` and writes its ledger row under [`SAVEPOINT`], which it opens and releases.
    fn step(&mut self, m: &Migration, text: &str) -> Result<()>;
    /// Whether the connection is still up: then a savepoint that cannot be rolled back to was
    /// ended by the migration, not by a lost server.
    fn connected(&self) -> bool;
}

/// Applies SQL migrations in one transaction with a savepoint each (SQLite and PostgreSQL).
///
/// A failed migration rolls back to its savepoint, its ledger row with it, and the ones before it
/// still commit; a crash rolls back the whole batch, ledger rows included, so the ledger never
/// disagrees with the schema. One commit (one fsync) for the batch instead of one per migration.
fn savepoint_batch(
    db: &mut dyn Transactional,
    begin: &str,
    batch: &[&Migration],
    sql: &[String],
) -> BatchOutcome {
    let mut applied = Vec::new();
    if let Err(e) = db.exec(begin) {
        return BatchOutcome {
            applied,
            failed: Some((0, e)),
        };
    }
    let mut failed = None;
    for (i, (m, text)) in batch.iter().zip(sql).enumerate() {
        // NB: an interrupt rolls the open transaction back, ledger rows with it (SPEC §5): the
        // resumed run applies the batch again from its first migration.
        let interrupted = |db: &mut dyn Transactional| {
            let error = crate::interrupt::check().err()?;
            let _ = db.exec("ROLLBACK");
            Some(BatchOutcome {
                applied: Vec::new(),
                failed: Some((i, error.into())),
            })
        };
        if let Some(outcome) = interrupted(db) {
            return outcome;
        }
        let started = Instant::now();
        if let Err(e) = db.step(m, text) {
            // a statement cut by the interrupt ends here too
            if let Some(outcome) = interrupted(db) {
                return outcome;
            }
            let undo = format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}");
            if let Err(lost) = db.exec(&undo) {
                return savepoint_lost(db, batch, i, applied, started.elapsed(), e, lost);
            }
            failed = Some((i, e));
            break;
        }
        applied.push(started.elapsed());
        crate::fault::point!("migration:{}", m.label());
    }
    if let Err(e) = db.exec("COMMIT") {
        let _ = db.exec("ROLLBACK");
        return BatchOutcome {
            applied: Vec::new(),
            failed: Some((0, e.context("commit failed"))),
        };
    }
    BatchOutcome { applied, failed }
}

/// Migration `i` of the batch failed and its savepoint is gone: the transaction is no longer the
/// batch's. Rolls back whatever is open, takes what committed from the ledger, and, when the
/// migration ended the transaction itself, records it as failed: part of it may have committed.
fn savepoint_lost(
    db: &mut dyn Transactional,
    batch: &[&Migration],
    i: usize,
    mut applied: Vec<Duration>,
    took: Duration,
    cause: anyhow::Error,
    lost: anyhow::Error,
) -> BatchOutcome {
    let ended = db.connected();
    let _ = db.exec("ROLLBACK");
    // NB: a `COMMIT` in the migration committed the migrations before it, ledger rows included;
    // a `ROLLBACK` undid them. The ledger knows which.
    let committed = match db.ledger() {
        Ok(rows) => {
            let ok: std::collections::HashSet<(String, u32)> = rows
                .into_iter()
                .filter(|r| r.success)
                .map(|r| (r.version, r.sequence))
                .collect();
            batch[..i]
                .iter()
                .take_while(|m| ok.contains(&m.key()))
                .count()
        }
        Err(_) => 0,
    };
    applied.truncate(committed);
    let m = batch[i];
    let error = if ended {
        let cause = match db.record(m, false, took) {
            Ok(()) => cause,
            Err(e) => cause.context(format!("and recording the failure failed too: {e:#}")),
        };
        cause.context(UpgradeError::MigrationEndedTransaction {
            migration: m.label(),
            database: db.describe(),
        })
    } else {
        cause.context(format!(
            "and rolling back to the savepoint failed: {lost:#}"
        ))
    };
    BatchOutcome {
        applied,
        failed: Some((i, error)),
    }
}

const PG_UPSERT: &str = "ON CONFLICT (version, sequence) DO UPDATE SET name = excluded.name, \
     sha256 = excluded.sha256, applied_at = excluded.applied_at, duration_ms = excluded.duration_ms, \
     success = excluded.success, node = excluded.node";

/// The statement that writes the ledger row of `m` applied by `node` (`verb` is the dialect's
/// insert-or-replace, `suffix` what follows the values; `duration` an SQL expression for
/// milliseconds).
fn ledger_insert(
    verb: &str,
    m: &Migration,
    success: bool,
    duration: &str,
    suffix: &str,
    node: &str,
) -> String {
    format!(
        "{verb} INTO upgrade_migrations (version, sequence, name, sha256, applied_at, duration_ms, success, node) \
         VALUES ({}, {}, {}, {}, {}, {duration}, {}, {}) {suffix}",
        sql_quote(&m.ledger_version()),
        m.sequence,
        sql_quote(&m.name),
        sql_quote(&m.sha256),
        sql_quote(&applied_at()),
        if success { "TRUE" } else { "FALSE" },
        sql_quote(node),
    )
}

/// The columns of a ledger row, in [`LedgerRow`]'s order.
const LEDGER_COLUMNS: &str =
    "version, sequence, name, sha256, applied_at, duration_ms, success, node";

/// `upgrade_nodes`, as every dialect takes it.
const NODES_TABLE: &str = "CREATE TABLE IF NOT EXISTS upgrade_nodes (
    node VARCHAR(255) NOT NULL PRIMARY KEY, version VARCHAR(100) NOT NULL)";

/// Microseconds, so that the ledger sorts in the order migrations were applied.
fn applied_at() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------

struct Sqlite {
    url: String,
    path: PathBuf,
    conn: rusqlite::Connection,
    lock: Option<std::fs::File>,
    node: String,
}

impl Sqlite {
    fn open(url: &str, path: PathBuf, node: String) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let conn = rusqlite::Connection::open(&path)
            .map_err(|e| unreachable_db(&format!("sqlite://{}", path.display()), e))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Ok(Sqlite {
            url: url.to_string(),
            path,
            conn,
            lock: None,
            node,
        })
    }
}

impl Database for Sqlite {
    fn describe(&self) -> String {
        redact(&self.url)
    }

    fn prepare_ledger(&mut self) -> Result<()> {
        self.conn
            .execute_batch(
                &format!("CREATE TABLE IF NOT EXISTS upgrade_migrations (
                    version TEXT NOT NULL, sequence INTEGER NOT NULL, name TEXT NOT NULL,
                    sha256 TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms INTEGER NOT NULL,
                    success INTEGER NOT NULL, node TEXT, PRIMARY KEY (version, sequence));
                    {NODES_TABLE}"),
            )
            .and_then(|()| {
                // NB: a ledger written before nodes were recorded gets the column in place
                let has_node: bool = self.conn.query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('upgrade_migrations') WHERE name = 'node'",
                    [],
                    |r| r.get(0),
                )?;
                match has_node {
                    true => Ok(()),
                    false => self
                        .conn
                        .execute_batch("ALTER TABLE upgrade_migrations ADD COLUMN node TEXT"),
                }
            })
            .with_context(|| {
                format!(
                    "failed to create the migration ledger in `{}`",
                    self.path.display()
                )
            })
    }

    fn lock(&mut self, timeout: Duration) -> Result<()> {
        let path = self.path.with_extension("upgrade-lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open `{}`", path.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(lock_timed_out(&self.describe(), timeout));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("failed to lock `{}`", path.display()));
                }
            }
        }
        self.lock = Some(file);
        Ok(())
    }

    fn unlock(&mut self) {
        self.lock = None;
    }

    fn ledger(&mut self) -> Result<Vec<LedgerRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {LEDGER_COLUMNS} FROM upgrade_migrations ORDER BY rowid"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(LedgerRow {
                version: r.get(0)?,
                sequence: r.get(1)?,
                name: r.get(2)?,
                sha256: r.get(3)?,
                applied_at: r.get(4)?,
                duration_ms: r.get(5)?,
                success: r.get(6)?,
                node: r.get(7)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .with_context(|| format!("failed to read the ledger of `{}`", self.describe()))
    }

    fn apply_sql(&mut self, batch: &[&Migration], sql: &[String]) -> BatchOutcome {
        let handle = self.conn.get_interrupt_handle();
        crate::interrupt::cancelling(
            move || handle.interrupt(),
            || savepoint_batch(self, "BEGIN IMMEDIATE", batch, sql),
        )
    }

    fn record(&mut self, m: &Migration, success: bool, took: Duration) -> Result<()> {
        self.conn
            .execute_batch(&ledger_insert(
                "INSERT OR REPLACE",
                m,
                success,
                &took.as_millis().to_string(),
                "",
                &self.node,
            ))
            .with_context(|| format!("failed to record migration `{}` in the ledger", m.label()))?;
        Ok(())
    }

    fn repair(&mut self) -> Result<Vec<LedgerRow>> {
        let failed: Vec<LedgerRow> = self.ledger()?.into_iter().filter(|r| !r.success).collect();
        self.conn
            .execute("DELETE FROM upgrade_migrations WHERE success = 0", [])?;
        Ok(failed)
    }

    fn failure_hint(&self) -> String {
        "the migration and its ledger row were rolled back; fix the migration or the database, then run `upgrade` again".into()
    }

    fn record_node(&mut self, version: &str) -> Result<()> {
        self.conn
            .execute_batch(NODES_TABLE)
            .and_then(|()| {
                self.conn.execute(
                    "INSERT INTO upgrade_nodes (node, version) VALUES (?1, ?2)
                     ON CONFLICT (node) DO UPDATE SET version = excluded.version",
                    (&self.node, version),
                )
            })
            .map(drop)
            .with_context(|| node_failed(&self.node, &self.describe()))
    }

    fn nodes(&mut self) -> Result<Vec<NodeRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT node, version FROM upgrade_nodes ORDER BY node")?;
        let rows = stmt.query_map([], |r| {
            Ok(NodeRow {
                node: r.get(0)?,
                version: r.get(1)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .with_context(|| format!("failed to read the nodes of `{}`", self.describe()))
    }
}

impl Transactional for Sqlite {
    fn exec(&mut self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn step(&mut self, m: &Migration, text: &str) -> Result<()> {
        // NB: the duration is measured by SQLite itself, from the savepoint on.
        self.conn.execute_batch(&format!(
            "SAVEPOINT {SAVEPOINT};\nCREATE TEMP TABLE IF NOT EXISTS upgrade_clock (t REAL);\n\
             DELETE FROM upgrade_clock; INSERT INTO upgrade_clock VALUES (julianday('now'));"
        ))?;
        self.conn.execute_batch(text)?;
        // NB: checked before the ledger row, which would commit on its own once out of the
        // transaction.
        if self.conn.is_autocommit() {
            anyhow::bail!("no transaction is open after the migration");
        }
        self.conn.execute_batch(&format!(
            "{};\nRELEASE {SAVEPOINT};",
            ledger_insert(
                "INSERT OR REPLACE",
                m,
                true,
                "CAST((julianday('now') - (SELECT t FROM upgrade_clock)) * 86400000 AS INTEGER)",
                "",
                &self.node,
            )
        ))?;
        Ok(())
    }

    fn connected(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------

struct Postgres {
    url: String,
    client: postgres::Client,
    /// The connection whose open transaction holds the migration lock.
    lock: Option<postgres::Client>,
    node: String,
}

/// The connection settings of a `postgres://` URL (bad input when it does not parse).
pub(crate) fn postgres_config(url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| UpgradeError::input(format!("database url `{}`: {e}", redact(url))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

/// A client connected to the PostgreSQL database of `url`, with a 10 s connect timeout unless
/// the URL sets one.
pub(crate) fn postgres_client(url: &str) -> Result<postgres::Client> {
    postgres_config(url)?
        .connect(postgres::NoTls)
        .map_err(|e| unreachable_db(url, e))
}

/// The connection settings of a `mysql://` URL (bad input when it does not parse).
pub(crate) fn mysql_opts(url: &str) -> Result<mysql::Opts> {
    let opts = mysql::Opts::from_url(url)
        .map_err(|e| UpgradeError::input(format!("database url `{}`: {e}", redact(url))))?;
    Ok(mysql::OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .into())
}

/// A connection to the MariaDB/MySQL database of `url`, with a 10 s connect timeout.
pub(crate) fn mysql_conn(url: &str) -> Result<mysql::Conn> {
    mysql::Conn::new(mysql_opts(url)?).map_err(|e| unreachable_db(url, e))
}

impl Postgres {
    fn connect(url: &str, node: String) -> Result<Postgres> {
        let client = postgres_client(url)?;
        Ok(Postgres {
            url: url.to_string(),
            client,
            lock: None,
            node,
        })
    }

    fn row(r: &postgres::Row) -> LedgerRow {
        LedgerRow {
            version: r.get(0),
            sequence: r.get::<_, i32>(1) as u32,
            name: r.get(2),
            sha256: r.get(3),
            applied_at: r.get(4),
            duration_ms: r.get(5),
            success: r.get(6),
            node: r.get(7),
        }
    }
}

impl Database for Postgres {
    fn describe(&self) -> String {
        redact(&self.url)
    }

    fn prepare_ledger(&mut self) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS upgrade_migrations (
                    version TEXT NOT NULL, sequence INTEGER NOT NULL, name TEXT NOT NULL,
                    sha256 TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms BIGINT NOT NULL,
                    success BOOLEAN NOT NULL, node TEXT, PRIMARY KEY (version, sequence));
                 {NODES_TABLE}"
            ))
            .and_then(|()| {
                // NB: a ledger written before nodes were recorded gets the column in place;
                // looked up first, as `ALTER TABLE` waits for every open reader of the ledger
                let has_node = self.client.query_one(
                    "SELECT count(*) > 0 FROM information_schema.columns WHERE table_schema = \
                     current_schema() AND table_name = 'upgrade_migrations' AND column_name = 'node'",
                    &[],
                )?;
                match has_node.get::<_, bool>(0) {
                    true => Ok(()),
                    false => self.client.batch_execute(
                        "ALTER TABLE upgrade_migrations ADD COLUMN IF NOT EXISTS node TEXT",
                    ),
                }
            })
            .or_else(|e| {
                // NB: two hosts creating the table at once: the loser sees a unique violation
                // on pg_type; the table exists then, which is all we wanted.
                if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
                    || e.code() == Some(&postgres::error::SqlState::DUPLICATE_TABLE)
                    || e.code() == Some(&postgres::error::SqlState::DUPLICATE_COLUMN)
                {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .with_context(|| {
                format!(
                    "failed to create the migration ledger in `{}`",
                    self.describe()
                )
            })
    }

    fn lock(&mut self, timeout: Duration) -> Result<()> {
        // NB: a transaction-scoped advisory lock, held by a transaction left open on a
        // connection of its own until `unlock`: a session-level lock taken through a
        // transaction-pooling pgbouncer stays with whichever server session ran it (never
        // released, or released by another client's statement); an open transaction keeps its
        // server session, and ends (the lock with it) when this process or its connection does.
        let what = || format!("failed to take the migration lock on `{}`", self.describe());
        let mut client = postgres_client(&self.url)?;
        client.batch_execute("BEGIN").with_context(what)?;
        let deadline = Instant::now() + timeout;
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PG_LOCK_KEY])
                .with_context(what)?;
            if row.get::<_, bool>(0) {
                self.lock = Some(client);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(lock_timed_out(&self.describe(), timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn unlock(&mut self) {
        if let Some(mut client) = self.lock.take() {
            let _ = client.batch_execute("ROLLBACK");
        }
    }

    fn ledger(&mut self) -> Result<Vec<LedgerRow>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {LEDGER_COLUMNS} FROM upgrade_migrations \
                     ORDER BY applied_at, version, sequence"
                ),
                &[],
            )
            .with_context(|| format!("failed to read the ledger of `{}`", self.describe()))?;
        Ok(rows.iter().map(Postgres::row).collect())
    }

    fn apply_sql(&mut self, batch: &[&Migration], sql: &[String]) -> BatchOutcome {
        let token = self.client.cancel_token();
        crate::interrupt::cancelling(
            move || {
                let _ = token.cancel_query(postgres::NoTls);
            },
            || savepoint_batch(self, "BEGIN", batch, sql),
        )
    }

    fn record(&mut self, m: &Migration, success: bool, took: Duration) -> Result<()> {
        self.client
            .batch_execute(&ledger_insert(
                "INSERT",
                m,
                success,
                &took.as_millis().to_string(),
                PG_UPSERT,
                &self.node,
            ))
            .with_context(|| format!("failed to record migration `{}` in the ledger", m.label()))
    }

    fn repair(&mut self) -> Result<Vec<LedgerRow>> {
        let rows = self.client.query(
            &format!("DELETE FROM upgrade_migrations WHERE NOT success RETURNING {LEDGER_COLUMNS}"),
            &[],
        )?;
        Ok(rows.iter().map(Postgres::row).collect())
    }

    fn failure_hint(&self) -> String {
        "the migration and its ledger row were rolled back; fix the migration or the database, then run `upgrade` again".into()
    }

    fn record_node(&mut self, version: &str) -> Result<()> {
        self.client
            .batch_execute(NODES_TABLE)
            .and_then(|()| {
                self.client.execute(
                    "INSERT INTO upgrade_nodes (node, version) VALUES ($1, $2)
                     ON CONFLICT (node) DO UPDATE SET version = excluded.version",
                    &[&self.node, &version],
                )
            })
            .map(drop)
            .with_context(|| node_failed(&self.node, &self.describe()))
    }

    fn nodes(&mut self) -> Result<Vec<NodeRow>> {
        let rows = self
            .client
            .query("SELECT node, version FROM upgrade_nodes ORDER BY node", &[])
            .with_context(|| format!("failed to read the nodes of `{}`", self.describe()))?;
        Ok(rows
            .iter()
            .map(|r| NodeRow {
                node: r.get(0),
                version: r.get(1),
            })
            .collect())
    }
}

impl Transactional for Postgres {
    fn exec(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn step(&mut self, m: &Migration, text: &str) -> Result<()> {
        // NB: one round trip per migration: savepoint, migration and ledger row travel as one
        // simple query, the duration measured by the server from the savepoint on. After a
        // `COMMIT` in the migration the rest runs in an implicit transaction, which the failing
        // `RELEASE` rolls back, ledger row included (the duration must not fail before it).
        Ok(self.client.batch_execute(&format!(
            "SAVEPOINT {SAVEPOINT};\nSELECT set_config('upgrade.started', clock_timestamp()::text, true);\n{text}\n;\n{};\nRELEASE SAVEPOINT {SAVEPOINT};",
            ledger_insert(
                "INSERT",
                m,
                true,
                "(extract(epoch FROM clock_timestamp() - coalesce(nullif(current_setting('upgrade.started', true), '')::timestamptz, clock_timestamp())) * 1000)::bigint",
                PG_UPSERT,
                &self.node,
            )
        ))?)
    }

    fn connected(&self) -> bool {
        !self.client.is_closed()
    }
}

// ---------------------------------------------------------------------------------------------

struct Mysql {
    url: String,
    conn: mysql::Conn,
    locked: bool,
    node: String,
}

impl Mysql {
    fn connect(url: &str, node: String) -> Result<Mysql> {
        let conn = mysql_conn(url)?;
        Ok(Mysql {
            url: url.to_string(),
            conn,
            locked: false,
            node,
        })
    }
}

/// Runs every statement of `text`. NB: `query_drop` only sees the first statement's error; a
/// later one surfaces while stepping through the result sets.
fn run_all(conn: &mut mysql::Conn, text: &str) -> mysql::Result<()> {
    use mysql::prelude::Queryable;
    let mut result = conn.query_iter(text)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

impl Database for Mysql {
    fn describe(&self) -> String {
        redact(&self.url)
    }

    fn prepare_ledger(&mut self) -> Result<()> {
        use mysql::prelude::Queryable;
        let describe = self.describe();
        self.conn
            .query_drop(
                "CREATE TABLE IF NOT EXISTS upgrade_migrations (
                    version VARCHAR(100) NOT NULL, sequence INT UNSIGNED NOT NULL, name VARCHAR(255) NOT NULL,
                    sha256 CHAR(64) NOT NULL, applied_at VARCHAR(40) NOT NULL, duration_ms BIGINT NOT NULL,
                    success BOOLEAN NOT NULL, node VARCHAR(255), PRIMARY KEY (version, sequence))",
            )
            .and_then(|()| self.conn.query_drop(NODES_TABLE))
            .and_then(|()| {
                // NB: a ledger written before nodes were recorded gets the column in place
                let has_node: Option<i64> = self.conn.query_first(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = \
                     DATABASE() AND table_name = 'upgrade_migrations' AND column_name = 'node'",
                )?;
                match has_node.unwrap_or(0) > 0 {
                    true => Ok(()),
                    false => self
                        .conn
                        .query_drop("ALTER TABLE upgrade_migrations ADD COLUMN node VARCHAR(255)"),
                }
            })
            .with_context(|| format!("failed to create the migration ledger in `{describe}`"))
    }

    fn lock(&mut self, timeout: Duration) -> Result<()> {
        use mysql::prelude::Queryable;
        let got: Option<Option<i64>> = self
            .conn
            .exec_first(
                "SELECT GET_LOCK(?, ?)",
                (LOCK_NAME, timeout.as_secs_f64().ceil() as u64),
            )
            .with_context(|| {
                format!("failed to take the migration lock on `{}`", self.describe())
            })?;
        match got.flatten() {
            Some(1) => {
                self.locked = true;
                Ok(())
            }
            _ => Err(lock_timed_out(&self.describe(), timeout)),
        }
    }

    fn unlock(&mut self) {
        use mysql::prelude::Queryable;
        if self.locked {
            let _ = self.conn.exec_drop("SELECT RELEASE_LOCK(?)", (LOCK_NAME,));
            self.locked = false;
        }
    }

    fn ledger(&mut self) -> Result<Vec<LedgerRow>> {
        use mysql::prelude::Queryable;
        type Row = (
            String,
            u32,
            String,
            String,
            String,
            i64,
            bool,
            Option<String>,
        );
        let rows: Vec<Row> = self
            .conn
            .query(format!(
                "SELECT {LEDGER_COLUMNS} FROM upgrade_migrations \
                 ORDER BY applied_at, version, sequence"
            ))
            .with_context(|| format!("failed to read the ledger of `{}`", self.describe()))?;
        Ok(rows
            .into_iter()
            .map(
                |(version, sequence, name, sha256, applied_at, duration_ms, success, node)| {
                    LedgerRow {
                        version,
                        sequence,
                        name,
                        sha256,
                        applied_at,
                        duration_ms,
                        success,
                        node,
                    }
                },
            )
            .collect())
    }

    fn apply_sql(&mut self, batch: &[&Migration], sql: &[String]) -> BatchOutcome {
        use mysql::prelude::Queryable;
        // NB: MariaDB commits DDL implicitly, so the transaction only protects data changes; a
        // failure is recorded as a failed row so that nobody builds on a half-applied schema.
        let mut applied = Vec::new();
        for (m, text) in batch.iter().zip(sql) {
            // NB: an interrupt stops the batch between migrations, never within one: MariaDB
            // commits DDL as it goes, and a migration cut in the middle would be half applied.
            if let Err(interrupted) = crate::interrupt::check() {
                return BatchOutcome {
                    failed: Some((applied.len(), interrupted.into())),
                    applied,
                };
            }
            let started = Instant::now();
            // NB: MariaDB refuses a query of comments alone ("Query was empty"): nothing to run.
            let blank = scan_sql(text, Dialect::Mysql).statements == 0;
            let result = self
                .conn
                .query_drop("START TRANSACTION")
                .and_then(|()| match blank {
                    true => Ok(()),
                    false => run_all(&mut self.conn, text),
                })
                .and_then(|()| {
                    self.conn.query_drop(ledger_insert(
                        "REPLACE",
                        m,
                        true,
                        &started.elapsed().as_millis().to_string(),
                        "",
                        &self.node,
                    ))
                })
                .and_then(|()| self.conn.query_drop("COMMIT"));
            if let Err(e) = result {
                let _ = self.conn.query_drop("ROLLBACK");
                let mut error = anyhow::Error::from(e);
                if let Err(record) = self.conn.query_drop(ledger_insert(
                    "REPLACE",
                    m,
                    false,
                    &started.elapsed().as_millis().to_string(),
                    "",
                    &self.node,
                )) {
                    error =
                        error.context(format!("and recording the failure failed too: {record}"));
                }
                return BatchOutcome {
                    failed: Some((applied.len(), error)),
                    applied,
                };
            }
            applied.push(started.elapsed());
        }
        BatchOutcome {
            applied,
            failed: None,
        }
    }

    fn record(&mut self, m: &Migration, success: bool, took: Duration) -> Result<()> {
        use mysql::prelude::Queryable;
        self.conn
            .query_drop(ledger_insert(
                "REPLACE",
                m,
                success,
                &took.as_millis().to_string(),
                "",
                &self.node,
            ))
            .with_context(|| format!("failed to record migration `{}` in the ledger", m.label()))
    }

    fn repair(&mut self) -> Result<Vec<LedgerRow>> {
        use mysql::prelude::Queryable;
        let failed: Vec<LedgerRow> = self.ledger()?.into_iter().filter(|r| !r.success).collect();
        self.conn
            .query_drop("DELETE FROM upgrade_migrations WHERE NOT success")?;
        Ok(failed)
    }

    fn failure_hint(&self) -> String {
        "MariaDB commits schema changes as it goes: the migration may be half applied and is recorded \
         as failed; repair the database, run `real-upgrade migrations repair`, then `upgrade` again"
            .into()
    }

    fn record_node(&mut self, version: &str) -> Result<()> {
        use mysql::prelude::Queryable;
        let describe = self.describe();
        self.conn
            .query_drop(NODES_TABLE)
            .and_then(|()| {
                self.conn.exec_drop(
                    "INSERT INTO upgrade_nodes (node, version) VALUES (?, ?)
                     ON DUPLICATE KEY UPDATE version = VALUES(version)",
                    (&self.node, version),
                )
            })
            .with_context(|| node_failed(&self.node, &describe))
    }

    fn nodes(&mut self) -> Result<Vec<NodeRow>> {
        use mysql::prelude::Queryable;
        let rows: Vec<(String, String)> = self
            .conn
            .query("SELECT node, version FROM upgrade_nodes ORDER BY node")
            .with_context(|| format!("failed to read the nodes of `{}`", self.describe()))?;
        Ok(rows
            .into_iter()
            .map(|(node, version)| NodeRow { node, version })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_removes_passwords_from_user_and_query() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@db:5432/prod",
                "postgres://app@db:5432/prod",
            ),
            ("postgres://app:p@ss@db/prod", "postgres://app@db/prod"),
            (
                "postgres://app@db/prod?sslmode=require&password=s3cret",
                "postgres://app@db/prod?sslmode=require",
            ),
            (
                "postgres://db/prod?PassWord=s3cret&application_name=x&SSLPASSWORD=s3cret",
                "postgres://db/prod?application_name=x",
            ),
            ("mysql://root@db/x?pass=s3cret", "mysql://root@db/x"),
            ("mysql://db?pass=s3cret#frag", "mysql://db#frag"),
            ("sqlite:///var/lib/x.db", "sqlite:///var/lib/x.db"),
            ("postgres://db/x?passes=1", "postgres://db/x?passes=1"),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }
}
