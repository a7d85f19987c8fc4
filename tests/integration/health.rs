//! Health gates and automatic rollback (issue 14, SPEC §13): checks that pass commit the run; a
//! required check that fails takes the host back to the run's restore point in the same
//! invocation (packages, database, configuration, services: exit 6); a `wanted` one warns;
//! `on_failure = "stop"`, an inconclusive check or a run without a restore point leave the new
//! release running for a person (exit 7), who then runs `rollback`, `commit` or `upgrade`; a
//! hanging check is bounded by its timeout; a kill during the checks or the automatic rollback
//! converges; `health` runs the checks alone; `history --json` tells it all.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::rollback::{
    HostState, VERSION_FILE, host_state, migrations, releases, served, statuses, version_service,
};
use crate::support::*;

/// Health checks tried for 3 s at most, every 200 ms, each attempt bounded by 2 s.
const FAST: &str = "[health]\ntimeout = \"3s\"\ninterval = \"200ms\"\ncheck_timeout = \"2s\"\n";

/// Writes the configuration: `db`, runit, [`FAST`] health settings, and `extra` (more of
/// `[health]`, then `[[health.check]]` tables).
fn config(sb: &Sandbox, db: &TestDb, extra: &str) {
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n{FAST}{extra}",
        db.config()
    ));
}

/// The product on `db` under runit, configured by [`config`].
fn product_with_service(sb: &Sandbox, db: &TestDb, extra: &str) -> (Runit, u16) {
    config(sb, db, extra);
    releases(sb);
    migrations(sb);
    version_service(sb)
}

/// A vendor `health.d` program that asks the service on `port` and fails when it answers with
/// `bad` in it (the broken release), is inconclusive when nothing answers, else passes.
fn served_check(sb: &Sandbox, port: u16, bad: &str) -> PathBuf {
    health_program(
        sb,
        false,
        "50-served",
        &format!(
            "answer=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && cat <&3' 2>/dev/null)\n\
             echo \"demo answers: $answer\"\n\
             case \"$answer\" in *'{bad}'*) exit 1;; '') exit 75;; esac"
        ),
    )
}

/// A vendor `health.d/10-slow` that, the first time only, writes its pid into `marker` and
/// hangs; then it passes.
fn hang_once(sb: &Sandbox, marker: &Path) {
    health_program(
        sb,
        false,
        "10-slow",
        &format!(
            "test -e {m}.seen && exit 0\necho $$ > {m}.tmp && mv {m}.tmp {m} && touch {m}.seen\nexec sleep 30",
            m = marker.display()
        ),
    );
}

