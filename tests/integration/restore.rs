//! Restore points' building blocks (`steps::restore`) against real SQLite, PostgreSQL
//! (127.0.0.1:5432) and MariaDB (127.0.0.1:3306), each test in a database of its own, and real
//! rpm in a sandbox root: a restore gives back exactly what the snapshot saved — compared as a
//! full dump, schema and rows — again when run twice and after a restore killed midway.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use upgrade::steps::restore::database::{self, DbSnapshot, Engine, ToolProblem, Tools};
use upgrade::steps::restore::files::{self, FileState};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// databases

/// Runs `sql` (statements separated by `;` at line ends) on the test database.
fn exec(db: &TestDb, sql: &str) {
    match db {
        TestDb::Sqlite { path, .. } => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        TestDb::Postgres { url, .. } => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
            c.batch_execute(sql).unwrap();
        }
        TestDb::Mariadb { url, .. } => {
            use mysql::prelude::Queryable;
            let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
            for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
                c.query_drop(statement)
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        }
    }
}

const LEDGER: &str = "CREATE TABLE upgrade_migrations (
    version VARCHAR(100) NOT NULL, sequence INTEGER NOT NULL, name VARCHAR(255) NOT NULL,
    sha256 CHAR(64) NOT NULL, applied_at VARCHAR(40) NOT NULL, duration_ms BIGINT NOT NULL,
    success BOOLEAN NOT NULL, PRIMARY KEY (version, sequence));
INSERT INTO upgrade_migrations VALUES ('1.0.0', 1, 'create', 'aa', '2024-01-01T00:00:00Z', 3, TRUE);
";

const LEDGER_MORE: &str = "INSERT INTO upgrade_migrations VALUES ('2.0.0', 1, 'alter', 'bb', '2024-02-01T00:00:00Z', 5, TRUE);
INSERT INTO upgrade_migrations VALUES ('2.0.0', 2, 'rewrite', 'cc', '2024-02-01T00:00:01Z', 9, FALSE);
";

/// The schema and rows of release 1.0.0 of a product.
fn create_schema(db: &TestDb) {
    let sql = match db {
        TestDb::Sqlite { .. } => {
            "PRAGMA journal_mode = WAL;
CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, balance REAL, photo BLOB);
CREATE INDEX customers_name ON customers (name);
CREATE VIEW rich AS SELECT name FROM customers WHERE balance > 100;
CREATE TRIGGER customers_positive BEFORE INSERT ON customers WHEN NEW.balance < 0 BEGIN SELECT RAISE(ABORT, 'negative'); END;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO customers (name, balance, photo) SELECT 'customer ' || i, i * 1.5, x'00ff10' FROM n;
PRAGMA user_version = 1;
"
            .to_string()
        }
        TestDb::Postgres { .. } => "CREATE EXTENSION citext;
CREATE TYPE status AS ENUM ('new', 'paid');
CREATE TABLE customers (id serial PRIMARY KEY, name citext NOT NULL, balance numeric(12,2),
    status status NOT NULL DEFAULT 'new', photo bytea);
CREATE INDEX customers_name ON customers (name);
COMMENT ON TABLE customers IS 'who pays';
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer int REFERENCES customers (id), total numeric(12,2));
CREATE VIEW rich AS SELECT name FROM customers WHERE balance > 100;
CREATE SEQUENCE invoice_no START 1000;
SELECT nextval('invoice_no');
CREATE FUNCTION total_of(c int) RETURNS numeric LANGUAGE sql
    AS $$ SELECT coalesce(sum(total), 0) FROM orders WHERE customer = c $$;
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date PRIMARY KEY, n int);
INSERT INTO reporting.daily VALUES ('2024-01-01', 3);
SELECT lo_from_bytea(0, 'a large object');
INSERT INTO customers (name, balance, photo)
    SELECT 'customer ' || i, i * 1.5, '\\x00ff10' FROM generate_series(1, 2000) i;
INSERT INTO orders (customer, total) SELECT 1 + i % 2000, i FROM generate_series(1, 5000) i;
"
        .to_string(),
        TestDb::Mariadb { .. } => "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL, balance DECIMAL(12,2), photo BLOB, KEY customers_name (name)) ENGINE=InnoDB;
CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(12,2),
    FOREIGN KEY (customer) REFERENCES customers (id)) ENGINE=InnoDB;
CREATE VIEW rich AS SELECT name FROM customers WHERE balance > 100;
CREATE SEQUENCE invoice_no START WITH 1000;
SELECT NEXTVAL(invoice_no);
CREATE FUNCTION total_of(c INT) RETURNS DECIMAL(12,2) READS SQL DATA
    RETURN (SELECT COALESCE(SUM(total), 0) FROM orders WHERE customer = c);
CREATE PROCEDURE touch_all() MODIFIES SQL DATA UPDATE customers SET balance = balance;
CREATE TRIGGER customers_positive BEFORE INSERT ON customers FOR EACH ROW SET NEW.balance = GREATEST(NEW.balance, 0);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DO DELETE FROM orders WHERE total < 0;
INSERT INTO customers (name, balance, photo) SELECT CONCAT('customer ', seq), seq * 1.5, x'00ff10' FROM seq_1_to_2000;
INSERT INTO orders (customer, total) SELECT 1 + seq % 2000, seq FROM seq_1_to_5000;
"
        .to_string(),
    };
    exec(db, &sql);
    exec(db, LEDGER);
}

/// What an upgrade's migrations do: alter a table, rewrite rows, add a table, a view, a
/// sequence, functions, types and ledger rows, drop something.
fn upgrade_schema(db: &TestDb) {
    let sql = match db {
        TestDb::Sqlite { .. } => "ALTER TABLE customers ADD COLUMN email TEXT;
UPDATE customers SET balance = balance * 2, name = upper(name);
DELETE FROM customers WHERE id % 7 = 0;
INSERT INTO customers (name) VALUES ('new one');
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
INSERT INTO audit (what) VALUES ('upgraded');
CREATE VIEW audit_view AS SELECT * FROM audit;
CREATE INDEX customers_email ON customers (email);
DROP VIEW rich;
DROP TRIGGER customers_positive;
PRAGMA user_version = 2;
",
        TestDb::Postgres { .. } => "CREATE EXTENSION hstore;
ALTER TABLE customers ADD COLUMN email text, ADD COLUMN tags hstore;
ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,4);
UPDATE customers SET balance = balance * 2, name = upper(name);
DELETE FROM orders WHERE id % 3 = 0;
INSERT INTO customers (name) VALUES ('new one');
ALTER TYPE status ADD VALUE 'refunded';
CREATE TABLE audit (id serial PRIMARY KEY, what text);
INSERT INTO audit (what) VALUES ('upgraded');
CREATE VIEW audit_view AS SELECT * FROM audit;
CREATE MATERIALIZED VIEW customer_count AS SELECT count(*) FROM customers;
CREATE SEQUENCE ticket_no;
SELECT nextval('invoice_no'), nextval('ticket_no');
CREATE OR REPLACE FUNCTION total_of(c int) RETURNS numeric LANGUAGE sql
    AS $$ SELECT 42::numeric $$;
CREATE FUNCTION answer() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 42; END $$;
CREATE FUNCTION audit_insert() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO audit (what) VALUES (NEW.name); RETURN NEW; END $$;
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION audit_insert();
CREATE PROCEDURE noop() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE AGGREGATE total_sum (numeric) (sfunc = numeric_add, stype = numeric);
CREATE TYPE pair AS (a int, b int);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE COLLATION german (provider = libc, locale = 'C');
CREATE STATISTICS customers_stats ON name, balance FROM customers;
CREATE SCHEMA extra;
CREATE TABLE extra.t (i int);
DROP TABLE reporting.daily;
COMMENT ON TABLE customers IS 'who pays more';
SELECT lo_create(0);
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT CREATE ON SCHEMA public TO PUBLIC;
ALTER SCHEMA public OWNER TO postgres;
",
        TestDb::Mariadb { .. } => "ALTER TABLE customers ADD COLUMN email VARCHAR(200);
UPDATE customers SET balance = balance * 2, name = UPPER(name);
DELETE FROM orders WHERE id % 3 = 0;
INSERT INTO customers (name) VALUES ('new one');
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what TEXT);
INSERT INTO audit (what) VALUES ('upgraded');
CREATE VIEW audit_view AS SELECT * FROM audit;
CREATE SEQUENCE ticket_no;
SELECT NEXTVAL(invoice_no);
CREATE FUNCTION answer() RETURNS INT DETERMINISTIC RETURN 42;
DROP PROCEDURE touch_all;
CREATE PROCEDURE noop() SELECT 1;
DROP TRIGGER customers_positive;
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW INSERT INTO audit (what) VALUES (NEW.name);
CREATE EVENT weekly ON SCHEDULE EVERY 1 WEEK STARTS '2030-01-01 04:00:00' DO DELETE FROM audit;
DROP VIEW rich;
",
    };
    exec(db, sql);
    exec(db, LEDGER_MORE);
}

