//! Hooks exactly as SPEC §6: merge, filter, order, masking, environment, failure, timeout,
//! permissions and reboot requests, and hooks that print a lot or leave a daemon behind.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn one_release(sb: &Sandbox) {
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
}

#[test]
fn hooks_merge_filter_and_run_in_byte_order() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.logging_hook("pre", false, "20-vendor");
    sb.logging_hook("pre", true, "10-admin");
    sb.logging_hook("pre", false, "B-upper"); // 'B' < '_' < 'a' in byte order
    sb.logging_hook("pre", false, "_under");
    sb.logging_hook("pre", false, "a-lower");
    // the admin's file of the same name replaces the vendor's
    sb.hook(
        "pre",
        false,
        "30-replaced",
        "echo vendor-30 >> /dev/null; exit 1",
    );
    sb.logging_hook("pre", true, "30-replaced");
    // leftovers and non-executables never run
    for name in [
        "40-x.rpmnew",
        "40-x.rpmsave",
        "40-x~",
        ".hidden",
        "40-x.dpkg-old",
        "40-x.swp",
    ] {
        sb.hook("pre", false, name, "exit 1");
    }
    let plain = sb.hook("pre", false, "50-not-executable", "exit 1");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    // an admin symlink to /dev/null masks the vendor's hook
    sb.hook("pre", false, "60-masked", "exit 1");
    std::os::unix::fs::symlink(
        "/dev/null",
        sb.root.join("etc/upgrade/pre-upgrade.d/60-masked"),
    )
    .unwrap();

    let list = sb.run(&["hooks", "list", "--json"]);
    list.assert_code(0);
    let doc = list.json();
    let names: Vec<&str> = doc["pre-upgrade.d"]["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "10-admin",
            "20-vendor",
            "30-replaced",
            "B-upper",
            "_under",
            "a-lower"
        ]
    );
    let skipped = doc["pre-upgrade.d"]["skipped"].to_string();
    for needle in ["40-x.rpmnew", ".hidden", "not executable", "masked"] {
        assert!(
            skipped.contains(needle),
            "{needle} not listed as skipped: {skipped}"
        );
    }
    let human = sb.run(&["hooks", "list"]);
    human
        .assert_stderr("skipped")
        .assert_stderr("not executable");

    sb.run(&["--yes"]).assert_code(0);
    let ran: Vec<String> = sb
        .hook_log()
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(ran, names);
}

#[test]
fn hooks_get_the_documented_environment() {
    let sb = Sandbox::new();
    one_release(&sb);
    let out = sb.base.join("env");
    sb.hook(
        "pre",
        false,
        "10-env",
        &format!(
            "env | grep '^UPGRADE_' | sort > {out}\n(umask; cat; echo stdin-done) >> {out}",
            out = out.display()
        ),
    );
    sb.run(&["--yes"]).assert_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    let expect = [
        "UPGRADE_ACTION=upgrade".to_string(),
        "UPGRADE_FRESH_INSTALL=1".to_string(),
        "UPGRADE_FROM_VERSION=".to_string(),
        "UPGRADE_PHASE=pre".to_string(),
        "UPGRADE_RESUMED=0".to_string(),
        format!("UPGRADE_ROOT={}", sb.root.display()),
        "UPGRADE_RUN_ID=1".to_string(),
        "UPGRADE_TO_VERSION=1.0.0".to_string(),
        "0022".to_string(),
        "stdin-done".to_string(),
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expect);
}

#[test]
fn hooks_get_a_clean_environment_not_the_callers() {
    let sb = Sandbox::new();
    one_release(&sb);
    let out = sb.base.join("names");
    sb.hook(
        "pre",
        false,
        "10-env",
        &format!("env | cut -d= -f1 | sort > {}", out.display()),
    );
    let run = sb
        .cmd(&["--yes"])
        .env("CALLER_SECRET", "1")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    Run::from(run).assert_code(0);
    let names = std::fs::read_to_string(&out).unwrap();
    let inherited = ["PATH", "LANG", "LC_ALL", "TERM", "HOME", "TZ"];
    // the shell adds PWD, SHLVL and `_` itself
    let by_shell = ["PWD", "SHLVL", "_"];
    for name in names.lines() {
        assert!(
            inherited.contains(&name) || by_shell.contains(&name) || name.starts_with("UPGRADE_"),
            "the hook got `{name}`:\n{names}"
        );
    }
    assert!(names.lines().any(|n| n == "PATH") && names.lines().any(|n| n == "LANG"));
}

