//! Fleets (SPEC §15): sandbox roots sharing one database — a migration node, application nodes
//! (`[database] migrate = false`) that wait for its migrations, contract migrations under
//! `post/` that only `migrations finalize` applies, and an application node's rollback, which
//! leaves the shared database alone.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::*;

/// The configuration file a package of the product carries.
const CONF: &str = "etc/demo/demo.conf";

/// A node of a fleet sharing `db`: releases 1.0.0 and 2.0.0 of `demo-server` (2.0.0 with
/// `toml` in its table of `releases.toml`), their migrations, and 2.0.0's contract migration.
fn node(db: &TestDb, name: &str, migrate: bool, extra: &str, toml: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "{}node = \"{name}\"\nmigrate = {migrate}\nlock_timeout = \"60s\"\n{extra}",
        db.config()
    ));
    let release = |v: &str| pkg("demo-server", v).config_file(&format!("/{CONF}"), "port = 1\n");
    sb.publish(vec![
        rel("1.0.0", vec![release("1.0.0")]),
        rel("2.0.0", vec![release("2.0.0")]).with_toml(toml),
    ]);
    sb.migration(
        "1.0.0",
        "001-create-users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    sb.migration(
        "2.0.0",
        "001-add-email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    sb.migration(
        "2.0.0/post",
        "001-drop-name.sql",
        "ALTER TABLE users DROP COLUMN name;\n",
    );
    sb
}

/// A migration node and an application node sharing one database.
struct Fleet {
    db: TestDb,
    migration: Sandbox,
    app: Sandbox,
    /// The directory of a shared SQLite database.
    _shared: Option<tempfile::TempDir>,
}

/// Two nodes sharing `db`; `None`: a SQLite database, each root's `/var/lib/demo` a link to
/// one directory outside them (a shared file system, as far as the nodes can tell).
fn pair(db: Option<TestDb>) -> Fleet {
    let shared = db.is_none().then(|| tempfile::tempdir().unwrap());
    let db = db.unwrap_or_else(|| TestDb::Sqlite {
        url: "sqlite:///var/lib/demo/test.db".into(),
        path: shared.as_ref().unwrap().path().join("test.db"),
    });
    let migration = node(&db, "migration", true, "", "");
    let app = node(&db, "app", false, "", "");
    if let Some(dir) = &shared {
        for sb in [&migration, &app] {
            let lib = sb.root.join("var/lib");
            std::fs::create_dir_all(&lib).unwrap();
            std::os::unix::fs::symlink(dir.path(), lib.join("demo")).unwrap();
        }
    }
    Fleet {
        db,
        migration,
        app,
        _shared: shared,
    }
}

/// Ledger rows as `VERSION/NAME@NODE`, in the order they were applied.
fn ledger_nodes(db: &TestDb) -> Vec<String> {
    let sql = "SELECT version || '/' || name || '@' || coalesce(node, '') FROM upgrade_migrations \
               ORDER BY applied_at";
    strings(db, sql)
}

/// `upgrade_nodes` as `NODE=VERSION`, by node.
fn nodes(db: &TestDb) -> Vec<String> {
    strings(
        db,
        "SELECT node || '=' || version FROM upgrade_nodes ORDER BY node",
    )
}

/// The first column of every row of `sql`, as text.
fn strings(db: &TestDb, sql: &str) -> Vec<String> {
    match db {
        TestDb::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        TestDb::Postgres { url, .. } => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
            c.query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        }
        TestDb::Mariadb { url, .. } => {
            use mysql::prelude::Queryable;
            let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
            // NB: MariaDB's `||` is OR unless told otherwise
            c.query_drop("SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')")
                .unwrap();
            c.query(sql).unwrap()
        }
    }
}

/// Whether `users` has the column `column`.
fn has_column(db: &TestDb, column: &str) -> bool {
    let sql = match db {
        TestDb::Sqlite { .. } => {
            format!("SELECT count(*) FROM pragma_table_info('users') WHERE name = '{column}'")
        }
        TestDb::Postgres { .. } => format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name = 'users' AND column_name = '{column}'"
        ),
        TestDb::Mariadb { name, .. } => format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{name}' \
             AND table_name = 'users' AND column_name = '{column}'"
        ),
    };
    db.scalar(&sql) == 1
}

/// `real-upgrade ARGS…` in the background, its output kept.
fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().unwrap())
}