/// Where `pg_dump`, `mariadb` and the rest really are (`scripts/setup.sh` installs them).
fn real(program: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Writes `wrappers` (name, shell script body) into `dir/bin`, which it returns.
fn write_wrappers(dir: &Path, wrappers: &[(&str, String)]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in wrappers {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// `Tools` that find `wrappers` (name, shell script body) before the real programs.
fn wrapped(dir: &Path, wrappers: &[(&str, String)]) -> Tools {
    let bin = write_wrappers(dir, wrappers);
    let mut path = std::ffi::OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap());
    Tools::with_path(path)
}

/// Snapshot, upgrade, restore: the dump equals the one before; a second restore too.
fn restores_exactly(db: TestDb, sb: Sandbox) {
    let tools = Tools::from_env();
    let point = sb.base.join("restore/1");
    create_schema(&db);
    let before = full_dump(&db);
    assert!(database::estimate_size(db.url(), &sb.root).unwrap() > 0);
    assert_eq!(database::missing_tools(db.url(), &tools).unwrap(), []);

    let started = Instant::now();
    let snapshot = database::snapshot(db.url(), &sb.root, &point, &tools).unwrap();
    let took_snapshot = started.elapsed();
    let file = snapshot.file.clone().unwrap();
    assert_eq!(
        std::fs::metadata(point.join(&file.name)).unwrap().len(),
        file.size
    );
    assert_eq!(
        std::fs::metadata(point.join(&file.name)).unwrap().mode() & 0o777,
        0o600,
        "a dump holds every row: only its owner reads it"
    );
    assert!(!snapshot.server_version.is_empty() && !snapshot.tool.is_empty());
    // what the caller keeps in the restore point's manifest, and reads back
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: DbSnapshot = serde_json::from_str(&json).unwrap();

    upgrade_schema(&db);
    let upgraded = full_dump(&db);
    assert_ne!(upgraded, before, "the upgrade changed nothing");

    let started = Instant::now();
    database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap();
    let took_restore = started.elapsed();
    assert_same(&full_dump(&db), &before, "after the restore");
    database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap();
    assert_same(&full_dump(&db), &before, "after a second restore");
    eprintln!(
        "{}: snapshot {took_snapshot:?} ({} bytes), restore {took_restore:?}",
        snapshot.engine, file.size
    );
}

#[test]
fn sqlite_restore_is_exact_and_idempotent() {
    let sb = Sandbox::new();
    restores_exactly(TestDb::sqlite(&sb), sb);
}

#[test]
fn postgres_restore_is_exact_and_idempotent() {
    restores_exactly(TestDb::postgres(), Sandbox::new());
}

#[test]
fn mariadb_restore_is_exact_and_idempotent() {
    restores_exactly(TestDb::mariadb(), Sandbox::new());
}

#[test]
fn a_sqlite_database_that_did_not_exist_is_removed_again() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let tools = Tools::from_env();
    let point = sb.base.join("restore/1");
    assert_eq!(database::estimate_size(db.url(), &sb.root).unwrap(), 0);
    let snapshot = database::snapshot(db.url(), &sb.root, &point, &tools).unwrap();
    assert_eq!(snapshot.file, None);
    assert!(!path.exists(), "a snapshot must not create the database");
    create_schema(&db);
    database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap();
    let dir = path.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap();
}

#[test]
fn a_damaged_snapshot_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let tools = Tools::from_env();
    let point = sb.base.join("restore/1");
    create_schema(&db);
    let snapshot = database::snapshot(db.url(), &sb.root, &point, &tools).unwrap();
    upgrade_schema(&db);
    let upgraded = full_dump(&db);
    let file = point.join(&snapshot.file.as_ref().unwrap().name);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let err = database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap_err();
    assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    assert_same(&full_dump(&db), &upgraded, "after a refused restore");
    // and another engine's snapshot is refused too
    let mut other = snapshot.clone();
    other.engine = Engine::Postgres;
    let err = database::restore(db.url(), &sb.root, &other, &point, &tools).unwrap_err();
    assert!(
        format!("{err:#}").contains("PostgreSQL snapshot"),
        "{err:#}"
    );
}