/// Writes an executable `health.d/NAME` (the admin's with `admin`, else the vendor's).
fn health_program(sb: &Sandbox, admin: bool, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = match admin {
        true => sb.root.join("etc/upgrade/health.d"),
        false => sb.root.join("usr/share/upgrade/health.d"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An HTTP server on 127.0.0.1 that answers every request with `status` and `body`, for as long
/// as the test runs.
fn http_server(status: &'static str, body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `history --json`, oldest run first.
fn history(sb: &Sandbox) -> Vec<serde_json::Value> {
    let run = sb.run(&["history", "--json"]);
    run.assert_code(0);
    run.json().as_array().unwrap().clone()
}

/// Each result of a health report as `key outcome`, in the report's order.
fn outcomes(report: &serde_json::Value) -> Vec<String> {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {report}"))
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["key"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn passing_checks_commit_the_run() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let http = http_server("200 OK", "status: ok\n");
    let (runit, port) = product_with_service(&sb, &db, "");
    config(
        &sb,
        &db,
        &format!(
            "[[health.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:{http}/health\"\nbody = \"ok\"\n\
             [[health.check]]\nname = \"demo-port\"\ntcp = \"127.0.0.1:{port}\"\n"
        ),
    );
    served_check(&sb, port, "no such version");
    let up = sb.run(&["--yes", "--to", "1.0.0", "--json"]);
    up.assert_code(0).assert_stderr("health checks");
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(statuses(&sb), ["succeeded"]);
    let runs = history(&sb);
    assert_eq!(runs[0]["health"]["verdict"], "healthy", "{:#}", runs[0]);
    assert_eq!(
        outcomes(&runs[0]["health"]),
        [
            "health.d:50-served passed",
            "http:api passed",
            "tcp:demo-port passed"
        ]
    );
    // the program saw the hook environment
    let detail = sb.run(&["history", "1", "--json"]);
    detail.assert_code(0);
    let journal: Vec<String> = detail.json()["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(journal.last().map(String::as_str), Some("health"));
    // `health` runs the same checks alone, once
    let alone = sb.run(&["health", "--json"]);
    alone.assert_code(0);
    assert_eq!(alone.json()["verdict"], "healthy");
    assert_eq!(alone.json()["installed"], "1.0.0");
    assert_eq!(outcomes(&alone.json()).len(), 3);
}

/// The upgrade to 2.0.0 fails its health check (the service answers with the broken release):
/// the same invocation puts back 1.0.0's packages, database and configuration, the service
/// answers 1.0.0 again, exit 6; `history` shows the run, its checks and the rollback.
fn failing_check_rolls_back(sb: Sandbox, db: TestDb) {
    let (runit, port) = product_with_service(&sb, &db, "");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    served_check(&sb, port, "2.0.0");
    let before: HostState = host_state(&sb, &db);
    let dump_before = full_dump(&db);

    let up = sb.run(&["--yes", "--json"]);
    up.assert_code(6)
        .assert_stderr("health.d:50-served: exit 1: demo answers: demo 2.0.0")
        .assert_stderr("rolling the host back")
        .assert_stderr("the host was rolled back to 1.0.0 by run 3");
    let doc = up.json();
    assert_eq!(
        (
            doc["exit_code"].as_i64(),
            doc["run"].as_i64(),
            doc["rollback_run"].as_i64()
        ),
        (Some(6), Some(2), Some(3))
    );
    assert_eq!(outcomes(&doc["health"]), ["health.d:50-served failed"]);
    assert_eq!(host_state(&sb, &db), before);
    assert_same(
        &full_dump(&db),
        &dump_before,
        "after the automatic rollback",
    );
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));

    let runs = history(&sb);
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
    assert_eq!(runs[1]["health"]["verdict"], "failed");
    assert_eq!(runs[1]["rolled_back_by"], 3);
    assert_eq!(
        runs[1]["error"],
        "health checks failed; rolled back by run 3"
    );
    assert_eq!(
        (
            runs[2]["action"].as_str(),
            runs[2]["rolls_back"].as_i64(),
            runs[2]["automatic"].as_bool()
        ),
        (Some("rollback"), Some(2), Some(true))
    );
    // the rollback's own checks ran, and passed
    assert_eq!(runs[2]["health"]["verdict"], "healthy");
    let text = sb.run(&["history"]);
    assert!(
        text.stderr.contains("health: failed, rolled back by run 3")
            && text.stderr.contains("undoes run 2 after its health checks"),
        "{}",
        text.stderr
    );
}

#[test]
fn sqlite_failing_check_rolls_back() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    failing_check_rolls_back(sb, db);
}

#[test]
fn postgres_failing_check_rolls_back() {
    failing_check_rolls_back(Sandbox::new(), TestDb::postgres());
}

#[test]
fn mariadb_failing_check_rolls_back() {
    failing_check_rolls_back(Sandbox::new(), TestDb::mariadb());
}

#[test]
fn failing_wanted_check_warns_and_commits() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let closed = free_port();
    let _runit = product_with_service(
        &sb,
        &db,
        &format!(
            "[[health.check]]\nname = \"extra\"\ntcp = \"127.0.0.1:{closed}\"\nrequired = false\n"
        ),
    );
    let up = sb.run(&["--yes", "--to", "1.0.0"]);
    up.assert_code(0).assert_stderr("warning      tcp:extra");
    let runs = history(&sb);
    assert_eq!(statuses(&sb), ["succeeded"]);
    assert_eq!(runs[0]["health"]["verdict"], "warned");
    let result = &runs[0]["health"]["results"][0];
    assert_eq!(
        (result["required"].as_bool(), result["outcome"].as_str()),
        (Some(false), Some("failed"))
    );
    assert!(
        result["attempts"].as_u64().unwrap() > 1,
        "not tried again: {result}"
    );
    // `health` says the same, exit 0
    sb.run(&["health"]).assert_code(0);
}

/// `on_failure = "stop"`: the broken release stays running, the run `unhealthy`, exit 7; the
/// plain `health` says so too. Then `then` ends it.
fn stopped_for_a_person(then: &str) {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (runit, port) = product_with_service(&sb, &db, "");
    config(&sb, &db, "on_failure = \"stop\"\n");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    served_check(&sb, port, "2.0.0");
    let before = host_state(&sb, &db);
    let up = sb.run(&["--yes"]);
    up.assert_code(7)
        .assert_stderr("health checks failed after run 2: health.d:50-served")
        .assert_stderr("on_failure = \"stop\"")
        .assert_stderr("real-upgrade commit");
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
    assert_eq!(runit.state("demo"), "run");
    assert_eq!(statuses(&sb), ["succeeded", "unhealthy"]);
    sb.run(&["health"]).assert_code(7);
    let status = sb.run(&["status"]);
    assert!(
        status
            .stderr
            .contains("run 2 to 2.0.0 is unhealthy: its health checks did not pass"),
        "{}",
        status.stderr
    );
    match then {
        "rollback" => {
            sb.run(&["rollback", "--yes"])
                .assert_code(0)
                .assert_stderr("is rolled back: 1.0.0 is installed");
            assert_eq!(host_state(&sb, &db), before);
            assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
            assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
        }
        _ => {
            let commit = sb.run(&["commit", "--json"]);
            commit.assert_code(0);
            assert_eq!(commit.json()["failing"][0], "health.d:50-served");
            assert_eq!(statuses(&sb), ["succeeded", "succeeded"]);
            assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
            assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
            let runs = history(&sb);
            assert!(
                runs[1]["error"].as_str().unwrap().contains(
                    "committed by hand with health checks not passing: health.d:50-served"
                ),
                "{}",
                runs[1]
            );
            // nothing is open any more: up to date, and nothing to commit
            sb.run(&["--yes"])
                .assert_code(0)
                .assert_stderr("up to date");
            sb.run(&["commit"])
                .assert_code(2)
                .assert_stderr("nothing to commit: no run is open");
        }
    }
}

#[test]
fn on_failure_stop_leaves_the_release_then_rollback() {
    stopped_for_a_person("rollback");
}

#[test]
fn on_failure_stop_leaves_the_release_then_commit() {
    stopped_for_a_person("commit");
}

/// An inconclusive check (exit 75) stops for a person, even with `on_failure = "rollback"`;
/// once it can tell, the plain `upgrade` checks again and commits.
#[test]
fn inconclusive_check_stops_for_a_person() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _runit = product_with_service(&sb, &db, "");
    let flag = sb.base.join("can-tell");
    health_program(
        &sb,
        true,
        "20-maybe",
        &format!(
            "test -e {} || {{ echo 'cannot tell yet'; exit 75; }}",
            flag.display()
        ),
    );
    let up = sb.run(&["--yes", "--to", "1.0.0"]);
    up.assert_code(7)
        .assert_stderr("health checks could not tell after run 1: health.d:20-maybe")
        .assert_stderr("inconclusive health.d:20-maybe: exit 75: cannot tell yet");
    assert_eq!(statuses(&sb), ["unhealthy"]);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    std::fs::write(&flag, "").unwrap();
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(statuses(&sb), ["succeeded"]);
    let runs = history(&sb);
    assert_eq!(runs[0]["health"]["verdict"], "healthy");
}

/// A check that hangs is ended by its timeout, each attempt, and the gate by `[health] timeout`:
/// the run fails its checks within seconds, not a minute.
#[test]
fn hanging_check_is_bounded_by_its_timeout() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _runit = product_with_service(&sb, &db, "");
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n[health]\ntimeout = \"1s\"\ninterval = \"100ms\"\ncheck_timeout = \"1s\"\non_failure = \"stop\"\n",
        db.config()
    ));
    health_program(&sb, false, "30-hang", "echo hanging; exec sleep 60");
    let started = Instant::now();
    let up = sb.run(&["--yes", "--to", "1.0.0"]);
    let took = started.elapsed();
    up.assert_code(7).assert_stderr("timed out after 1s");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let runs = history(&sb);
    assert_eq!(outcomes(&runs[0]["health"]), ["health.d:30-hang failed"]);
}

