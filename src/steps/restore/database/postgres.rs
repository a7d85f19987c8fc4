//! PostgreSQL: `pg_dump -Fc`, given back by `pg_restore` through `psql` in one transaction that
//! first empties the database.
//!
//! NB: `pg_restore --clean` drops only what the dump contains, so a table, view, function or
//! type the upgrade created would survive it. Restoring into a fresh database and swapping the
//! names would need the `CREATEDB` privilege, no other session on either database (another
//! node's pool holds connections) and the database's own settings, owner and grants carried
//! over by hand. Instead the database is emptied in place and the dump loaded into it, both in
//! one transaction — PostgreSQL's DDL is transactional: `psql` runs `BEGIN`, [`EMPTY`], then the
//! script `pg_restore --single-transaction` writes, whose own `COMMIT` is its last statement. If
//! anything fails, or `pg_restore` or `psql` is killed, or the stream ends early, that `COMMIT`
//! never runs and the server rolls everything back: the database is as it was before the
//! restore, never half restored, and the next restore converges. (psql runs a statement cut
//! short at the end of its input: a cut `COMMIT;` can only commit once everything before it
//! arrived.)
//!
//! What [`EMPTY`] drops: every schema but `public` (with all it holds), every object in `public`
//! (its tables, views, sequences, functions, procedures, aggregates, types, domains, collations,
//! operators, statistics, text search configurations and dictionaries), the extensions the
//! restoring role may drop (plpgsql aside) and the large objects; and it sets the owner and
//! privileges of `public` back to those a new database has, against which the dump states its
//! own. `public` itself stays because a dump never creates it. An extension the restoring role
//! may not drop (a superuser created it in the product role's database) stays too: the dump's
//! `CREATE EXTENSION IF NOT EXISTS` leaves it alone, and its `COMMENT ON EXTENSION`, which only
//! the owner may run, is left out of the restore (`pg_restore --use-list`). Not covered: database-level
//! settings and grants, default privileges, event triggers, publications and subscriptions, casts
//! and foreign servers outside extensions — a dump of the schema does not hold the first two,
//! and product migrations do not create the rest.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result};

use super::{DbSnapshot, Engine, Login, MissingTool, ToolProblem, Tools};
use crate::error::UpgradeError;
use crate::steps::migrations::db::{postgres_client, postgres_config, redact};

const FILE: &str = "database.pgdump";

/// How long `pg_dump` and the emptying wait for another session's lock before giving up (the
/// run's services are stopped, but another node's may not be).
const LOCK_WAIT: &str = "1min";

/// Empties the database, in the transaction the restore runs in (see the module's NB).
// NB: the names to drop are collected into arrays before the first drop: a cascade drops
// objects later in the list, whose `regclass` text would then be a bare number.
const EMPTY: &str = r#"
DO $upgrade_restore$
DECLARE
    todo text[];
    what text;
    r record;
