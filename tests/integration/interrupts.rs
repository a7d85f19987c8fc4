//! Interrupts (issue 12 item 1, SPEC §5): SIGINT, SIGTERM and SIGHUP in a hook, an rpm
//! transaction, a migration on each database and the service start, and Ctrl-C at the prompt.
//! Each ends with the run open, exit 130 or 143, the hook's process group gone, rpm never cut, the
//! migration transaction rolled back and the stopped services running again; the next run
//! resumes where the interrupted one stopped and does no step twice.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// A sandbox with one runit service, `db` (of package demo-server), answering on its own port,
/// and releases 1.0.0 and 2.0.0; `extra` is more configuration.
struct Fixture {
    sb: Sandbox,
    _runit: Runit,
    port: u16,
}

impl Fixture {
    fn new(extra: &str, db_delay: &str) -> Fixture {
        let sb = Sandbox::new();
        sb.write_config(&format!("[services]\nbackend = \"runit\"\n{extra}"));
        let mut runit = Runit::new(sb.root.join("etc/service"));
        let port = free_port();
        let delay = sb.base.join("db.delay");
        std::fs::write(&delay, db_delay).unwrap();
        runit.service(
            "db",
            &format!(
                "exec {} --name db --port {port} --delay \"$(cat {})\" 2>&1",
                demo_service().display(),
                delay.display()
            ),
        );
        sb.service_order(&format!(
            "[service.db]\npackages = [\"demo-server\"]\nready = {{ tcp = \"127.0.0.1:{port}\", timeout = \"20s\" }}\n"
        ));
        runit.start();
        Fixture {
            sb,
            _runit: runit,
            port,
        }
    }

    fn publish(&self, server_2: RpmSpec) {
        self.sb.publish(vec![
            rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
            rel("2.0.0", vec![server_2]),
        ]);
    }

    fn answers(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.sb.base.join(name)
    }
}

/// Sends `signal` to `child` and waits (at most `bound`) for it to end.
fn interrupt(child: &mut Child, signal: Signal, bound: Duration) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        if sent.elapsed() > bound {
            let _ = child.kill();
            panic!("real-upgrade did not end within {bound:?} of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exit code and the message of a run interrupted by `signal` (SPEC §10).
fn expected(signal: Signal) -> (i32, String) {
    let code = match signal {
        Signal::SIGINT => 130,
        _ => 143,
    };
    (code, format!("interrupted by {}", signal.as_str()))
}

/// Starts `real-upgrade ARGS` with its stderr kept, and waits until `marker` exists.
fn spawn_until(sb: &Sandbox, args: &[&str], marker: &Path) -> Child {
    let mut child = sb.cmd(args).stderr(Stdio::piped()).spawn().unwrap();
    if !wait_until(Duration::from_secs(60), || marker.exists()) {
        let _ = child.kill();
        panic!("`{}` never appeared", marker.display());
    }
    child
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_signal_in_a_hook_ends_its_process_group_starts_the_stopped_services_and_the_run_resumes() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        in_a_hook(signal);
    }
}

fn in_a_hook(signal: Signal) {
    let fx = Fixture::new("", "0s");
    fx.publish(pkg("demo-server", "2.0.0"));
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert!(wait_until(Duration::from_secs(10), || fx.answers()));
    fx.sb.logging_hook("pre", false, "10-log");
    let (fast, marker, child_pid) = (
        fx.marker("fast"),
        fx.marker("hook-running"),
        fx.marker("child.pid"),
    );
    fx.sb.hook(
        "post",
        true,
        "50-slow",
        &format!(
            "echo post-slow >> {log}\n[ -e {fast} ] && exit 0\nsleep 300 &\necho $! > {child}\ntouch {marker}\nwait",
            log = fx.sb.hook_log_path().display(),
            fast = fast.display(),
            child = child_pid.display(),
            marker = marker.display(),
        ),
    );
    let mut run = spawn_until(&fx.sb, &["--yes"], &marker);
    // the post hook runs after the packages, with db stopped
    assert!(!fx.answers(), "db answers while the post hooks run");
    let (status, took) = interrupt(&mut run, signal, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    let (code, message) = expected(signal);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(stderr.contains("run `upgrade` again to resume"), "{stderr}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: the hook ends at SIGTERM"
    );
    // the hook's whole process group is gone, its background child with it
    let child = read_pid(&child_pid);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(child)),
        "the hook's child {child} outlived the interrupt"
    );
    // the stopped service runs again, the packages stay as installed, the run stays open
    assert!(
        wait_until(Duration::from_secs(10), || fx.answers()),
        "db was not started again:\n{stderr}"
    );
    assert_eq!(
        fx.sb.rpm_qa(),
        vec!["demo-server-2.0.0-1.x86_64".to_string()]
    );
    assert_eq!(fx.sb.installed().as_deref(), Some("1.0.0"));
    std::fs::write(&fast, "").unwrap();
    fx.sb
        .run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    assert_eq!(fx.sb.installed().as_deref(), Some("2.0.0"));
    assert!(fx.answers());
    // the pre hook ran once; the interrupted post hook again, to its end
    assert_eq!(
        fx.sb.hook_log(),
        vec![
            "pre 10-log from=1.0.0 to=2.0.0 fresh=0 resumed=0",
            "post-slow",
            "post-slow"
        ]
    );
}

