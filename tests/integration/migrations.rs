//! Schema migrations against real SQLite, PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306),
//! each test in a database of its own.

use std::time::{Duration, Instant};

use crate::support::*;

/// Releases 1.0.0, 2.0.0 (stop) and 3.0.0 of one package, each with migrations; a 4.0.0
/// migration ships too but no such release exists.
fn product(sb: &Sandbox, db: &TestDb) {
    sb.write_config(&db.config());
    sb.publish(vec![
        rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        stop("2.0.0", vec![pkg("demo-server", "2.0.0")]),
        rel("3.0.0", vec![pkg("demo-server", "3.0.0")]),
    ]);
    sb.migration(
        "1.0.0",
        "001-create-a.sql",
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
    );
    sb.migration(
        "1.0.0",
        "002-create-b.sql",
        "CREATE TABLE b (id INTEGER PRIMARY KEY);\n-- trailing comment",
    );
    sb.migration(
        "2.0.0",
        "001-create-c.sql",
        "CREATE TABLE c (id INTEGER PRIMARY KEY);\nINSERT INTO c (id) VALUES (1);\n",
    );
    sb.migration(
        "3.0.0",
        "001-create-d.sql",
        "CREATE TABLE d (id INTEGER PRIMARY KEY);\n",
    );
    sb.migration(
        "4.0.0",
        "001-create-e.sql",
        "CREATE TABLE e (id INTEGER PRIMARY KEY);\n",
    );
}

fn fresh_install_then_hop_by_hop(db: TestDb, sb: Sandbox) {
    product(&sb, &db);
    let plan = sb.run(&["plan", "--to", "1.0.0", "--json"]).json();
    // the plan fixes each migration with the sha256 its file had (SPEC §5)
    let planned: Vec<(&str, usize)> = plan["hops"][0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["label"].as_str().unwrap(),
                m["sha256"].as_str().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("1.0.0/001-create-a.sql", 64),
            ("1.0.0/002-create-b.sql", 64)
        ]
    );
    sb.run(&["--yes", "--to", "1.0.0"])
        .assert_code(0)
        .assert_stderr("applied migration `1.0.0/002-create-b.sql`");
    assert_eq!(
        db.ledger(),
        ["1.0.0/001-create-a.sql:ok", "1.0.0/002-create-b.sql:ok"]
    );
    assert!(db.has_table("b") && !db.has_table("c"));
    // (1.0.0, 2.0.0] and nothing else
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    assert_eq!(db.ledger().len(), 3);
    assert!(db.has_table("c") && !db.has_table("d"));
    let status = sb.run(&["migrations", "status", "--json"]).json();
    assert_eq!(
        status["pending"],
        serde_json::json!(["3.0.0/001-create-d.sql", "4.0.0/001-create-e.sql"])
    );
    assert_eq!(status["applied"].as_array().unwrap().len(), 3);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(db.ledger().last().unwrap(), "3.0.0/001-create-d.sql:ok");
    assert!(
        !db.has_table("e"),
        "a migration of an unreleased version must not apply"
    );
}

#[test]
fn sqlite_applies_exactly_each_hop() {
    let sb = Sandbox::new();
    fresh_install_then_hop_by_hop(TestDb::sqlite(&sb), sb);
}

#[test]
fn postgres_applies_exactly_each_hop() {
    fresh_install_then_hop_by_hop(TestDb::postgres(), Sandbox::new());
}

#[test]
fn mariadb_applies_exactly_each_hop() {
    fresh_install_then_hop_by_hop(TestDb::mariadb(), Sandbox::new());
}

