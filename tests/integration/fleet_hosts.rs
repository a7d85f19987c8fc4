//! A fleet on real hosts (issue 17): a migration node and three application nodes, containers
//! with systemd as PID 1 (`lab.rs`), sharing one PostgreSQL server in the lab namespace, rolled
//! forward by the collection's `upgrade.fleet.rolling_upgrade` on the real `ansible-core`, over
//! ssh, from inside the lab namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ansible::{ansible_env, recap, venv};
use super::lab::{HOSTS_SH, Lab};
use super::support::*;

/// The migration node, then the application nodes.
const MIGRATION: u32 = 2;
const APPS: [u32; 3] = [3, 4, 5];
const DB: &str = "postgres://postgres@10.231.0.1/fleet";

/// A package of the product at `version`: the unit `demo-api`, HTTP on 8080 serving the version.
fn server(version: &str) -> RpmSpec {
    RpmSpec::new("demo-server", version)
        .file(
            "/usr/lib/systemd/system/demo-api.service",
            format!(
                "[Unit]\nDescription=demo-api {version}\n\n[Service]\nType=simple\n\
                 ExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /usr/lib/demo-server\n"
            ),
            0o644,
        )
        .file("/usr/lib/demo-server/version", format!("{version}\n"), 0o644)
}

const SERVICE_ORDER: &str = r#"[service.demo-api]
packages = ["demo-server"]
ready = { tcp = "127.0.0.1:8080", timeout = "20s" }
"#;

/// The migrations every node ships (the vendor's, identical everywhere): 2.0.0 expands the
/// schema, its `post/` contracts it once every node runs 2.0.0; 3.0.0 adds an index.
const MIGRATIONS: [(&str, &str, &str); 4] = [
    (
        "1.0.0",
        "001-create-items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n",
    ),
    (
        "2.0.0",
        "001-add-label.sql",
        "ALTER TABLE items ADD COLUMN label TEXT;\nUPDATE items SET label = name;\n",
    ),
    (
        "2.0.0/post",
        "001-drop-name.sql",
        "ALTER TABLE items DROP COLUMN name;\n",
    ),
    (
        "3.0.0",
        "001-index-label.sql",
        "CREATE INDEX items_label ON items (label);\n",
    ),
];

struct Fleet {
    dir: tempfile::TempDir,
    /// Its repository, bind-mounted into every host.
    _sb: Sandbox,
    lab: Lab,
    roots: Vec<(u32, PathBuf)>,
}