#[test]
fn sigterm_to_a_hook_that_ignores_it_kills_its_group_after_the_grace_period() {
    let fx = Fixture::new("", "0s");
    fx.publish(pkg("demo-server", "2.0.0"));
    let (marker, child_pid) = (fx.marker("hook-running"), fx.marker("child.pid"));
    fx.sb.hook(
        "pre",
        false,
        "10-stubborn",
        &format!(
            "trap '' TERM\nsleep 300 &\necho $! > {child}\ntouch {marker}\nwait\nwait",
            child = child_pid.display(),
            marker = marker.display(),
        ),
    );
    let mut run = spawn_until(&fx.sb, &["--yes"], &marker);
    let (status, took) = interrupt(&mut run, Signal::SIGTERM, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "took {took:?}: SIGKILL comes after the 5 s grace period"
    );
    let child = read_pid(&child_pid);
    assert!(wait_until(Duration::from_secs(5), || !alive(child)));
    // nothing installed, the run open: `abandon` may close it, as it changed nothing
    assert!(fx.sb.rpm_qa().is_empty());
    fx.sb.run(&["abandon"]).assert_code(0);
}

/// 1.0.0 installed; 2.0.0's demo-server has a %post that takes 3 s, logging its start and end
/// (inside the root) to the files returned.
fn slow_post_at_1_0_0() -> (Fixture, PathBuf, PathBuf) {
    let fx = Fixture::new("", "0s");
    let begun = fx.sb.root.join("var/lib/rpm-post-begun");
    let done = fx.sb.root.join("var/lib/rpm-post-done");
    let slow_post = "local f = io.open('/var/lib/rpm-post-begun', 'a'); f:write('x\\n'); f:close()\n\
         posix.sleep(3)\n\
         local g = io.open('/var/lib/rpm-post-done', 'a'); g:write('x\\n'); g:close()";
    fx.publish(pkg("demo-server", "2.0.0").post_lua(slow_post));
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    (fx, begun, done)
}

#[test]
fn an_interrupt_during_the_rpm_transaction_waits_for_it_and_holds_the_lock() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        during_rpm(signal);
    }
}

fn during_rpm(signal: Signal) {
    let (fx, begun, done) = slow_post_at_1_0_0();
    let mut run = spawn_until(&fx.sb, &["--yes"], &begun);
    let sent = Instant::now();
    kill(Pid::from_raw(run.id() as i32), signal).unwrap();
    // while rpm finishes, the run holds the lock: a second run is refused, not let in
    std::thread::sleep(Duration::from_millis(300));
    if run.try_wait().unwrap().is_none() {
        fx.sb.run(&["--yes"]).assert_code(5);
    }
    let (status, _) = interrupt(&mut run, signal, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    let (code, message) = expected(signal);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(sent.elapsed() >= Duration::from_millis(2500), "rpm was cut");
    // rpm ran to its end, once
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "x\n");
    assert_eq!(
        fx.sb.rpm_qa(),
        vec!["demo-server-2.0.0-1.x86_64".to_string()]
    );
    assert!(
        wait_until(Duration::from_secs(10), || fx.answers()),
        "{stderr}"
    );
    // the resumed run does not install again
    fx.sb
        .run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    assert_eq!(std::fs::read_to_string(&begun).unwrap(), "x\n");
    assert_eq!(fx.sb.installed().as_deref(), Some("2.0.0"));
}

