//! What a migration may hold and who may own it, checked before anything changes, and the ledger
//! kept truthful when a migration ends its transaction anyway (issue 12: #6, #11, #13, #20, #21);
//! real SQLite, PostgreSQL and MariaDB as in `migrations.rs`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use upgrade::steps::migrations::{self, db};

use crate::migrations::assert_nothing_changed;
use crate::support::*;

/// A module `$name` of tests, one per backend listed, each running `$check(db, sandbox)` with a
/// database of its own: `$name::sqlite`, `$name::postgres`, `$name::mariadb`.
macro_rules! on_backends {
    ($name:ident: $check:expr; $($backend:ident),+) => {
        mod $name {
            use crate::support::*;
            $(
                #[test]
                fn $backend() {
                    let sb = Sandbox::new();
                    let db = match stringify!($backend) {
                        "sqlite" => TestDb::sqlite(&sb),
                        "postgres" => TestDb::postgres(),
                        _ => TestDb::mariadb(),
                    };
                    $check(db, sb);
                }
            )+
        }
    };
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

// ---- #6: transaction control -----------------------------------------------------------------

fn transaction_control_is_refused(db: TestDb, sb: Sandbox) {
    let (body, statement) = match db {
        TestDb::Sqlite { .. } => (
            "-- make b\nBEGIN TRANSACTION;\nCREATE TABLE b (id INTEGER);\nCOMMIT;\n",
            "BEGIN",
        ),
        TestDb::Postgres { .. } => ("CREATE TABLE b (id INTEGER);\n  commit;\n", "COMMIT"),
        TestDb::Mariadb { .. } => (
            "CREATE TABLE b (id INTEGER);\nSTART TRANSACTION; INSERT INTO b VALUES (1); COMMIT;\n",
            "START TRANSACTION",
        ),
    };
    one_release_with(&sb, &db, "002-tx.sql", body);
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("1.0.0/002-tx.sql")
        .assert_stderr("line 2")
        .assert_stderr(&format!("`{statement}`"));
    assert_nothing_changed(&sb);
    assert!(!has_table(&db, "a") && !has_table(&db, "b"));
    // without it, the migration applies with its ledger row
    sb.migration("1.0.0", "002-tx.sql", "CREATE TABLE b (id INTEGER);\n");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(db.ledger(), ["1.0.0/001-a.sql:ok", "1.0.0/002-tx.sql:ok"]);
    assert!(db.has_table("b"));
}

on_backends!(transaction_control_is_refused_before_anything_changes:
    super::transaction_control_is_refused; sqlite, postgres, mariadb);

/// Blocks (SQLite triggers, PostgreSQL function bodies, MariaDB procedures), strings and
/// comments that hold the words are not transaction control.
fn blocks_strings_and_comments_are_not_transaction_control(db: TestDb, sb: Sandbox) {
    let body = match db {
        TestDb::Sqlite { .. } => {
            "CREATE TABLE log ([what; END] TEXT);\nCREATE TABLE seen (n INTEGER);\n\
             CREATE TRIGGER t AFTER INSERT ON log BEGIN\n  INSERT INTO seen VALUES (1);\n  \
             SELECT CASE WHEN 1 THEN 1 END;\nEND;\n\
             INSERT INTO log VALUES ('COMMIT; BEGIN'), ('x'), ('it''s; END');\n\
             -- COMMIT;\n/* ROLLBACK; */\n"
        }
        TestDb::Postgres { .. } => {
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  RETURN 1;\nEND\n$body$;\n\
             CREATE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN true THEN 1 END;\nEND;\n\
             CREATE TABLE log (what text);\n\
             INSERT INTO log VALUES (E'it\\'s; COMMIT'), ($$END;$$), ('a\\');\n\
             /* nested /* ROLLBACK; */ still a comment; COMMIT; */\n-- END;\n"
        }
        TestDb::Mariadb { .. } => {
            "CREATE PROCEDURE p()\nBEGIN\n  IF 1 = 1 THEN\n    SELECT 1;\n  END IF;\n  SELECT 2;\nEND;\n\
             BEGIN NOT ATOMIC\n  DECLARE n INT DEFAULT 1;\n  SELECT n;\nEND;\n\
             CREATE TABLE log (what VARCHAR(50));\n\
             INSERT INTO log VALUES ('it\\'s; COMMIT'), (\"END;\"), ('x'); # don't COMMIT here\n"
        }
    };
    one_release_with(&sb, &db, "002-blocks.sql", body);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        db.ledger(),
        ["1.0.0/001-a.sql:ok", "1.0.0/002-blocks.sql:ok"]
    );
    assert_eq!(db.scalar("SELECT count(*) FROM log"), 3);
}

on_backends!(blocks_strings_and_comments_are_not_transaction_control:
    super::blocks_strings_and_comments_are_not_transaction_control; sqlite, postgres, mariadb);

/// A migration that ends its transaction anyway (here past the planner, through the library):
/// the ledger says what committed and records the migration as failed, and the error does not
/// claim a rollback.
fn ended_transaction_is_recorded_truthfully(db: TestDb, sb: Sandbox, end: &str) {
    sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.migration(
        "1.0.0",
        "002-ends.sql",
        &format!("CREATE TABLE b (id INTEGER);\n{end};\nCREATE TABLE c (id INTEGER);\n"),
    );
    let all = migrations::discover(
        &sb.root.join("usr/share/upgrade/migrations"),
        upgrade::model::version::VersionScheme::Semver,
    )
    .unwrap();
    let hop: Vec<_> = all.iter().collect();
    let mut database = db::connect(db.url(), &sb.root, "test").unwrap();
    let mut applied = Vec::new();
    let err = migrations::apply(
        database.as_mut(),
        &all,
        &hop,
        Duration::from_secs(5),
        &mut |_| unreachable!("no executable migration"),
        &mut |m, _| applied.push(m.label()),
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("migration `1.0.0/002-ends.sql` ended the transaction"),
        "{message}"
    );
    let hint = upgrade::error::find(&err).and_then(|e| e.hint()).unwrap();
    assert!(!hint.contains("rolled back"), "{hint}");
    assert!(hint.contains("migrations repair"), "{hint}");
    let committed = end == "COMMIT";
    let expected: &[&str] = match committed {
        true => &["1.0.0/001-a.sql:ok", "1.0.0/002-ends.sql:failed"],
        false => &["1.0.0/002-ends.sql:failed"],
    };
    assert_eq!(db.ledger(), expected);
    assert_eq!(
        applied,
        match committed {
            true => vec!["1.0.0/001-a.sql".to_string()],
            false => vec![],
        }
    );
    assert_eq!(
        db.has_table("a"),
        committed,
        "the ledger agrees with the schema"
    );
    // the failed row blocks later runs until `migrations repair`
    let again = migrations::apply(
        database.as_mut(),
        &all,
        &hop,
        Duration::from_secs(5),
        &mut |_| Ok(()),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(format!("{again:#}").contains("failed earlier"), "{again:#}");
}

fn a_migration_that_commits(db: TestDb, sb: Sandbox) {
    ended_transaction_is_recorded_truthfully(db, sb, "COMMIT");
}

fn a_migration_that_rolls_back(db: TestDb, sb: Sandbox) {
    ended_transaction_is_recorded_truthfully(db, sb, "ROLLBACK");
}

on_backends!(a_migration_that_commits_is_recorded_as_failed:
    super::a_migration_that_commits; sqlite, postgres);
on_backends!(a_migration_that_rolls_back_is_recorded_as_failed:
    super::a_migration_that_rolls_back; sqlite, postgres);

// ---- #13: empty migrations -------------------------------------------------------------------

fn empty_migrations_apply_as_no_ops(db: TestDb, sb: Sandbox) {
    sb.write_config(&db.config());
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.migration("1.0.0", "001-empty.sql", "");
    sb.migration("1.0.0", "002-blank.sql", "\n  \n");
    sb.migration(
        "1.0.0",
        "003-comments.sql",
        "-- nothing to do yet\n/* reserved */\n;\n",
    );
    sb.migration("1.0.0", "004-a.sql", "CREATE TABLE a (id INTEGER);\n");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        db.ledger(),
        [
            "1.0.0/001-empty.sql:ok",
            "1.0.0/002-blank.sql:ok",
            "1.0.0/003-comments.sql:ok",
            "1.0.0/004-a.sql:ok"
        ]
    );
    assert!(db.has_table("a"));
}

on_backends!(empty_migrations_apply_as_no_ops:
    super::empty_migrations_apply_as_no_ops; sqlite, postgres, mariadb);

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

// ---- #11: unsafe executable migrations -------------------------------------------------------

#[test]
fn unsafe_executable_migrations_are_refused_naming_file_and_mode() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.logging_hook("pre", false, "10-pre");
    let ran = sb.base.join("ran");
    let data = sb.migration(
        "1.0.0",
        "001-data",
        &format!("#!/bin/sh\ntouch {}\n", ran.display()),
    );
    // owned by `nobody`, writable by anyone
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("refusing to run unsafe migrations")
        .assert_stderr(&data.display().to_string())
        .assert_stderr("owned by uid 65534")
        .assert_stderr("mode 0777");
    assert!(!ran.exists(), "the unsafe migration ran");
    assert_nothing_changed(&sb);
    // root's, but in a directory anyone may write to
    std::os::unix::fs::chown(&data, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = data.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr(&format!(
            "`{}` is writable by group or others",
            dir.display()
        ))
        .assert_stderr("mode 0777");
    assert!(!ran.exists(), "the unsafe migration ran");
    assert_nothing_changed(&sb);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.run(&["--yes"]).assert_code(0);
    assert!(ran.exists());
}