/// The database's schema and rows, its lines sorted: an `UPDATE` of `upgrade_nodes` that
/// writes the row as it was may move it within PostgreSQL's table, and its dump with it.
fn dump(db: &TestDb) -> String {
    let mut lines: Vec<String> = full_dump(db).lines().map(str::to_string).collect();
    lines.sort();
    lines.join("\n")
}

fn demo_server(sb: &Sandbox) -> Vec<String> {
    sb.rpm_qa()
        .into_iter()
        .filter(|p| p.starts_with("demo-server-"))
        .collect()
}

/// Both nodes at 1.0.0: the migration node first, then the application node (whose
/// migrations are applied already, so it does not wait).
fn both_at_1(migration: &Sandbox, app: &Sandbox) {
    migration.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    app.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
}

fn app_node_waits_then_proceeds(fleet: Fleet) {
    let Fleet {
        db, migration, app, ..
    } = &fleet;
    both_at_1(migration, app);
    // the plan says the node waits instead of applying, and saves no database
    let plan = app.run(&["plan", "--json"]).json();
    assert_eq!(plan["migration_role"], "wait");
    assert_eq!(plan["restore_point"]["database"], false);
    let shown = app.run(&["plan"]);
    shown.assert_stderr("waits for the migration node to apply them");
    shown.assert_stderr("2.0.0/001-add-email.sql");
    assert!(
        !shown.stderr.contains("post/"),
        "a contract migration is no hop's: {}",
        shown.stderr
    );
    // the application node starts first and waits once its packages are in
    let waiting = spawn(app, &["--yes"]);
    assert!(
        wait_until(Duration::from_secs(60), || demo_server(app)
            == ["demo-server-2.0.0-1.x86_64"]),
        "the application node never installed 2.0.0"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!has_column(db, "email"), "nobody migrated yet");
    migration.run(&["--yes"]).assert_code(0);
    let run = finish(waiting);
    run.assert_code(0)
        .assert_stderr("waiting for the migration node to apply `2.0.0/001-add-email.sql`")
        .assert_stderr("applied (by the migration node)");
    assert!(has_column(db, "email") && has_column(db, "name"));
    assert_eq!(
        ledger_nodes(db),
        [
            "1.0.0/001-create-users.sql@migration",
            "2.0.0/001-add-email.sql@migration"
        ]
    );
    assert_eq!(nodes(db), ["app=2.0.0", "migration=2.0.0"]);
    assert_eq!(app.installed().as_deref(), Some("2.0.0"));
}

#[test]
fn postgres_app_node_waits_for_the_migration_node_then_proceeds() {
    app_node_waits_then_proceeds(pair(Some(TestDb::postgres())));
}

#[test]
fn sqlite_app_node_waits_for_the_migration_node_then_proceeds() {
    app_node_waits_then_proceeds(pair(None));
}

/// Nobody migrates: the application node gives up after `lock_timeout`, exit 1, naming what is
/// missing; the run stays open and finishes once the migration node has run.
#[test]
fn app_node_times_out_naming_the_missing_migration() {
    let db = TestDb::postgres();
    let migration = node(&db, "migration", true, "", "");
    let app = node(&db, "app", false, "", "");
    app.write_config(&format!(
        "{}node = \"app\"\nmigrate = false\nlock_timeout = \"2s\"\n",
        db.config()
    ));
    both_at_1(&migration, &app);
    let run = app.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr(
            "timed out after 2s waiting for the migration node to apply \
             `2.0.0/001-add-email.sql`",
        )
        .assert_stderr("upgrade the migration node");
    assert!(!has_column(&db, "email"));
    assert_eq!(ledger_nodes(&db), ["1.0.0/001-create-users.sql@migration"]);
    assert_eq!(nodes(&db), ["app=1.0.0", "migration=1.0.0"]);
    migration.run(&["--yes"]).assert_code(0);
    app.run(&["--yes"]).assert_code(0);
    assert_eq!(app.installed().as_deref(), Some("2.0.0"));
    assert_eq!(nodes(&db), ["app=2.0.0", "migration=2.0.0"]);
}

