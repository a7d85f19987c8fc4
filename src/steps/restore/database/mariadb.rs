//! MariaDB and MySQL: `mariadb-dump --single-transaction --routines --triggers --events` (or
//! `mysqldump`), given back by emptying the database and loading the dump with `mariadb` (or
//! `mysql`).
//!
//! NB: MariaDB commits DDL as it goes, so no restore of it can be one transaction, and it has no
//! way to rename a database or to move a view, routine or event to another: restoring into a
//! fresh database and swapping is not possible either. So the restore first drops everything the
//! database holds — views, tables and sequences (their triggers with them), procedures,
//! functions, packages and events — then loads the whole dump, which creates exactly the
//! snapshot's objects and rows again (`AUTO_INCREMENT` counters included). Killed or failed
//! midway, the database is partly restored; the next restore empties it again and converges.
//! What can fail without a server problem is checked before the first drop: the snapshot's
//! checksum ([`super::restore`]) and the client program. The client dies with the run (see
//! [`super::Tools`]), so a run killed with `kill -9` leaves no load going on beside the next. Not covered: the database's default
//! character set and grants, which a dump of the database's contents does not hold.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result};
use mysql::prelude::Queryable;

use super::{DbSnapshot, Engine, Login, MissingTool, ToolProblem, Tools};
use crate::error::UpgradeError;
use crate::steps::migrations::db::{mysql_conn, mysql_opts, redact};

const FILE: &str = "database.sql";

/// MariaDB, or Oracle's MySQL: their client programs have other names and packages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Mariadb,
    Mysql,
}

impl Flavour {
    fn of(version: &str) -> Flavour {
        match version.to_ascii_lowercase().contains("mariadb") {
            true => Flavour::Mariadb,
            false => Flavour::Mysql,
        }
    }

    /// The dump program's names, the preferred first.
    fn dump(self) -> &'static [&'static str] {
        match self {
            Flavour::Mariadb => &["mariadb-dump", "mysqldump"],
            Flavour::Mysql => &["mysqldump", "mariadb-dump"],
        }
    }

    /// The command-line client's names, the preferred first.
    fn client(self) -> &'static [&'static str] {
        match self {
            Flavour::Mariadb => &["mariadb", "mysql"],
            Flavour::Mysql => &["mysql", "mariadb"],
        }
    }

    fn missing(self, names: &[&str]) -> MissingTool {
        let (debian, rhel) = match self {
            Flavour::Mariadb => ("mariadb-client", "mariadb"),
            Flavour::Mysql => ("mysql-client", "mysql"),
        };
        MissingTool {
            command: names[0].to_string(),
            problem: ToolProblem::NotFound,
            debian: debian.into(),
            rhel: rhel.into(),
        }
    }
}

fn server_version(url: &str) -> Result<String> {
    let mut conn = mysql_conn(url)?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .with_context(|| format!("failed to ask `{}` its version", redact(url)))?;
    Ok(version.unwrap_or_default())
}

pub(super) fn missing_tools(url: &str, tools: &Tools) -> Result<Vec<MissingTool>> {
    Ok(check_tools(Flavour::of(&server_version(url)?), tools))
}

fn check_tools(flavour: Flavour, tools: &Tools) -> Vec<MissingTool> {
    [flavour.dump(), flavour.client()]
        .into_iter()
        .filter(|names| tools.find(names).is_none())
        .map(|names| flavour.missing(names))
        .collect()
}

/// The first of the programs `names` found, or an error naming the package to install; `doing`
/// says what it stops.
fn require(flavour: Flavour, tools: &Tools, names: &[&str], doing: &str) -> Result<PathBuf> {
    tools
        .find(names)
        .ok_or_else(|| super::refusal(&flavour.missing(names), doing))
}

/// The login of the client programs (the password in `MYSQL_PWD`), and the database's name.
fn login(url: &str) -> Result<(Login, String)> {
    let opts = mysql_opts(url)?;
    let Some(db) = opts.get_db_name().filter(|d| !d.is_empty()) else {
        return Err(UpgradeError::input_hint(
            format!("database url `{}` names no database", redact(url)),
            "write `mysql://USER@HOST:PORT/DATABASE`",
        )
        .into());
    };
    let mut args: Vec<OsString> = Vec::new();
    match opts.get_socket() {
        Some(socket) => args.push(format!("--socket={socket}").into()),
        None => {
            // NB: the URL means TCP; the client would take `localhost` for its socket
            args.push("--protocol=TCP".into());
            args.push(format!("--host={}", opts.get_ip_or_hostname()).into());
            args.push(format!("--port={}", opts.get_tcp_port()).into());
        }
    }
    if let Some(user) = opts.get_user() {
        args.push(format!("--user={user}").into());
    }
    args.push("--default-character-set=utf8mb4".into());
    let mut env = Vec::new();
    if let Some(password) = opts.get_pass() {
        env.push(("MYSQL_PWD", password.into()));
    }
    Ok((Login { args, env }, db.to_string()))
}