/// A run without a restore point cannot be rolled back: its failed checks stop for a person.
#[test]
fn no_restore_point_stops_for_a_person() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (_runit, port) = product_with_service(&sb, &db, "");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    served_check(&sb, port, "2.0.0");
    sb.run(&["--yes", "--no-restore-point"])
        .assert_code(7)
        .assert_stderr("cannot be rolled back")
        .assert_stderr("took no restore point");
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
    assert_eq!(statuses(&sb), ["succeeded", "unhealthy"]);
}

/// Waits for `marker` (a program writes its pid there), then kills `child` and that program
/// with SIGKILL, as a power cut would.
fn kill_both(mut child: std::process::Child, marker: &Path) {
    child.kill().unwrap();
    child.wait().unwrap();
    let pid: i32 = std::fs::read_to_string(marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// kill -9 during the health checks: the next `upgrade` runs them again (and no step before
/// them), they fail, and the host is rolled back (exit 6).
#[test]
fn kill_during_the_checks_converges() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (_runit, port) = product_with_service(&sb, &db, "");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = host_state(&sb, &db);
    let marker = sb.base.join("checking");
    served_check(&sb, port, "2.0.0");
    hang_once(&sb, &marker);
    let child = sb.spawn_until(&["--yes"], &marker);
    kill_both(child, &marker);
    assert_eq!(statuses(&sb), ["succeeded", "running"]);
    let again = sb.run(&["--yes"]);
    again
        .assert_code(6)
        .assert_stderr("install packages (already done)");
    assert_eq!(host_state(&sb, &db), before);
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
}

/// kill -9 during the automatic rollback: the next plain `upgrade` finishes the rollback, not
/// the upgrade, and ends in exit 6 as the first one would have.
#[test]
fn kill_during_the_automatic_rollback_converges() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let (_runit, port) = product_with_service(&sb, &db, "");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before = host_state(&sb, &db);
    let dump_before = full_dump(&db);
    served_check(&sb, port, "2.0.0");
    let marker = sb.base.join("rolling-back");
    sb.hook(
        "post",
        false,
        "10-slow-rollback",
        &format!(
            "[ \"$UPGRADE_ACTION\" = rollback ] || exit 0\ntest -e {m}.seen && exit 0\n\
             echo $$ > {m}.tmp && mv {m}.tmp {m} && touch {m}.seen\nexec sleep 30",
            m = marker.display()
        ),
    );
    let child = sb.spawn_until(&["--yes"], &marker);
    kill_both(child, &marker);
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "running"]);
    let again = sb.run(&["--yes", "--json"]);
    again
        .assert_code(6)
        .assert_stderr("(already done)")
        .assert_stderr("rolled back to 1.0.0 by run 3");
    assert_eq!(again.json()["run"], 2);
    assert_eq!(host_state(&sb, &db), before);
    assert_same(&full_dump(&db), &dump_before, "after the resumed rollback");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    assert_eq!(statuses(&sb), ["succeeded", "rolled-back", "succeeded"]);
}