/// Two migration nodes install at the same time: each migration is applied once, by one of
/// them, and both end at 2.0.0.
fn racing_migration_nodes(db: TestDb, sleep: &str) {
    let one = node(&db, "one", true, "", "");
    let two = node(&db, "two", true, "", "");
    for sb in [&one, &two] {
        // a slow migration, so that the two runs meet
        sb.migration("1.0.0", "002-slow.sql", sleep);
    }
    let runs: Vec<Child> = [&one, &two]
        .iter()
        .map(|sb| spawn(sb, &["--yes"]))
        .collect();
    for run in runs {
        finish(run).assert_code(0);
    }
    let rows = ledger_nodes(&db);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let labels: Vec<&str> = rows.iter().map(|r| r.split('@').next().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "1.0.0/001-create-users.sql",
            "1.0.0/002-slow.sql",
            "2.0.0/001-add-email.sql"
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.ends_with("@one") || r.ends_with("@two")),
        "{rows:?}"
    );
    assert!(has_column(&db, "email"));
    assert_eq!(nodes(&db), ["one=2.0.0", "two=2.0.0"]);
    for sb in [&one, &two] {
        assert_eq!(demo_server(sb), ["demo-server-2.0.0-1.x86_64"]);
    }
}

#[test]
fn postgres_racing_migration_nodes_apply_each_migration_once() {
    racing_migration_nodes(TestDb::postgres(), "SELECT pg_sleep(1);\n");
}

#[test]
fn mariadb_racing_migration_nodes_apply_each_migration_once() {
    racing_migration_nodes(TestDb::mariadb(), "SELECT SLEEP(1);\n");
}