/// A hop 1.0.0 → 2.0.0 with migrations 001 (fast), 002 (`slow`) and
/// 003, on the database `make_db` gives; `running` says when 002 runs, and `signal` comes then. Returns after the
/// interrupted run, asserting its exit and that db runs again.
fn interrupted_migration(
    signal: Signal,
    make_db: impl FnOnce(&Sandbox) -> TestDb,
    slow: &str,
    running: &dyn Fn(&Fixture) -> bool,
) -> (Fixture, TestDb, String) {
    let fx = Fixture::new("", "0s");
    let db = make_db(&fx.sb);
    fx.sb
        .write_config(&format!("[services]\nbackend = \"runit\"\n{}", db.config()));
    fx.publish(pkg("demo-server", "2.0.0"));
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    fx.sb.migration(
        "2.0.0",
        "001-first.sql",
        "CREATE TABLE first_t (id INTEGER);",
    );
    fx.sb.migration("2.0.0", "002-slow.sql", slow);
    fx.sb.migration(
        "2.0.0",
        "003-third.sql",
        "CREATE TABLE third_t (id INTEGER);",
    );
    let mut run = fx
        .sb
        .cmd(&["--yes"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_until(Duration::from_secs(60), || running(&fx)) {
        let _ = run.kill();
        panic!("the slow migration never ran");
    }
    let (status, took) = interrupt(&mut run, signal, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    let (code, message) = expected(signal);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        wait_until(Duration::from_secs(10), || fx.answers()),
        "db was not started again:\n{stderr}"
    );
    (fx, db, stderr)
}

fn rolled_back_then_resumed(fx: Fixture, db: TestDb, stderr: &str) {
    // the whole batch rolled back, ledger rows with it
    assert!(!db.has_table("first_t"), "{stderr}");
    assert!(db.ledger().is_empty(), "{:?}", db.ledger());
    // the resumed run applies them all (002 fixed meanwhile)
    fx.sb.migration(
        "2.0.0",
        "002-slow.sql",
        "CREATE TABLE second_t (id INTEGER);",
    );
    fx.sb
        .run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    for t in ["first_t", "second_t", "third_t"] {
        assert!(db.has_table(t), "{t}");
    }
    assert_eq!(db.ledger().len(), 3, "{:?}", db.ledger());
}

#[test]
fn a_signal_in_a_sqlite_migration_cuts_it_and_rolls_the_batch_back() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        in_sqlite(signal);
    }
}

fn in_sqlite(signal: Signal) {
    // a statement that runs for minutes unless cut
    let slow = "CREATE TABLE slow_t AS SELECT count(*) AS n FROM (WITH RECURSIVE c(x) AS \
                (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT x FROM c);";
    let (fx, db, stderr) = interrupted_migration(signal, TestDb::sqlite, slow, &|fx| {
        // the lock beside the database is taken just before the batch begins
        let locked = fx.sb.root.join("var/lib/demo/test.upgrade-lock").exists();
        if locked {
            std::thread::sleep(Duration::from_millis(500));
        }
        locked
    });
    assert!(!db.has_table("slow_t"));
    rolled_back_then_resumed(fx, db, &stderr);
}

#[test]
fn a_signal_in_a_postgres_migration_cancels_it_and_rolls_the_batch_back() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        in_postgres(signal);
    }
}

fn in_postgres(signal: Signal) {
    let db = TestDb::postgres();
    let name = match &db {
        TestDb::Postgres { name, .. } => name.clone(),
        _ => unreachable!(),
    };
    let (fx, db, stderr) = interrupted_migration(signal, |_| db, "SELECT pg_sleep(60);", &|_| {
        let mut admin = postgres::Client::connect(POSTGRES_ADMIN, postgres::NoTls).unwrap();
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
                &[&name],
            )
            .unwrap()
            .get(0);
        n > 0
    });
    rolled_back_then_resumed(fx, db, &stderr);
}

#[test]
fn a_signal_in_a_mariadb_migration_lets_it_finish_and_stops_before_the_next() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        in_mariadb(signal);
    }
}