/// What a restore killed midway left: the dumps before and after the upgrade and after the
/// killed restore, and its error.
struct Killed {
    before: String,
    upgraded: String,
    after: String,
    error: String,
}

/// Snapshot, upgrade, then a restore in which `program` is the shell script `script` makes of
/// the real program and the snapshot's file; then a restore with the real programs, which must
/// give back the snapshot exactly.
fn restore_killed_midway(
    db: &TestDb,
    program: &str,
    script: impl Fn(&Path, &Path) -> String,
) -> Killed {
    let sb = Sandbox::new();
    let tools = Tools::from_env();
    let point = sb.base.join("restore/1");
    create_schema(db);
    let before = full_dump(db);
    let snapshot = database::snapshot(db.url(), &sb.root, &point, &tools).unwrap();
    upgrade_schema(db);
    let upgraded = full_dump(db);
    let file = point.join(&snapshot.file.as_ref().unwrap().name);
    let killed = wrapped(&sb.base, &[(program, script(&real(program), &file))]);
    let error = database::restore(db.url(), &sb.root, &snapshot, &point, &killed).unwrap_err();
    let after = full_dump(db);
    database::restore(db.url(), &sb.root, &snapshot, &point, &tools).unwrap();
    assert_same(&full_dump(db), &before, "after the restore run again");
    Killed {
        before,
        upgraded,
        after,
        error: format!("{error:#}"),
    }
}

#[test]
fn a_postgres_restore_killed_midway_changes_nothing_and_converges() {
    // pg_restore killed (SIGKILL) half way through its script: psql has emptied the database and
    // loaded part of it, in a transaction that never commits
    let killed = restore_killed_midway(&TestDb::postgres(), "pg_restore", |real, file| {
        let script = Command::new(real)
            .args(["--single-transaction", "--file=-"])
            .arg(file)
            .output()
            .unwrap()
            .stdout;
        let half = script.len() / 2;
        format!("\"{}\" \"$@\" | head -c {half}\nkill -9 $$", real.display())
    });
    assert!(
        killed.error.contains("`pg_restore` signal: 9"),
        "{}",
        killed.error
    );
    assert_same(&killed.after, &killed.upgraded, "after a killed restore");
}

#[test]
fn a_mariadb_restore_killed_midway_converges_when_run_again() {
    // the client killed (SIGKILL) after loading half the dump
    let killed = restore_killed_midway(&TestDb::mariadb(), "mariadb", |real, file| {
        let half = std::fs::metadata(file).unwrap().len() / 2;
        format!("head -c {half} | \"{}\" \"$@\"\nkill -9 $$", real.display())
    });
    assert!(
        killed.error.contains("`mariadb` loading"),
        "{}",
        killed.error
    );
    assert!(killed.error.contains("signal: 9"), "{}", killed.error);
    assert_ne!(killed.after, killed.before, "half a dump restored it all?");
}