impl Fleet {
    /// The lab, its database, four hosts configured for it, the collection installed; `None`
    /// where containers cannot run (said loudly).
    fn new() -> Option<Fleet> {
        let sb = Sandbox::new();
        sb.publish(vec![
            rel("1.0.0", vec![server("1.0.0")]),
            stop("2.0.0", vec![server("2.0.0")]),
            rel("3.0.0", vec![server("3.0.0")]),
        ]);
        let mut lab = Lab::new()?;
        let key = lab.key();
        lab.postgres();
        let created = lab.in_lab(&[
            "psql",
            "-h",
            "10.231.0.1",
            "-U",
            "postgres",
            "-qc",
            "CREATE DATABASE fleet",
        ]);
        assert!(created.status.success(), "{created:?}");
        let mut roots = Vec::new();
        for n in std::iter::once(MIGRATION).chain(APPS) {
            let root = lab.up(n, &[(&sb.repo, "/srv/repo")]);
            let etc = root.join("etc/upgrade");
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(
                etc.join("upgrade.toml"),
                format!(
                    "product = \"demo\"\n\n[database]\nurl = \"{DB}\"\nmigrate = {}\nnode = \"h{n}\"\n\
                     lock_timeout = \"2m\"\n\n[services]\nbackend = \"systemd\"\n\n\
                     [health]\ntimeout = \"4s\"\ninterval = \"500ms\"\n\n\
                     [[health.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:8080/version\"\n\n\
                     [repository]\nurl = \"/srv/repo\"\n",
                    n == MIGRATION
                ),
            )
            .unwrap();
            std::fs::write(etc.join("service-order.toml"), SERVICE_ORDER).unwrap();
            for (version, file, sql) in MIGRATIONS {
                let dir = root.join("usr/share/upgrade/migrations").join(version);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(file), sql).unwrap();
            }
            roots.push((n, root));
        }
        let dir = tempfile::Builder::new()
            .prefix("upgrade-fleet-")
            .tempdir()
            .unwrap();
        let fleet = Fleet {
            dir,
            _sb: sb,
            lab,
            roots,
        };
        fleet.install_collection();
        fleet.inventory(&key);
        Some(fleet)
    }

    /// An ansible program of the venv, run inside the lab namespace (it talks to the hosts).
    fn ansible(&self, program: &str) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(HOSTS_SH);
        cmd.args(["in", &self.lab.id])
            .arg(venv().join("bin").join(program));
        ansible_env(&mut cmd, dir)
            .env("ANSIBLE_HOST_KEY_CHECKING", "0")
            // NB: ssh's shared connections are per address; the default directory
            // (~/.ansible/cp) would let a lab reach the same address in another lab
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"));
        cmd
    }

    fn install_collection(&self) {
        std::fs::write(
            self.dir.path().join("ansible.cfg"),
            "[defaults]\nforks = 8\n[ssh_connection]\npipelining = true\n",
        )
        .unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible");
        let run = Run::from(
            self.ansible("ansible-galaxy")
                .args(["collection", "install", "--force", "-p"])
                .arg(self.dir.path().join("collections"))
                .arg(&source)
                .output()
                .unwrap(),
        );
        run.assert_code(0);
    }

    /// The inventory: the migration node, the application nodes, over ssh with the lab's key.
    fn inventory(&self, key: &Path) {
        let host = |n: u32| format!("h{n} ansible_host=10.231.0.{n}\n");
        let mut text = format!(
            "[upgrade_migration]\n{}\n[upgrade_application]\n",
            host(MIGRATION)
        );
        for n in APPS {
            text += &host(n);
        }
        text += &format!(
            "\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file={}\n\
             ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n\
             ansible_python_interpreter=/usr/bin/python3\nupgrade_serial=1\n",
            key.display()
        );
        std::fs::write(self.dir.path().join("inventory.ini"), text).unwrap();
    }

    /// `ansible-playbook -i INVENTORY upgrade.fleet.rolling_upgrade ARGS…`.
    fn rollout(&self, args: &[&str]) -> Run {
        Run::from(
            self.ansible("ansible-playbook")
                .arg("-i")
                .arg(self.dir.path().join("inventory.ini"))
                .arg("upgrade.fleet.rolling_upgrade")
                .args(args)
                .output()
                .unwrap(),
        )
    }

    /// Installs 1.0.0 on every host by the playbook, then gives host `n` the executable `path`
    /// (under its root) running `body`.
    fn install_then_add_script(&self, n: u32, path: &str, body: &str) {
        self.rollout(&["-e", "upgrade_version=1.0.0"])
            .assert_code(0);
        let path = self.root(n).join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn root(&self, n: u32) -> &Path {
        &self.roots.iter().find(|(m, _)| *m == n).unwrap().1
    }

    /// `real-upgrade ARGS…` in host `n`.
    fn upgrade(&self, n: u32, args: &[&str]) -> Run {
        let mut all = vec!["real-upgrade"];
        all.extend_from_slice(args);
        Run::from(self.lab.exec(n, &all))
    }

    fn installed(&self, n: u32) -> Option<String> {
        let run = self.upgrade(n, &["status", "--json"]);
        run.assert_code(0);
        run.json()["installed"].as_str().map(str::to_string)
    }

    /// What host `n`'s demo-api answers.
    fn serves(&self, n: u32) -> String {
        self.lab
            .sh(
                n,
                "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/version', timeout=5).read().decode().strip())\"",
            )
            .trim()
            .to_string()
    }

    /// Host `n`'s runs, oldest first.
    fn history(&self, n: u32) -> Vec<serde_json::Value> {
        let run = self.upgrade(n, &["history", "--json"]);
        run.assert_code(0);
        let mut runs = run.json().as_array().unwrap().clone();
        runs.sort_by_key(|r| r["id"].as_i64());
        runs
    }

    /// `SQL` on the shared database, from inside the lab.
    fn sql(&self, sql: &str) -> String {
        let out = self.lab.in_lab(&[
            "psql",
            "-h",
            "10.231.0.1",
            "-U",
            "postgres",
            "-d",
            "fleet",
            "-AtF",
            " ",
            "-c",
            sql,
        ]);
        assert!(out.status.success(), "{sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// When host `n`'s demo-api last started (the journal's microseconds).
fn api_started(fleet: &Fleet, n: u32) -> u64 {
    let out = fleet.lab.sh(
        n,
        "journalctl -o json --no-pager _PID=1 UNIT=demo-api.service | grep '\"MESSAGE\":\"Started ' | tail -n 1",
    );
    let entry: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("no start of demo-api in host {n}'s journal ({e}): {out}"));
    entry["__REALTIME_TIMESTAMP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_rolling_upgrade_across_a_required_stop_applies_each_migration_once_batch_by_batch() {
    let Some(fleet) = Fleet::new() else {
        return;
    };
    // the fleet's first installation, by the same playbook
    fleet
        .rollout(&["-e", "upgrade_version=1.0.0"])
        .assert_code(0);
    for n in std::iter::once(MIGRATION).chain(APPS) {
        assert_eq!(fleet.installed(n).as_deref(), Some("1.0.0"), "h{n}");
        assert_eq!(fleet.serves(n), "1.0.0", "h{n}");
    }
    fleet.sql("INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')");

    // check mode: the plan of every host, nothing changed
    let before: Vec<_> = APPS.iter().map(|&n| fleet.history(n).len()).collect();
    let run = fleet.rollout(&["--check", "--diff"]);
    run.assert_code(0);
    assert!(run.stdout.contains("3.0.0"), "{}", run.stdout);
    let after: Vec<_> = APPS.iter().map(|&n| fleet.history(n).len()).collect();
    assert_eq!(before, after, "check mode ran something");
    assert_eq!(fleet.installed(3).as_deref(), Some("1.0.0"));

    // the rollout: the migration node, then each application node alone (upgrade_serial=1)
    let run = fleet.rollout(&[]);
    run.assert_code(0);
    for n in std::iter::once(MIGRATION).chain(APPS) {
        assert_eq!(fleet.installed(n).as_deref(), Some("3.0.0"), "h{n}");
        assert_eq!(fleet.serves(n), "3.0.0", "h{n}");
        assert_eq!(
            recap(&run, &format!("h{n}")).2,
            0,
            "h{n} failed:\n{}",
            run.stdout
        );
    }
    let started: Vec<u64> = [MIGRATION, 3, 4, 5]
        .iter()
        .map(|&n| api_started(&fleet, n))
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] < w[1]),
        "not one batch after the other: {started:?}"
    );
    // every migration once, by the migration node; the contract migration by `finalize`
    assert_eq!(
        fleet.sql("SELECT version || '/' || name, node FROM upgrade_migrations ORDER BY 1"),
        "1.0.0/001-create-items.sql h2\n2.0.0/001-add-label.sql h2\n\
         2.0.0/post/001-drop-name.sql h2\n3.0.0/001-index-label.sql h2\n"
    );
    assert_eq!(
        fleet.sql("SELECT id, label FROM items ORDER BY id"),
        "1 one\n2 two\n"
    );
    assert_eq!(
        fleet.sql("SELECT node, version FROM upgrade_nodes ORDER BY node"),
        "h2 3.0.0\nh3 3.0.0\nh4 3.0.0\nh5 3.0.0\n"
    );
    // a second rollout changes nothing
    let again = fleet.rollout(&[]);
    again.assert_code(0);
    for n in std::iter::once(MIGRATION).chain(APPS) {
        assert_eq!(
            recap(&again, &format!("h{n}")).1,
            0,
            "h{n} changed:\n{}",
            again.stdout
        );
    }
}

