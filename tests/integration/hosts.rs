//! The systemd backend on real hosts: Debian roots with systemd as PID 1 (`lab.rs`), the
//! product's services as real unit files shipped in its packages, installed with the real `rpm`.

use std::collections::HashMap;

use super::lab::{Lab, now_us, pid1_journal};
use super::support::*;

/// A unit file of the demo product at `version`.
fn unit(name: &str, version: &str, body: &str) -> (String, String) {
    (
        format!("/usr/lib/systemd/system/{name}.service"),
        format!("[Unit]\nDescription={name} {version}\n\n[Service]\n{body}\n"),
    )
}

/// `Type=notify`: ready once it says so (after 300 ms).
const NOTIFY: &str = "import os, socket, time
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = os.environ['NOTIFY_SOCKET']
s.connect('\\0' + a[1:] if a.startswith('@') else a)
s.send(b'READY=1')
time.sleep(1e6)
";

/// The product's packages at `version`: `demo-db` (`Type=notify`), `demo-server` with
/// `demo-api` (`Type=simple`, HTTP on 8080 serving its version, ready when it accepts a TCP
/// connection), and from 2.0.0 on `demo-web` (HTTP on 8081). api and web both start after db,
/// each 500 ms into its start, so their starts overlap.
fn packages(version: &str) -> Vec<RpmSpec> {
    let db = unit(
        "demo-db",
        version,
        "Type=notify\nExecStart=/usr/bin/python3 /usr/lib/demo-db/notify.py",
    );
    let api = unit(
        "demo-api",
        version,
        "Type=simple\nExecStartPre=/bin/sleep 0.5\nExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /usr/lib/demo-server",
    );
    let web = unit(
        "demo-web",
        version,
        "Type=simple\nExecStartPre=/bin/sleep 0.5\nExecStart=/usr/bin/python3 -m http.server 8081 --bind 127.0.0.1 --directory /usr/lib/demo-web",
    );
    let mut list = vec![
        RpmSpec::new("demo-db", version)
            .file(&db.0, db.1, 0o644)
            .file("/usr/lib/demo-db/notify.py", NOTIFY, 0o644),
        RpmSpec::new("demo-server", version)
            .file(&api.0, api.1, 0o644)
            .file(
                "/usr/lib/demo-server/version",
                format!("{version}\n"),
                0o644,
            ),
    ];
    if version != "1.0.0" {
        list.push(
            RpmSpec::new("demo-web", version)
                .file(&web.0, web.1, 0o644)
                .file("/usr/lib/demo-web/version", format!("{version}\n"), 0o644),
        );
    }
    list
}

const SERVICE_ORDER: &str = r#"[service.demo-db]
packages = ["demo-db"]
[service.demo-api]
after = ["demo-db"]
packages = ["demo-server"]
ready = { tcp = "127.0.0.1:8080", timeout = "20s" }
"#;

/// demo-web, the service 2.0.0 adds.
const WEB: &str = r#"[service.demo-web]
after = ["demo-db"]
packages = ["demo-web"]
ready = { tcp = "127.0.0.1:8081", timeout = "20s" }
"#;

/// A lab with host 1 booted, the sandbox's repository in it at `/srv/repo`, configured for the
/// systemd backend with `extra` configuration.
fn host(sb: &Sandbox, extra: &str) -> Option<(Lab, std::path::PathBuf)> {
    let mut lab = Lab::new()?;
    let root = lab.up(1, &[(&sb.repo, "/srv/repo")]);
    let etc = root.join("etc/upgrade");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("upgrade.toml"),
        format!(
            "product = \"demo\"\n{extra}\n[services]\nbackend = \"systemd\"\n[repository]\nurl = \"/srv/repo\"\n"
        ),
    )
    .unwrap();
    std::fs::write(etc.join("service-order.toml"), SERVICE_ORDER).unwrap();
    Some((lab, root))
}

