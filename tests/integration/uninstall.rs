//! Uninstall (issue 15, SPEC §14): an upgrade to nothing, with real rpm, runit and the three
//! databases. Data stays by default and a following `upgrade` (a fresh install) finds it;
//! `--purge` deletes the database objects and `[uninstall] purge_paths`, never the `keep` paths;
//! prerequisites, the operating system's packages and the upgrader package stay; `rollback`
//! brings back packages, configuration, data and running services; a killed uninstall resumes
//! as an uninstall and converges.

use std::path::Path;

use crate::rollback::{HostState, VERSION_FILE, host_state, served, statuses, version_service};
use crate::support::*;

/// The product's data directory that `--purge` deletes, and the file in it `keep` protects.
const DATA_DIR: &str = "/var/lib/demo/files";
const KEPT: &str = "/var/lib/demo/files/shared/license.key";

/// 1.0.0 and 2.0.0 of demo-server (its config file and the version its service serves) and
/// demo-cli, each needing the prerequisite `libfoo` that the repository ships; a migration each.
fn releases(sb: &Sandbox) {
    let libfoo = pkg("libfoo", "1.0").build(&sb.repo.join("packages"));
    let prerequisite = format!(
        "prerequisites = [{{ name = \"libfoo\", version = \">= 1.0\", package = \"packages/{}\" }}]\n",
        libfoo.file_name().unwrap().to_string_lossy()
    );
    let release = |version: &'static str| {
        rel(
            version,
            vec![
                pkg("demo-server", version)
                    .config_file("/etc/demo/server.conf", "port = 1\n")
                    .file(VERSION_FILE, version, 0o644),
                pkg("demo-cli", version),
            ],
        )
        .with_toml(&prerequisite)
    };
    sb.publish(vec![release("1.0.0"), release("2.0.0")]);
    crate::rollback::migrations(sb);
}

/// The product on `db` with a runit service, `[uninstall]` purging [`DATA_DIR`] and keeping
/// [`KEPT`]; the upgrader package and an OS package installed beside it; 1.0.0 installed and
/// data written. Returns the supervisor and the service's port.
pub(crate) fn installed(sb: &Sandbox, db: &TestDb) -> (Runit, u16) {
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n[uninstall]\npurge_paths = [\"{DATA_DIR}\"]\n\
         keep = [\"{KEPT}\"]\nkeep_users = [\"demo\"]\n",
        db.config()
    ));
    releases(sb);
    let upgrader = upgrader_pkg("1.0.0", &sb.base.join("upgrader.log"));
    sb.rpm_install(&[upgrader.build(&sb.base.join("upgrader"))]);
    os_package(sb, "/usr/share/os-tool/data");
    let service = version_service(sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(served(service.1).as_deref(), Some("demo 1.0.0"));
    write_data(sb);
    service
}

fn write_data(sb: &Sandbox) {
    let at = |p: &str| sb.root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(at(KEPT).parent().unwrap()).unwrap();
    std::fs::write(at(KEPT), "the license\n").unwrap();
    std::fs::create_dir_all(at(DATA_DIR).join("uploads")).unwrap();
    std::fs::write(at(DATA_DIR).join("uploads/a.txt"), "upload\n").unwrap();
    std::fs::write(at(DATA_DIR).join("index"), "index\n").unwrap();
}