#[test]
fn a_health_failure_in_the_second_batch_stops_the_rollout_and_rolls_that_batch_back() {
    let Some(fleet) = Fleet::new() else {
        return;
    };
    // h4, the second batch, fails its health check on any release but 1.0.0
    fleet.install_then_add_script(
        4,
        "etc/upgrade/health.d/50-h4",
        "[ \"$(cat /usr/lib/demo-server/version)\" = 1.0.0 ] || { echo h4 is sick; exit 1; }",
    );
    let h5_runs = fleet.history(5).len();

    let run = fleet.rollout(&["-e", "upgrade_version=2.0.0"]);
    assert_ne!(run.code, 0, "the rollout went on:\n{}", run.stdout);
    // the first batch stays upgraded and healthy
    assert_eq!(fleet.installed(3).as_deref(), Some("2.0.0"));
    fleet.upgrade(3, &["health"]).assert_code(0);
    // the failed batch is back on 1.0.0, serving it, its run rolled back
    assert_eq!(fleet.installed(4).as_deref(), Some("1.0.0"));
    assert_eq!(fleet.serves(4), "1.0.0");
    let runs = fleet.history(4);
    let last = runs.last().unwrap();
    assert!(
        last["rolls_back"].is_i64() && last["automatic"] == true,
        "{last}"
    );
    // the third batch untouched
    assert_eq!(fleet.installed(5).as_deref(), Some("1.0.0"));
    assert_eq!(fleet.history(5).len(), h5_runs);
    // an application node's rollback left the shared database alone: 2.0.0's schema stays
    assert_eq!(
        fleet.sql("SELECT count(*) FROM upgrade_migrations WHERE version = '2.0.0'"),
        "1\n"
    );
}