/// What systemd did to our units, from its journal: `(unit, verb, microseconds)` with verb one
/// of Starting, Started, Stopping, Stopped.
fn unit_events(lab: &Lab, since: u64) -> Vec<(String, String, u64)> {
    pid1_journal(lab, 1, since)
        .iter()
        .filter_map(|e| {
            let unit = e["UNIT"].as_str()?.trim_end_matches(".service");
            if !unit.starts_with("demo-") {
                return None;
            }
            let message = e["MESSAGE"].as_str()?;
            let verb = message.split_whitespace().next()?;
            let verb = ["Starting", "Started", "Stopping", "Stopped", "Failed"]
                .into_iter()
                .find(|v| *v == verb)?;
            let at = e["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?;
            Some((unit.to_string(), verb.to_string(), at))
        })
        .collect()
}

/// When each `unit verb` first happened.
fn first(events: &[(String, String, u64)]) -> HashMap<String, u64> {
    let mut at = HashMap::new();
    for (unit, verb, t) in events {
        at.entry(format!("{unit} {verb}")).or_insert(*t);
    }
    at
}

fn http(lab: &Lab, port: u16) -> String {
    lab.sh(
        1,
        &format!(
            "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/version', timeout=5).read().decode().strip())\""
        ),
    )
    .trim()
    .to_string()
}

fn active(lab: &Lab, unit: &str) -> String {
    let out = lab.exec(1, &["systemctl", "is-active", unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn upgrade(lab: &Lab, args: &[&str]) -> Run {
    let mut all = vec!["real-upgrade"];
    all.extend_from_slice(args);
    Run::from(lab.exec(1, &all))
}

#[test]
fn the_systemd_backend_upgrades_and_rolls_back_real_units_in_dependency_order() {
    let sb = Sandbox::new();
    sb.publish(vec![
        rel("1.0.0", packages("1.0.0")),
        rel("2.0.0", packages("2.0.0")),
    ]);
    let Some((lab, root)) = host(&sb, "") else {
        return;
    };

    // a fresh install starts the units its packages brought (systemd reloaded first)
    upgrade(&lab, &["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(active(&lab, "demo-db"), "active");
    assert_eq!(active(&lab, "demo-api"), "active");
    assert_eq!(http(&lab, 8080), "1.0.0");
    // the administrator declares the service 2.0.0 brings
    std::fs::write(
        root.join("etc/upgrade/service-order.toml"),
        format!("{SERVICE_ORDER}{WEB}"),
    )
    .unwrap();

    // the upgrade: api stopped before db, db started (notified ready) before api and web, and
    // api and web started together; demo-web's unit did not exist before (`stop` finds nothing)
    let since = now_us(&lab, 1);
    upgrade(&lab, &["--yes"]).assert_code(0);
    let events = unit_events(&lab, since);
    let at = first(&events);
    let t = |what: &str| {
        *at.get(what)
            .unwrap_or_else(|| panic!("no `{what}` in the journal: {events:?}"))
    };
    assert!(t("demo-api Stopped") <= t("demo-db Stopping"), "{events:?}");
    assert!(t("demo-db Stopped") <= t("demo-db Starting"), "{events:?}");
    assert!(t("demo-db Started") <= t("demo-api Starting"), "{events:?}");
    assert!(t("demo-db Started") <= t("demo-web Starting"), "{events:?}");
    // NB: both take 500 ms to start: each starts before the other is up
    assert!(t("demo-api Starting") < t("demo-web Started"), "{events:?}");
    assert!(t("demo-web Starting") < t("demo-api Started"), "{events:?}");
    assert!(!events.iter().any(|(_, v, _)| v == "Failed"), "{events:?}");
    // systemd runs the new unit files: reloaded after the packages changed them
    for unit in ["demo-db", "demo-api", "demo-web"] {
        assert_eq!(active(&lab, unit), "active", "{unit}");
        let shown = lab.sh(
            1,
            &format!("systemctl show -p Description -p NeedDaemonReload {unit}"),
        );
        assert_eq!(
            shown,
            format!("Description={unit} 2.0.0\nNeedDaemonReload=no\n"),
            "{unit}"
        );
    }
    assert_eq!(
        (http(&lab, 8080), http(&lab, 8081)),
        ("2.0.0".into(), "2.0.0".into())
    );

    // the rollback: 1.0.0's units again, demo-web stopped and gone with its package
    upgrade(&lab, &["rollback", "--yes"]).assert_code(0);
    assert_eq!(http(&lab, 8080), "1.0.0");
    let shown = lab.sh(1, "systemctl show -p Description demo-db demo-api");
    assert_eq!(
        shown,
        "Description=demo-db 1.0.0\n\nDescription=demo-api 1.0.0\n"
    );
    assert_eq!(active(&lab, "demo-web"), "inactive");
    let rpm = lab.sh(
        1,
        "rpm --dbpath /var/lib/rpm -qa --qf '%{NAME}-%{VERSION}\\n' | sort",
    );
    // the upgrader, installed by rpm, stays
    assert_eq!(rpm, "demo-db-1.0.0\ndemo-server-1.0.0\nupgrade-0.1.0\n");
    let status = upgrade(&lab, &["status", "--json"]);
    assert_eq!(status.json()["installed"], "1.0.0");
}

#[test]
fn a_unit_that_fails_to_start_fails_the_run_with_its_systemctl_status() {
    let sb = Sandbox::new();
    let bad = unit(
        "demo-bad",
        "1.0.0",
        "Type=notify\nExecStart=/bin/sh -c 'echo \"demo-bad: port 8080 is in use\" >&2; exit 3'",
    );
    sb.publish(vec![rel(
        "1.0.0",
        vec![RpmSpec::new("demo-bad", "1.0.0").file(&bad.0, bad.1, 0o644)],
    )]);
    let Some((lab, root)) = host(&sb, "") else {
        return;
    };
    std::fs::write(
        root.join("etc/upgrade/service-order.toml"),
        "[service.demo-bad]\npackages = [\"demo-bad\"]\n",
    )
    .unwrap();
    let run = upgrade(&lab, &["--yes"]);
    run.assert_code(1)
        .assert_stderr("failed to start service `demo-bad`")
        .assert_stderr("`systemctl start demo-bad.service`")
        .assert_stderr("`systemctl status demo-bad.service`")
        // the status lines name the unit's own last words, from the journal
        .assert_stderr("demo-bad: port 8080 is in use");
    assert_eq!(active(&lab, "demo-bad"), "failed");
    // the run stays open at the start of the services
    let status = upgrade(&lab, &["status", "--json"]);
    assert_eq!(
        status.json()["open_run"]["status"],
        "failed",
        "{}",
        status.stdout
    );
}

/// The journal's entries of `real-upgrade` in host 1, as JSON.
fn upgrader_journal(lab: &Lab) -> Vec<serde_json::Value> {
    lab.sh(
        1,
        "journalctl -o json --no-pager SYSLOG_IDENTIFIER=real-upgrade",
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

#[test]
fn a_hook_asks_for_a_reboot_the_run_reboots_and_the_resume_unit_finishes_it() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", packages("1.0.0"))]);
    let Some((lab, root)) = host(&sb, "[reboot]\nautomatic = true\n") else {
        return;
    };
    // the upgrader's package enabled its resume unit
    assert_eq!(
        lab.sh(1, "systemctl is-enabled upgrade-resume.service")
            .trim(),
        "enabled"
    );
    // 10-kernel asks for a reboot once (its mark survives the reboot on disk); 20-after runs
    // after it; both log the boot they ran in
    let dir = root.join("etc/upgrade/post-upgrade.d");
    std::fs::create_dir_all(&dir).unwrap();
    let hook = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    let log = "echo \"$0 $(cat /proc/sys/kernel/random/boot_id) resumed=$UPGRADE_RESUMED\" >> /var/log/hooks.log";
    hook(
        "10-kernel",
        &format!(
            "{log}\n[ -e /var/lib/kernel-done ] && exit 0\ntouch /var/lib/kernel-done\nexit 100"
        ),
    );
    hook("20-after", log);
    // NB: systemd-nspawn gives each boot of a host its own boot id
    let boot = lab
        .sh(1, "cat /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string();

    // the run stops for the reboot, says so, and reboots the host itself
    let run = upgrade(&lab, &["--yes"]);
    run.assert_code(10)
        .assert_stderr("hook `10-kernel` requested a reboot");
    assert!(
        wait_until(std::time::Duration::from_secs(60), || lab.reboots(1) == 1),
        "the host did not reboot"
    );
    lab.booted(1);
    let after = lab
        .sh(1, "cat /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string();
    assert_ne!(boot, after, "the host did not reboot");

    // at the boot, upgrade-resume.service finished the run at the next hook
    let unit = lab.sh(
        1,
        "systemctl show -p Result -p ExecMainStatus upgrade-resume.service",
    );
    assert_eq!(unit, "Result=success\nExecMainStatus=0\n");
    let hooks = lab.sh(1, "cat /var/log/hooks.log");
    assert_eq!(
        hooks,
        format!(
            "/etc/upgrade/post-upgrade.d/10-kernel {boot} resumed=0\n\
             /etc/upgrade/post-upgrade.d/20-after {after} resumed=1\n"
        ),
        "10-kernel ran once, before the reboot; 20-after once, after it"
    );
    assert_eq!(active(&lab, "demo-api"), "active");
    assert_eq!(http(&lab, 8080), "1.0.0");
    let status = upgrade(&lab, &["status", "--json"]);
    assert_eq!(status.json()["installed"], "1.0.0");
    assert!(status.json()["open_run"].is_null(), "{}", status.stdout);

    // the journal holds both boots' events of run 1, with their structured fields
    let journal = upgrader_journal(&lab);
    let entry = |message: &str, hook: &str| {
        journal
            .iter()
            .find(|e| e["MESSAGE"] == message && e["UPGRADE_HOOK"] == hook)
            .unwrap_or_else(|| panic!("no `{message}` of {hook} in {journal:#?}"))
    };
    let asked = entry("hook requested a reboot", "10-kernel");
    assert_eq!(asked["UPGRADE_RUN"], "1");
    assert_eq!(asked["UPGRADE_STEP"], "hop0:post-hooks");
    assert_eq!(asked["UPGRADE_HOP"], "nothing->1.0.0");
    assert_eq!(asked["_BOOT_ID"], boot.replace('-', ""));
    let resumed = entry("hook done", "20-after");
    assert_eq!(resumed["UPGRADE_RUN"], "1");
    assert_eq!(resumed["_BOOT_ID"], after.replace('-', ""));
    // NB: the resumed run ran under the unit
    assert_eq!(resumed["_SYSTEMD_UNIT"], "upgrade-resume.service");
    assert!(
        journal
            .iter()
            .any(|e| e["MESSAGE"] == "run succeeded" && e["UPGRADE_RUN"] == "1"),
        "{journal:#?}"
    );

    // a boot with no run waiting for it: the unit does nothing
    let runs = upgrade(&lab, &["history", "--json"]).json();
    lab.exec(1, &["systemctl", "reboot"]);
    assert!(
        wait_until(std::time::Duration::from_secs(60), || lab.reboots(1) == 2),
        "the host did not reboot"
    );
    lab.booted(1);
    let unit = lab.sh(
        1,
        "systemctl show -p Result -p ExecMainStatus upgrade-resume.service",
    );
    assert_eq!(unit, "Result=success\nExecMainStatus=0\n");
    assert_eq!(upgrade(&lab, &["history", "--json"]).json(), runs);
}

#[test]
fn the_upgrader_package_disables_its_resume_unit_when_erased_not_when_replaced() {
    let sb = Sandbox::new();
    let Some((lab, root)) = host(&sb, "") else {
        return;
    };
    let enabled = |lab: &Lab| {
        let out = lab.exec(1, &["systemctl", "is-enabled", "upgrade-resume.service"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wants = root.join("etc/systemd/system/multi-user.target.wants/upgrade-resume.service");
    assert_eq!(enabled(&lab), "enabled");
    assert!(wants.symlink_metadata().is_ok());
    let file = format!(
        "/srv/upgrader/{}",
        super::lab::upgrader_rpm()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let rpm = |args: &[&str]| {
        let mut all = vec!["rpm", "--dbpath", "/var/lib/rpm", "--force-debian"];
        all.extend_from_slice(args);
        let out = lab.exec(1, &all);
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // the package replaced by itself (its %preun runs with 1 instance left): still enabled
    rpm(&["-U", "--replacepkgs", &file]);
    assert_eq!(enabled(&lab), "enabled");
    // erased: disabled, no link left to a unit that is gone
    rpm(&["-e", "upgrade"]);
    assert!(
        !root
            .join("usr/lib/systemd/system/upgrade-resume.service")
            .exists()
    );
    assert!(
        wants.symlink_metadata().is_err(),
        "a link to the erased unit stays in multi-user.target.wants"
    );
}
