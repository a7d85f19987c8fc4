//! Open runs (SPEC §5): `--to` against an open run, `abandon`, a lost `state.db`, a withdrawn
//! newest release, and `status` while a run is in progress.

use crate::support::*;

fn two_releases(sb: &Sandbox) {
    sb.publish(vec![
        rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        rel("2.0.0", vec![pkg("demo-server", "2.0.0")]),
    ]);
}

fn statuses(sb: &Sandbox) -> Vec<String> {
    let runs = sb.run(&["history", "--json"]).json();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["to"].as_str().unwrap(),
                r["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn another_to_replans_an_open_run_that_changed_nothing() {
    let sb = Sandbox::new();
    two_releases(&sb);
    sb.hook("pre", false, "10-gate", "exit 1");
    sb.run(&["--yes"]).assert_code(1);
    sb.hook("pre", false, "10-gate", "exit 0");
    let plan = sb.run(&["plan", "--to", "1.0.0", "--json"]).json();
    assert_eq!(plan["to"], "1.0.0", "plan shows what upgrade will run");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
    assert_eq!(statuses(&sb), ["2.0.0 abandoned", "1.0.0 succeeded"]);
}

#[test]
fn another_to_is_refused_while_the_open_run_has_changed_the_host() {
    let sb = Sandbox::new();
    two_releases(&sb);
    sb.hook("pre", false, "10-ok", "exit 0");
    sb.hook("pre", false, "20-gate", "exit 1");
    sb.run(&["--yes"]).assert_code(1);
    sb.run(&["--yes", "--to", "1.0.0"])
        .assert_code(2)
        .assert_stderr(
            "run 1 to 2.0.0 is open and has changed this host; it cannot go to `1.0.0` instead",
        )
        .assert_stderr("hint: run `upgrade` without `--to` to finish the open run first");
    sb.run(&["plan", "--to", "1.0.0"]).assert_code(2);
    sb.run(&["plan"])
        .assert_code(0)
        .assert_stderr("run 1 is open (`failed`): `upgrade` resumes this plan");
    sb.run(&["abandon"])
        .assert_code(2)
        .assert_stderr("run 1 has changed this host (done: hop0:pre:10-ok)");
    assert!(sb.rpm_qa().is_empty());
    sb.hook("pre", false, "20-gate", "exit 0");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-2.0.0-1.x86_64"]);
    assert_eq!(statuses(&sb), ["2.0.0 succeeded"]);
}

#[test]
fn abandon_lets_the_next_run_pick_up_a_fixed_index() {
    let sb = Sandbox::new();
    two_releases(&sb);
    sb.hook("pre", false, "10-gate", "exit 1");
    sb.run(&["--yes"]).assert_code(1);
    // the vendor withdraws 2.0.0 and publishes 2.0.1
    sb.publish(vec![
        rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        rel("2.0.1", vec![pkg("demo-server", "2.0.1")]),
    ]);
    sb.run(&["abandon"])
        .assert_code(0)
        .assert_stderr("abandoned run 1 to 2.0.0; the next `upgrade` plans anew");
    sb.run(&["abandon"])
        .assert_code(0)
        .assert_stderr("no open run");
    sb.hook("pre", false, "10-gate", "exit 0");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-2.0.1-1.x86_64"]);
    assert_eq!(statuses(&sb), ["2.0.0 abandoned", "2.0.1 succeeded"]);
}

#[test]
fn a_lost_or_emptied_state_db_is_refused_pointing_at_adopt() {
    let sb = Sandbox::new();
    two_releases(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.logging_hook("pre", false, "10-pre");
    let state = sb.root.join("var/lib/upgrade");
    for lose in [true, false] {
        for file in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(state.join(file));
        }
        if !lose {
            std::fs::write(state.join("state.db"), b"").unwrap();
        }
        sb.run(&["--yes"])
            .assert_code(2)
            .assert_stderr("the product's packages are installed (demo-server) but this root records no installed version")
            .assert_stderr("real-upgrade adopt VERSION");
        assert!(sb.hook_log().is_empty(), "nothing ran");
        assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
    }
    sb.run(&["adopt", "1.0.0"]).assert_code(0);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-2.0.0-1.x86_64"]);
    assert_eq!(
        sb.hook_log(),
        ["pre 10-pre from=1.0.0 to=2.0.0 fresh=0 resumed=0"]
    );
}

#[test]
fn a_withdrawn_newest_release_leaves_the_host_up_to_date() {
    let sb = Sandbox::new();
    two_releases(&sb);
    sb.run(&["--yes"]).assert_code(0);
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("demo 2.0.0 is installed: up to date");
    let status = sb.run(&["status", "--json"]).json();
    assert_eq!(status["up_to_date"], true);
    sb.run(&["--yes", "--to", "1.0.0"])
        .assert_code(2)
        .assert_stderr("downgrades are not supported");
}

#[test]
fn status_during_a_live_run_names_it_instead_of_offering_to_resume() {
    let sb = Sandbox::new();
    two_releases(&sb);
    let marker = sb.base.join("hook-started");
    let pidfile = sb.base.join("hook-pid");
    sb.hook(
        "pre",
        false,
        "10-wait",
        &format!(
            "echo $$ > {}; touch {}; exec sleep 60",
            pidfile.display(),
            marker.display()
        ),
    );
    let mut child = sb.spawn_until(&["--yes"], &marker);
    let status = sb.run(&["status"]);
    let pid = child.id();
    status
        .assert_code(0)
        .assert_stderr(&format!("run 1 to 2.0.0 is in progress (pid {pid})"));
    assert!(!status.stderr.contains("to resume it"), "{}", status.stderr);
    assert_eq!(sb.run(&["status", "--json"]).json()["running_pid"], pid);
    // teardown: the run and the hook it started, by PID
    let _ = child.kill();
    let _ = child.wait();
    let hook: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(hook), nix::sys::signal::SIGKILL);
}