#[test]
fn health_alone() {
    let sb = Sandbox::new();
    // nothing installed: nothing to check
    sb.run(&["health"])
        .assert_code(0)
        .assert_stderr("nothing is installed");
    let db = TestDb::sqlite(&sb);
    let bad = http_server("500 Internal Server Error", "broken\n");
    let _runit = product_with_service(&sb, &db, "");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    config(
        &sb,
        &db,
        &format!("[[health.check]]\nname = \"api\"\nhttp = \"http://127.0.0.1:{bad}/\"\n"),
    );
    let started = Instant::now();
    let run = sb.run(&["health", "--json"]);
    run.assert_code(7)
        .assert_stderr("http:api: HTTP 500 (expected 200)");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "tried again without --wait"
    );
    assert_eq!(run.json()["verdict"], "failed");
    assert_eq!(run.json()["results"][0]["attempts"], 1);
    // `--wait` tries again until [health] timeout
    let waited = sb.run(&["health", "--wait", "--json"]);
    waited.assert_code(7);
    assert!(waited.json()["results"][0]["attempts"].as_u64().unwrap() > 1);
    // nothing changed: no run, no status
    assert_eq!(statuses(&sb), ["succeeded"]);
}

#[test]
fn bad_health_configuration_is_refused() {
    let sb = Sandbox::new();
    for (extra, needle) in [
        ("[[health.check]]\nname = \"x\"\n", "needs exactly one of"),
        (
            "[[health.check]]\nname = \"a b\"\ntcp = \"127.0.0.1:1\"\n",
            "not a run-parts name",
        ),
        ("[health]\ninterval = \"2h\"\n", "at most 1m"),
        ("[health]\non_failure = \"panic\"\n", "unknown variant"),
        (
            "[[health.check]]\nname = \"x\"\ntcp = \"a:1\"\n[[health.check]]\nname = \"x\"\ntcp = \"b:1\"\n",
            "two health checks are named `tcp:x`",
        ),
    ] {
        sb.write_config(extra);
        sb.run(&["health"]).assert_code(2).assert_stderr(needle);
    }
}

