//! Restore points and rollback (issue 13, SPEC §12): an upgrade that upgrades, adds and drops
//! packages, migrates the schema and changes configuration files, then `rollback`: the rpm
//! database, the database, the configuration files, the installed version and the services are
//! what they were before the upgrade, on SQLite, PostgreSQL and MariaDB (full dumps, schema and
//! rows), with a runit service that serves the installed version. Then the refusals: partial and
//! missing restore points, missing client tools, nothing (left) to roll back; and rollbacks of a
//! run that failed in its migrations and of a fresh install.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

/// The file of demo-server that its service serves.
pub(crate) const VERSION_FILE: &str = "/usr/share/demo/version";

/// 1.0.0: demo-server (with an operator-editable config file and the version file its service
/// serves) and demo-cli; 2.0.0: demo-server upgraded (its config file changed, a config file
/// added), demo-cli dropped, demo-web added.
pub(crate) fn releases(sb: &Sandbox) {
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![
                pkg("demo-server", "1.0.0")
                    .config_file("/etc/demo/server.conf", "port = 1\n")
                    .file(VERSION_FILE, "1.0.0", 0o644),
                pkg("demo-cli", "1.0.0"),
            ],
        ),
        rel(
            "2.0.0",
            vec![
                pkg("demo-server", "2.0.0")
                    .config_file("/etc/demo/server.conf", "port = 2\n")
                    .file(VERSION_FILE, "2.0.0", 0o644)
                    .config_file("/etc/demo/new.conf", "new = true\n"),
                pkg("demo-web", "2.0.0"),
            ],
        ),
    ]);
}

/// A migration per release: 1.0.0 creates and fills a table, 2.0.0 alters it, rewrites its rows
/// and adds a table.
pub(crate) fn migrations(sb: &Sandbox) {
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
         UPDATE accounts SET name = upper(name), email = 'someone@example.invalid';\n\
         CREATE TABLE sessions (id INTEGER PRIMARY KEY);",
    );
}

pub(crate) fn file_state(path: &Path) -> Option<(String, u32)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((
        std::fs::read_to_string(path).unwrap(),
        meta.permissions().mode() & 0o7777,
    ))
}

/// What the test compares before the upgrade and after the rollback, besides the database.
#[derive(Debug, PartialEq)]
pub(crate) struct HostState {
    rpm: Vec<String>,
    installed: Option<String>,
    server_conf: Option<(String, u32)>,
    new_conf: Option<(String, u32)>,
    /// The `.rpmnew` / `.rpmsave` files in `/etc/demo`.
    pub(crate) set_aside: Vec<String>,
    ledger: Vec<String>,
}

pub(crate) fn host_state(sb: &Sandbox, db: &TestDb) -> HostState {
    HostState {
        rpm: sb.rpm_qa(),
        installed: sb.installed(),
        server_conf: file_state(&sb.root.join("etc/demo/server.conf")),
        new_conf: file_state(&sb.root.join("etc/demo/new.conf")),
        set_aside: set_aside(&sb.root.join("etc/demo")),
        ledger: db.ledger(),
    }
}

/// The names of the `.rpmnew` and `.rpmsave` files in `dir`, sorted.
pub(crate) fn set_aside(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".rpmnew") || n.ends_with(".rpmsave"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A runit service `demo` (of demo-server) that answers with the version in [`VERSION_FILE`]
/// as it was when it started; returns the supervisor and the port.
pub(crate) fn version_service(sb: &Sandbox) -> (Runit, u16) {
    let mut runit = Runit::new(sb.root.join("etc/service"));
    let port = free_port();
    runit.service(
        "demo",
        &format!(
            "exec {} --name demo --port {port} --version \"$(cat {})\" 2>&1",
            demo_service().display(),
            sb.root.join(VERSION_FILE.trim_start_matches('/')).display()
        ),
    );
    let dir = sb.root.join("usr/share/upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("service-order.toml"),
        format!(
            "[service.demo]\npackages = [\"demo-server\"]\nready = {{ tcp = \"127.0.0.1:{port}\", timeout = \"5s\" }}\n"
        ),
    )
    .unwrap();
    runit.start();
    (runit, port)
}

/// What the service on `port` answers, `None` when nothing listens.
pub(crate) fn served(port: u16) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.trim_end().to_string())
}

