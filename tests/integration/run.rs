//! Whole runs: fresh install, upgrades through stops, confirmation, journal and resume, locking,
//! verification and rpm failures.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn fresh_install_is_an_upgrade_from_nothing() {
    let sb = Sandbox::new();
    three_releases(&sb);
    sb.logging_hook("pre", false, "10-pre");
    sb.logging_hook("post", false, "90-post");
    let run = sb.run(&["--yes", "--to", "1.0.0", "--json"]);
    run.assert_code(0);
    let doc = run.json();
    assert_eq!(doc["result"], "upgraded");
    assert_eq!(doc["from"], serde_json::Value::Null);
    assert_eq!(doc["to"], "1.0.0");
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(
        sb.hook_log(),
        [
            "pre 10-pre from= to=1.0.0 fresh=1 resumed=0",
            "post 90-post from= to=1.0.0 fresh=1 resumed=0"
        ]
    );
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    assert!(log.contains("run succeeded"), "{log}");
}

#[test]
fn upgrade_passes_through_the_required_stop() {
    let sb = Sandbox::new();
    three_releases(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.logging_hook("pre", false, "10-pre");
    sb.logging_hook("post", true, "90-post");
    let run = sb.run(&["--yes"]);
    run.assert_code(0).assert_stderr("(required stop)");
    assert_eq!(
        sb.hook_log(),
        [
            "pre 10-pre from=1.0.0 to=2.0.0 fresh=0 resumed=0",
            "post 90-post from=1.0.0 to=2.0.0 fresh=0 resumed=0",
            "pre 10-pre from=2.0.0 to=3.0.0 fresh=0 resumed=0",
            "post 90-post from=2.0.0 to=3.0.0 fresh=0 resumed=0",
        ]
    );
    assert_eq!(
        sb.rpm_qa(),
        [
            "demo-cli-1.0.0-1.x86_64",
            "demo-server-3.0.0-1.x86_64",
            "demo-web-3.0.0-1.x86_64"
        ]
    );
    assert_eq!(sb.installed().as_deref(), Some("3.0.0"));
    // up to date now: nothing to do, exit 0
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("up to date");
    let history = sb.run(&["history", "--json"]).json();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["status"], "succeeded");
}

#[test]
fn to_picks_the_target_and_plan_changes_nothing() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let plan = sb.run(&["plan", "--json", "--to", "2.0.0"]);
    plan.assert_code(0);
    let doc = plan.json();
    assert_eq!(doc["hops"].as_array().unwrap().len(), 1);
    assert_eq!(doc["hops"][0]["packages"][2]["op"], "install");
    sb.run(&["--dry-run"])
        .assert_code(0)
        .assert_stderr("nothing installed → 3.0.0");
    assert!(sb.rpm_qa().is_empty());
    assert!(
        !sb.root.join("var/lib/upgrade/state.db").exists(),
        "plan and --dry-run must not create state"
    );
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
    sb.run(&["--yes", "--to", "9.9.9"])
        .assert_code(2)
        .assert_stderr("`9.9.9` is not in the repository");
    sb.run(&["--yes", "--to", "1.0.0"])
        .assert_code(2)
        .assert_stderr("older than the installed");
}

#[test]
fn no_terminal_and_no_yes_is_refused_without_waiting() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let started = Instant::now();
    sb.run(&[])
        .assert_code(2)
        .assert_stderr("no terminal")
        .assert_stderr("--yes");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(sb.rpm_qa().is_empty());
    assert_eq!(sb.installed(), None);
}

#[test]
fn declining_at_the_prompt_changes_nothing() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let mut cmd = std::process::Command::new(REAL_UPGRADE);
    cmd.arg("--root").arg(&sb.root).env("NO_COLOR", "1");
    let code = decline_at_prompt(cmd, "Upgrade demo from nothing installed to 3.0.0?");
    assert_eq!(code, 4);
    assert!(sb.rpm_qa().is_empty());
    assert!(!sb.root.join("var/lib/upgrade/state.db").exists());
}

#[test]
fn accepting_at_the_prompt_upgrades() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let mut cmd = std::process::Command::new(REAL_UPGRADE);
    cmd.arg("--root")
        .arg(&sb.root)
        .args(["--to", "1.0.0"])
        .env("NO_COLOR", "1");
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn on a pty");
    p.exp_string("to 1.0.0?").expect("the prompt");
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("demo 1.0.0 is installed")
        .expect("the upgrade finishes");
    p.exp_eof().unwrap();
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn kill_during_a_hop_resumes_without_redoing_steps() {
    let sb = Sandbox::new();
    sb.publish(vec![rel(
        "1.0.0",
        vec![pkg("demo-server", "1.0.0").post_lua(
            "local f = io.open('/var/lib/post-count', 'a'); f:write('post\\n'); f:close()",
        )],
    )]);
    sb.logging_hook("pre", false, "10-first");
    sb.logging_hook("post", false, "40-before");
    let marker = sb.base.join("hanging");
    // the post hook hangs the first time only, so the run can be killed there
    sb.hook(
        "post",
        false,
        "50-hang",
        &format!(
            "echo \"post 50-hang resumed=$UPGRADE_RESUMED\" >> {log}\nif [ ! -e {m} ]; then touch {m}; sleep 60; fi",
            log = sb.hook_log_path().display(),
            m = marker.display()
        ),
    );
    sb.logging_hook("post", false, "90-last");
    let mut child = sb.spawn_until(&["--yes"], &marker);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        sb.installed(),
        None,
        "the killed run must not be recorded as done"
    );
    let run = sb.run(&["--yes"]);
    run.assert_code(0).assert_stderr("resuming run 1");
    assert_eq!(
        sb.hook_log(),
        [
            "pre 10-first from= to=1.0.0 fresh=1 resumed=0",
            "post 40-before from= to=1.0.0 fresh=1 resumed=0",
            "post 50-hang resumed=0",
            "post 50-hang resumed=1",
            "post 90-last from= to=1.0.0 fresh=1 resumed=1",
        ]
    );
    let posts = std::fs::read_to_string(sb.root.join("var/lib/post-count")).unwrap();
    assert_eq!(posts, "post\n", "the rpm transaction ran once");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    let history = sb.run(&["history", "1", "--json"]).json();
    assert_eq!(history["run"]["attempts"], 2);
    assert_eq!(history["run"]["status"], "succeeded");
}

