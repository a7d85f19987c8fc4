//! The demo (`scripts/demo`) whole, in a temporary directory and on the binaries under test: it
//! succeeds, reaches 2.1.0 and rolls it back (issue 13), then upgrades to the broken 2.2.0 and is
//! rolled back by the health gate with exit 6, 1.0.0 serving again (issue 14), and nothing it
//! started outlives it (issue 18), whether it finishes or is ended by Ctrl-C or TERM while its
//! services run. Every process the demo starts inherits a marker variable from it, by which these
//! tests find them in `/proc`.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::support::*;

const MARKER: &str = "UPGRADE_DEMO_MARKER";

/// NB: the demo's services listen on the fixed ports 8080 to 8082 (its `service-order.toml`), so
/// two demos cannot run at once.
static ONE_DEMO: Mutex<()> = Mutex::new(());

/// `scripts/demo` running with its sandbox in a temporary directory, in a process group of its
/// own as a shell's foreground job is; dropping it kills whatever of it is left.
struct Demo {
    dir: tempfile::TempDir,
    marker: String,
    child: Child,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let marker = format!("{}.{}", std::process::id(), nanos.as_nanos());
        let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo");
        let child = Command::new(&script)
            .env("UPGRADE_DEMO_DIR", dir.path().join("sandbox"))
            .env("UPGRADE_DEMO_BIN", demo_binaries())
            .env(MARKER, &marker)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", script.display()));
        Demo { dir, marker, child }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// What the demo printed, stdout and stderr together.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.log")).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        let ended = wait_until(timeout, || {
            status = self.exited();
            status.is_some()
        });
        assert!(
            ended,
            "the demo still runs after {timeout:?}:\n{}",
            self.log()
        );
        status.unwrap()
    }

    /// `PID command line` of every process that carries the marker or names the sandbox.
    fn processes(&self) -> Vec<String> {
        let marker = format!("{MARKER}={}", self.marker);
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // NB: a process may end between the listing and these reads: an error is no match
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()) || cmdline.contains(&dir)
            {
                found.push(format!("{pid} {}", cmdline.trim_end()));
            }
        }
        found
    }

    fn assert_nothing_left(&self) {
        let mut left = Vec::new();
        let none = wait_until(Duration::from_secs(10), || {
            left = self.processes();
            left.is_empty()
        });
        assert!(
            none,
            "processes of the demo still run 10 s after it ended:\n{}\n--- the demo's output:\n{}",
            left.join("\n"),
            self.log()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = killpg(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        for process in self.processes() {
            let pid = process.split(' ').next().unwrap().parse().unwrap();
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The directory of the binaries under test, with the examples the demo runs (and
/// `upgrader-rpm`, which builds the upgrader package) built beside them (`scripts/test` builds
/// them before the tests: then this build has nothing to do).
pub(crate) fn demo_binaries() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let examples = ["demo-repo", "serve-repo", "demo-service", "upgrader-rpm"];
            let mut build = Command::new(env!("CARGO"));
            build
                .args(["build", "--quiet"])
                .args(examples.iter().flat_map(|e| ["--example", e]))
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // NB: not the package's variables `cargo test` gives the tests (CARGO_MANIFEST_DIR,
            // CARGO_PKG_NAME…): build scripts that watch them (ring's) would run again, and
            // everything above them be rebuilt here and once more by the next `cargo test`
            for (name, _) in std::env::vars_os() {
                let cargo_set = [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                ];
                if cargo_set
                    .iter()
                    .any(|p| name.to_string_lossy().starts_with(p))
                {
                    build.env_remove(name);
                }
            }
            let status = build.status().unwrap();
            assert!(status.success(), "cargo build of {examples:?} failed");
            Path::new(REAL_UPGRADE).parent().unwrap().to_path_buf()
        })
        .clone()
}

fn one_demo() -> std::sync::MutexGuard<'static, ()> {
    ONE_DEMO
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The part of the demo's output from the step whose title starts with `from` to the next step
/// that starts with `to` (or the end).
fn section<'a>(log: &'a str, from: &str, to: Option<&str>) -> &'a str {
    let start = log
        .find(&format!("### {from}"))
        .unwrap_or_else(|| panic!("the demo has no step `{from}`:\n{log}"));
    let rest = &log[start..];
    match to {
        Some(to) => {
            let end = rest
                .find(&format!("### {to}"))
                .unwrap_or_else(|| panic!("the demo has no step `{to}` after `{from}`:\n{log}"));
            &rest[..end]
        }
        None => rest,
    }
}

/// What a section must show, each needle with what it means when it is missing.
fn assert_shows(section: &str, what: &str, needles: &[&str], log: &str) {
    for needle in needles {
        assert!(section.contains(needle), "no `{needle}` {what}:\n{log}");
    }
}

fn assert_hides(section: &str, what: &str, needles: &[&str], log: &str) {
    for needle in needles {
        assert!(
            !section.contains(needle),
            "`{needle}` is still there {what}:\n{log}"
        );
    }
}

/// Whether demo-web runs: a rollback that removed its package (1.0.0 has none) leaves it stopped.
enum Web {
    Serving,
    Stopped,
}

/// `show`'s lines for the services answering HTTP 200 with `version` on the demo's ports.
fn serving(version: &str, web: Web) -> Vec<String> {
    let mut lines = vec![format!("port 8080: HTTP/1.0 200 OK: demo-server {version}")];
    lines.push(match web {
        Web::Serving => format!("port 8081: HTTP/1.0 200 OK: demo-web {version}"),
        Web::Stopped => "nothing answers on port 8081".to_string(),
    });
    lines.push(format!("port 8082: HTTP/1.0 200 OK: demo-worker {version}"));
    lines
}