fn rollback_puts_back_packages_database_configuration_and_services(sb: Sandbox, db: TestDb) {
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n",
        db.config()
    ));
    releases(&sb);
    migrations(&sb);
    let (runit, port) = version_service(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    // the operator edits the config file and its mode
    let conf = sb.root.join("etc/demo/server.conf");
    std::fs::write(&conf, "port = 1\n# edited by the operator\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = host_state(&sb, &db);
    let dump_before = full_dump(&db);
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
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
    assert!(
        up.stderr.contains("take the restore point"),
        "{}",
        up.stderr
    );
    let after = host_state(&sb, &db);
    assert_ne!(after, before);
    assert_eq!(after.installed.as_deref(), Some("2.0.0"));
    // rpm kept the operator's edited file and set the packaged one beside it; the rollback
    // (whose downgrade sets 1.0.0's beside it again) removes it with the rest
    assert_eq!(after.set_aside, ["server.conf.rpmnew"]);
    let dump_after = full_dump(&db);
    assert_ne!(dump_after, dump_before, "the migration changed nothing");

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
    assert_same(&full_dump(&db), &dump_after, "after a dry run");

    let back = sb.run(&["rollback", "--yes"]);
    back.assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(host_state(&sb, &db), before);
    assert_same(&full_dump(&db), &dump_before, "after the rollback");
    // the service runs again, the old version
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
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
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
}

#[test]
fn sqlite_rollback_puts_back_packages_database_configuration_and_services() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    rollback_puts_back_packages_database_configuration_and_services(sb, db);
}

#[test]
fn postgres_rollback_puts_back_packages_database_configuration_and_services() {
    rollback_puts_back_packages_database_configuration_and_services(
        Sandbox::new(),
        TestDb::postgres(),
    );
}

#[test]
fn mariadb_rollback_puts_back_packages_database_configuration_and_services() {
    rollback_puts_back_packages_database_configuration_and_services(
        Sandbox::new(),
        TestDb::mariadb(),
    );
}

/// The sandbox's product on `db`: [`releases`] and [`migrations`].
pub(crate) fn product(sb: &Sandbox, db: &TestDb) {
    sb.write_config(&db.config());
    releases(sb);
    migrations(sb);
}

/// Each run's `status` in `history --json`, oldest first.
pub(crate) fn statuses(sb: &Sandbox) -> Vec<String> {
    let history = sb.run(&["history", "--json"]);
    history.assert_code(0);
    history
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

/// What a refused command must leave as it was.
fn unchanged_state(sb: &Sandbox) -> (Vec<String>, Option<String>, Vec<String>) {
    (sb.rpm_qa(), sb.installed(), statuses(sb))
}

/// The upgrade fails in its second migration, after the packages changed and the first
/// migration was applied; `rollback` takes the host back to 1.0.0 and closes the failed run.
fn rollback_of_a_run_failed_in_its_migrations(sb: Sandbox, db: TestDb) {
    product(&sb, &db);
    sb.migration("2.0.0", "002-broken.sql", "SELECT * FROM no_such_table;");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = host_state(&sb, &db);
    let dump_before = full_dump(&db);

    let up = sb.run(&["--yes"]);
    assert_ne!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("002-broken.sql"), "{}", up.stderr);
    assert!(sb.rpm_qa().contains(&"demo-web-2.0.0-1.x86_64".to_string()));
    assert!(db.has_table("sessions"), "the first migration was applied");

    sb.run(&["rollback", "--yes"])
        .assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(host_state(&sb, &db), before);
    assert_same(&full_dump(&db), &dump_before, "after the rollback");
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
}

#[test]
fn sqlite_rollback_of_a_run_failed_in_its_migrations() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    rollback_of_a_run_failed_in_its_migrations(sb, db);
}

