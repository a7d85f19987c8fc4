//! Reboot requests (SPEC §6): `[reboot] automatic` reboots through its command (never this
//! machine: the tests point `[reboot] command` at a recording script, and a sandbox root without
//! one is not rebooted), and `--after-reboot`, what `upgrade-resume.service` runs at boot,
//! resumes only a run that stopped for a reboot and does nothing otherwise.

use crate::support::*;

fn one_release(sb: &Sandbox) {
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
}

/// Pre hooks `10-before`, `20-reboot` (exit 100 the first time only, as after a reboot the
/// request is met) and `30-after`, each logging.
fn rebooting_hooks(sb: &Sandbox) {
    sb.logging_hook("pre", false, "10-before");
    let done = sb.base.join("rebooted-once");
    sb.hook(
        "pre",
        false,
        "20-reboot",
        &format!(
            "echo \"pre 20-reboot resumed=$UPGRADE_RESUMED\" >> {log}\n\
             [ -e {done} ] && exit 0\ntouch {done}\nexit 100",
            log = sb.hook_log_path().display(),
            done = done.display()
        ),
    );
    sb.logging_hook("pre", false, "30-after");
}

fn open_status(sb: &Sandbox) -> serde_json::Value {
    sb.run(&["status", "--json"]).json()["open_run"]["status"].clone()
}

#[test]
fn after_reboot_does_nothing_unless_a_run_waits_for_a_reboot() {
    let sb = Sandbox::new();
    one_release(&sb);
    // a host that never ran: nothing is written, not even the log or state.db
    sb.run(&["--yes", "--after-reboot"])
        .assert_code(0)
        .assert_stderr("no run is waiting for a reboot: nothing to do");
    assert!(!sb.root.join("var/lib/upgrade").exists());
    assert!(!sb.root.join("var/log/upgrade").exists());
    assert!(sb.rpm_qa().is_empty());
    let json = sb.run(&["--yes", "--after-reboot", "--json"]);
    assert_eq!(json.assert_code(0).json()["result"], "nothing-to-resume");

    // an open run that failed is for a person, not for the boot
    let hook = sb.hook("pre", false, "10-fails", "exit 3");
    sb.run(&["--yes"]).assert_code(1);
    assert_eq!(open_status(&sb), "failed");
    sb.run(&["--yes", "--after-reboot"])
        .assert_code(0)
        .assert_stderr("nothing to do");
    assert_eq!(open_status(&sb), "failed");
    assert!(sb.rpm_qa().is_empty());

    // a finished run: nothing to resume either
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    sb.run(&["--yes"]).assert_code(0);
    sb.run(&["--yes", "--after-reboot"])
        .assert_code(0)
        .assert_stderr("nothing to do");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    // and it takes no other run's options
    sb.run(&["--after-reboot", "--to", "1.0.0"]).assert_code(2);
}

#[test]
fn automatic_reboot_runs_the_command_and_the_boot_resumes_the_run() {
    let sb = Sandbox::new();
    one_release(&sb);
    rebooting_hooks(&sb);
    let record = sb.base.join("reboots");
    sb.write_config(&format!(
        "[reboot]\nautomatic = true\ncommand = \"echo rebooting >> {} && echo queued\"\n",
        record.display()
    ));
    sb.run(&["--yes"])
        .assert_code(10)
        .assert_stderr("hook `20-reboot` requested a reboot")
        .assert_stderr("rebooting the host now")
        .assert_stderr("upgrade-resume.service");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "rebooting\n");
    assert_eq!(open_status(&sb), "reboot");
    assert!(sb.rpm_qa().is_empty(), "packages wait for the reboot");
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    assert!(log.contains("reboot: queued"), "{log}");

    // the boot: upgrade-resume.service
    sb.run(&["--yes", "--after-reboot"])
        .assert_code(0)
        .assert_stderr("stopped for a reboot: resuming it");
    assert_eq!(
        sb.hook_log(),
        [
            "pre 10-before from= to=1.0.0 fresh=1 resumed=0",
            "pre 20-reboot resumed=0",
            "pre 30-after from= to=1.0.0 fresh=1 resumed=1",
        ]
    );
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
    assert_eq!(open_status(&sb), serde_json::Value::Null);
    // one reboot only
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "rebooting\n");
    sb.run(&["--yes", "--after-reboot"])
        .assert_code(0)
        .assert_stderr("nothing to do");
}

#[test]
fn a_sandbox_root_is_not_rebooted_without_a_command_and_a_failed_reboot_is_said() {
    // (the configuration, what its run must say, what it must not)
    let cases = [
        // NB: no command under a root other than `/`: `systemctl reboot` is never run here
        (
            "[reboot]\nautomatic = true\n",
            "the machine is not rebooted",
            "rebooting the host",
        ),
        (
            "[reboot]\nautomatic = true\ncommand = \"echo no permission; exit 7\"\n",
            "the reboot failed (`echo no permission; exit 7`: exited with 7: no permission)",
            "not rebooted",
        ),
        // off (the default): a person reboots
        ("", "reboot, then run `upgrade` again", "reboot"),
    ];
    for (config, says, never) in cases {
        let sb = Sandbox::new();
        one_release(&sb);
        rebooting_hooks(&sb);
        sb.write_config(config);
        let run = sb.run(&["--yes"]);
        run.assert_code(10)
            .assert_stderr(says)
            .assert_stderr("reboot, then run `upgrade` again");
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("warning"))
            .collect();
        assert!(
            !warnings
                .iter()
                .any(|l| l.contains(never) && !l.contains("requested a reboot")),
            "{config}: {}",
            run.stderr
        );
        assert_eq!(open_status(&sb), "reboot", "{config}");
    }
}

#[test]
fn the_resume_unit_runs_the_after_reboot_resume_at_boot() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/upgrade-resume.service"),
    )
    .unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=oneshot",
        "ExecStart=/usr/sbin/real-upgrade --yes --after-reboot",
        "ConditionPathExists=/var/lib/upgrade/state.db",
        "After=network-online.target local-fs.target",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            lines.contains(&want),
            "`{want}` missing from the unit:\n{unit}"
        );
    }
}