#[test]
fn a_second_run_exits_5_naming_the_holder() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let marker = sb.base.join("holding");
    sb.hook(
        "pre",
        false,
        "10-hold",
        &format!("touch {}\nsleep 30", marker.display()),
    );
    let mut first = sb
        .cmd(&["--yes"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the first run never reached its hook"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = sb.run(&["--yes"]);
    second
        .assert_code(5)
        .assert_stderr(&format!("pid {}", first.id()));
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_tampered_artifact_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.logging_hook("pre", false, "10-pre");
    let file = sb.repo.join("packages/demo-server-1.0.0-1.x86_64.rpm");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("demo-server-1.0.0-1.x86_64")
        .assert_stderr("sha256");
    assert!(
        sb.hook_log().is_empty(),
        "no hook may run before verification"
    );
    assert!(sb.rpm_qa().is_empty());
    assert_eq!(sb.installed(), None);
    let cached = std::fs::read_dir(sb.root.join("var/lib/upgrade/cache")).unwrap();
    assert!(
        !cached
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .any(|f| f.ends_with("demo-server-1.0.0-1.x86_64.rpm")),
        "the refused file stays out of the cache"
    );
}

#[test]
fn a_failing_scriptlet_fails_the_step_although_rpm_exits_0() {
    let sb = Sandbox::new();
    sb.publish(vec![rel(
        "1.0.0",
        vec![pkg("demo-server", "1.0.0").post_lua("error('configuration broke')")],
    )]);
    sb.logging_hook("post", false, "90-post");
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("scriptlet failed")
        .assert_stderr("configuration broke");
    assert!(
        sb.hook_log().is_empty(),
        "post hooks must not run after a failed package step"
    );
    assert_eq!(sb.installed(), None);
    let status = sb.run(&["status", "--json"]).json();
    assert_eq!(status["open_run"]["status"], "failed");
}

#[test]
fn an_edited_config_file_is_kept_and_the_rpmnew_reported() {
    let sb = Sandbox::new();
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![pkg("demo-server", "1.0.0").config_file("/etc/demo/server.conf", "workers = 1\n")],
        ),
        rel(
            "2.0.0",
            vec![pkg("demo-server", "2.0.0").config_file("/etc/demo/server.conf", "workers = 2\n")],
        ),
    ]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let conf = sb.root.join("etc/demo/server.conf");
    std::fs::write(&conf, "workers = 42\n").unwrap();
    let run = sb.run(&["--yes", "--json"]);
    run.assert_code(0).assert_stderr("server.conf.rpmnew");
    assert_eq!(
        run.json()["config_files"][0],
        "/etc/demo/server.conf.rpmnew"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "workers = 42\n");
    assert_eq!(
        std::fs::read_to_string(sb.root.join("etc/demo/server.conf.rpmnew")).unwrap(),
        "workers = 2\n"
    );
}

#[test]
fn the_shim_execs_real_upgrade_with_the_same_arguments() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let out = std::process::Command::new(UPGRADE)
        .arg("--no-self-update")
        .arg("--root")
        .arg(&sb.root)
        .args(["--yes", "--to", "1.0.0", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    run.assert_code(0);
    assert_eq!(run.json()["to"], "1.0.0");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn download_only_fetches_and_verifies_then_stops() {
    let sb = Sandbox::new();
    three_releases(&sb);
    sb.logging_hook("pre", false, "10-pre");
    let run = sb.run(&["--download-only", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["result"], "downloaded");
    let cached: Vec<String> = std::fs::read_dir(sb.root.join("var/lib/upgrade/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for file in [
        "demo-server-2.0.0-1.x86_64.rpm",
        "demo-web-3.0.0-1.x86_64.rpm",
        "demo-cli-1.0.0-1.x86_64.rpm",
    ] {
        // the cache names a file by its sha256, then its name
        assert!(
            cached.iter().any(|f| f.ends_with(&format!("-{file}"))),
            "{file} not in the cache: {cached:?}"
        );
    }
    assert!(sb.hook_log().is_empty());
    assert!(sb.rpm_qa().is_empty());
    assert_eq!(sb.installed(), None);
    // the repository may go away now: the run installs from the verified cache
    std::fs::remove_dir_all(sb.repo.join("packages")).unwrap();
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("3.0.0"));
}