/// Checks a release declares in the index (`[[releases.health]]` of `releases.toml`) are the
/// target release's: 2.0.0's fails and the host goes back to 1.0.0, whose own check the
/// rollback and `health` run, as the run that installed 1.0.0 planned it.
#[test]
fn a_release_declares_its_own_checks() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    config(&sb, &db, "");
    let (_runit, port) = version_service(&sb);
    let closed = free_port();
    let version = |v: &str| pkg("demo-server", v).file(VERSION_FILE, v, 0o644);
    sb.publish(vec![
        rel("1.0.0", vec![version("1.0.0")]).with_toml(&format!(
            "[[releases.health]]\nname = \"port\"\ntcp = \"127.0.0.1:{port}\"\n"
        )),
        rel("2.0.0", vec![version("2.0.0")]).with_toml(&format!(
            "[[releases.health]]\nname = \"admin\"\ntcp = \"127.0.0.1:{closed}\"\n"
        )),
    ]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let plan = sb.run(&["plan"]);
    assert!(
        plan.stderr.contains("health checks:        tcp:admin"),
        "{}",
        plan.stderr
    );
    sb.run(&["--yes"])
        .assert_code(6)
        .assert_stderr("tcp:admin: 127.0.0.1:")
        .assert_stderr("release 2.0.0");
    assert_eq!(served(port).as_deref(), Some("demo 1.0.0"));
    let runs = history(&sb);
    let sources = |run: &serde_json::Value| -> Vec<String> {
        run["health"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["key"].as_str().unwrap(),
                    r["source"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(sources(&runs[0]), ["tcp:port release 1.0.0"]);
    assert_eq!(sources(&runs[1]), ["tcp:admin release 2.0.0"]);
    assert_eq!(sources(&runs[2]), ["tcp:port release 1.0.0"]);
    let alone = sb.run(&["health", "--json"]);
    alone.assert_code(0);
    assert_eq!(outcomes(&alone.json()), ["tcp:port passed"]);
}

/// SIGTERM during the checks ends the check's process group and the run (exit 143), which
/// stays open; the next `upgrade` runs the checks again, and nothing before them.
#[test]
fn sigterm_during_the_checks_leaves_the_run_open() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _runit = product_with_service(&sb, &db, "");
    let marker = sb.base.join("checking");
    hang_once(&sb, &marker);
    let child = sb.spawn_until(&["--yes", "--to", "1.0.0"], &marker);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the check's process still runs"
    );
    assert_eq!(statuses(&sb), ["failed"]);
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("install packages (already done)");
    assert_eq!(statuses(&sb), ["succeeded"]);
}

/// A host adopted from an install that predates the tool, whose packages no repository has any
/// more: its restore point is partial (preflight warns), so the release that fails its health
/// check cannot be rolled back: it stays running for a person (exit 7), and `rollback` refuses
/// too, saying why.
#[test]
fn an_adopted_host_with_a_partial_restore_point_stops_for_a_person() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    config(&sb, &db, "");
    let (_runit, port) = version_service(&sb);
    let version = |v: &str| pkg("demo-server", v).file(VERSION_FILE, v, 0o644);
    sb.publish(vec![
        rel("1.0.0", vec![version("1.0.0")]),
        rel("2.0.0", vec![version("2.0.0")]),
    ]);
    let old: Vec<PathBuf> = std::fs::read_dir(sb.repo.join("packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("demo-server-1.0.0")
        })
        .collect();
    sb.rpm_install(&old);
    sb.run(&["adopt", "1.0.0"]).assert_code(0);
    // the vendor withdraws 1.0.0: its build can no longer be had
    sb.publish(vec![rel("2.0.0", vec![version("2.0.0")])]);
    served_check(&sb, port, "2.0.0");
    let check = sb.run(&["check", "--json"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("restore-point:packages")
            && check.stdout.contains("demo-server-1.0.0-1"),
        "{}",
        check.stdout
    );
    sb.run(&["--yes"])
        .assert_code(7)
        .assert_stderr("cannot be rolled back")
        .assert_stderr("is partial");
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
    assert_eq!(statuses(&sb), ["adopted", "unhealthy"]);
    let rpm = sb.rpm_qa();
    sb.run(&["rollback", "--yes"])
        .assert_code(2)
        .assert_stderr("is partial");
    assert_eq!(sb.rpm_qa(), rpm);
    assert_eq!(statuses(&sb), ["adopted", "unhealthy"]);
}
