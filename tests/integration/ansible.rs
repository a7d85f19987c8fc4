//! The Ansible collection `upgrade.fleet` (issue 17, SPEC §15): installed with `ansible-galaxy`
//! from the virtual environment that `scripts/setup.sh`'s `ensure_ansible` makes, its module and
//! its rolling-upgrade playbook drive the real `real-upgrade` against sandbox roots of this
//! machine — each inventory host `ansible_connection=local` with its own `upgrade_root`, all on
//! one repository. Check mode changes nothing and shows the versions as a diff; the rollout takes
//! the migration node, then the application nodes batch by batch, to the new release; a batch
//! whose node fails stops the rollout, that node rolled back and the later batches untouched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

/// The virtual environment with ansible-core: `$FLEET_ANSIBLE_VENV`, else the cargo target
/// directory's `ansible-venv`, made by `ensure_ansible` when missing. Panics when it cannot be.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        // NB: REAL_UPGRADE is TARGET/debug/real-upgrade
        let target = Path::new(REAL_UPGRADE).parent().unwrap().parent().unwrap();
        let venv = std::env::var_os("FLEET_ANSIBLE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("ansible-venv"));
        if !venv.join(".complete").exists() {
            let out = Command::new("bash")
                .args(["-c", ". scripts/setup.sh && ensure_ansible"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("FLEET_ANSIBLE_VENV", &venv)
                .output()
                .unwrap();
            assert!(
                out.status.success() && venv.join(".complete").exists(),
                "cannot make the Ansible venv `{}` (scripts/setup.sh ensure_ansible): {}{}",
                venv.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        venv
    })
}

const RELEASES: [&str; 2] = ["1.0.0", "2.0.0"];

/// Failing health checks are tried for 3 s, not the default 2 minutes.
const FAST_HEALTH: &str = "\n[health]\ntimeout = \"3s\"\ninterval = \"200ms\"\n";

/// One inventory host: its name, its group and its sandbox root.
struct Host {
    name: &'static str,
    group: &'static str,
    sb: Sandbox,
}

/// What one root looks like from outside: its packages, installed version and runs.
#[derive(Debug, PartialEq)]
struct State {
    packages: Vec<String>,
    installed: Option<String>,
    runs: usize,
}

/// Sandbox roots at 1.0.0 on one repository that has 1.0.0 and 2.0.0, the collection installed
/// into a directory of its own, and an inventory of them.
struct Fleet {
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
}

impl Fleet {
    /// `hosts` as (name, group); every root logs its hooks, tagged with its host name, into the
    /// fleet's log ([`Fleet::log`]).
    fn new(hosts: &[(&'static str, &'static str)]) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("upgrade-ansible-")
            .tempdir()
            .unwrap();
        let hosts: Vec<Host> = hosts
            .iter()
            .map(|&(name, group)| Host {
                name,
                group,
                sb: Sandbox::new(),
            })
            .collect();
        let repo = hosts[0].sb.repo.display().to_string();
        hosts[0].sb.publish(vec![
            rel(RELEASES[0], vec![pkg("demo-server", "1.0.0")]),
            rel(
                RELEASES[1],
                vec![pkg("demo-server", "2.0.0"), pkg("demo-web", "2.0.0")],
            ),
        ]);
        let fleet = Fleet { dir, hosts };
        for host in &fleet.hosts {
            host.sb.write_config_repo(&repo, FAST_HEALTH);
            for phase in ["pre", "post"] {
                host.sb.hook(
                    phase,
                    true,
                    "50-fleet-log",
                    &format!(
                        "echo \"{} $UPGRADE_ACTION $UPGRADE_PHASE $UPGRADE_FROM_VERSION>$UPGRADE_TO_VERSION\" >> {}",
                        host.name,
                        fleet.log_path().display()
                    ),
                );
            }
            host.sb.run(&["--yes", "--to", RELEASES[0]]).assert_code(0);
        }
        std::fs::remove_file(fleet.log_path()).unwrap();
        fleet.install_collection();
        fleet
    }

    fn host(&self, name: &str) -> &Sandbox {
        &self.hosts.iter().find(|h| h.name == name).unwrap().sb
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("fleet.log")
    }

    /// The hooks that ran on every root and the drain commands, in the order they ran.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn state(&self, name: &str) -> State {
        let sb = self.host(name);
        let runs = sb.run(&["history", "--json"]);
        runs.assert_code(0);
        State {
            packages: sb.rpm_qa(),
            installed: sb.installed(),
            runs: runs.json().as_array().unwrap().len(),
        }
    }

    /// `history --json` of a host, oldest run first.
    fn history(&self, name: &str) -> Vec<serde_json::Value> {
        let runs = self.host(name).run(&["history", "--json"]);
        runs.assert_code(0);
        runs.json().as_array().unwrap().clone()
    }

    /// An ansible command of the venv, on this fleet's collections, home and temporary directories.
    fn ansible(&self, program: &str) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(venv().join("bin").join(program));
        ansible_env(&mut cmd, dir);
        cmd
    }

    /// `ansible-galaxy collection install` of this repository's `ansible/` folder.
    fn install_collection(&self) {
        std::fs::write(self.dir.path().join("ansible.cfg"), "[defaults]\n").unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible");
        let out = self
            .ansible("ansible-galaxy")
            .args(["collection", "install", "--force", "-p"])
            .arg(self.dir.path().join("collections"))
            .arg(&source)
            .output()
            .unwrap();
        let run = Run::from(out);
        run.assert_code(0);
        assert!(
            self.dir
                .path()
                .join("collections/ansible_collections/upgrade/fleet/playbooks/rolling_upgrade.yml")
                .exists(),
            "the collection was not installed: {}",
            run.stdout
        );
    }

    /// Writes the inventory: each host in its group with its root, and `vars` (INI lines) for
    /// every host.
    fn inventory(&self, vars: &str) -> PathBuf {
        let mut text = String::new();
        let mut groups: Vec<&str> = self.hosts.iter().map(|h| h.group).collect();
        groups.dedup();
        for group in groups {
            text += &format!("[{group}]\n");
            for host in self.hosts.iter().filter(|h| h.group == group) {
                text += &format!(
                    "{} ansible_connection=local upgrade_root={}\n",
                    host.name,
                    host.sb.root.display()
                );
            }
        }
        text += &format!(
            "\n[all:vars]\nupgrade_binary={REAL_UPGRADE}\nansible_python_interpreter={}\n{vars}\n",
            venv().join("bin/python").display()
        );
        let path = self.dir.path().join("inventory.ini");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ansible-playbook -i INVENTORY upgrade.fleet.rolling_upgrade ARGS…`.
    fn rollout(&self, inventory: &Path, args: &[&str]) -> Run {
        let out = self
            .ansible("ansible-playbook")
            .arg("-i")
            .arg(inventory)
            .arg("upgrade.fleet.rolling_upgrade")
            .args(args)
            .output()
            .unwrap();
        Run::from(out)
    }

    /// The module alone on one host (`ansible HOST -m upgrade.fleet.upgrade -a ARGS`), and the
    /// JSON it returned.
    fn module(
        &self,
        inventory: &Path,
        host: &str,
        args: &str,
        flags: &[&str],
    ) -> (Run, serde_json::Value) {
        let out = self
            .ansible("ansible")
            .arg("-i")
            .arg(inventory)
            .arg(host)
            .args(["-m", "upgrade.fleet.upgrade", "-a"])
            .arg(format!(
                "root={{{{ upgrade_root }}}} binary={{{{ upgrade_binary }}}} {args}"
            ))
            .args(flags)
            .output()
            .unwrap();
        let run = Run::from(out);
        // NB: the default callback prints `HOST | CHANGED => {…}`
        let json = run
            .stdout
            .split_once(" => ")
            .and_then(|(_, doc)| serde_json::from_str(doc).ok())
            .unwrap_or_else(|| panic!("no result in the output:\n{}\n{}", run.stdout, run.stderr));
        (run, json)
    }
}

/// An ansible command on the collections, home and temporary directories of `dir`, with no
/// terminal.
pub fn ansible_env<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    cmd.current_dir(dir)
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_COLLECTIONS_PATH", dir.join("collections"))
        .env("ANSIBLE_HOME", dir.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .stdin(std::process::Stdio::null())
}

/// `PLAY RECAP` counters of a host: (ok, changed, failed).
pub fn recap(run: &Run, host: &str) -> (u32, u32, u32) {
    let line = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no recap of {host}:\n{}", run.stdout));
    let count = |key: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    (count("ok"), count("changed"), count("failed"))
}

/// Whether this build of real-upgrade has `migrations finalize` (the contract migrations).
fn has_finalize() -> bool {
    Command::new(REAL_UPGRADE)
        .args(["migrations", "finalize", "--help"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn check_mode_changes_nothing_and_shows_the_versions() {
    let fleet = Fleet::new(&[("m1", "upgrade_migration"), ("a1", "upgrade_application")]);
    let inventory = fleet.inventory("");
    let before: Vec<State> = ["m1", "a1"].iter().map(|h| fleet.state(h)).collect();
    assert_eq!(before[0].installed.as_deref(), Some(RELEASES[0]));

    // the module alone: plan, as a diff of the installed version
    let (run, doc) = fleet.module(&inventory, "a1", "state=latest", &["--check", "--diff"]);
    run.assert_code(0);
    assert_eq!(doc["changed"], true, "{doc:#}");
    assert_eq!(
        (
            doc["before_version"].as_str(),
            doc["after_version"].as_str()
        ),
        (Some(RELEASES[0]), Some(RELEASES[1]))
    );
    // NB: the callback prints the diff before the result, and leaves it out of it
    assert!(
        run.stdout.contains("-version: 1.0.0\n+version: 2.0.0"),
        "{}",
        run.stdout
    );
    assert_eq!(doc["result"]["action"], "upgrade");
    assert!(
        doc["cmd"].as_array().unwrap().iter().any(|a| a == "plan"),
        "check mode runs `plan`: {doc:#}"
    );

    // the whole rollout in check mode: every host shows its diff, none changes
    let rollout = fleet.rollout(&inventory, &["--check", "--diff"]);
    rollout.assert_code(0);
    for host in ["m1", "a1"] {
        assert_eq!(recap(&rollout, host).2, 0, "{}", rollout.stdout);
    }
    assert_eq!(
        rollout
            .stdout
            .matches("-version: 1.0.0\n+version: 2.0.0")
            .count(),
        2,
        "one diff per host:\n{}",
        rollout.stdout
    );
    let after: Vec<State> = ["m1", "a1"].iter().map(|h| fleet.state(h)).collect();
    assert_eq!(after, before);
    assert_eq!(fleet.log(), Vec::<String>::new(), "no hook ran");

    // an up-to-date host has nothing to show
    fleet.host("a1").run(&["--yes"]).assert_code(0);
    let (run, doc) = fleet.module(&inventory, "a1", "", &["--check", "--diff"]);
    run.assert_code(0);
    assert_eq!(doc["changed"], false, "{doc:#}");
    assert!(doc.get("diff").is_none(), "{doc:#}");
}

#[test]
fn rolling_upgrade_takes_every_root_to_the_new_release_batch_by_batch() {
    let fleet = Fleet::new(&[
        ("m1", "upgrade_migration"),
        ("a1", "upgrade_application"),
        ("a2", "upgrade_application"),
        ("a3", "upgrade_application"),
    ]);
    let log = fleet.log_path();
    let inventory = fleet.inventory(&format!(
        "[upgrade_application:vars]\n\
         upgrade_drain_command=\"echo {{{{ inventory_hostname }}}} drain >> {log}\"\n\
         upgrade_undrain_command=\"echo {{{{ inventory_hostname }}}} undrain >> {log}\"\n",
        log = log.display()
    ));
    let finalize = has_finalize();
    // batches of the application nodes: a1, then a2 and a3 together (NB: play keywords such as
    // `serial` see extra variables, not the inventory's)
    let mut extra = vec!["-e", "upgrade_serial=[1,2]"];
    if !finalize {
        // NB: a build without `migrations finalize` runs everything else
        extra.extend(["-e", "upgrade_finalize=false"]);
    }
    let rollout = fleet.rollout(&inventory, &extra);
    rollout.assert_code(0);

    let hop = format!("{}>{}", RELEASES[0], RELEASES[1]);
    let upgraded = |h: &str| {
        vec![
            format!("{h} upgrade pre {hop}"),
            format!("{h} upgrade post {hop}"),
        ]
    };
    let drained = |h: &str| {
        [
            vec![format!("{h} drain")],
            upgraded(h),
            vec![format!("{h} undrain")],
        ]
        .concat()
    };
    // the migration node first, not drained; then the first batch, drained around its upgrade
    let lines = fleet.log();
    assert_eq!(lines[..6], [upgraded("m1"), drained("a1")].concat());
    // then the second batch: both drained before either upgrades, each in its own order
    let second = &lines[6..];
    let mut drains = second[..2].to_vec();
    drains.sort();
    assert_eq!(drains, ["a2 drain", "a3 drain"], "{lines:#?}");
    for host in ["a2", "a3"] {
        let own: Vec<String> = second
            .iter()
            .filter(|l| l.starts_with(&format!("{host} ")))
            .cloned()
            .collect();
        assert_eq!(own, drained(host), "{lines:#?}");
    }
    assert_eq!(second.len(), 8, "{lines:#?}");

    let mut started = Vec::new();
    for host in ["m1", "a1", "a2", "a3"] {
        let sb = fleet.host(host);
        assert_eq!(sb.installed().as_deref(), Some(RELEASES[1]), "{host}");
        assert_eq!(
            sb.rpm_qa(),
            ["demo-server-2.0.0-1.x86_64", "demo-web-2.0.0-1.x86_64"],
            "{host}"
        );
        let runs = fleet.history(host);
        let last = runs.last().unwrap();
        assert_eq!(
            (&last["action"], &last["status"], &last["from"], &last["to"]),
            (
                &"upgrade".into(),
                &"succeeded".into(),
                &RELEASES[0].into(),
                &RELEASES[1].into()
            ),
            "{host}: {last:#}"
        );
        started.push(last["started_at"].as_str().unwrap().to_string());
    }
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(started, sorted, "runs started m1, a1, then a2 and a3");
    if finalize {
        assert!(
            rollout
                .stdout
                .contains("TASK [Apply the contract migrations]"),
            "{}",
            rollout.stdout
        );
    }

    // a second rollout finds every node up to date: nothing drained, nothing changed
    let again = fleet.rollout(&inventory, &extra);
    again.assert_code(0);
    for host in ["a1", "a2", "a3"] {
        assert_eq!(recap(&again, host).1, 0, "{host}: {}", again.stdout);
    }
    assert_eq!(fleet.log(), lines, "no more hooks or drains");
}

/// Three application nodes in batches of one; `fail` makes the second one fail its upgrade.
/// Checks that the first batch is upgraded; that the second was drained, upgraded, rolled back
/// (hooks see the rollback go from `rollback_from`) and undrained, and is back on 1.0.0 exactly
/// as before; that the third is untouched and the rollout failed. Returns the rollout and the
/// second node's runs as `action status`.
fn failing_second_batch(fail: impl Fn(&Sandbox), rollback_from: &str) -> (Run, Vec<String>) {
    let fleet = Fleet::new(&[
        ("a1", "upgrade_application"),
        ("a2", "upgrade_application"),
        ("a3", "upgrade_application"),
    ]);
    let log = fleet.log_path();
    let inventory = fleet.inventory(&format!(
        "upgrade_drain_command=\"echo {{{{ inventory_hostname }}}} drain >> {log}\"\n\
         upgrade_undrain_command=\"echo {{{{ inventory_hostname }}}} undrain >> {log}\"\n",
        log = log.display()
    ));
    fail(fleet.host("a2"));
    let a2 = fleet.state("a2");
    let a3 = fleet.state("a3");
    let rollout = fleet.rollout(&inventory, &["-e", "upgrade_serial=1"]);
    assert_ne!(rollout.code, 0, "{}", rollout.stdout);
    assert_eq!(recap(&rollout, "a2").2, 1, "{}", rollout.stdout);

    let hop = format!("{}>{}", RELEASES[0], RELEASES[1]);
    let back = format!("{rollback_from}>{}", RELEASES[0]);
    assert_eq!(
        fleet.log(),
        [
            "a1 drain".to_string(),
            format!("a1 upgrade pre {hop}"),
            format!("a1 upgrade post {hop}"),
            "a1 undrain".into(),
            "a2 drain".into(),
            format!("a2 upgrade pre {hop}"),
            format!("a2 upgrade post {hop}"),
            format!("a2 rollback pre {back}"),
            format!("a2 rollback post {back}"),
            // back on the release it ran before, in service again
            "a2 undrain".into(),
        ]
    );
    assert_eq!(fleet.host("a1").installed().as_deref(), Some(RELEASES[1]));
    let a2_after = fleet.state("a2");
    assert_eq!(
        (&a2_after.packages, &a2_after.installed),
        (&a2.packages, &a2.installed),
        "a2 is back on 1.0.0"
    );
    assert_eq!(fleet.state("a3"), a3, "a3 is untouched");
    // its preflight check only
    assert_eq!(recap(&rollout, "a3"), (1, 0, 0), "{}", rollout.stdout);
    let runs = fleet
        .history("a2")
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap(),
                r["status"].as_str().unwrap()
            )
        })
        .collect();
    (rollout, runs)
}

#[test]
fn a_failing_health_check_in_the_second_batch_stops_the_rollout() {
    // the admin's health check fails on 2.0.0: real-upgrade rolls a2 back by itself (exit 6)
    let (rollout, runs) = failing_second_batch(
        |sb| {
            let dir = sb.root.join("etc/upgrade/health.d");
            std::fs::create_dir_all(&dir).unwrap();
            let check = dir.join("50-version");
            std::fs::write(
                &check,
                "#!/bin/sh\ngrep -q 2.0.0 \"$UPGRADE_ROOT/usr/lib/demo-server/version\" && { echo broken; exit 1; }\nexit 0\n",
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
        },
        RELEASES[1],
    );
    // real-upgrade's own rollback, exit 6; the play ran none of its own
    assert_eq!(
        runs,
        [
            "upgrade succeeded",
            "upgrade rolled-back",
            "rollback succeeded"
        ]
    );
    assert!(
        rollout.stdout.contains("real-upgrade exited 6")
            && rollout
                .stdout
                .contains("real-upgrade rolled the node back itself"),
        "{}",
        rollout.stdout
    );
}

#[test]
fn a_failed_step_in_the_second_batch_is_rolled_back_by_the_play() {
    // a post-upgrade hook fails on 2.0.0: the run stops open (exit 1) with 2.0.0's packages in
    // place, and the play rolls a2 back. NB: the open run never recorded 2.0.0, so the rollback
    // goes from the recorded 1.0.0, putting back the packages of the run's restore point
    let (rollout, runs) = failing_second_batch(
        |sb| {
            sb.hook(
                "post",
                true,
                "60-broken",
                "[ \"$UPGRADE_ACTION\" = upgrade ] || exit 0\necho cannot migrate the spool; exit 1",
            );
        },
        RELEASES[0],
    );
    assert_eq!(
        runs,
        [
            "upgrade succeeded",
            "upgrade rolled-back",
            "rollback succeeded"
        ]
    );
    assert!(
        rollout.stdout.contains("real-upgrade exited 1")
            && rollout.stdout.contains("rolled back to 1.0.0"),
        "{}",
        rollout.stdout
    );
}

#[test]
fn an_inhibitor_on_one_host_stops_the_rollout_before_any_host_changes() {
    let fleet = Fleet::new(&[
        ("m1", "upgrade_migration"),
        ("a1", "upgrade_application"),
        ("a2", "upgrade_application"),
    ]);
    let inventory = fleet.inventory("");
    fleet
        .host("a2")
        .check_script("spool-empty", "echo 3 calls in the spool; exit 2");
    let before: Vec<State> = ["m1", "a1", "a2"].iter().map(|h| fleet.state(h)).collect();

    // the module alone fails with real-upgrade's exit code and its check document
    let (run, doc) = fleet.module(&inventory, "a2", "action=check", &[]);
    assert!(
        run.code != 0 && run.stdout.contains("a2 | FAILED!"),
        "{}",
        run.stdout
    );
    assert_eq!(
        (&doc["rc"], &doc["inhibitors"]),
        (&3.into(), &serde_json::json!(["custom:spool-empty"])),
        "{doc:#}"
    );
    assert_eq!(doc["result"]["inhibited"], true, "{doc:#}");
    assert!(
        doc["msg"]
            .as_str()
            .unwrap()
            .contains("real-upgrade exited 3"),
        "{doc:#}"
    );

    let rollout = fleet.rollout(&inventory, &[]);
    assert_ne!(rollout.code, 0, "{}", rollout.stdout);
    assert!(
        rollout.stdout.contains("fatal: [a2]")
            && rollout
                .stdout
                .contains("inhibit the upgrade: custom:spool-empty"),
        "{}",
        rollout.stdout
    );
    assert!(
        !rollout.stdout.contains("PLAY [Upgrade the migration node"),
        "any_errors_fatal ends the run after the preflight:\n{}",
        rollout.stdout
    );
    let after: Vec<State> = ["m1", "a1", "a2"].iter().map(|h| fleet.state(h)).collect();
    assert_eq!(after, before);
    assert_eq!(fleet.log(), Vec::<String>::new(), "no hook ran");
}