pub(super) fn snapshot(url: &str, dir: &Path, tools: &Tools) -> Result<DbSnapshot> {
    let version = server_version(url)?;
    let flavour = Flavour::of(&version);
    let dump = require(
        flavour,
        tools,
        flavour.dump(),
        "take a snapshot of the database",
    )?;
    let (Login { mut args, env }, db) = login(url)?;
    let staged = super::staging(dir, FILE)?;
    args.extend(
        [
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",
        ]
        .map(OsString::from),
    );
    let mut result_file = OsString::from("--result-file=");
    result_file.push(&staged);
    args.push(result_file);
    args.push(db.into());
    super::dump(tools, &dump, args, env, dir, url, &staged)?;
    let tool = tools.version(&dump)?;
    Ok(DbSnapshot {
        engine: Engine::Mariadb,
        database: String::new(),
        file: Some(super::finish(&staged, dir, FILE)?),
        taken_at: String::new(),
        server_version: version,
        tool,
    })
}

pub(super) fn restore(url: &str, file: &Path, tools: &Tools) -> Result<()> {
    let flavour = Flavour::of(&server_version(url)?);
    let client = require(flavour, tools, flavour.client(), "restore the database")?;
    let (login, db) = login(url)?;
    let input = std::fs::File::open(file)
        .with_context(|| format!("failed to open `{}`", file.display()))?;

    let name = client
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // NB: from the first drop on, a failure leaves the database partly restored
    empty(url)
        .with_context(|| format!("failed to empty `{}` before restoring it", redact(url)))
        .and_then(|()| {
            crate::fault::point!("restore:mariadb:emptied");
            super::run(
                tools
                    .command(&client, &login.env)
                    .args(&login.args)
                    .args(["--batch", "--max-allowed-packet=1G"])
                    .arg(&db)
                    .stdin(Stdio::from(input)),
                &format!("`{name}` loading `{}`", file.display()),
            )
        })
        .map_err(|e| {
            UpgradeError::step(
                format!("restoring `{}` failed: {e:#}", redact(url)),
                "the database is partly restored; restore it again, which empties it and loads \
                 the whole snapshot",
            )
            .into()
        })
}

/// `uninstall --purge` (SPEC §14): [`empty`]; the database itself stays.
pub(super) fn purge(url: &str) -> Result<()> {
    empty(url).with_context(|| format!("failed to empty `{}`", redact(url)))
}

/// Drops every view, table, sequence, routine and event of the database.
fn empty(url: &str) -> Result<()> {
    let mut conn = mysql_conn(url)?;
    conn.query_drop("SET SESSION FOREIGN_KEY_CHECKS = 0")?;
    let relations: Vec<(String, String)> = conn.query(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_TYPE <> 'VIEW', TABLE_NAME",
    )?;
    let routines: Vec<(String, String)> = conn.query(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES
         WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE = 'PACKAGE', ROUTINE_NAME",
    )?;
    let events: Vec<String> = conn.query(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()",
    )?;
    // views first: a view over a table dropped before it would still be dropped, but warns
    let drops = relations
        .iter()
        .map(|(name, kind)| {
            let verb = match kind.as_str() {
                "VIEW" => "VIEW",
                "SEQUENCE" => "SEQUENCE",
                _ => "TABLE",
            };
            format!("DROP {verb} IF EXISTS {}", quote(name))
        })
        .chain(routines.iter().map(|(name, kind)| {
            // a package body goes before its package, which drops both
            format!("DROP {kind} IF EXISTS {}", quote(name))
        }))
        .chain(
            events
                .iter()
                .map(|name| format!("DROP EVENT IF EXISTS {}", quote(name))),
        );
    for statement in drops {
        conn.query_drop(&statement)
            .with_context(|| format!("failed to run `{statement}`"))?;
    }
    Ok(())
}

/// An identifier in backquotes.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) fn estimate_size(url: &str) -> Result<u64> {
    let mut conn = mysql_conn(url)?;
    let size: Option<Option<u64>> = conn
        .query_first(
            "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED)
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .with_context(|| format!("failed to ask `{}` its size", redact(url)))?;
    Ok(size.flatten().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("a`b"), "`a``b`");
    }

    #[test]
    fn the_flavour_names_the_programs() {
        assert!(Flavour::of("10.11.19-MariaDB-0+deb12u1") == Flavour::Mariadb);
        assert!(Flavour::of("8.0.36") == Flavour::Mysql);
        assert_eq!(Flavour::Mysql.dump()[0], "mysqldump");
    }
}
