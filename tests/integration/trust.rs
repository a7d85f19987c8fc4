//! Remote repositories and trust (SPEC §1, §4): a real HTTP server on 127.0.0.1 with fault
//! injection serving a signed repository; the shim's self-refresh; every refusal of the index
//! and of artifacts; resumed and retried downloads; the download cache (its keys, a plan
//! downloaded for an offline run, pruning after a run).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::httpserve::Server;
use crate::support::*;

/// A signed repository with one release, served over HTTP; the sandbox trusts its key.
fn served(p: Publication) -> (Sandbox, Server) {
    let sb = Sandbox::new();
    sb.publish_full(Publication { sign: true, ..p });
    let server = Server::start(&sb.repo, 0).unwrap();
    let key = sb.public_key();
    sb.write_config_repo(
        &server.url(),
        &format!("public_key = \"{key}\"\nallow_insecure = true"),
    );
    (sb, server)
}

fn one_release() -> Publication {
    Publication {
        sequence: Some(5),
        releases: vec![rel(
            "1.0.0",
            vec![pkg("demo-server", "1.0.0"), pkg("demo-cli", "1.0.0")],
        )],
        ..Default::default()
    }
}

/// `upgrade ARGS…` (the shim) on the sandbox root, with no terminal.
fn shim(sb: &Sandbox, exe: &str, args: &[&str]) -> Run {
    let out = Command::new(exe)
        .arg("--root")
        .arg(&sb.root)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .env_remove("UPGRADE_SHIM_REEXEC")
        .output()
        .unwrap();
    Run::from(out)
}

fn state_db(sb: &Sandbox) -> PathBuf {
    sb.root.join("var/lib/upgrade/state.db")
}

/// Upgrader 1.0.0 installed (its hook logs `upgrader 1.0.0`), 1.1.0 in the repository, and a
/// release that needs 1.1.0.
fn with_upgraders(extra_1_1: impl FnOnce(RpmSpec) -> RpmSpec) -> (Sandbox, Server) {
    let sb = Sandbox::new();
    let log = sb.hook_log_path();
    let old = upgrader_pkg("1.0.0", &log).build(&sb.base.join("installer"));
    sb.rpm_install(&[old]);
    let mut release = rel("1.0.0", vec![pkg("demo-server", "1.0.0")]);
    release.requires_upgrader = Some("1.1.0");
    sb.publish_full(Publication {
        sign: true,
        upgrader: Some(("1.1.0", vec![extra_1_1(upgrader_pkg("1.1.0", &log))])),
        releases: vec![release],
        ..Default::default()
    });
    let server = Server::start(&sb.repo, 0).unwrap();
    let key = sb.public_key();
    sb.write_config_repo(
        &server.url(),
        &format!("public_key = \"{key}\"\nallow_insecure = true"),
    );
    (sb, server)
}

#[test]
fn trust_self_refresh_installs_the_new_upgrader_whose_hooks_run_next() {
    let (sb, _server) = with_upgraders(|p| p);
    let run = shim(&sb, UPGRADE, &["--yes"]);
    run.assert_code(0)
        .assert_stderr("refreshed the upgrader: 1.0.0 → 1.1.0");
    assert_eq!(
        sb.rpm_qa(),
        ["demo-server-1.0.0-1.x86_64", "demo-upgrade-1.1.0-1.noarch"]
    );
    // the hooks that ran are the new upgrader's, and the plan accepted requires_upgrader 1.1.0
    assert_eq!(sb.hook_log(), ["upgrader 1.1.0"]);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    // a second run has nothing to refresh
    let again = shim(&sb, UPGRADE, &["--yes"]);
    again.assert_code(0);
    assert!(!again.stderr.contains("refreshed"), "{}", again.stderr);
}