#[test]
fn a_fresh_install_through_a_stop_applies_all_and_the_default_database_is_sqlite() {
    let sb = Sandbox::new();
    sb.publish(vec![
        stop("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        rel("2.0.0", vec![pkg("demo-server", "2.0.0")]),
    ]);
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.migration("2.0.0", "001-b.sql", "CREATE TABLE b (id INTEGER);\n");
    sb.run(&["--yes"]).assert_code(0);
    let db = TestDb::Sqlite {
        url: String::new(),
        path: sb.root.join("var/lib/demo/demo.db"),
    };
    assert_eq!(db.ledger(), ["1.0.0/001-a.sql:ok", "2.0.0/001-b.sql:ok"]);
}

#[test]
fn rpm_scheme_versions_order_migrations_as_rpm_does() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    sb.write_config(&format!("version_scheme = \"rpm\"\n{}", db.config()));
    sb.publish(vec![
        rel("1.6~beta+dfsg-1", vec![pkg("demo-server", "1.6~beta")]),
        rel("1.6.1", vec![pkg("demo-server", "1.6.1")]),
    ]);
    sb.migration(
        "1.6.1",
        "001-third.sql",
        "INSERT INTO log (what) VALUES ('1.6.1');\n",
    );
    sb.migration(
        "1.6~beta+dfsg-1",
        "001-first.sql",
        "CREATE TABLE log (n INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);\n",
    );
    sb.migration(
        "1.6",
        "001-second.sql",
        "INSERT INTO log (what) VALUES ('1.6');\n",
    );
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        db.ledger(),
        [
            "1.6~beta+dfsg-1/001-first.sql:ok",
            "1.6/001-second.sql:ok",
            "1.6.1/001-third.sql:ok"
        ]
    );
    assert_eq!(db.scalar("SELECT count(*) FROM log"), 2);
}

fn failing_migration_rolls_back(db: TestDb, sb: Sandbox) {
    sb.write_config(&db.config());
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration(
        "1.0.0",
        "001-ok.sql",
        "CREATE TABLE ok1 (id INTEGER PRIMARY KEY);\n",
    );
    let bad = sb.migration(
        "1.0.0",
        "002-bad.sql",
        "CREATE TABLE half (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
    );
    sb.logging_hook("post", false, "90-post");
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("migration `1.0.0/002-bad.sql` failed")
        .assert_stderr("no_such_table");
    assert!(
        sb.hook_log().is_empty(),
        "post hooks must not run after a failed migration"
    );
    assert_eq!(
        db.ledger(),
        ["1.0.0/001-ok.sql:ok"],
        "the failed migration's row is rolled back with it"
    );
    assert!(db.has_table("ok1"));
    assert!(
        !db.has_table("half"),
        "the failed migration is rolled back whole"
    );
    std::fs::write(&bad, "CREATE TABLE half (id INTEGER PRIMARY KEY);\n").unwrap();
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(db.ledger(), ["1.0.0/001-ok.sql:ok", "1.0.0/002-bad.sql:ok"]);
}

#[test]
fn sqlite_failing_migration_rolls_back_with_its_ledger_row() {
    let sb = Sandbox::new();
    failing_migration_rolls_back(TestDb::sqlite(&sb), sb);
}

#[test]
fn postgres_failing_migration_rolls_back_with_its_ledger_row() {
    failing_migration_rolls_back(TestDb::postgres(), Sandbox::new());
}

#[test]
fn mariadb_failed_migration_blocks_until_repair() {
    let sb = Sandbox::new();
    let db = TestDb::mariadb();
    sb.write_config(&db.config());
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration(
        "1.0.0",
        "001-ok.sql",
        "CREATE TABLE ok1 (id INTEGER PRIMARY KEY);\n",
    );
    let bad = sb.migration(
        "1.0.0",
        "002-bad.sql",
        "CREATE TABLE half (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
    );
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("migration `1.0.0/002-bad.sql` failed")
        .assert_stderr("migrations repair");
    assert_eq!(
        db.ledger(),
        ["1.0.0/001-ok.sql:ok", "1.0.0/002-bad.sql:failed"]
    );
    assert!(
        db.has_table("half"),
        "MariaDB's DDL committed before the failure"
    );
    // fixing the file is not enough: the database may be half migrated
    std::fs::write(&bad, "CREATE TABLE half (id INTEGER PRIMARY KEY);\n").unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("failed earlier");
    let status = sb.run(&["migrations", "status", "--json"]).json();
    assert_eq!(status["failed"][0]["name"], "002-bad.sql");
    // the operator repairs the database, then the ledger
    {
        use mysql::prelude::Queryable;
        let mut c = mysql::Conn::new(mysql::Opts::from_url(db.url()).unwrap()).unwrap();
        c.query_drop("DROP TABLE half").unwrap();
    }
    sb.run(&["migrations", "repair"])
        .assert_code(0)
        .assert_stderr("cleared failed migration 1.0.0/002-bad.sql");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(db.ledger(), ["1.0.0/001-ok.sql:ok", "1.0.0/002-bad.sql:ok"]);
}