fn in_mariadb(signal: Signal) {
    let db = TestDb::mariadb();
    let name = match &db {
        TestDb::Mariadb { name, .. } => name.clone(),
        _ => unreachable!(),
    };
    let (fx, db, stderr) = interrupted_migration(
        signal,
        |_| db,
        "DO SLEEP(3); CREATE TABLE second_t (id INTEGER);",
        &|_| {
            use mysql::prelude::Queryable;
            let mut admin =
                mysql::Conn::new(mysql::Opts::from_url(MARIADB_ADMIN).unwrap()).unwrap();
            let n: Option<i64> = admin
                .exec_first(
                    "SELECT count(*) FROM information_schema.processlist WHERE db = ? AND info LIKE '%SLEEP(3)%'",
                    (&name,),
                )
                .unwrap();
            n.unwrap_or(0) > 0
        },
    );
    // MariaDB commits schema changes as it goes: the running migration finished, with its row;
    // the next did not start
    assert!(
        db.has_table("first_t") && db.has_table("second_t"),
        "{stderr}"
    );
    assert!(!db.has_table("third_t"));
    assert_eq!(db.ledger().len(), 2, "{:?}", db.ledger());
    fx.sb
        .run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    assert!(db.has_table("third_t"));
    assert_eq!(db.ledger().len(), 3, "{:?}", db.ledger());
}

#[test]
fn a_signal_while_services_start_lets_them_start_and_leaves_the_record_to_the_resume() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        while_services_start(signal);
    }
}

fn while_services_start(signal: Signal) {
    let fx = Fixture::new("", "0s");
    fx.publish(pkg("demo-server", "2.0.0"));
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    // db takes 3 s to answer after it starts; the post hook says when the start step is near
    std::fs::write(fx.sb.base.join("db.delay"), "3s").unwrap();
    let marker = fx.marker("post-done");
    fx.sb.hook(
        "post",
        false,
        "90-mark",
        &format!("touch {}", marker.display()),
    );
    let mut run = spawn_until(&fx.sb, &["--yes"], &marker);
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = interrupt(&mut run, signal, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    let (code, message) = expected(signal);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(
        took >= Duration::from_secs(1),
        "the start step was not waited for: {took:?}"
    );
    // the service runs; the version is recorded by the resumed run
    assert!(fx.answers(), "{stderr}");
    assert_eq!(fx.sb.installed().as_deref(), Some("1.0.0"));
    let resumed = fx.sb.run(&["--yes"]);
    resumed.assert_code(0).assert_stderr("resuming run");
    assert!(
        resumed.stderr.contains("start services") && resumed.stderr.contains("already done"),
        "{}",
        resumed.stderr
    );
    assert_eq!(fx.sb.installed().as_deref(), Some("2.0.0"));
}

/// Runs `real-upgrade ARGS` on a terminal inside `sh`, which saves the terminal's settings before
/// and after; returns the exit code and whether the settings are the same.
fn at_the_prompt(
    sb: &Sandbox,
    args: &str,
    answer: impl FnOnce(&mut rexpect::session::PtySession),
) -> (i32, bool) {
    let (before, after) = (sb.base.join("stty.before"), sb.base.join("stty.after"));
    let script = format!(
        "stty -g > {b}; NO_COLOR=1 {exe} --root {root} {args}; echo \"exit=$?\"; stty -g > {a}",
        b = before.display(),
        a = after.display(),
        exe = REAL_UPGRADE,
        root = sb.root.display(),
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn on a pty");
    p.exp_string("Upgrade demo from nothing installed to 3.0.0?")
        .expect("the prompt");
    answer(&mut p);
    let (_, code) = p.exp_regex("exit=[0-9]+").expect("the exit code");
    p.exp_eof().expect("the end");
    let code = code.trim_start_matches("exit=").parse().unwrap();
    let same =
        std::fs::read_to_string(&before).unwrap() == std::fs::read_to_string(&after).unwrap();
    (code, same)
}

#[test]
fn ctrl_c_at_the_prompt_declines_and_leaves_the_terminal_as_it_was() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let (code, same) = at_the_prompt(&sb, "", |p| {
        p.send_control('c').unwrap();
    });
    assert_eq!(code, 4);
    assert!(same, "the terminal's settings changed");
    assert!(sb.rpm_qa().is_empty());
    assert_eq!(sb.installed(), None);
}

#[test]
fn sigterm_at_the_prompt_exits_143_and_leaves_the_terminal_as_it_was() {
    let sb = Sandbox::new();
    three_releases(&sb);
    let root = sb.root.display().to_string();
    let (code, same) = at_the_prompt(&sb, "", |_| {
        // the real-upgrade on the terminal: the process whose command line names this root
        let pid = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.starts_with(REAL_UPGRADE) && c.contains(&root)
                })
            })
            .expect("real-upgrade at the prompt");
        kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    });
    assert_eq!(code, 143);
    assert!(same, "the terminal's settings changed");
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn a_run_whose_terminal_went_away_goes_on_to_its_end() {
    // stderr closed under the run (a lost ssh session, `2>&1 | head`): nothing it writes may
    // end it in the middle of a step
    let sb = Sandbox::new();
    three_releases(&sb);
    sb.logging_hook("post", false, "50-log");
    let mut child = sb.cmd(&["--yes"]).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(sb.installed().as_deref(), Some("3.0.0"));
    assert_eq!(sb.hook_log().len(), 2);
}