#[test]
fn a_failing_hook_stops_the_run_and_the_next_run_resumes_at_it() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.logging_hook("pre", false, "10-ok");
    let gate = sb.base.join("fixed");
    sb.hook(
        "pre",
        false,
        "20-check",
        &format!(
            "echo checking disk\necho 'disk is full' >&2\n[ -e {} ] || exit 3",
            gate.display()
        ),
    );
    sb.logging_hook("pre", false, "30-after");
    let run = sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr("hook `20-check` exited with 3")
        .assert_stderr("| disk is full")
        .assert_stderr("run `upgrade` again");
    assert_eq!(
        sb.hook_log().len(),
        1,
        "fail-fast: nothing after the failed hook"
    );
    assert!(sb.rpm_qa().is_empty());
    std::fs::write(&gate, "").unwrap();
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("already done");
    let log = sb.hook_log();
    assert_eq!(log.len(), 2, "10-ok is not run again: {log:?}");
    assert!(
        log[1].starts_with("pre 30-after") && log[1].ends_with("resumed=1"),
        "{log:?}"
    );
}

#[test]
fn a_hook_that_times_out_is_killed_with_its_process_group() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.write_config("[hooks]\ntimeout = \"1s\"\n");
    let pidfile = sb.base.join("grandchild.pid");
    sb.hook(
        "pre",
        false,
        "10-slow",
        &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()),
    );
    let started = Instant::now();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("hook `10-slow` timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(30));
    let pid = read_pid(&pidfile);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // the killed grandchild may linger as a zombie of init for a moment
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = state.is_empty() || state.split(' ').nth(2) == Some("Z");
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hook's background child {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn unsafe_hooks_are_refused_naming_file_and_mode() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.logging_hook("pre", false, "10-ok");
    let writable = sb.hook("pre", true, "20-writable", "exit 0");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr("20-writable")
        .assert_stderr("mode 0777");
    assert!(sb.hook_log().is_empty(), "no hook runs when one is unsafe");
    assert!(sb.rpm_qa().is_empty());
    sb.run(&["hooks", "list"])
        .assert_code(0)
        .assert_stderr("refused");
    // a group-writable directory is refused as well
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = sb.root.join("etc/upgrade/pre-upgrade.d");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    sb.run(&["--yes"]).assert_code(1).assert_stderr("mode 0775");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.run(&["--yes"]).assert_code(0);
}

#[test]
fn a_reboot_request_stops_with_10_and_resumes_at_the_next_hook() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.logging_hook("pre", false, "10-before");
    sb.hook(
        "pre",
        false,
        "20-reboot",
        &format!(
            "echo \"pre 20-reboot resumed=$UPGRADE_RESUMED\" >> {}\nexit 100",
            sb.hook_log_path().display()
        ),
    );
    sb.logging_hook("pre", false, "30-after");
    sb.run(&["--yes"])
        .assert_code(10)
        .assert_stderr("requested a reboot");
    assert!(sb.rpm_qa().is_empty(), "packages wait for the reboot");
    assert_eq!(
        sb.run(&["status", "--json"]).json()["open_run"]["status"],
        "reboot"
    );
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        sb.hook_log(),
        [
            "pre 10-before from= to=1.0.0 fresh=1 resumed=0",
            "pre 20-reboot resumed=0",
            "pre 30-after from= to=1.0.0 fresh=1 resumed=1",
        ]
    );
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
}

/// `real-upgrade ARGS…`, killed with everything it started if it takes longer than `limit`;
/// its outcome and how long it took.
fn run_within(sb: &Sandbox, args: &[&str], limit: Duration) -> (Run, Duration) {
    let stdout = sb.base.join("run.stdout");
    let stderr = sb.base.join("run.stderr");
    let started = Instant::now();
    let mut child = sb
        .cmd(args)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            // the run and its hook, which share its process group
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
            panic!(
                "`upgrade {}` was still running after {limit:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let output = Output {
        status,
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read(&stderr).unwrap(),
    };
    (Run::from(output), took)
}