#[test]
fn a_changed_applied_migration_is_refused_with_both_checksums() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    product(&sb, &db);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let file = sb
        .root
        .join("usr/share/upgrade/migrations/1.0.0/001-create-a.sql");
    let (old, _) = upgrade::repo::fetch::digest_file(&file).unwrap();
    std::fs::write(
        &file,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, extra TEXT);\n",
    )
    .unwrap();
    let (new, _) = upgrade::repo::fetch::digest_file(&file).unwrap();
    sb.run(&["--yes", "--to", "2.0.0"])
        .assert_code(1)
        .assert_stderr("applied migration `1.0.0/001-create-a.sql` has changed")
        .assert_stderr(&old)
        .assert_stderr(&new);
    assert!(!db.has_table("c"));
    let status = sb.run(&["migrations", "status", "--json"]).json();
    assert_eq!(status["drifted"][0]["migration"], "1.0.0/001-create-a.sql");
    // a migration whose file is gone is reported, and does not block
    std::fs::write(&file, "CREATE TABLE a (id INTEGER PRIMARY KEY);\n").unwrap();
    std::fs::remove_file(
        sb.root
            .join("usr/share/upgrade/migrations/1.0.0/002-create-b.sql"),
    )
    .unwrap();
    assert_eq!(
        sb.run(&["migrations", "status", "--json"]).json()["missing"][0]["name"],
        "002-create-b.sql"
    );
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    assert!(db.has_table("c"));
}