BEGIN
    PERFORM set_config('search_path', '', true);
    FOR r IN
        SELECT e.extname FROM pg_extension e
        WHERE e.extname <> 'plpgsql' AND pg_has_role(e.extowner, 'USAGE')
    LOOP
        EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
    END LOOP;
    FOR r IN
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname !~ '^pg_'
    LOOP
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
    END LOOP;
    -- what is in public: its own objects, not the parts of another (a table's row type or
    -- identity sequence, an array type) nor an extension's members
    WITH pub AS (SELECT oid FROM pg_namespace WHERE nspname = 'public'),
    part AS (SELECT classid, objid FROM pg_depend WHERE deptype IN ('i', 'e', 'a')),
    objects AS (
        SELECT 1 AS pass, 'pg_class'::regclass AS classid, c.oid,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                   WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END
               || ' IF EXISTS ' || c.oid::regclass::text AS what
        FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pub)
            AND c.relkind IN ('r', 'p', 'f', 'm', 'v', 'S')
        UNION ALL
        SELECT 2, 'pg_proc'::regclass, p.oid,
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                   ELSE 'FUNCTION' END
               || ' IF EXISTS ' || p.oid::regprocedure::text
        FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 3, 'pg_type'::regclass, t.oid,
               CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END
               || ' IF EXISTS ' || t.oid::regtype::text
        FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM pub)
            AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
            AND (t.typrelid = 0
                 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
        UNION ALL
        SELECT 4, 'pg_operator'::regclass, o.oid,
               'OPERATOR IF EXISTS ' || o.oid::regoperator::text
        FROM pg_operator o WHERE o.oprnamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 4, 'pg_opfamily'::regclass, f.oid,
               format('OPERATOR FAMILY IF EXISTS public.%I USING %I', f.opfname, a.amname)
        FROM pg_opfamily f JOIN pg_am a ON a.oid = f.opfmethod
        WHERE f.opfnamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 4, 'pg_collation'::regclass, c.oid,
               format('COLLATION IF EXISTS public.%I', c.collname)
        FROM pg_collation c WHERE c.collnamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 4, 'pg_conversion'::regclass, c.oid,
               format('CONVERSION IF EXISTS public.%I', c.conname)
        FROM pg_conversion c WHERE c.connamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 4, 'pg_statistic_ext'::regclass, s.oid,
               format('STATISTICS IF EXISTS public.%I', s.stxname)
        FROM pg_statistic_ext s WHERE s.stxnamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 4, 'pg_ts_config'::regclass, c.oid,
               format('TEXT SEARCH CONFIGURATION IF EXISTS public.%I', c.cfgname)
        FROM pg_ts_config c WHERE c.cfgnamespace = (SELECT oid FROM pub)
        UNION ALL
        SELECT 5, 'pg_ts_dict'::regclass, d.oid,
               format('TEXT SEARCH DICTIONARY IF EXISTS public.%I', d.dictname)
        FROM pg_ts_dict d WHERE d.dictnamespace = (SELECT oid FROM pub)
    )
    SELECT array_agg(o.what ORDER BY o.pass, o.what) INTO todo
    FROM objects o
    WHERE NOT EXISTS (SELECT 1 FROM part WHERE part.classid = o.classid AND part.objid = o.oid);
    FOREACH what IN ARRAY coalesce(todo, '{}') LOOP
        EXECUTE 'DROP ' || what || ' CASCADE';
    END LOOP;
    PERFORM pg_catalog.lo_unlink(l.oid) FROM pg_catalog.pg_largeobject_metadata l;
    -- public's owner and privileges as a new database has them (pg_dump 15 and later leave
    -- out an owner that is pg_database_owner, and state privileges against pg_init_privs)
    IF current_setting('server_version_num')::int >= 150000
       AND (SELECT nspowner FROM pg_namespace WHERE nspname = 'public')
           <> 'pg_database_owner'::regrole THEN
        ALTER SCHEMA public OWNER TO pg_database_owner;
    END IF;
    SELECT n.nspacl AS acl,
           coalesce(i.initprivs, acldefault('n', n.nspowner)) AS initial
    INTO r
    FROM pg_namespace n
    LEFT JOIN pg_init_privs i
        ON i.objoid = n.oid AND i.classoid = 'pg_namespace'::regclass AND i.objsubid = 0
    WHERE n.nspname = 'public';
    IF FOUND AND coalesce(r.acl, acldefault('n', (SELECT nspowner FROM pg_namespace
                                                  WHERE nspname = 'public')))
                 IS DISTINCT FROM r.initial THEN
        FOR what IN SELECT DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                    ELSE a.grantee::regrole::text END
                    FROM aclexplode(r.acl) a LOOP
            EXECUTE 'REVOKE ALL ON SCHEMA public FROM ' || what || ' CASCADE';
        END LOOP;
        FOR what IN SELECT a.privilege_type || ' ON SCHEMA public TO '
                           || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                           || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                    FROM aclexplode(r.initial) a LOOP
            EXECUTE 'GRANT ' || what;
        END LOOP;
    END IF;
END
$upgrade_restore$;
"#;

/// Drops everything [`EMPTY`] drops, in one transaction: `uninstall --purge` (SPEC §14). The
/// database itself stays (the product's role may not create one again), empty.
pub(super) fn purge(url: &str) -> Result<()> {
    let mut client = postgres_client(url)?;
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{LOCK_WAIT}'; \
             SET LOCAL client_min_messages = warning; {EMPTY} COMMIT;"
        ))
        .with_context(|| format!("failed to empty `{}`", redact(url)))
}

/// The server's version: `server_version_num` and `server_version`.
struct Server {
    num: u32,
    version: String,
}

impl Server {
    fn query(url: &str) -> Result<Server> {
        let mut client = postgres_client(url)?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
                &[],
            )
            .with_context(|| format!("failed to ask `{}` its version", redact(url)))?;
        Ok(Server {
            num: row.get::<_, i32>(0) as u32,
            version: row.get(1),
        })
    }

    /// The major version, as package names spell it: 15 for 15.4, 9 for 9.6.
    fn major(&self) -> u32 {
        self.num / 10_000
    }
}

/// The packages that provide PostgreSQL's client programs for a server of `major`.
fn package(command: &str, problem: ToolProblem, major: u32) -> MissingTool {
    MissingTool {
        command: command.to_string(),
        problem,
        debian: format!("postgresql-client-{major}"),
        rhel: format!("postgresql{major}"),
    }
}