#[test]
fn the_demo_succeeds_and_leaves_nothing_running() {
    let _one = one_demo();
    let mut demo = Demo::start();
    let status = demo.wait(Duration::from_secs(300));
    assert!(
        status.success(),
        "the demo failed ({status}):\n{}",
        demo.log()
    );
    let log = demo.log();
    let upgraded = section(
        &log,
        "result of the upgrade to 2.1.0",
        Some("rollback --yes"),
    );
    let rolled_back = section(&log, "result of the rollback", Some("a release whose"));
    // the rollback's plan says what it leaves stopped: demo-web, whose package 1.0.0 lacks
    let rollback = section(&log, "rollback --yes", Some("result of the rollback"));
    assert_shows(
        rollback,
        "in the rollback's plan",
        &[
            "    start services:     demo-server, demo-worker\n",
            "    left stopped:       demo-web (their packages are removed)",
        ],
        &log,
    );
    let broken = section(
        &log,
        "a release whose",
        Some("result of the automatic rollback"),
    );
    let restored = section(&log, "result of the automatic rollback", None);

    // the upgrade to 2.1.0 passed its health checks and stayed: its services answer HTTP 200
    // with it, `health` (the vendor's check, whose last line it reports) passes, its packages and
    // migrations are in place
    let now = serving("2.1.0", Web::Serving);
    let mut shown: Vec<&str> = now.iter().map(String::as_str).collect();
    shown.extend([
        "healthy: demo-server demo-web demo-worker answer HTTP 200",
        "demo-server-2.1.0",
        "applied  2.1.0/001-index-calls",
    ]);
    assert_shows(upgraded, "after the upgrade to 2.1.0", &shown, &log);

    // the rollback took the host back to 1.0.0: the services answer with it on their ports,
    // the packages and the database (its ledger and tables) are 1.0.0's again
    let then = serving("1.0.0", Web::Stopped);
    let mut shown: Vec<&str> = then.iter().map(String::as_str).collect();
    shown.extend([
        "demo-server-1.0.0",
        "applied  1.0.0/002-create-agents",
        "pending  2.0.0/001-create-queues",
        "workers = 8   # tuned by the operator",
    ]);
    assert_shows(rolled_back, "after the rollback", &shown, &log);
    assert_hides(
        rolled_back,
        "after the rollback",
        &["demo-server-2.1.0", "demo-web-"],
        &log,
    );

    // the broken release was installed and served: the vendor's health check found every
    // service answering wrongly (its last line), and the upgrade exited 6 (the demo fails on any
    // other code)
    assert_shows(
        broken,
        "in the upgrade to 2.2.0",
        &[
            "answering wrongly: demo-server demo-web demo-worker",
            "upgrade exited with 6",
        ],
        &log,
    );

    // the health gate put 1.0.0 back by itself: its services answer HTTP 200 again and pass the
    // health check, its packages, database and configuration are back
    let mut shown: Vec<&str> = then.iter().map(String::as_str).collect();
    shown.extend([
        "healthy: demo-server demo-worker answer HTTP 200",
        "demo-server-1.0.0",
        "applied  1.0.0/002-create-agents",
        "pending  2.0.0/001-create-queues",
        "# demo server 1.x settings",
        "workers = 8   # tuned by the operator",
    ]);
    assert_shows(restored, "after the automatic rollback", &shown, &log);
    assert_hides(
        restored,
        "after the automatic rollback",
        &["demo-server-2.2.0", "demo-server-2.0.0", "demo-web-"],
        &log,
    );

    // (the demo lists the tables when `sqlite3` is installed)
    for (part, when) in [
        (rolled_back, "the rollback"),
        (restored, "the automatic rollback"),
    ] {
        if let Some(tables) = part.lines().find(|l| l.starts_with("tables: ")) {
            assert_eq!(
                tables, "tables: agents calls upgrade_migrations upgrade_nodes",
                "after {when}:\n{log}"
            );
        }
    }
    demo.assert_nothing_left();
}

/// Starts the demo, waits until the upgrade has started its services (the repository's server
/// and runit run then too), and has `send` deliver `signal`: the demo dies of it, and takes
/// everything it started with it.
fn interrupted(send: fn(Pid, Signal) -> nix::Result<()>, signal: Signal) {
    let _one = one_demo();
    let mut demo = Demo::start();
    let mut running = Vec::new();
    let services_run = wait_until(Duration::from_secs(300), || {
        running = demo.processes();
        running.iter().any(|p| p.contains("demo-service")) || demo.exited().is_some()
    });
    assert!(
        services_run && demo.exited().is_none(),
        "the demo's services never ran:\n{}",
        demo.log()
    );
    for helper in ["serve-repo", "runsvdir", "runsv "] {
        assert!(
            running.iter().any(|p| p.contains(helper)),
            "no `{helper}` among the demo's processes:\n{}",
            running.join("\n")
        );
    }
    send(demo.pid(), signal).unwrap();
    let status = demo.wait(Duration::from_secs(120));
    demo.assert_nothing_left();
    assert_eq!(
        status.signal(),
        Some(signal as i32),
        "the demo did not die of {signal} ({status}):\n{}",
        demo.log()
    );
}

#[test]
fn ctrl_c_ends_everything_the_demo_started() {
    // a terminal's Ctrl-C: SIGINT to the whole foreground process group
    interrupted(killpg, Signal::SIGINT);
}

#[test]
fn term_to_the_demo_alone_ends_everything_it_started() {
    // e.g. `kill PID`, or a supervisor's stop: SIGTERM to the script's process only
    interrupted(kill, Signal::SIGTERM);
}
