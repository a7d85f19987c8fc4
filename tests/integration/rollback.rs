//! Restore points and rollback (issue 13, SPEC §12): an upgrade that upgrades, adds and drops
//! packages, migrates the schema and changes configuration files, then `rollback`: the rpm
//! database, the database, the configuration files, the installed version and the services are
//! what they were before the upgrade.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

/// 1.0.0: demo-server (with an operator-editable config file) and demo-cli; 2.0.0: demo-server
/// upgraded (its config file changed, a config file added), demo-cli dropped, demo-web added.
fn releases(sb: &Sandbox) {
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![
                pkg("demo-server", "1.0.0").config_file("/etc/demo/server.conf", "port = 1\n"),
                pkg("demo-cli", "1.0.0"),
            ],
        ),
        rel(
            "2.0.0",
            vec![
                pkg("demo-server", "2.0.0")
                    .config_file("/etc/demo/server.conf", "port = 2\n")
                    .config_file("/etc/demo/new.conf", "new = true\n"),
                pkg("demo-web", "2.0.0"),
            ],
        ),
    ]);
}

/// A migration per release: 1.0.0 creates and fills a table, 2.0.0 alters it, rewrites its rows
/// and adds a table.
fn migrations(sb: &Sandbox) {
    sb.migration(
        "1.0.0",
        "001-accounts.sql",
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO accounts (id, name) VALUES (1, 'admin'), (2, 'guest');",
    );
    sb.migration(
        "2.0.0",
        "001-rename.sql",
        "ALTER TABLE accounts ADD COLUMN email TEXT;\n\
         UPDATE accounts SET name = upper(name), email = name || '@example.invalid';\n\
         CREATE TABLE sessions (id INTEGER PRIMARY KEY);",
    );
}

fn file_state(path: &Path) -> Option<(String, u32)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((
        std::fs::read_to_string(path).unwrap(),
        meta.permissions().mode() & 0o7777,
    ))
}

/// What the test compares before the upgrade and after the rollback.
#[derive(Debug, PartialEq)]
struct HostState {
    rpm: Vec<String>,
    installed: Option<String>,
    server_conf: Option<(String, u32)>,
    new_conf: Option<(String, u32)>,
    accounts: Vec<String>,
    tables: Vec<String>,
    ledger: Vec<String>,
}

fn host_state(sb: &Sandbox, db: &TestDb) -> HostState {
    let conn = match db {
        TestDb::Sqlite { path, .. } => rusqlite::Connection::open(path).unwrap(),
        _ => unreachable!("SQLite here"),
    };
    let strings = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    HostState {
        rpm: sb.rpm_qa(),
        installed: sb.installed(),
        server_conf: file_state(&sb.root.join("etc/demo/server.conf")),
        new_conf: file_state(&sb.root.join("etc/demo/new.conf")),
        accounts: strings("SELECT quote(id) || ',' || quote(name) FROM accounts ORDER BY id"),
        tables: strings("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"),
        ledger: db.ledger(),
    }
}

#[test]
fn rollback_after_an_upgrade_puts_back_packages_database_and_configuration() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    sb.write_config(&db.config());
    releases(&sb);
    migrations(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    // the operator edits the config file and its mode
    let conf = sb.root.join("etc/demo/server.conf");
    std::fs::write(&conf, "port = 1\n# edited by the operator\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = host_state(&sb, &db);
    let actions = sb.base.join("actions");
    sb.hook(
        "pre",
        false,
        "10-action",
        &format!(
            "echo \"$UPGRADE_ACTION $UPGRADE_FROM_VERSION $UPGRADE_TO_VERSION\" >> {}",
            actions.display()
        ),
    );

    let up = sb.run(&["--yes"]);
    up.assert_code(0);
    assert!(
        up.stderr.contains("take the restore point"),
        "{}",
        up.stderr
    );
    let after = host_state(&sb, &db);
    assert_ne!(after, before);
    assert_eq!(after.installed.as_deref(), Some("2.0.0"));

    let plan = sb.run(&["rollback", "--dry-run"]);
    plan.assert_code(0);
    for needle in [
        "demo rollback: 2.0.0 → 1.0.0",
        "downgrade demo-server 2.0.0-1 → 1.0.0-1",
        "install  demo-cli 1.0.0-1",
        "remove   demo-web 2.0.0-1  (the rolled-back run added it)",
        "what the product wrote since is lost",
    ] {
        assert!(
            plan.stderr.contains(needle),
            "no `{needle}` in:\n{}",
            plan.stderr
        );
    }
    assert_eq!(host_state(&sb, &db), after, "a dry run changed the host");

    let back = sb.run(&["rollback", "--yes"]);
    back.assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(host_state(&sb, &db), before);
    // the hooks know what the run does
    assert_eq!(
        std::fs::read_to_string(&actions).unwrap(),
        "upgrade 1.0.0 2.0.0\nrollback 2.0.0 1.0.0\n"
    );
    // a second rollback has nothing to roll back
    sb.run(&["rollback", "--yes"])
        .assert_code(2)
        .assert_stderr("nothing to roll back");
    // history says so
    let history = sb.run(&["history"]);
    history.assert_code(0);
    assert!(
        history.stdout.contains("rolled-back") || history.stderr.contains("rolled-back"),
        "{}{}",
        history.stdout,
        history.stderr
    );
    // and the next upgrade goes forward again
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
}

#[test]
fn rollback_of_a_fresh_install_without_a_database_removes_what_it_installed() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let run = sb.run(&["--yes", "--to", "1.0.0"]);
    run.assert_code(0);
    // nothing to save: the restore point is implicit, no step takes it
    assert!(
        !run.stderr.contains("take the restore point"),
        "{}",
        run.stderr
    );
    assert!(!sb.rpm_qa().is_empty());
    let history = sb.run(&["history", "--json"]).json();
    assert_eq!(history[0]["restore_point"], "kept", "{history:#}");
    sb.run(&["rollback", "--yes"])
        .assert_code(0)
        .assert_stderr("demo is rolled back: nothing installed");
    assert!(sb.rpm_qa().is_empty(), "{:?}", sb.rpm_qa());
    assert_eq!(sb.installed(), None);
    let history = sb.run(&["history", "--json"]).json();
    assert_eq!(history[0]["status"], "rolled-back", "{history:#}");
    assert_eq!(history[1]["action"], "rollback", "{history:#}");
    // and `upgrade` is a fresh install again
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("3.0.0"));
}