/// The major version in a `--version` line (`pg_dump (PostgreSQL) 15.20 (Debian …)` → 15).
fn client_major(line: &str) -> Option<u32> {
    let version = line
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

pub(super) fn missing_tools(url: &str, tools: &Tools) -> Result<Vec<MissingTool>> {
    let server = Server::query(url)?;
    Ok(["pg_dump", "pg_restore", "psql"]
        .into_iter()
        .filter_map(|command| usable(&server, tools, command).err())
        .collect())
}

/// The client program `command` and its `--version` line, if it is found and its major version
/// is not older than the server's; what is wrong with it otherwise.
// NB: psql too: it must understand what pg_restore of the same package writes (`\restrict`).
// Debian's programs are a Perl wrapper that costs some 50 ms a run: each is asked once.
fn usable(server: &Server, tools: &Tools, command: &str) -> Result<(PathBuf, String), MissingTool> {
    let major = server.major();
    let Some(program) = tools.find(&[command]) else {
        return Err(package(command, ToolProblem::NotFound, major));
    };
    let line = tools.version(&program).unwrap_or_default();
    match client_major(&line) {
        Some(found) if found >= major => Ok((program, line)),
        _ => Err(package(
            command,
            ToolProblem::TooOld {
                found: match line.is_empty() {
                    true => "unknown".into(),
                    false => line.rsplit(") ").next().unwrap_or(&line).to_string(),
                },
                server: server.version.clone(),
            },
            major,
        )),
    }
}

/// [`usable`], or an error naming the package to install; `doing` says what it stops.
fn require(
    server: &Server,
    tools: &Tools,
    command: &str,
    doing: &str,
) -> Result<(PathBuf, String)> {
    usable(server, tools, command).map_err(|missing| super::refusal(&missing, doing))
}

/// The login of the client programs: the URL without its password as `--dbname` (libpq reads
/// URIs), the password in `PGPASSWORD`.
fn login(url: &str) -> Result<Login> {
    let config = postgres_config(url)?;
    let mut env: Vec<(&'static str, OsString)> = vec![("PGAPPNAME", "upgrade".into())];
    if let Some(password) = config.get_password() {
        use std::os::unix::ffi::OsStrExt;
        env.push(("PGPASSWORD", std::ffi::OsStr::from_bytes(password).into()));
    }
    // the URL's own `connect_timeout`, when it has one, wins over this default
    if let Some(timeout) = config.get_connect_timeout() {
        env.push((
            "PGCONNECT_TIMEOUT",
            timeout.as_secs().max(2).to_string().into(),
        ));
    }
    let mut dbname = OsString::from("--dbname=");
    dbname.push(redact(url));
    Ok(Login {
        args: vec![dbname],
        env,
    })
}

pub(super) fn snapshot(url: &str, dir: &Path, tools: &Tools) -> Result<DbSnapshot> {
    let server = Server::query(url)?;
    let (pg_dump, tool) = require(&server, tools, "pg_dump", "take a snapshot of the database")?;
    let login = login(url)?;
    let staged = super::staging(dir, FILE)?;
    let mut args: Vec<OsString> = vec![
        "--format=custom".into(),
        format!("--lock-wait-timeout={LOCK_WAIT}").into(),
        "--file".into(),
        staged.clone().into(),
    ];
    args.extend(login.args);
    super::dump(tools, &pg_dump, args, login.env, dir, url, &staged)?;
    Ok(DbSnapshot {
        engine: Engine::Postgres,
        database: String::new(),
        file: Some(super::finish(&staged, dir, FILE)?),
        taken_at: String::new(),
        server_version: server.version,
        tool,
    })
}

pub(super) fn restore(url: &str, file: &Path, tools: &Tools) -> Result<()> {
    let server = Server::query(url)?;
    let doing = "restore the database";
    let (pg_restore, _) = require(&server, tools, "pg_restore", doing)?;
    let (psql, _) = require(&server, tools, "psql", doing)?;
    let login = login(url)?;
    let list = match extensions_kept(url)?.as_slice() {
        [] => None,
        kept => Some(list_without_their_comments(tools, &pg_restore, file, kept)?),
    };
    let result = load(
        url,
        file,
        tools,
        &pg_restore,
        &psql,
        &login,
        list.as_deref(),
    );
    if let Some(list) = list {
        let _ = std::fs::remove_file(list);
    }
    result
}

/// The extensions [`EMPTY`] leaves because the restoring role may not drop them (a superuser
/// created them in a database the product's role owns).
fn extensions_kept(url: &str) -> Result<Vec<String>> {
    let mut client = postgres_client(url)?;
    let rows = client
        .query(
            "SELECT extname FROM pg_extension
             WHERE extname <> 'plpgsql' AND NOT pg_has_role(extowner, 'USAGE') ORDER BY 1",
            &[],
        )
        .with_context(|| format!("failed to list the extensions of `{}`", redact(url)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Writes the archive's table of contents beside it without the comments on the extensions
/// `kept`: their `CREATE EXTENSION IF NOT EXISTS` does nothing, but only their owner may set
/// their comment, which is still the archive's. The path of the list (`pg_restore --use-list`).
fn list_without_their_comments(
    tools: &Tools,
    pg_restore: &Path,
    file: &Path,
    kept: &[String],
) -> Result<PathBuf> {
    let out = tools
        .command(pg_restore, &[])
        .arg("--list")
        .arg(file)
        .stdout(Stdio::piped())
        .output()
        .with_context(|| format!("failed to run `{} --list`", pg_restore.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "`pg_restore --list {}` {}: {}",
            file.display(),
            out.status,
            super::super::first_lines(&String::from_utf8_lossy(&out.stderr), 3)
        );
    }
    let list: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| {
            // `3431; 0 0 COMMENT - EXTENSION citext `
            let words: Vec<&str> = line.split_whitespace().skip(3).collect();
            !matches!(words.as_slice(), ["COMMENT", "-", "EXTENSION", name, ..] if kept.iter().any(|k| k == name))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let path = file.with_extension("list");
    crate::fsutil::write_atomic(&path, list.as_bytes())?;
    Ok(path)
}

/// Runs `pg_restore --single-transaction` of `file` (only the entries of `list`, when given)
/// into `psql`, which empties the database first, in the same transaction.
fn load(
    url: &str,
    file: &Path,
    tools: &Tools,
    pg_restore: &Path,
    psql: &Path,
    login: &Login,
    list: Option<&Path>,
) -> Result<()> {
    let mut restore = tools.command(pg_restore, &[]);
    restore.args(["--single-transaction", "--file=-"]);
    if let Some(list) = list {
        restore.arg("--use-list").arg(list);
    }
    let mut restore = restore
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{}`", pg_restore.display()))?;
    let script = restore.stdout.take().expect("stdout is piped");
    // NB: the Command holds the pipe's read end until dropped: were it kept, pg_restore would
    // block on a full pipe instead of failing when psql ends early.
    let load = tools
        .command(psql, &login.env)
        .args(["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"])
        .args(&login.args)
        .arg("--command=BEGIN")
        .arg(format!(
            "--command=SET LOCAL lock_timeout = '{LOCK_WAIT}'; SET LOCAL client_min_messages = warning"
        ))
        .arg(format!("--command={EMPTY}"))
        .arg("--file=-")
        .stdin(script)
        .spawn();
    let load = match load {
        Ok(load) => load,
        Err(e) => {
            let _ = restore.kill();
            let _ = restore.wait();
            return Err(e).with_context(|| format!("failed to start `{}`", psql.display()));
        }
    };
    // NB: both read to their end at once: pg_restore's stderr in a thread, psql's here
    let restore_err = restore.stderr.take().expect("stderr is piped");
    let restore_err = std::thread::spawn(move || super::super::read_lossy(restore_err));
    let loaded = load
        .wait_with_output()
        .with_context(|| format!("failed to wait for `{}`", psql.display()))?;
    let restored = restore
        .wait()
        .with_context(|| format!("failed to wait for `{}`", pg_restore.display()))?;
    let restore_err = restore_err.join().unwrap_or_default();
    // NB: when one fails the other usually fails with it (psql stops reading, pg_restore gets
    // SIGPIPE; pg_restore dies, psql sees a cut statement): both are told, psql first
    let mut failures = Vec::new();
    if !loaded.status.success() {
        // the script's own `BEGIN` inside ours warns; that is expected
        let stderr: String = String::from_utf8_lossy(&loaded.stderr)
            .lines()
            .filter(|l| !l.contains("there is already a transaction in progress"))
            .collect::<Vec<_>>()
            .join("\n");
        failures.push(format!(
            "`psql` {}: {}",
            loaded.status,
            super::super::first_lines(&stderr, 3)
        ));
    }
    if !restored.success() {
        failures.push(format!(
            "`pg_restore` {}: {}",
            restored,
            super::super::first_lines(&restore_err, 3)
        ));
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(UpgradeError::step(
        format!(
            "restoring `{}` from `{}` failed: {}",
            redact(url),
            file.display(),
            failures.join("; ")
        ),
        "the restore is one transaction, which did not commit: the database is as it was \
         before it; fix the cause, then restore again",
    )
    .into())
}

pub(super) fn estimate_size(url: &str) -> Result<u64> {
    let mut client = postgres_client(url)?;
    let row = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .with_context(|| format!("failed to ask `{}` its size", redact(url)))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_major_reads_version_lines() {
        assert_eq!(
            client_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(client_major("pg_restore (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(client_major("pg_dump (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(client_major(""), None);
        let server = |num| Server {
            num,
            version: String::new(),
        };
        assert_eq!(server(150_020).major(), 15);
        assert_eq!(server(90_624).major(), 9);
    }
}