/// Two hosts of one product (two roots) upgrade at once against one database.
fn racing_hosts(db: TestDb, slow: &str) {
    let hosts = [Sandbox::new(), Sandbox::new()];
    for sb in &hosts {
        sb.write_config(&db.config());
        sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
        sb.migration(
            "1.0.0",
            "001-log.sql",
            "CREATE TABLE applied_log (what VARCHAR(50));\n",
        );
        for n in 2..=6 {
            let body = format!(
                "{}\nINSERT INTO applied_log (what) VALUES ('m{n}');\n",
                if n == 3 { slow } else { "" }
            );
            sb.migration("1.0.0", &format!("00{n}-step.sql"), &body);
        }
    }
    let children: Vec<_> = hosts
        .iter()
        .map(|sb| {
            sb.cmd(&["--yes"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM applied_log"),
        5,
        "each migration applied once"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM upgrade_migrations"), 6);
}

#[test]
fn racing_hosts_apply_each_migration_once_on_postgres() {
    racing_hosts(TestDb::postgres(), "SELECT pg_sleep(0.5);");
}

#[test]
fn racing_hosts_apply_each_migration_once_on_mariadb() {
    racing_hosts(TestDb::mariadb(), "DO SLEEP(0.5);");
}

#[test]
fn the_lock_wait_is_bounded() {
    let db = TestDb::postgres();
    let sb = Sandbox::new();
    sb.write_config(&format!("{}lock_timeout = \"1s\"\n", db.config()));
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    // another host holds the lock
    let mut other = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    other
        .execute("SELECT pg_advisory_lock($1)", &[&0x7570_6772_6164_6521_i64])
        .unwrap();
    let started = Instant::now();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("timed out after 1s waiting for the migration lock");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(other);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(db.ledger(), ["1.0.0/001-a.sql:ok"]);
}

fn killed_during_migrations(db: TestDb, sb: Sandbox) {
    sb.write_config(&db.config());
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration(
        "1.0.0",
        "001-log.sql",
        "CREATE TABLE applied_log (what VARCHAR(50));\n",
    );
    sb.migration(
        "1.0.0",
        "002-a.sql",
        "INSERT INTO applied_log (what) VALUES ('002');\n",
    );
    let marker = sb.base.join("migrating");
    // an executable data migration that hangs the first time
    sb.migration(
        "1.0.0",
        "003-data",
        &format!(
            "#!/bin/sh\necho \"$UPGRADE_DATABASE_URL\" > {m}.url\nif [ ! -e {m} ]; then touch {m}; sleep 60; fi\n",
            m = marker.display()
        ),
    );
    sb.migration(
        "1.0.0",
        "004-b.sql",
        "INSERT INTO applied_log (what) VALUES ('004');\n",
    );
    let mut child = sb.spawn_until(&["--yes"], &marker);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(db.ledger(), ["1.0.0/001-log.sql:ok", "1.0.0/002-a.sql:ok"]);
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run 1");
    assert_eq!(
        db.scalar("SELECT count(*) FROM applied_log WHERE what = '002'"),
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM applied_log WHERE what = '004'"),
        1
    );
    assert_eq!(db.ledger().len(), 4);
    let url = std::fs::read_to_string(format!("{}.url", marker.display())).unwrap();
    assert!(
        url.trim().ends_with(db.url().rsplit('/').next().unwrap()),
        "{url}"
    );
}

#[test]
fn sqlite_kill_during_migrations_then_resume_applies_each_once() {
    let sb = Sandbox::new();
    killed_during_migrations(TestDb::sqlite(&sb), sb);
}

#[test]
fn postgres_kill_during_migrations_then_resume_applies_each_once() {
    killed_during_migrations(TestDb::postgres(), Sandbox::new());
}

#[test]
fn adopt_records_the_installed_release_and_a_baseline() {
    let sb = Sandbox::new();
    let db = TestDb::postgres();
    product(&sb, &db);
    // an installation that predates the tool: release 1.0.0's packages installed by hand
    let mut rpm = sb.rpm();
    let status = rpm
        .arg("-i")
        .arg(sb.repo.join("packages/demo-server-1.0.0-1.x86_64.rpm"))
        .status()
        .unwrap();
    assert!(status.success());
    sb.run(&["adopt", "2.0.0"])
        .assert_code(2)
        .assert_stderr("`demo-server` is at 1.0.0-1, release 2.0.0 has 2.0.0-1");
    assert_eq!(sb.installed(), None);
    sb.run(&["adopt", "1.0.0"])
        .assert_code(0)
        .assert_stderr("recorded 2 migration(s) as applied");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    assert_eq!(
        db.ledger(),
        ["1.0.0/001-create-a.sql:ok", "1.0.0/002-create-b.sql:ok"]
    );
    assert!(!db.has_table("a"), "a baseline runs nothing");
    sb.run(&["adopt", "1.0.0"])
        .assert_code(2)
        .assert_stderr("already records");
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    assert!(db.has_table("c"));
    assert_eq!(db.ledger().len(), 3);
    let history = sb.run(&["history", "--json"]).json();
    assert_eq!(history[0]["status"], "adopted");
}

#[test]
fn an_unreachable_database_is_a_clear_error_and_nothing_is_done() {
    let sb = Sandbox::new();
    sb.write_config("[database]\nurl = \"postgres://postgres@127.0.0.1:1/nowhere\"\n");
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.logging_hook("pre", false, "10-pre");
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("cannot connect to database `postgres://postgres@127.0.0.1:1/nowhere`");
    assert_nothing_changed(&sb);
}

/// Nothing of the run happened: no package, no hook, no recorded version, no run.
#[track_caller]
pub fn assert_nothing_changed(sb: &Sandbox) {
    assert!(
        sb.rpm_qa().is_empty(),
        "packages changed: {:?}",
        sb.rpm_qa()
    );
    assert!(sb.hook_log().is_empty(), "hooks ran: {:?}", sb.hook_log());
    assert_eq!(sb.installed(), None);
    assert!(
        sb.run(&["history", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_migration_names_are_errors_naming_the_file() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "create-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr("bad migration file name")
        .assert_stderr("1.0.0/create-a.sql");
    std::fs::remove_file(
        sb.root
            .join("usr/share/upgrade/migrations/1.0.0/create-a.sql"),
    )
    .unwrap();
    sb.migration("not-a-version", "001-a.sql", "");
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr("migration directory")
        .assert_stderr("not-a-version");
}