fn read_pid(pidfile: &std::path::Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Kills a process a test's hook left behind, however the test ends.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_hook_is_done_when_it_exits_though_a_daemon_it_started_holds_its_output() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.write_config("[hooks]\ntimeout = \"30s\"\n");
    let pidfile = sb.base.join("daemon.pid");
    // the daemon inherits the hook's stdout and stderr and keeps them open
    sb.hook(
        "pre",
        false,
        "10-start-daemon",
        &format!(
            "sleep 300 &\necho $! > {}\necho daemon started",
            pidfile.display()
        ),
    );
    sb.logging_hook("pre", false, "20-next");
    let (run, took) = run_within(&sb, &["--yes"], Duration::from_secs(60));
    let pid = read_pid(&pidfile);
    let _reap = Reap(pid);
    run.assert_code(0).assert_stderr("daemon started");
    assert!(
        took < Duration::from_secs(10),
        "the run waited {took:?} for the hook's daemon"
    );
    assert_eq!(sb.hook_log().len(), 1, "the next hook ran");
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
    // the daemon was started on purpose: it is left running
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn the_timeout_holds_for_a_hook_that_keeps_printing() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.write_config("[hooks]\ntimeout = \"3s\"\n");
    sb.hook(
        "pre",
        false,
        "10-chatty",
        "while :; do echo still working; done",
    );
    let (run, took) = run_within(&sb, &["--yes"], Duration::from_secs(60));
    run.assert_code(1)
        .assert_stderr("hook `10-chatty` timed out after 3s")
        .assert_stderr("| still working");
    assert!(
        took < Duration::from_secs(10),
        "a 3 s timeout fired after {took:?}"
    );
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn hook_output_without_newlines_is_handled_in_linear_time_and_bounded_lines() {
    let sb = Sandbox::new();
    one_release(&sb);
    sb.hook(
        "pre",
        false,
        "10-blob",
        "head -c 20000000 /dev/zero | tr '\\0' x",
    );
    let (run, took) = run_within(&sb, &["--yes"], Duration::from_secs(120));
    run.assert_code(0);
    assert!(
        took < Duration::from_secs(20),
        "20 MB without a newline took {took:?}"
    );
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    let xs: usize = log.lines().map(|l| l.matches('x').count()).sum();
    assert!(
        xs >= 20_000_000,
        "the log holds {xs} of the 20,000,000 bytes"
    );
    let longest = log.lines().map(str::len).max().unwrap();
    assert!(
        longest < 65 * 1024,
        "a log line of {longest} bytes: lines are cut at 64 KiB"
    );
}

#[test]
fn a_file_name_that_is_not_utf8_is_listed_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    sb.logging_hook("pre", false, "10-ok");
    let dir = sb.root.join("usr/share/upgrade/pre-upgrade.d");
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"20-caf\xe9"));
    std::fs::write(&odd, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&odd, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.run(&["hooks", "list"])
        .assert_code(0)
        .assert_stderr("10-ok")
        .assert_stderr("skipped");
    let list = sb.run(&["hooks", "list", "--json"]);
    list.assert_code(0);
    let doc = list.json();
    assert_eq!(doc["pre-upgrade.d"]["run"][0]["name"], "10-ok");
    assert_eq!(doc["pre-upgrade.d"]["skipped"].as_array().unwrap().len(), 1);
}

#[test]
fn an_absolute_symlink_names_a_file_of_the_root_not_of_the_host() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    // the product's library of hooks inside the root; the admin links one of them in
    let lib = sb.root.join("usr/lib/demo-hooks");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::set_permissions(&lib, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = sb.logging_hook("pre", false, "30-shared");
    std::fs::rename(&target, lib.join("30-shared")).unwrap();
    let admin = sb.root.join("etc/upgrade/pre-upgrade.d");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::set_permissions(&admin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("/usr/lib/demo-hooks/30-shared", admin.join("30-shared")).unwrap();
    let list = sb.run(&["hooks", "list", "--json"]).json();
    assert_eq!(
        list["pre-upgrade.d"]["run"][0]["name"], "30-shared",
        "{list}"
    );
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        sb.hook_log(),
        ["pre 30-shared from= to=1.0.0 fresh=1 resumed=0"]
    );
}