/// `post/` migrations: no upgrade applies them; `finalize` is refused while a node runs 1.0.0,
/// then applies them once; a second `finalize`, on another node, applies nothing.
fn contract_migrations(fleet: Fleet) {
    let Fleet {
        db, migration, app, ..
    } = &fleet;
    both_at_1(migration, app);
    migration.run(&["--yes"]).assert_code(0);
    assert!(has_column(db, "name"), "a contract migration ran in a hop");
    let status = migration.run(&["migrations", "status", "--json"]).json();
    assert_eq!(
        status["pending"],
        serde_json::json!(["2.0.0/post/001-drop-name.sql"])
    );
    migration
        .run(&["migrations", "finalize"])
        .assert_code(1)
        .assert_stderr("not every node runs 2.0.0: `app` runs 1.0.0")
        .assert_stderr("hint: upgrade (or roll back) every node");
    assert!(has_column(db, "name"));
    app.run(&["--yes"]).assert_code(0);
    let finalized = migration.run(&["migrations", "finalize", "--json"]);
    finalized.assert_code(0);
    let json = finalized.json();
    assert_eq!(
        json["applied"],
        serde_json::json!(["2.0.0/post/001-drop-name.sql"])
    );
    assert_eq!(json["planned"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(!has_column(db, "name") && has_column(db, "email"));
    let again = app.run(&["migrations", "finalize", "--json"]);
    again.assert_code(0);
    assert_eq!(again.json()["applied"], serde_json::json!([]));
    assert_eq!(
        ledger_nodes(db),
        [
            "1.0.0/001-create-users.sql@migration",
            "2.0.0/001-add-email.sql@migration",
            "2.0.0/post/001-drop-name.sql@migration"
        ]
    );
    let status = app.run(&["migrations", "status", "--json"]).json();
    assert_eq!(status["pending"], serde_json::json!([]));
}

#[test]
fn postgres_contract_migrations_wait_for_finalize() {
    contract_migrations(pair(Some(TestDb::postgres())));
}

#[test]
fn mariadb_contract_migrations_wait_for_finalize() {
    contract_migrations(pair(Some(TestDb::mariadb())));
}

/// An application node's restore point holds no database (and is whole); its rollback puts
/// back packages and configuration and leaves the shared database as the migration node left
/// it.
fn app_node_rollback(fleet: Fleet) {
    let Fleet {
        db, migration, app, ..
    } = &fleet;
    both_at_1(migration, app);
    migration.run(&["--yes"]).assert_code(0);
    std::fs::write(app.root.join(CONF), "port = 2\n").unwrap();
    let shared = dump(db);
    app.run(&["--yes"]).assert_code(0);
    let history = app.run(&["history", "--json"]).json();
    let last = history.as_array().unwrap().last().unwrap().clone();
    let run = last["id"].as_i64().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            app.root
                .join(format!("var/lib/upgrade/restore/{run}/manifest.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(manifest["database"].is_null(), "{manifest}");
    assert_eq!(manifest["missing"], serde_json::json!([]));
    std::fs::write(app.root.join(CONF), "port = 3\n").unwrap();
    let rollback = app.run(&["rollback", "--yes"]);
    rollback.assert_code(0);
    assert!(!rollback.stderr.contains("partial"), "{}", rollback.stderr);
    assert_eq!(demo_server(app), ["demo-server-1.0.0-1.x86_64"]);
    assert_eq!(
        std::fs::read_to_string(app.root.join(CONF)).unwrap(),
        "port = 2\n"
    );
    assert_same(&dump(db), &shared, "after the application node's rollback");
    assert_eq!(demo_server(migration), ["demo-server-2.0.0-1.x86_64"]);
}

#[test]
fn postgres_app_node_rollback_leaves_the_shared_database_alone() {
    app_node_rollback(pair(Some(TestDb::postgres())));
}

#[test]
fn sqlite_app_node_rollback_leaves_the_shared_database_alone() {
    app_node_rollback(pair(None));
}

/// A failed health gate on an application node rolls it back by itself (exit 6): packages go
/// back, the shared database stays as the migration node left it.
#[test]
fn app_node_automatic_rollback_leaves_the_shared_database_alone() {
    let db = TestDb::postgres();
    let broken = "[[releases.health]]\nname = \"broken\"\ncommand = \"exit 1\"\n";
    let health = "[health]\ntimeout = \"1s\"\ninterval = \"1s\"\n";
    let migration = node(&db, "migration", true, "", "");
    let app = node(&db, "app", false, health, broken);
    both_at_1(&migration, &app);
    migration.run(&["--yes"]).assert_code(0);
    let shared = dump(&db);
    app.run(&["--yes"])
        .assert_code(6)
        .assert_stderr("command:broken");
    assert_eq!(demo_server(&app), ["demo-server-1.0.0-1.x86_64"]);
    assert_eq!(app.installed().as_deref(), Some("1.0.0"));
    assert_same(&dump(&db), &shared, "after the automatic rollback");
    assert!(
        has_column(&db, "email"),
        "the migration node's schema stays"
    );
}

/// A ledger written before nodes were recorded gets its `node` column in place: its rows name
/// no node, the rows written since name theirs.
fn old_ledger(fleet: Fleet) {
    let Fleet { db, migration, .. } = &fleet;
    migration.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    // as an earlier version left it
    match db {
        TestDb::Sqlite { path, .. } => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(
                "ALTER TABLE upgrade_migrations DROP COLUMN node; DROP TABLE upgrade_nodes",
            )
            .unwrap(),
        TestDb::Postgres { url, .. } => postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .batch_execute(
                "ALTER TABLE upgrade_migrations DROP COLUMN node; DROP TABLE upgrade_nodes",
            )
            .unwrap(),
        TestDb::Mariadb { .. } => unreachable!(),
    }
    assert_eq!(ledger_count_with_node(db), None);
    migration.run(&["--yes"]).assert_code(0);
    assert_eq!(
        ledger_nodes(db),
        [
            "1.0.0/001-create-users.sql@",
            "2.0.0/001-add-email.sql@migration"
        ]
    );
    assert_eq!(ledger_count_with_node(db), Some(1));
    assert_eq!(nodes(db), ["migration=2.0.0"]);
}

/// How many ledger rows name their node; `None` when the ledger has no such column.
fn ledger_count_with_node(db: &TestDb) -> Option<i64> {
    let column = match db {
        TestDb::Sqlite { .. } => {
            "SELECT count(*) FROM pragma_table_info('upgrade_migrations') WHERE name = 'node'"
        }
        _ => {
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name = 'upgrade_migrations' AND column_name = 'node'"
        }
    };
    (db.scalar(column) == 1)
        .then(|| db.scalar("SELECT count(*) FROM upgrade_migrations WHERE node IS NOT NULL"))
}

#[test]
fn postgres_an_old_ledger_gets_its_node_column_in_place() {
    old_ledger(pair(Some(TestDb::postgres())));
}

#[test]
fn sqlite_an_old_ledger_gets_its_node_column_in_place() {
    old_ledger(pair(None));
}

/// An application node's `uninstall --purge` removes its packages and drops no database: the
/// shared one is the fleet's.
#[test]
fn app_node_purge_leaves_the_shared_database_alone() {
    let fleet = pair(Some(TestDb::postgres()));
    both_at_1(&fleet.migration, &fleet.app);
    let shared = dump(&fleet.db);
    fleet
        .app
        .run(&["uninstall", "--purge", "--yes"])
        .assert_code(0);
    assert!(demo_server(&fleet.app).is_empty());
    assert_eq!(fleet.app.installed(), None);
    assert_same(
        &dump(&fleet.db),
        &shared,
        "after the application node's purge",
    );
}