#[test]
fn postgres_rollback_of_a_run_failed_in_its_migrations() {
    rollback_of_a_run_failed_in_its_migrations(Sandbox::new(), TestDb::postgres());
}

/// A fresh install rolled back: its packages removed, the database as it was (SQLite: no file;
/// PostgreSQL: the empty database), nothing installed, its service down; then it installs again.
fn rollback_of_a_fresh_install(sb: Sandbox, db: TestDb) {
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n",
        db.config()
    ));
    releases(&sb);
    migrations(&sb);
    let (runit, port) = version_service(&sb);
    let dump_before = match &db {
        TestDb::Sqlite { path, .. } => {
            assert!(!path.exists());
            None
        }
        _ => Some(full_dump(&db)),
    };
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));

    let plan = sb.run(&["rollback", "--dry-run"]);
    plan.assert_code(0)
        .assert_stderr("remove   demo-server 1.0.0-1")
        .assert_stderr("    start services:     none\n")
        .assert_stderr("    left stopped:       demo (nothing of the product stays installed)");
    sb.run(&["rollback", "--yes"]).assert_code(0);
    if let TestDb::Sqlite { path, .. } = &db {
        assert!(!path.exists(), "the rollback left the database");
    }
    assert_eq!(sb.rpm_qa(), Vec::<String>::new());
    assert_eq!(sb.installed(), None);
    match (&db, dump_before) {
        (TestDb::Sqlite { path, .. }, _) => assert!(!path.exists(), "the database is left"),
        (_, Some(dump)) => assert_same(&full_dump(&db), &dump, "after the rollback"),
        _ => unreachable!(),
    }
    assert!(!sb.root.join("etc/demo/server.conf").exists());
    assert_ne!(runit.state("demo"), "run");
    assert_eq!(served(port), None);
    assert_eq!(statuses(&sb), ["rolled-back", "succeeded"]);

    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(db.ledger(), ["1.0.0/001-accounts.sql:ok"]);
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
}

#[test]
fn sqlite_rollback_of_a_fresh_install_removes_it() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    rollback_of_a_fresh_install(sb, db);
}

#[test]
fn postgres_rollback_of_a_fresh_install_removes_it() {
    rollback_of_a_fresh_install(Sandbox::new(), TestDb::postgres());
}

/// A build no repository has (a hotfix installed by hand) makes the restore point partial:
/// preflight warns, the upgrade goes on, and `rollback` refuses, naming it, changing nothing.
#[test]
fn a_partial_restore_point_is_reported_and_its_rollback_refused() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    product(&sb, &db);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let mut hotfix = pkg("demo-server", "1.0.0").config_file("/etc/demo/server.conf", "port = 1\n");
    hotfix.release = "2".into();
    let file = hotfix.build(&sb.base.join("hotfix"));
    assert!(sb.rpm().arg("-U").arg(&file).status().unwrap().success());

    let check = sb.run(&["check", "--json"]);
    check.assert_code(0);
    let result = check.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "restore-point:packages")
        .cloned()
        .unwrap();
    assert_eq!(result["status"], "warning", "{result:#}");
    assert!(
        result.to_string().contains("demo-server-1.0.0-2.x86_64"),
        "{result:#}"
    );

    sb.run(&["--yes"]).assert_code(0);
    let before = unchanged_state(&sb);
    let dump = full_dump(&db);
    sb.run(&["rollback", "--yes"])
        .assert_code(2)
        .assert_stderr("is partial")
        .assert_stderr("demo-server-1.0.0-2.x86_64");
    assert_eq!(unchanged_state(&sb), before);
    assert_same(&full_dump(&db), &dump, "after a refused rollback");
}