#[test]
fn sigint_during_services_restart_starts_what_it_stopped() {
    let fx = Fixture::new("", "0s");
    fx.publish(pkg("demo-server", "2.0.0"));
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    assert!(wait_until(Duration::from_secs(10), || fx.answers()));
    // db takes 3 s to answer once started: the signal lands while the restart waits for it
    std::fs::write(fx.sb.base.join("db.delay"), "3s").unwrap();
    let mut run = fx
        .sb
        .cmd(&["services", "restart"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !fx.answers()),
        "db was never stopped"
    );
    let (status, _) = interrupt(&mut run, Signal::SIGINT, Duration::from_secs(30));
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        fx.answers(),
        "db is down after the interrupted restart:\n{stderr}"
    );
}

#[test]
fn a_signal_during_check_ends_it_at_once_and_the_running_check_with_it() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new();
    three_releases(&sb);
    let (marker, child_pid) = (sb.base.join("check-running"), sb.base.join("child.pid"));
    sb.check_script(
        "slow",
        &format!(
            "sleep 300 &\necho $! > {}\ntouch {}\nwait",
            child_pid.display(),
            marker.display()
        ),
    );
    for (args, signal) in [
        (["check"], Signal::SIGINT),
        (["--dry-run"], Signal::SIGTERM),
    ] {
        let _ = std::fs::remove_file(&marker);
        let mut run = spawn_until(&sb, &args, &marker);
        let (status, took) = interrupt(&mut run, signal, Duration::from_secs(10));
        // nothing changed yet: it dies of the signal, as without a handler, at once
        assert_eq!(status.signal(), Some(signal as i32), "{args:?}");
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        let child = read_pid(&child_pid);
        assert!(
            wait_until(Duration::from_secs(5), || !alive(child)),
            "{args:?}: the check's child {child} outlived the interrupt"
        );
    }
}

#[test]
fn a_run_killed_during_its_rpm_transaction_keeps_the_lock_until_rpm_ends() {
    let (fx, begun, done) = slow_post_at_1_0_0();
    let mut run = spawn_until(&fx.sb, &["--yes"], &begun);
    // kill -9 of the run alone: its rpm goes on, in a process group of its own
    let pid = run.id();
    run.kill().unwrap();
    run.wait().unwrap();
    let second = fx.sb.run(&["--yes"]);
    second.assert_code(5).assert_stderr(&format!(
        "pid {pid}, killed; its rpm transaction is still running"
    ));
    assert!(
        wait_until(Duration::from_secs(30), || done.exists()),
        "rpm did not finish"
    );
    // once rpm has ended (the lock is free again), the next run resumes: rpm ran once
    let mut resumed = fx.sb.run(&["--yes"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed.code == 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        resumed = fx.sb.run(&["--yes"]);
    }
    resumed.assert_code(0).assert_stderr("resuming run");
    // NB: the killed run never learned how its transaction ended, so the resumed one does it
    // again (`--replacepkgs`): scriptlets run at least once (RELIABILITY.md) — but never two
    // transactions at once: the second began after the first had ended
    assert_eq!(std::fs::read_to_string(&begun).unwrap(), "x\nx\n");
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "x\nx\n");
    assert_eq!(
        fx.sb.rpm_qa(),
        vec!["demo-server-2.0.0-1.x86_64".to_string()]
    );
    assert_eq!(fx.sb.installed().as_deref(), Some("2.0.0"));
}
