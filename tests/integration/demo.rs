//! The demo (`scripts/demo`) whole, in a temporary directory and on the binaries under test: it
//! succeeds, reaches the newest release and rolls it back (issue 13), and nothing it started
//! outlives it (issue 18), whether it finishes or is ended by
//! Ctrl-C or TERM while its services run. Every process the demo starts inherits a marker
//! variable from it, by which these tests find them in `/proc`.

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

/// The directory of the binaries under test, with the examples the demo runs built beside them
/// (`scripts/test` builds them before the tests: then this build has nothing to do).
fn demo_binaries() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let examples = ["demo-repo", "serve-repo", "demo-service"];
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
    let (upgraded, rolled_back) = log
        .split_once("### result of the rollback")
        .unwrap_or_else(|| panic!("the demo shows no rollback:\n{log}"));
    assert!(
        upgraded.contains("demo-server-2.1.0"),
        "the demo did not reach the newest release:\n{log}"
    );
    // the rollback took the host back to 1.0.0: the services answer with it on their ports,
    // the packages and the database (its ledger and tables) are 1.0.0's again
    for shown in [
        "demo-server 1.0.0",
        "demo-server-1.0.0",
        "applied  1.0.0/002-create-agents",
        "pending  2.0.0/001-create-queues",
        "workers = 8   # tuned by the operator",
    ] {
        assert!(
            rolled_back.contains(shown),
            "no `{shown}` after the rollback:\n{log}"
        );
    }
    for gone in ["demo-server-2.1.0", "demo-web-"] {
        assert!(
            !rolled_back.contains(gone),
            "`{gone}` is still there after the rollback:\n{log}"
        );
    }
    // (the demo lists the tables when `sqlite3` is installed)
    if let Some(tables) = rolled_back.lines().find(|l| l.starts_with("tables: ")) {
        assert_eq!(tables, "tables: agents calls upgrade_migrations", "{log}");
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