/// A run with `--no-restore-point` cannot be rolled back (saying why); an older run can, with
/// `--to-run`; after which there is nothing left to roll back.
#[test]
fn a_run_without_a_restore_point_is_refused_and_an_older_one_named() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    sb.write_config(&db.config());
    sb.publish(vec![
        rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        rel("2.0.0", vec![pkg("demo-server", "2.0.0")]),
        rel("3.0.0", vec![pkg("demo-server", "3.0.0")]),
    ]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    sb.run(&["--yes", "--no-restore-point"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("3.0.0"));
    let before = unchanged_state(&sb);
    for args in [
        &["rollback", "--yes"][..],
        &["rollback", "--yes", "--to-run", "3"],
    ] {
        sb.run(args)
            .assert_code(2)
            .assert_stderr("run 3 took no restore point")
            .assert_stderr("--no-restore-point");
        assert_eq!(unchanged_state(&sb), before);
    }

    sb.run(&["rollback", "--yes", "--to-run", "2"])
        .assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
    assert_eq!(
        statuses(&sb),
        ["succeeded", "rolled-back", "succeeded", "succeeded"]
    );
    let before = unchanged_state(&sb);
    sb.run(&["rollback", "--yes"])
        .assert_code(2)
        .assert_stderr("nothing to roll back");
    sb.run(&["rollback", "--yes", "--to-run", "2"])
        .assert_code(2)
        .assert_stderr("nothing to roll back: run 2 was rolled back already");
    assert_eq!(unchanged_state(&sb), before);
    // an older run can be named: the fresh install's restore point holds nothing installed
    sb.run(&["rollback", "--yes", "--to-run", "1"])
        .assert_code(0);
    assert_eq!(sb.rpm_qa(), Vec::<String>::new());
    assert_eq!(sb.installed(), None);
}

/// A directory of links to every program on `PATH` but PostgreSQL's client tools.
fn path_without_pg_tools(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for bin in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        let Ok(entries) = std::fs::read_dir(&bin) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = dir.join(&name);
            if name.to_string_lossy().starts_with("pg_") || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), link);
        }
    }
    dir.display().to_string()
}

/// Without `pg_dump`, preflight inhibits the run (`restore-point:tool:pg_dump`): nothing changes.
#[test]
fn a_missing_database_client_inhibits_the_run() {
    let sb = Sandbox::new();
    let db = TestDb::postgres();
    product(&sb, &db);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = unchanged_state(&sb);
    let dump = full_dump(&db);
    let path = path_without_pg_tools(&sb.base.join("bin"));

    let check = Run::from(
        sb.cmd(&["check", "--json"])
            .env("PATH", &path)
            .output()
            .unwrap(),
    );
    check.assert_code(3);
    let failed: Vec<String> = check.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "inhibitor")
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        failed.contains(&"restore-point:tool:pg_dump".to_string()),
        "{failed:?}"
    );
    let run = Run::from(sb.cmd(&["--yes"]).env("PATH", &path).output().unwrap());
    run.assert_code(3)
        .assert_stderr("restore-point:tool:pg_dump");
    assert_eq!(unchanged_state(&sb), before);
    assert_same(&full_dump(&db), &dump, "after an inhibited run");
}

/// A rollback killed midway resumes as a rollback, with `rollback` or the plain command, never
/// as the upgrade it undoes; asked for another target meanwhile, the upgrade refuses.
#[test]
fn a_killed_rollback_resumes_as_a_rollback_under_the_plain_command() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    product(&sb, &db);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = host_state(&sb, &db);
    let dump = full_dump(&db);
    sb.run(&["--yes"]).assert_code(0);
    let killed = sb
        .cmd(&["rollback", "--yes"])
        .env("UPGRADE_FAULT", "restore-data:files")
        .output()
        .unwrap();
    assert_eq!(killed.status.signal(), Some(9));

    for args in [
        &["--yes", "--to", "2.0.0"][..],
        &["--yes", "--download-only"],
        &["--yes", "--no-restore-point"],
    ] {
        sb.run(args)
            .assert_code(2)
            .assert_stderr("rollback run 3 is not finished")
            .assert_stderr("real-upgrade rollback");
    }
    let plan = sb.run(&["--dry-run"]);
    plan.assert_code(0)
        .assert_stderr("demo rollback: 2.0.0 → 1.0.0")
        .assert_stderr("dry run: nothing was changed");
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run 3")
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(host_state(&sb, &db), before);
    assert_same(&full_dump(&db), &dump, "after the resumed rollback");
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
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