#[test]
fn missing_client_programs_name_their_packages() {
    let sb = Sandbox::new();
    let empty = sb.base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let nothing = Tools::with_path(&empty);
    let point = sb.base.join("restore/1");

    let pg = TestDb::postgres();
    let missing = database::missing_tools(pg.url(), &nothing).unwrap();
    let named: Vec<(&str, &str, &str)> = missing
        .iter()
        .map(|m| (m.command.as_str(), m.debian.as_str(), m.rhel.as_str()))
        .collect();
    // the server's major version, as this host's psql sees it
    let major = pg.scalar("SELECT current_setting('server_version_num')::bigint / 10000");
    let debian = format!("postgresql-client-{major}");
    let rhel = format!("postgresql{major}");
    assert_eq!(
        named,
        [
            ("pg_dump", debian.as_str(), rhel.as_str()),
            ("pg_restore", debian.as_str(), rhel.as_str()),
            ("psql", debian.as_str(), rhel.as_str()),
        ]
    );
    assert!(missing.iter().all(|m| m.problem == ToolProblem::NotFound));
    let err = database::snapshot(pg.url(), &sb.root, &point, &nothing).unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("install `{debian}`")),
        "{err:#}"
    );
    assert!(!point.join("database.pgdump").exists());

    // a pg_dump older than the server is as good as none
    let old = wrapped(
        &sb.base.join("old"),
        &[
            ("pg_dump", "echo 'pg_dump (PostgreSQL) 9.6.24'".into()),
            ("pg_restore", "echo 'pg_restore (PostgreSQL) 9.6.24'".into()),
            ("psql", "echo 'psql (PostgreSQL) 9.6.24'".into()),
        ],
    );
    let missing = database::missing_tools(pg.url(), &old).unwrap();
    let server_version: String = postgres::Client::connect(pg.url(), postgres::NoTls)
        .unwrap()
        .query_one("SHOW server_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(missing.len(), 3, "{missing:?}");
    assert_eq!(
        missing[0].problem,
        ToolProblem::TooOld {
            found: "9.6.24".into(),
            server: server_version.clone(),
        }
    );
    assert!(
        missing[0]
            .to_string()
            .contains("older than the database server's")
    );

    let maria = TestDb::mariadb();
    let missing = database::missing_tools(maria.url(), &nothing).unwrap();
    let named: Vec<(&str, &str, &str)> = missing
        .iter()
        .map(|m| (m.command.as_str(), m.debian.as_str(), m.rhel.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("mariadb-dump", "mariadb-client", "mariadb"),
            ("mariadb", "mariadb-client", "mariadb"),
        ]
    );
    let err = database::snapshot(maria.url(), &sb.root, &point, &nothing).unwrap_err();
    assert!(format!("{err:#}").contains("mariadb-client"), "{err:#}");
    // `mysqldump` and `mysql` do where `mariadb-dump` and `mariadb` are not
    let renamed = write_wrappers(
        &sb.base.join("renamed"),
        &[
            (
                "mysqldump",
                format!("exec \"{}\" \"$@\"", real("mariadb-dump").display()),
            ),
            (
                "mysql",
                format!("exec \"{}\" \"$@\"", real("mariadb").display()),
            ),
        ],
    );
    let renamed = Tools::with_path(renamed);
    assert_eq!(database::missing_tools(maria.url(), &renamed).unwrap(), []);
    let snapshot = database::snapshot(maria.url(), &sb.root, &point, &renamed).unwrap();
    assert!(snapshot.file.is_some());
    database::restore(maria.url(), &sb.root, &snapshot, &point, &renamed).unwrap();

    let sqlite = TestDb::sqlite(&sb);
    assert_eq!(database::missing_tools(sqlite.url(), &nothing).unwrap(), []);
}

/// The password of the tests' product users and roles, `@` and all.
const PASSWORD: &str = "s3cret@x";