#[test]
fn trust_no_self_update_keeps_the_old_upgrader_and_refuses_what_needs_the_new_one() {
    let (sb, _server) = with_upgraders(|p| p);
    let run = shim(&sb, UPGRADE, &["--no-self-update", "--yes"]);
    run.assert_code(2)
        .assert_stderr("release `1.0.0` requires upgrader `1.1.0` or newer")
        .assert_stderr("is `1.0.0`")
        .assert_stderr("hint:");
    assert_eq!(sb.rpm_qa(), ["demo-upgrade-1.0.0-1.noarch"]);
    assert!(sb.hook_log().is_empty());
    // the same from real-upgrade directly: never attempted with the old upgrader
    sb.run(&["--yes"]).assert_code(2);
    // with the guard set (a re-executed shim) there is no refresh either
    let out = Command::new(UPGRADE)
        .arg("--root")
        .arg(&sb.root)
        .arg("--yes")
        .env("UPGRADE_SHIM_REEXEC", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out).assert_code(2);
    assert_eq!(sb.rpm_qa(), ["demo-upgrade-1.0.0-1.noarch"]);
}

#[test]
fn trust_a_replaced_shim_is_re_executed_once() {
    // The shim runs from the root's /usr/sbin; upgrader 1.1.0 replaces it with a script that
    // records the guard and hands over to the real shim binary.
    let marker = std::env::temp_dir().join(format!("upgrade-reexec-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "#!/bin/sh\necho \"new shim guard=$UPGRADE_SHIM_REEXEC\" >> {}\nexec {UPGRADE} \"$@\"\n",
        marker.display()
    );
    let (sb, _server) = with_upgraders(|p| p.file("/usr/sbin/upgrade", script.clone(), 0o755));
    let sbin = sb.root.join("usr/sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::fs::copy(UPGRADE, sbin.join("upgrade")).unwrap();
    let exe = sbin.join("upgrade");
    let run = shim(&sb, exe.to_str().unwrap(), &["--yes"]);
    run.assert_code(0)
        .assert_stderr("refreshed the upgrader: 1.0.0 → 1.1.0");
    let lines = std::fs::read_to_string(&marker).unwrap_or_default();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(lines, "new shim guard=1\n", "re-executed exactly once");
    assert_eq!(sb.hook_log(), ["upgrader 1.1.0"]);
}

#[test]
fn trust_signed_remote_repository_upgrades() {
    let (sb, server) = served(one_release());
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(server.requests("index.toml.minisig").len(), 1);
    // a second fetch of a cached, verified artifact does not happen
    let before = server.log.lock().unwrap().len();
    sb.run(&["--download-only"]).assert_code(0);
    let after: Vec<_> = server.log.lock().unwrap()[before..].to_vec();
    assert!(
        after.iter().all(|r| !r.path.starts_with("packages/")),
        "{after:?}"
    );
}

#[test]
fn trust_tampered_index_is_refused() {
    let (sb, _server) = served(one_release());
    let index = sb.repo.join("index.toml");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, text.replace("sequence = 5", "sequence = 6")).unwrap();
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("changed after it was signed");
    assert!(sb.rpm_qa().is_empty());
    assert!(!state_db(&sb).exists());
}

#[test]
fn trust_wrong_key_is_refused() {
    let (sb, server) = served(one_release());
    let other = Sandbox::new();
    let key = other.public_key();
    sb.write_config_repo(
        &server.url(),
        &format!("public_key = \"{key}\"\nallow_insecure = true"),
    );
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("signed with another key");
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn trust_unsigned_or_unkeyed_repositories_are_refused() {
    let (sb, server) = served(one_release());
    // remote without a key
    sb.write_config_repo(&server.url(), "allow_insecure = true");
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("no `public_key` is configured");
    // plain http without allow_insecure
    let key = sb.public_key();
    sb.write_config_repo(&server.url(), &format!("public_key = \"{key}\""));
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("plain HTTP is refused")
        .assert_stderr("allow_insecure");
    // a local repository with a key configured must be signed too
    std::fs::remove_file(sb.repo.join("index.toml.minisig")).unwrap();
    sb.write_config_repo(
        sb.repo.to_str().unwrap(),
        &format!("public_key = \"{key}\""),
    );
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("is not signed");
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn trust_expired_index_is_refused() {
    let (sb, _server) = served(Publication {
        expires: Some("2020-01-01T00:00:00Z"),
        ..one_release()
    });
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("expired at 2020-01-01T00:00:00Z");
    assert!(sb.rpm_qa().is_empty());
}

/// Publishes sequence 6: releases 1.0.0 and 1.1.0, of `demo-server` alone.
fn publish_1_1_0(sb: &Sandbox) {
    sb.publish_full(Publication {
        sign: true,
        sequence: Some(6),
        releases: vec![
            rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
            rel("1.1.0", vec![pkg("demo-server", "1.1.0")]),
        ],
        ..Default::default()
    });
}

#[test]
fn trust_replayed_older_sequence_is_refused() {
    let (sb, _server) = served(one_release());
    let old_index = std::fs::read(sb.repo.join("index.toml")).unwrap();
    let old_sig = std::fs::read(sb.repo.join("index.toml.minisig")).unwrap();
    sb.run(&["--yes"]).assert_code(0);
    // a newer publication is accepted...
    publish_1_1_0(&sb);
    sb.run(&["--yes"]).assert_code(0);
    // ...then a mirror replays the old, validly signed one
    std::fs::write(sb.repo.join("index.toml"), old_index).unwrap();
    std::fs::write(sb.repo.join("index.toml.minisig"), old_sig).unwrap();
    sb.run(&["status"]).assert_code(0).assert_stderr("rollback");
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("sequence 5, lower than 6")
        .assert_stderr("rollback");
    assert_eq!(sb.installed().as_deref(), Some("1.1.0"));
}

#[test]
fn trust_artifact_with_a_wrong_hash_is_refused() {
    let (sb, server) = served(one_release());
    let path = "packages/demo-server-1.0.0-1.x86_64.rpm";
    let mut bytes = std::fs::read(sb.repo.join(path)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    server
        .faults
        .lock()
        .unwrap()
        .replace
        .insert(path.into(), bytes);
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("has sha256")
        .assert_stderr(path);
    assert!(sb.rpm_qa().is_empty());
    // neither the refused file nor its partial download stays in the cache
    let cached = cached(&sb);
    assert!(
        !cached.iter().any(|f| f.contains("demo-server")),
        "{cached:?}"
    );
    // the resumed-download retry is not for a fresh download: it was fetched once
    assert_eq!(server.requests(path).len(), 1);
}

#[test]
fn trust_artifact_longer_than_declared_is_refused() {
    let (sb, server) = served(one_release());
    let path = "packages/demo-cli-1.0.0-1.x86_64.rpm";
    let mut bytes = std::fs::read(sb.repo.join(path)).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
    server
        .faults
        .lock()
        .unwrap()
        .replace
        .insert(path.into(), bytes);
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("more than the declared");
    assert!(sb.rpm_qa().is_empty());
    assert_eq!(sb.installed(), None);
}

/// Bytes that do not compress (an RPM payload is gzipped).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A release of one 2 MB package, served; the package's path in the repository.
fn served_big() -> (Sandbox, Server, &'static str) {
    let big =
        RpmSpec::new("demo-server", "1.0.0").file("/usr/lib/demo/blob", noise(2_000_000), 0o644);
    let (sb, server) = served(Publication {
        releases: vec![rel("1.0.0", vec![big])],
        ..Default::default()
    });
    (sb, server, "packages/demo-server-1.0.0-1.x86_64.rpm")
}

#[test]
fn trust_a_cut_download_resumes_with_range() {
    let (sb, server, path) = served_big();
    server.faults.lock().unwrap().cut.push((path.into(), 1));
    sb.run(&["--download-only"]).assert_code(0);
    let requests = server.requests(path);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    let size = std::fs::metadata(sb.repo.join(path)).unwrap().len();
    assert_eq!(
        requests[1].range,
        Some(size / 2),
        "resumed where the cut left it"
    );
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
}

#[test]
fn trust_server_errors_are_retried_until_it_recovers() {
    let (sb, server) = served(one_release());
    let path = "packages/demo-cli-1.0.0-1.x86_64.rpm";
    {
        let mut faults = server.faults.lock().unwrap();
        faults.fail.push(("index.toml".into(), 2, 500));
        faults.fail.push((path.into(), 3, 503));
    }
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(server.requests("index.toml").len(), 3);
    assert_eq!(server.requests(path).len(), 4);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    // a status that is not transient fails at once, naming the URL and the status
    server
        .faults
        .lock()
        .unwrap()
        .fail
        .push(("index.toml".into(), 1, 403));
    let run = sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr(&format!("`{}/index.toml` answered HTTP 403", server.url()));
}

#[test]
fn trust_unreachable_repository_is_a_clear_error_and_changes_nothing() {
    let sb = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = sb.public_key();
    let url = format!("http://127.0.0.1:{port}/demo");
    sb.write_config_repo(
        &url,
        &format!("public_key = \"{key}\"\nallow_insecure = true"),
    );
    let run = shim(&sb, UPGRADE, &["--yes"]);
    run.assert_code(1)
        .assert_stderr(&format!("failed to fetch `{url}/index.toml` (5 attempts)"))
        .assert_stderr("hint:");
    assert!(sb.rpm_qa().is_empty());
    assert!(!state_db(&sb).exists());
}

#[test]
fn trust_signatures_verify_with_stock_minisign() {
    let (sb, _server) = served(one_release());
    if Command::new("minisign").arg("-v").output().is_err() {
        eprintln!("SKIPPED: the `minisign` program is not installed (apt-get install minisign)");
        return;
    }
    let out = Command::new("minisign")
        .arg("-Vm")
        .arg(sb.repo.join("index.toml"))
        .arg("-P")
        .arg(sb.public_key())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -V: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn trust_the_shim_refreshes_only_for_a_run_that_changes_the_host() {
    let (sb, server) = with_upgraders(|p| p);
    for args in [
        &["--dry-run"][..],
        &["plan"],
        &["status"],
        &["--help"],
        &["--yes", "--frobnicate"],
    ] {
        let run = shim(&sb, UPGRADE, args);
        assert!(
            !run.stderr.contains("refreshed"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            sb.rpm_qa()
                .contains(&"demo-upgrade-1.0.0-1.noarch".to_string()),
            "{args:?} refreshed the upgrader"
        );
    }
    // a refresh that fails still prints one JSON document with --json
    drop(server);
    let run = shim(&sb, UPGRADE, &["--yes", "--json"]);
    run.assert_code(1);
    let doc = run.json();
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("failed to refresh the upgrader"),
        "{doc}"
    );
}

/// The names of the files in the root's download cache.
fn cached(sb: &Sandbox) -> Vec<String> {
    let dir = sb.root.join("var/lib/upgrade/cache");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn trust_cache_keeps_two_artifacts_of_the_same_file_name_apart() {
    let sb = Sandbox::new();
    for (dir, name) in [("a", "demo-server"), ("b", "demo-cli")] {
        let built = pkg(name, "1.0.0").build(&sb.repo.join(dir));
        std::fs::rename(built, sb.repo.join(dir).join("demo.rpm")).unwrap();
    }
    crate::input::one_release_of(&sb, "", &["a/demo.rpm", "b/demo.rpm"]);
    crate::input::repo_index(&sb.repo).assert_code(0);
    sb.sign_index();
    let server = Server::start(&sb.repo, 0).unwrap();
    let key = sb.public_key();
    sb.write_config_repo(
        &server.url(),
        &format!("public_key = \"{key}\"\nallow_insecure = true"),
    );
    sb.run(&["--download-only"]).assert_code(0);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(server.requests("a/demo.rpm").len(), 1);
    assert_eq!(server.requests("b/demo.rpm").len(), 1);
}

#[test]
fn trust_a_corrupt_partial_download_is_fetched_again_from_the_start() {
    let (sb, server, path) = served_big();
    // every attempt is cut: the run fails and leaves a partial download...
    server.faults.lock().unwrap().cut.push((path.into(), 5));
    sb.run(&["--download-only"])
        .assert_code(1)
        .assert_stderr("the download was cut");
    let parts: Vec<String> = cached(&sb)
        .into_iter()
        .filter(|f| f.ends_with(".part"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    // ...which then rots on disk
    let part = sb.root.join("var/lib/upgrade/cache").join(&parts[0]);
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&part, bytes).unwrap();
    let before = server.requests(path).len();
    let run = sb.run(&["--download-only"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("sha256"), "{}", run.stderr);
    let requests = server.requests(path)[before..].to_vec();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].range.is_some(), "{requests:?}");
    assert_eq!(requests[1].range, None, "then once more from scratch");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
}

#[test]
fn trust_a_downloaded_plan_installs_when_the_repository_is_gone() {
    let (sb, server) = served(one_release());
    sb.run(&["--download-only"]).assert_code(0);
    // a reachable repository that serves a refused index is still refused
    let index = sb.repo.join("index.toml");
    let good = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, good.replace("sequence = 5", "sequence = 6")).unwrap();
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("changed after it was signed");
    std::fs::write(&index, good).unwrap();
    drop(server);
    let run = shim(&sb, UPGRADE, &["--yes"]);
    run.assert_code(0)
        .assert_stderr("is unreachable")
        .assert_stderr("kept by `--download-only`");
    assert_eq!(
        sb.rpm_qa(),
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    // the successful run used up the kept index: the next one needs the repository again
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("failed to fetch");
}

#[test]
fn trust_a_successful_run_prunes_the_cache_to_its_plan() {
    let (sb, _server) = served(one_release());
    sb.run(&["--yes"]).assert_code(0);
    let first = cached(&sb);
    assert!(
        first.iter().any(|f| f.contains("demo-server-1.0.0")),
        "{first:?}"
    );
    // 1.1.0 upgrades `demo-server` and no longer ships `demo-cli`
    publish_1_1_0(&sb);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("1.1.0"));
    let after = cached(&sb);
    assert_eq!(after.len(), 1, "only what the run installed: {after:?}");
    assert!(after[0].contains("demo-server-1.1.0"), "{after:?}");
}

#[test]
fn trust_the_shim_asks_before_refreshing_when_a_person_is_asked() {
    let (sb, _server) = with_upgraders(|p| p);
    let mut cmd = Command::new(UPGRADE);
    cmd.arg("--root")
        .arg(&sb.root)
        .env("NO_COLOR", "1")
        .env_remove("UPGRADE_SHIM_REEXEC");
    // the refresh is asked for before anything changes
    let code = decline_at_prompt(cmd, "Refresh the upgrader from 1.0.0 to 1.1.0 first?");
    assert_eq!(code, 4);
    assert!(
        sb.rpm_qa()
            .contains(&"demo-upgrade-1.0.0-1.noarch".to_string()),
        "declined: the upgrader is not refreshed"
    );
    // without a terminal and without --yes, nothing is refreshed for a run that will refuse
    let run = shim(&sb, UPGRADE, &[]);
    run.assert_code(2);
    assert!(!run.stderr.contains("refreshed"), "{}", run.stderr);
    assert!(
        sb.rpm_qa()
            .contains(&"demo-upgrade-1.0.0-1.noarch".to_string())
    );
}

#[test]
fn trust_an_interrupt_during_a_stalled_download_ends_the_run_at_once_and_it_resumes() {
    use nix::sys::signal::{Signal, kill};
    let (sb, server, path) = served_big();
    server.faults.lock().unwrap().stall.push((path.into(), 1));
    let run = sb.cmd(&["--yes"]).stderr(Stdio::piped()).spawn().unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(30), || !server
            .requests(path)
            .is_empty()),
        "the download never began"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    kill(nix::unistd::Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
    let out = Run::from(run.wait_with_output().unwrap());
    out.assert_code(130).assert_stderr("interrupted by SIGINT");
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(5),
        "the stalled read held the interrupt for {:?}",
        sent.elapsed()
    );
    assert!(sb.rpm_qa().is_empty());
    // the next run resumes the download where it stopped and installs
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    let requests = server.requests(path);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].range.is_some_and(|r| r > 0), "{requests:?}");
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
}
