//! What a migration may hold and who may own it, checked before anything changes, and the ledger
//! kept truthful when a migration ends its transaction anyway (issue 12: #6, #11, #13, #20, #21);
//! real SQLite, PostgreSQL and MariaDB as in `migrations.rs`.

use crate::migrations::assert_nothing_changed;
use crate::support::*;

// ---- #21: passwords in the URL's query -------------------------------------------------------

#[track_caller]
fn assert_no_secret(run: &Run) {
    assert!(
        !run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"),
        "the password is printed:\n{}\n{}",
        run.stderr,
        run.stdout
    );
}

#[test]
fn a_password_in_the_url_query_is_never_printed() {
    // an unreachable database, on stderr and in `--json`
    let sb = Sandbox::new();
    sb.write_config(
        "[database]\nurl = \"postgres://postgres:hunter2@127.0.0.1:1/nowhere?password=hunter2&sslmode=disable\"\n",
    );
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    let run = sb.run(&["--yes"]);
    run.assert_code(1).assert_stderr(
        "cannot connect to database `postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable`",
    );
    assert_no_secret(&run);
    let run = sb.run(&["--yes", "--json"]);
    run.assert_code(1);
    assert!(run.json()["error"].as_str().unwrap().contains("nowhere"));
    assert_no_secret(&run);
    // `migrations status` of a reachable one, as text and as JSON
    let db = TestDb::postgres();
    let url = format!("{}?password=hunter2", db.url());
    sb.write_config(&format!("[database]\nurl = \"{url}\"\n"));
    let run = sb.run(&["migrations", "status", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["database"], db.url());
    assert_no_secret(&run);
    let run = sb.run(&["migrations", "status"]);
    run.assert_code(0).assert_stderr(db.url());
    assert_no_secret(&run);
    // any case, `sslpassword` and `pass`, in the messages of URLs the drivers refuse
    for url in [
        "postgres://postgres@127.0.0.1:1/x?sslmode=disable&SSLPassword=hunter2",
        "postgres://postgres@127.0.0.1:1/x?PASSWORD=hunter2",
        "mysql://root@127.0.0.1:1/x?pass=hunter2&prefer_socket=false",
    ] {
        sb.write_config(&format!("[database]\nurl = \"{url}\"\n"));
        let run = sb.run(&["migrations", "status", "--json"]);
        assert_ne!(run.code, 0, "{url}");
        assert!(run.stderr.contains("127.0.0.1:1/x"), "{}", run.stderr);
        assert_no_secret(&run);
    }
}

/// Whether `table` exists; a SQLite database never created has none.
fn has_table(db: &TestDb, table: &str) -> bool {
    match db {
        TestDb::Sqlite { path, .. } if !path.exists() => false,
        _ => db.has_table(table),
    }
}

/// One release whose second migration holds `body`, and a pre hook that logs.
fn one_release_with(sb: &Sandbox, db: &TestDb, file: &str, body: &str) {
    sb.write_config(&db.config());
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.migration("1.0.0", file, body);
    sb.logging_hook("pre", false, "10-pre");
}

// ---- #20: UTF-8 ------------------------------------------------------------------------------

#[test]
fn a_migration_that_is_not_utf8_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    one_release_with(&sb, &db, "002-latin1.sql", "");
    let file = sb
        .root
        .join("usr/share/upgrade/migrations/1.0.0/002-latin1.sql");
    std::fs::write(
        &file,
        b"CREATE TABLE b (name TEXT);\nINSERT INTO b VALUES ('caf\xe9');\n",
    )
    .unwrap();
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr(&file.display().to_string())
        .assert_stderr("UTF-8");
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr(&file.display().to_string())
        .assert_stderr("not valid UTF-8")
        .assert_stderr("line 2");
    assert_nothing_changed(&sb);
    assert!(!has_table(&db, "a"));
}