/// `Tools` whose `programs` append their command line to the returned log, and whether the
/// environment variable `variable` held [`PASSWORD`], before they run the real program.
fn spied(sb: &Sandbox, variable: &str, programs: &[&'static str]) -> (Tools, PathBuf) {
    let log = sb.base.join("argv.log");
    let wrappers: Vec<(&str, String)> = programs
        .iter()
        .map(|&program| {
            let body = format!(
                "echo \"{program} $*\" >> {log}\n\
                 [ \"${variable}\" = '{PASSWORD}' ] && echo \"{program} has the password\" >> {log}\n\
                 exec \"{}\" \"$@\"",
                real(program).display(),
                log = log.display(),
            );
            (program, body)
        })
        .collect();
    (wrapped(&sb.base, &wrappers), log)
}

/// Each of `programs` ran with the password in its environment, none with it on its command
/// line: what the log of [`spied`] says.
fn password_kept_off_command_lines(log: &Path, programs: &[&str]) -> String {
    let argv = std::fs::read_to_string(log).unwrap();
    for program in programs {
        let has = format!("{program} has the password");
        assert!(argv.contains(&has), "{argv}");
    }
    assert!(
        !argv.contains("s3cret"),
        "a password on a command line: {argv}"
    );
    argv
}

#[test]
fn a_product_role_with_a_password_restores_beside_a_superusers_extension() {
    // a PostgreSQL role with a password, reached through a URL that carries it, owning a
    // database in which a superuser created an extension
    let db = TestDb::postgres();
    let TestDb::Postgres { name, .. } = &db else {
        unreachable!()
    };
    let role = format!("{name}_app");
    exec(
        &db,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'; GRANT ALL ON SCHEMA public TO {role}; \
             ALTER DATABASE {name} OWNER TO {role}; CREATE EXTENSION citext"
        ),
    );
    let sb = Sandbox::new();
    let url = format!("postgres://{role}:s3cret%40x@127.0.0.1:5432/{name}");
    assert_eq!(PASSWORD, "s3cret@x", "the URL spells it percent-encoded");
    let (tools, log) = spied(&sb, "PGPASSWORD", &["pg_dump", "psql"]);
    let point = sb.base.join("restore/1");
    exec(
        &db,
        &format!(
            "SET ROLE {role}; CREATE TABLE t (i int, name citext); INSERT INTO t VALUES (1, 'a')"
        ),
    );
    let before = full_dump(&db);
    let snapshot = database::snapshot(&url, &sb.root, &point, &tools).unwrap();
    exec(
        &db,
        &format!("SET ROLE {role}; INSERT INTO t VALUES (2, 'b'); CREATE TABLE t2 (i int)"),
    );
    database::restore(&url, &sb.root, &snapshot, &point, &tools).unwrap();
    assert_same(&full_dump(&db), &before, "after the restore");
    let argv = password_kept_off_command_lines(&log, &["pg_dump", "psql"]);
    let dbname = format!("--dbname=postgres://{role}@127.0.0.1:5432/{name}");
    assert_eq!(argv.matches(&dbname).count(), 2, "{argv}");
    drop(db);
    let mut admin = postgres::Client::connect(POSTGRES_ADMIN, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .unwrap();
}

#[test]
fn a_mariadb_user_with_a_password_keeps_it_off_command_lines() {
    let db = TestDb::mariadb();
    let TestDb::Mariadb { name, .. } = &db else {
        unreachable!()
    };
    let user = format!("{name}_app");
    exec(
        &db,
        &format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL ON {name}.* TO '{user}'@'127.0.0.1';\n"
        ),
    );
    let sb = Sandbox::new();
    let url = format!("mysql://{user}:s3cret%40x@127.0.0.1:3306/{name}");
    let (tools, log) = spied(&sb, "MYSQL_PWD", &["mariadb-dump", "mariadb"]);
    let point = sb.base.join("restore/1");
    let before = full_dump(&db);
    let snapshot = database::snapshot(&url, &sb.root, &point, &tools).unwrap();
    exec(&db, "CREATE TABLE t (i INT);\n");
    database::restore(&url, &sb.root, &snapshot, &point, &tools).unwrap();
    assert_same(&full_dump(&db), &before, "after the restore");
    let argv = password_kept_off_command_lines(&log, &["mariadb-dump", "mariadb"]);
    assert_eq!(argv.matches(&format!("--user={user}")).count(), 2, "{argv}");
    exec(&db, &format!("DROP USER '{user}'@'127.0.0.1';\n"));
}