#[test]
fn a_node_killed_in_the_middle_of_its_upgrade_resumes_on_the_next_play() {
    let Some(fleet) = Fleet::new() else {
        return;
    };
    // h3 hangs in a pre-upgrade hook until it is killed (once)
    fleet.install_then_add_script(
        3,
        "etc/upgrade/pre-upgrade.d/50-hang",
        "[ -e /var/lib/hung ] && exit 0\ntouch /var/lib/hung\nsleep 600",
    );
    let mut play = fleet
        .ansible("ansible-playbook")
        .arg("-i")
        .arg(fleet.dir.path().join("inventory.ini"))
        .arg("upgrade.fleet.rolling_upgrade")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hung = fleet.root(3).join("var/lib/hung");
    assert!(
        wait_until(std::time::Duration::from_secs(120), || hung.exists()),
        "h3 never reached its hook"
    );
    fleet.lab.sh(3, "pkill -KILL -x real-upgrade");
    let status = play.wait().unwrap();
    assert!(!status.success(), "the play went on past a killed node");
    let open = fleet.upgrade(3, &["status", "--json"]);
    assert!(!open.json()["open_run"].is_null(), "{}", open.stdout);
    // the next play resumes h3's run, then goes on
    let run = fleet.rollout(&[]);
    run.assert_code(0);
    for n in std::iter::once(MIGRATION).chain(APPS) {
        assert_eq!(fleet.installed(n).as_deref(), Some("3.0.0"), "h{n}");
        assert_eq!(fleet.serves(n), "3.0.0", "h{n}");
    }
    assert_eq!(
        fleet.sql("SELECT count(*), count(DISTINCT (version, name)) FROM upgrade_migrations"),
        "4 4\n"
    );
}

/// The rollout's time against the same upgrades run by hand, one host after another
/// (`bench/fleet`; not a test: `cargo test -- --ignored fleet_rollout_benchmark`). Each round
/// takes the fleet from 1.0.0 to 2.0.0 both ways, in turns, and back by `rollback` (not timed).
/// Writes the times, in milliseconds, as JSON to `$FLEET_BENCH_OUT`.
#[test]
#[ignore = "a benchmark: bench/fleet runs it"]
fn fleet_rollout_benchmark() {
    let rounds: usize = std::env::var("FLEET_BENCH_RUNS").map_or(3, |r| r.parse().unwrap());
    let out = std::env::var("FLEET_BENCH_OUT").expect("FLEET_BENCH_OUT: where the times go");
    let Some(fleet) = Fleet::new() else {
        panic!("the fleet benchmark needs the test hosts");
    };
    fleet
        .rollout(&["-e", "upgrade_version=1.0.0"])
        .assert_code(0);
    let all: Vec<u32> = std::iter::once(MIGRATION).chain(APPS).collect();
    let key = fleet.lab.key();
    let by_hand = |n: u32| {
        let target = format!("root@10.231.0.{n}");
        let out = fleet.lab.in_lab(&[
            "ssh",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            &target,
            "real-upgrade --yes --to 2.0.0",
        ]);
        assert!(out.status.success(), "h{n}: {out:?}");
    };
    let back = || {
        // the application nodes first: the migration node's rollback restores the database
        for &n in all.iter().rev() {
            fleet.upgrade(n, &["rollback", "--yes"]).assert_code(0);
        }
    };
    let (mut playbook, mut manual) = (Vec::new(), Vec::new());
    for round in 0..rounds * 2 {
        let started = std::time::Instant::now();
        let ours = (round % 4 == 0) || (round % 4 == 3);
        if ours {
            fleet
                .rollout(&["-e", "upgrade_version=2.0.0", "-e", "upgrade_serial=3"])
                .assert_code(0);
            playbook.push(started.elapsed().as_millis());
        } else {
            for &n in &all {
                by_hand(n);
            }
            manual.push(started.elapsed().as_millis());
        }
        for &n in &all {
            assert_eq!(fleet.installed(n).as_deref(), Some("2.0.0"), "h{n}");
        }
        back();
    }
    let doc = serde_json::json!({ "playbook_ms": playbook, "by_hand_ms": manual });
    std::fs::write(out, doc.to_string()).unwrap();
}