/// SIGTERM as the rollback's restore-data step starts (PostgreSQL, 300,000 more rows, so that
/// the restore takes a while): the rollback stops (exit 143) with its run open, and the resumed
/// rollback gives back exactly the database, packages and files of 1.0.0.
#[test]
fn sigterm_during_the_restore_data_step_converges() {
    let sb = Sandbox::new();
    let db = TestDb::postgres();
    product(&sb, &db);
    sb.migration(
        "1.0.0",
        "002-bulk.sql",
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g;",
    );
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = host_state(&sb, &db);
    let dump_before = full_dump(&db);
    sb.run(&["--yes"]).assert_code(0);

    let log = sb.root.join("var/log/upgrade/upgrade.log");
    let child = sb
        .cmd(&["rollback", "--yes"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_until(std::time::Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("step=hop0:restore-data"))
    });
    assert!(started, "the restore-data step never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "failed"]);

    sb.run(&["rollback", "--yes"])
        .assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(host_state(&sb, &db), before);
    assert_same(&full_dump(&db), &dump_before, "after the resumed rollback");
}

/// The (device, inode) of each file directly in `dir` ending in `.rpm`, by file name.
fn inodes(dir: &Path) -> Vec<(String, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let mut found: Vec<(String, (u64, u64))> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".rpm"))
        .map(|e| {
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, (meta.dev(), meta.ino()))
        })
        .collect();
    found.sort();
    found
}

/// A local repository's package that only the upgrader's user can change is linked into the
/// cache, not copied; one that others may write is copied. A restore point copies what the cache
/// links, so that a repository file rewritten in place later cannot change what a rollback puts
/// back.
#[test]
fn a_local_repository_is_linked_into_the_cache_and_restore_points_keep_copies() {
    let sb = Sandbox::new();
    releases(&sb);
    let packages = sb.repo.join("packages");
    let server = packages.join("demo-server-1.0.0-1.x86_64.rpm");
    let cli = packages.join("demo-cli-1.0.0-1.x86_64.rpm");
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o664)).unwrap();
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let repository: std::collections::HashMap<String, (u64, u64)> =
        inodes(&packages).into_iter().collect();
    let cached = inodes(&sb.root.join("var/lib/upgrade/cache"));
    let shared: Vec<&str> = cached
        .iter()
        .filter(|(name, inode)| {
            let (_, file) = name.split_once('-').unwrap();
            repository.get(file) == Some(inode)
        })
        .map(|(name, _)| name.split_once('-').unwrap().1)
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert_eq!(shared, ["demo-server-1.0.0-1.x86_64.rpm"], "{cached:?}");

    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
    let restore = sb.root.join("var/lib/upgrade/restore/2/packages");
    let kept = inodes(&restore);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|(_, inode)| !repository.values().any(|r| r == inode)),
        "the restore point shares a file with the repository: {kept:?}"
    );
    // the vendor rewrites a released package in place: the rollback still puts back 1.0.0
    std::fs::write(&server, b"not the package that was released").unwrap();
    sb.run(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn a_repository_symlink_is_copied_into_the_cache_not_linked() {
    let sb = Sandbox::new();
    releases(&sb);
    // the repository's entry is a symlink to a file this user owns and only it can write: the
    // link could be pointed elsewhere later, so the cache keeps a copy of its own
    let server = sb.repo.join("packages/demo-server-1.0.0-1.x86_64.rpm");
    let elsewhere = sb.base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let target = elsewhere.join("demo-server-1.0.0-1.x86_64.rpm");
    std::fs::rename(&server, &target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&target, &server).unwrap();
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    let target = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&target).unwrap();
        (m.dev(), m.ino())
    };
    let cache = sb.root.join("var/lib/upgrade/cache");
    let cached = inodes(&cache);
    assert_eq!(cached.len(), 2, "{cached:?}");
    for (name, inode) in &cached {
        let own = std::fs::symlink_metadata(cache.join(name)).unwrap();
        assert!(
            own.file_type().is_file(),
            "`{name}` is not a file of its own"
        );
        assert_ne!(*inode, target, "the cache shares the symlink's file");
    }
}