// ---------------------------------------------------------------------------------------------
// configuration files

/// Each path's kind, mode, owner, content or target and (files) modification time.
fn file_states(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.join("etc"), root.join("opt")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let owner = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!(
                    "{name} -> {} {}:{}",
                    target.display(),
                    meta.uid(),
                    meta.gid()
                ));
            } else if meta.is_dir() {
                out.push(format!("{name}/ {owner}"));
                dirs.push(path);
            } else {
                let content = std::fs::read_to_string(&path).unwrap();
                out.push(format!(
                    "{name} {owner} {}.{} {content:?}",
                    meta.mtime(),
                    meta.mtime_nsec()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Replaces what is at `path` (a symlink too, not what it points to) with a file.
fn write(path: &Path, content: &str, mode: u32, owner: (u32, u32)) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    std::fs::write(path, content).unwrap();
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// [`write`] for each (path inside `root`, content, mode, owner).
fn write_all(root: &Path, files: &[(&str, &str, u32, (u32, u32))]) {
    for (path, content, mode, owner) in files {
        write(&root.join(path), content, *mode, *owner);
    }
}

#[test]
fn configuration_files_come_back_exactly() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the owners of saved files are set back as root (scripts/test runs as root)"
    );
    let sb = Sandbox::new();
    let root = &sb.root;
    let packages = sb.base.join("packages");
    // release 1.0.0 installed; 2.0.0 will add `/etc/demo/added.conf`
    let v1 = RpmSpec::new("demo-server", "1.0.0")
        .config_file("/etc/demo/demo.conf", "port = 8080\n")
        .config_file("/etc/demo/other.conf", "x = 1\n")
        .file("/usr/lib/demo/version", "1.0.0\n", 0o644)
        .build(&packages);
    let v2 = RpmSpec::new("demo-server", "2.0.0")
        .config_file("/etc/demo/demo.conf", "port = 9090\n")
        .config_file("/etc/demo/added.conf", "new = true\n")
        .build(&packages);
    sb.rpm_install(&[v1]);
    // the operator's edit, files /etc/upgrade holds, and a configuration directory that is a
    // symlink to an absolute path (inside the root)
    write_all(
        root,
        &[
            ("etc/demo/demo.conf", "port = 8081\n", 0o640, (0, 4321)),
            (
                "etc/upgrade/pre-upgrade.d/10-backup",
                "#!/bin/sh\n",
                0o755,
                (0, 0),
            ),
            ("etc/upgrade/secret.key", "k\n", 0o4600, (1234, 5678)),
            ("opt/product/etc/app.conf", "inside\n", 0o644, (0, 0)),
        ],
    );
    let symlink = |target: &str, link: &str| {
        let link = root.join(link);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, link).unwrap();
    };
    symlink("../demo/demo.conf", "etc/upgrade/demo.conf");
    // a symlink out of the root: saved as the link, never followed
    symlink("/etc/passwd", "etc/upgrade/passwd");
    symlink("/opt/product/etc", "etc/product");

    let mut paths =
        files::product_config_files(root, &["demo-server".into(), "demo-web".into()]).unwrap();
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "/etc/demo/demo.conf",
            "/etc/demo/other.conf",
            "/etc/upgrade",
            "/etc/upgrade/demo.conf",
            "/etc/upgrade/passwd",
            "/etc/upgrade/pre-upgrade.d",
            "/etc/upgrade/pre-upgrade.d/10-backup",
            "/etc/upgrade/secret.key",
            "/etc/upgrade/upgrade.toml",
        ]
    );
    let added = files::config_files_of_package_files(&[v2]).unwrap();
    assert_eq!(
        added,
        [
            PathBuf::from("/etc/demo/added.conf"),
            PathBuf::from("/etc/demo/demo.conf")
        ]
    );
    paths.extend(added);
    paths.push("/etc/product/app.conf".into());
    paths.push("/etc/demo/conf.d".into());
    paths.push("/etc/demo/conf.d/extra.conf".into());

    let before = file_states(root);
    let point = sb.base.join("restore/1");
    let started = Instant::now();
    let snapshot = files::capture(root, &paths, &point).unwrap();
    let took = started.elapsed();
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: files::FilesSnapshot = serde_json::from_str(&json).unwrap();
    let state = |p: &str| {
        &snapshot
            .entries
            .iter()
            .find(|e| e.path == Path::new(p))
            .unwrap()
            .state
    };
    assert_eq!(state("/etc/demo/added.conf"), &FileState::Absent);
    assert!(
        matches!(state("/etc/upgrade/passwd"), FileState::Symlink { target, .. } if target == Path::new("/etc/passwd"))
    );
    assert!(matches!(
        state("/etc/upgrade/secret.key"),
        FileState::File {
            mode: 0o4600,
            uid: 1234,
            gid: 5678,
            ..
        }
    ));
    assert!(matches!(
        state("/etc/upgrade/pre-upgrade.d"),
        FileState::Directory { mode: 0o755, .. }
    ));

    // what an upgrade and an operator do afterwards
    write_all(
        root,
        &[
            ("etc/demo/demo.conf", "port = 9090\n", 0o600, (1234, 1234)),
            ("etc/demo/added.conf", "new = true\n", 0o644, (0, 0)),
            ("etc/demo/conf.d/extra.conf", "more\n", 0o644, (0, 0)),
            ("etc/upgrade/secret.key", "changed\n", 0o644, (0, 0)),
            ("opt/product/etc/app.conf", "changed\n", 0o600, (0, 0)),
            ("etc/upgrade/upgrade.toml", "edited\n", 0o644, (0, 0)),
            // a symlink replaced by a file
            ("etc/upgrade/demo.conf", "a file\n", 0o644, (0, 0)),
        ],
    );
    std::fs::remove_file(root.join("etc/demo/other.conf")).unwrap();
    std::fs::remove_file(root.join("etc/upgrade/pre-upgrade.d/10-backup")).unwrap();
    let private = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(root.join("etc/upgrade/pre-upgrade.d"), private).unwrap();
    symlink("/etc/shadow", "etc/upgrade/passwd");
    assert_ne!(file_states(root), before);

    let started = Instant::now();
    files::restore_files(root, &snapshot, &point).unwrap();
    eprintln!(
        "config files: capture {took:?}, restore {:?}",
        started.elapsed()
    );
    assert_eq!(file_states(root), before);
    files::restore_files(root, &snapshot, &point).unwrap();
    assert_eq!(file_states(root), before);

    // a restore killed midway (half the paths put back, a staged copy left beside one) converges
    write_all(
        root,
        &[
            ("etc/demo/demo.conf", "again\n", 0o600, (0, 0)),
            ("etc/demo/added.conf", "again\n", 0o600, (0, 0)),
            ("etc/demo/.demo.conf.upgrade-restore", "half", 0o600, (0, 0)),
        ],
    );
    let half = files::FilesSnapshot {
        entries: snapshot.entries[..snapshot.entries.len() / 2].to_vec(),
    };
    files::restore_files(root, &half, &point).unwrap();
    files::restore_files(root, &snapshot, &point).unwrap();
    assert_eq!(file_states(root), before);
    // the passwd and shadow files of this host were never touched through the symlinks
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn a_damaged_saved_copy_leaves_the_file_alone() {
    let sb = Sandbox::new();
    let root = &sb.root;
    write(&root.join("etc/demo/demo.conf"), "one\n", 0o644, (0, 0));
    let point = sb.base.join("restore/1");
    let snapshot = files::capture(root, &["/etc/demo/demo.conf".into()], &point).unwrap();
    let FileState::File { sha256, .. } = &snapshot.entries[0].state else {
        panic!("{snapshot:?}")
    };
    std::fs::write(point.join("files").join(sha256), "tampered\n").unwrap();
    write(&root.join("etc/demo/demo.conf"), "two\n", 0o644, (0, 0));
    let err = files::restore_files(root, &snapshot, &point).unwrap_err();
    assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/demo/demo.conf")).unwrap(),
        "two\n"
    );
    let left: Vec<_> = std::fs::read_dir(root.join("etc/demo"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["demo.conf"]);
}