/// Every file under `dir` (relative) with its content, sorted; empty when it is gone.
fn tree(dir: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.push((rel_of(base, &path) + "/", String::new()));
                walk(base, &path, out);
            } else {
                out.push((rel_of(base, &path), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    fn rel_of(base: &Path, path: &Path) -> String {
        path.strip_prefix(base).unwrap().display().to_string()
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What stays after any uninstall: the prerequisite, the OS's package and the upgrader.
const LEFT: [&str; 3] = [
    "demo-upgrade-1.0.0-1.noarch",
    "libfoo-1.0-1.x86_64",
    "os-tool-1.0-1.x86_64",
];

fn data_dir(sb: &Sandbox) -> std::path::PathBuf {
    sb.root.join(DATA_DIR.trim_start_matches('/'))
}

/// The whole host an uninstall and its rollback touch.
fn everything(sb: &Sandbox, db: &TestDb) -> (HostState, String, Vec<(String, String)>) {
    (host_state(sb, db), full_dump(db), tree(&data_dir(sb)))
}

/// Uninstall keeps the data; `rollback` brings the product back as it was; a second uninstall
/// and a following `upgrade` (a fresh install) find the data in place.
fn uninstall_keeps_data_and_rollback_brings_it_back(sb: Sandbox, db: TestDb) {
    let (runit, port) = installed(&sb, &db);
    // the operator edits the config file and its mode: rpm -e keeps it as `.rpmsave`
    let conf = sb.root.join("etc/demo/server.conf");
    std::fs::write(&conf, "port = 1\n# edited by the operator\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let actions = sb.base.join("actions");
    sb.hook(
        "pre",
        false,
        "10-action",
        &format!(
            "echo \"$UPGRADE_ACTION $UPGRADE_FROM_VERSION [$UPGRADE_TO_VERSION]\" >> {}",
            actions.display()
        ),
    );
    let before = everything(&sb, &db);

    let plan = sb.run(&["uninstall", "--dry-run"]);
    plan.assert_code(0);
    for needle in [
        "demo uninstall: 1.0.0 → nothing installed",
        "remove   demo-server 1.0.0-1",
        "remove   demo-cli 1.0.0-1",
        "purge:              nothing (data stays",
        "libfoo  (a prerequisite",
        "demo-upgrade  (the upgrader",
        &format!("{KEPT}  (`[uninstall] keep`"),
        &format!("{DATA_DIR}  (data stays without `--purge`)"),
        "demo  (`[uninstall] keep_users`",
    ] {
        assert!(
            plan.stderr.contains(needle),
            "no `{needle}` in:\n{}",
            plan.stderr
        );
    }
    assert_eq!(everything(&sb, &db), before, "a dry run changed the host");
    // no terminal and no --yes: an error, never a hang
    sb.run(&["uninstall"]).assert_code(2);
    assert_eq!(everything(&sb, &db), before);

    let out = sb.run(&["uninstall", "--yes", "--json"]);
    out.assert_code(0).assert_stderr("left behind:");
    let doc = out.json();
    assert_eq!(doc["result"], "uninstalled");
    assert!(
        doc["left_behind"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == KEPT),
        "{doc}"
    );
    assert_eq!(sb.rpm_qa(), LEFT);
    assert_eq!(sb.installed(), None);
    assert!(!conf.exists());
    assert_eq!(
        crate::rollback::set_aside(&sb.root.join("etc/demo")),
        ["server.conf.rpmsave"]
    );
    // the data stays: the database, the data directory
    assert_eq!(full_dump(&db), before.1);
    assert_eq!(tree(&data_dir(&sb)), before.2);
    assert_ne!(runit.state("demo"), "run");
    assert_eq!(served(port), None);
    assert_eq!(statuses(&sb), ["succeeded", "succeeded"]);
    // uninstalling nothing is done
    sb.run(&["uninstall", "--yes"])
        .assert_code(0)
        .assert_stderr("nothing is installed");

    sb.run(&["rollback", "--yes"])
        .assert_code(0)
        .assert_stderr("is rolled back: 1.0.0 is installed");
    assert_eq!(everything(&sb, &db), before);
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);

    // uninstall again, then `upgrade`: a fresh install that finds the data where it was (the
    // database, its ledger, the data paths); rpm installs the packaged configuration file and
    // the operator's edited one stays beside it, as rpm -e left it
    sb.run(&["uninstall", "--yes"]).assert_code(0);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let (host, dump, data) = everything(&sb, &db);
    assert_eq!((&dump, &data), (&before.1, &before.2));
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    assert_eq!(host.set_aside, ["server.conf.rpmsave"]);
    assert_eq!(
        std::fs::read_to_string(sb.root.join("etc/demo/server.conf.rpmsave")).unwrap(),
        "port = 1\n# edited by the operator\n"
    );
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    assert_eq!(
        std::fs::read_to_string(&actions).unwrap(),
        "uninstall 1.0.0 []\nrollback  [1.0.0]\nuninstall 1.0.0 []\nupgrade  [1.0.0]\n"
    );
}

#[test]
fn sqlite_uninstall_keeps_data_and_rollback_brings_it_back() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    uninstall_keeps_data_and_rollback_brings_it_back(sb, db);
}

#[test]
fn postgres_uninstall_keeps_data_and_rollback_brings_it_back() {
    uninstall_keeps_data_and_rollback_brings_it_back(Sandbox::new(), TestDb::postgres());
}

#[test]
fn mariadb_uninstall_keeps_data_and_rollback_brings_it_back() {
    uninstall_keeps_data_and_rollback_brings_it_back(Sandbox::new(), TestDb::mariadb());
}

/// `--purge` asks again (no terminal: an error, nothing changed), then deletes the database's
/// objects and the purge paths but the `keep` path; `rollback` brings all of it back.
fn purge_deletes_data_but_what_is_kept(sb: Sandbox, db: TestDb) {
    let (runit, port) = installed(&sb, &db);
    let before = everything(&sb, &db);
    sb.run(&["uninstall", "--purge"]).assert_code(2);
    assert_eq!(everything(&sb, &db), before);
    let plan = sb.run(&["uninstall", "--purge", "--dry-run"]);
    plan.assert_code(0).assert_stderr(&format!(
        "purge:              the database's objects, `{DATA_DIR}`"
    ));

    sb.run(&["uninstall", "--purge", "--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), LEFT);
    assert_eq!(sb.installed(), None);
    assert!(
        !db.has_table("accounts"),
        "the purge left the database's tables"
    );
    assert!(!db.has_table("upgrade_migrations"));
    if let TestDb::Sqlite { path, .. } = &db {
        assert!(!path.exists(), "the purge left the SQLite file");
    }
    // only the kept file (and the directories on the way to it) is left
    assert_eq!(
        tree(&data_dir(&sb)),
        [
            ("shared/".to_string(), String::new()),
            (
                "shared/license.key".to_string(),
                "the license\n".to_string()
            ),
        ]
    );
    assert_eq!(served(port), None);

    sb.run(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(everything(&sb, &db), before);
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
}

#[test]
fn sqlite_purge_deletes_data_but_what_is_kept() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    purge_deletes_data_but_what_is_kept(sb, db);
}

#[test]
fn postgres_purge_deletes_data_but_what_is_kept() {
    purge_deletes_data_but_what_is_kept(Sandbox::new(), TestDb::postgres());
}

#[test]
fn mariadb_purge_deletes_data_but_what_is_kept() {
    purge_deletes_data_but_what_is_kept(Sandbox::new(), TestDb::mariadb());
}

/// A kept path that a hook deletes is put back by the purge step; the hooks are told what is
/// kept.
#[test]
fn a_kept_path_a_hook_deletes_is_put_back() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _service = installed(&sb, &db);
    let kept = sb.root.join(KEPT.trim_start_matches('/'));
    sb.hook(
        "post",
        false,
        "10-rm",
        &format!("rm -rf {}", data_dir(&sb).display()),
    );
    let env = sb.base.join("env");
    sb.hook(
        "pre",
        false,
        "10-env",
        &format!(
            "echo \"$UPGRADE_PURGE|$UPGRADE_KEEP_PATHS|$UPGRADE_KEEP_USERS|$UPGRADE_KEEP_GROUPS\" > {}",
            env.display()
        ),
    );
    sb.run(&["uninstall", "--yes"]).assert_code(0);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "the license\n");
    // the hooks know what the uninstall keeps
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        format!("0|{KEPT}|demo|\n")
    );
}

/// A kill -9 in a hook of an uninstall, before and after its packages are gone: the plain
/// `upgrade` (after the first) and `uninstall --purge --yes` (after the second, whose stored
/// plan keeps the data) finish it as the uninstall it was.
fn killed_uninstall_converges(phase: &str, resume: &[&str]) {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (runit, port) = installed(&sb, &db);
    let before = everything(&sb, &db);
    let marker = sb.base.join("marker");
    sb.hook(
        phase,
        false,
        "50-hang",
        &format!(
            "if [ -e {m} ]; then exit 0; fi; echo $$ > {m}.pid; mv {m}.pid {m}; exec sleep 600",
            m = marker.display()
        ),
    );
    let mut child = sb.spawn_until(&["uninstall", "--yes"], &marker);
    child.kill().unwrap();
    child.wait().unwrap();
    // NB: the hook's `sleep` (its pid in the marker) outlives the kill
    let pid = std::fs::read_to_string(&marker).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status();
    let again = sb.run(resume);
    again.assert_code(0).assert_stderr("is uninstalled");
    assert_eq!(sb.rpm_qa(), LEFT);
    assert_eq!(sb.installed(), None);
    assert_eq!(full_dump(&db), before.1, "the resumed uninstall purged");
    assert_eq!(tree(&data_dir(&sb)), before.2);
    assert_ne!(runit.state("demo"), "run");
    assert_eq!(served(port), None);
    assert_eq!(statuses(&sb), ["succeeded", "succeeded"]);
}

#[test]
fn an_uninstall_killed_in_its_pre_hooks_is_finished_by_upgrade() {
    killed_uninstall_converges("pre", &["--yes"]);
}

#[test]
fn an_uninstall_killed_after_its_packages_is_finished_by_uninstall() {
    killed_uninstall_converges("post", &["uninstall", "--purge", "--yes"]);
}

/// The state an uninstall --purge ends in, compared after every kill.
#[cfg(feature = "fault-injection")]
#[derive(Debug, PartialEq)]
struct Purged {
    rpm: Vec<String>,
    installed: Option<String>,
    data: Vec<(String, String)>,
    accounts: bool,
    history: Vec<String>,
    served: Option<String>,
}

#[cfg(feature = "fault-injection")]
fn purged_state(sb: &Sandbox, db: &TestDb, port: u16) -> Purged {
    Purged {
        rpm: sb.rpm_qa(),
        installed: sb.installed(),
        data: tree(&data_dir(sb)),
        accounts: db.has_table("accounts"),
        history: statuses(sb),
        served: served(port),
    }
}

/// `uninstall --purge` killed (SIGKILL) at every fault point it passes, then run again until it
/// ends: the host ends as a clean uninstall leaves it — packages, installed version, purged and
/// kept data, database, history.
#[cfg(feature = "fault-injection")]
fn killed_at_every_fault_point(new_db: fn(&Sandbox) -> TestDb) {
    use crate::crash::{occurrences, once_unlocked, parallel};
    use std::os::unix::process::ExitStatusExt;

    let uninstall = ["uninstall", "--purge", "--yes"];
    let sb = Sandbox::new();
    let db = new_db(&sb);
    let (_runit, port) = installed(&sb, &db);
    let trace = sb.base.join("faults.trace");
    let out = sb
        .cmd(&uninstall)
        .env("UPGRADE_FAULT_TRACE", &trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = purged_state(&sb, &db, port);
    let points: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let faults = occurrences(&points);
    let failures = parallel(&faults, 3, |fault| {
        let sb = Sandbox::new();
        let db = new_db(&sb);
        let (_runit, port) = installed(&sb, &db);
        if served(port).is_none() {
            return Err(format!(
                "{fault}: the service did not run before the uninstall"
            ));
        }
        let out = sb
            .cmd(&uninstall)
            .env("UPGRADE_FAULT", fault)
            .output()
            .unwrap();
        if out.status.signal() != Some(9) {
            return Err(format!("{fault}: not killed there ({:?})", out.status));
        }
        let again = once_unlocked(|| sb.cmd(&uninstall).output().unwrap());
        if !again.status.success() {
            return Err(format!(
                "{fault}: the resumed uninstall exited {:?}:\n{}",
                again.status,
                String::from_utf8_lossy(&again.stderr)
            ));
        }
        let got = purged_state(&sb, &db, port);
        match got == clean {
            true => Ok(()),
            false => Err(format!("{fault}: ended as {got:?}, not as {clean:?}")),
        }
    });
    eprintln!(
        "uninstall kill matrix ({}): {} kill trials, {} failed",
        db.url(),
        faults.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[cfg(feature = "fault-injection")]
#[test]
fn an_uninstall_killed_at_every_fault_point_converges() {
    killed_at_every_fault_point(TestDb::sqlite);
}

#[cfg(feature = "fault-injection")]
#[test]
fn an_uninstall_on_postgresql_killed_at_every_fault_point_converges() {
    killed_at_every_fault_point(|_| TestDb::postgres());
}

#[cfg(feature = "fault-injection")]
#[test]
fn an_uninstall_on_mariadb_killed_at_every_fault_point_converges() {
    killed_at_every_fault_point(|_| TestDb::mariadb());
}

/// Without the repository (gone, or unreachable), an uninstall still runs: the history names
/// the product's packages and the cache holds their builds for the restore point; `rollback`
/// needs no repository either.
#[test]
fn uninstall_and_its_rollback_need_no_repository() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (_runit, port) = installed(&sb, &db);
    let before = everything(&sb, &db);
    let away = sb.base.join("repo-away");
    std::fs::rename(&sb.repo, &away).unwrap();
    sb.run(&["uninstall", "--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), LEFT);
    assert_eq!(sb.installed(), None);
    sb.run(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(everything(&sb, &db), before);
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    std::fs::rename(&away, &sb.repo).unwrap();
}

/// The product's packages with no recorded version (a lost `state.db`): refused, pointing to
/// `adopt`, nothing changed.
#[test]
fn an_unrecorded_installation_is_refused() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _service = installed(&sb, &db);
    let rpm = sb.rpm_qa();
    std::fs::remove_file(sb.root.join("var/lib/upgrade/state.db")).unwrap();
    sb.run(&["uninstall", "--yes"])
        .assert_code(2)
        .assert_stderr("real-upgrade adopt");
    assert_eq!(sb.rpm_qa(), rpm);
}
