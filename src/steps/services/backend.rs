//! How one service is stopped, started, asked for its status and checked for readiness, per
//! backend: `systemctl`, `/etc/init.d` scripts (or `service`), runit's `sv`, and the `command`
//! backend's `sh -c` templates. Every command runs through [`crate::process`]: bounded in time,
//! with the clean environment hooks get, and its output captured.

use std::ffi::OsString;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::config::ServiceBackend;
use crate::model::services::{ReadyCheck, Service};
use crate::process::{self, RunOptions, Status};

/// How often a readiness check is polled (a refused connect costs microseconds).
const POLL: Duration = Duration::from_millis(10);
/// How often runsv's state file is read while a service changes state.
const RUNIT_POLL: Duration = Duration::from_millis(2);
/// How many of its last lines of output a command's failure shows.
const OUTPUT_LINES: usize = 30;

/// What the backends need from the run: the root, runit's directory and the command bound.
#[derive(Debug, Clone)]
pub struct Backends {
    pub root: PathBuf,
    /// runit's service directory, already resolved under the root.
    pub runit_dir: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Status,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Status => "status",
        }
    }
}

/// A finished (or timed out) command: its line for messages, its status and its output.
#[derive(Debug)]
pub struct Finished {
    pub line: String,
    pub status: Status,
    /// Its last lines.
    pub output: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    fn describe(&self) -> String {
        let output = self.output.trim_end();
        if output.is_empty() {
            format!("`{}` {}", self.line, self.status)
        } else {
            format!("`{}` {}:\n{}", self.line, self.status, indent(output))
        }
    }
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Backends {
    pub fn stop(&self, svc: &Service) -> Result<()> {
        self.act(svc, Verb::Stop)
    }

    pub fn start(&self, svc: &Service) -> Result<()> {
        self.act(svc, Verb::Start)
    }

    /// The backend's status report, for failure messages; never fails.
    pub fn status(&self, svc: &Service) -> String {
        let Some(command) = self.command(svc, Verb::Status) else {
            return "(the service has no `status` command)".into();
        };
        match run_bounded(RunOptions {
            timeout: self.timeout.min(Duration::from_secs(10)),
            ..command
        }) {
            Ok(done) => {
                let output = done.output.trim_end();
                let output = if output.is_empty() {
                    "(no output)"
                } else {
                    output
                };
                format!("`{}`:\n{}", done.line, indent(output))
            }
            Err(e) => format!("{e:#}"),
        }
    }

    fn act(&self, svc: &Service, verb: Verb) -> Result<()> {
        let command = self
            .command(svc, verb)
            .expect("start and stop always exist");
        let deadline = Instant::now() + self.timeout;
        let done = run_bounded(command)?;
        // NB: `systemctl stop` of a unit that is not loaded (not installed: nothing to stop)
        // exits 5, "unit not loaded".
        let not_loaded = svc.backend == ServiceBackend::Systemd
            && verb == Verb::Stop
            && done.status == Status::Exited(5);
        if !done.success() && !not_loaded {
            anyhow::bail!("{}", done.describe());
        }
        if svc.backend == ServiceBackend::Runit {
            let want = if verb == Verb::Start { "run" } else { "down" };
            self.await_runit_state(svc, want, deadline)?;
        }
        Ok(())
    }

    /// `systemctl daemon-reload`, so that systemd sees the unit files packages changed before it
    /// starts their services.
    pub fn daemon_reload(&self) -> Result<()> {
        let (program, args) = ("systemctl".into(), vec!["daemon-reload".into()]);
        let done = run_bounded(options(program, args, &self.root, None, self.timeout))?;
        if !done.success() {
            anyhow::bail!("{}", done.describe());
        }
        Ok(())
    }

    fn runit_dir(&self, svc: &Service) -> PathBuf {
        self.runit_dir.join(&svc.unit)
    }

    /// Waits until runsv reports `want` in `supervise/stat`.
    // NB: `sv start|stop` and `sv -w SECS …` wait for the state change themselves, but their wait
    // loop sleeps 420 ms between checks, which for a chain of services adds up to more than the
    // services themselves take. We send `sv up|down`, which return at once, and poll runsv's
    // state file every 2 ms instead. `stat` says `run`, `down` or `finish` (the finish script
    // runs), with `, want …` appended while changing.
    // NB: runsv starts a `run` script at most once a second, so a service started again within a
    // second of its last start is ready up to a second later than its own startup takes.
    fn await_runit_state(&self, svc: &Service, want: &str, deadline: Instant) -> Result<()> {
        let stat = self.runit_dir(svc).join("supervise/stat");
        loop {
            let now = std::fs::read_to_string(&stat)
                .with_context(|| format!("failed to read runit's state `{}`", stat.display()))?;
            if now.trim_end() == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "runit did not report `{want}` for `{}` within {} (state: `{}`)",
                    self.runit_dir(svc).display(),
                    humantime::format_duration(self.timeout),
                    now.trim_end()
                );
            }
            std::thread::sleep(RUNIT_POLL);
        }
    }

    fn command(&self, svc: &Service, verb: Verb) -> Option<RunOptions> {
        let (program, args, service): (PathBuf, Vec<OsString>, _) = match svc.backend {
            // NB: systemctl talks to the host's systemd whatever the root; `--root` only
            // affects unit files, so it is not passed.
            ServiceBackend::Systemd => (
                "systemctl".into(),
                vec![verb.as_str().into(), svc.unit.as_str().into()],
                None,
            ),
            ServiceBackend::Sysv => {
                let script = self.root.join("etc/init.d").join(&svc.unit);
                match script.exists() {
                    true => (script, vec![verb.as_str().into()], None),
                    false => (
                        "service".into(),
                        vec![svc.unit.as_str().into(), verb.as_str().into()],
                        None,
                    ),
                }
            }
            ServiceBackend::Runit => {
                // NB: sv exits 0 once the command is sent; 1-99 counts services it failed on
                // (e.g. "fail: …: runsv not running"), 100 and up is a usage or system error.
                let verb = match verb {
                    Verb::Start => "up",
                    Verb::Stop => "down",
                    Verb::Status => "status",
                };
                (
                    "sv".into(),
                    vec![verb.into(), self.runit_dir(svc).into()],
                    None,
                )
            }
            ServiceBackend::Command => {
                let template = match verb {
                    Verb::Start => &svc.commands.start,
                    Verb::Stop => &svc.commands.stop,
                    Verb::Status => svc.commands.status.as_ref()?,
                };
                let (program, args) = shell(template);
                (program, args, Some(svc.name.as_str()))
            }
        };
        Some(options(program, args, &self.root, service, self.timeout))
    }
}

/// `sh -c SCRIPT`.
fn shell(script: &str) -> (PathBuf, Vec<OsString>) {
    ("sh".into(), vec!["-c".into(), script.into()])
}

/// How a service command runs: in the root, with the clean environment plus `UPGRADE_ROOT` (and
/// `UPGRADE_SERVICE` for the `command` backend's templates).
fn options(
    program: PathBuf,
    args: Vec<OsString>,
    root: &Path,
    service: Option<&str>,
    timeout: Duration,
) -> RunOptions {
    let mut env = process::inherited_env();
    env.push(("UPGRADE_ROOT".into(), root.into()));
    if let Some(name) = service {
        env.push(("UPGRADE_SERVICE".into(), name.into()));
    }
    RunOptions {
        program,
        args,
        env,
        cwd: root.to_path_buf(),
        timeout,
        keep_lines: OUTPUT_LINES,
        // NB: a service command runs to its end (bounded by its timeout): after an interrupt,
        // it is what starts again what the run stopped.
        interruptible: false,
    }
}

/// Polls `check` until it passes or `timeout` ends; the error says what was tried last.
pub fn await_ready(check: &ReadyCheck, timeout: Duration, root: &Path) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last = match check {
            ReadyCheck::Tcp(addr) => match tcp_connect(addr, remaining.min(POLL * 20)) {
                Ok(()) => return Ok(started.elapsed()),
                Err(e) => e,
            },
            ReadyCheck::Command(cmd) => {
                let (program, args) = shell(cmd);
                let done = run_bounded(options(program, args, root, None, remaining.max(POLL)))?;
                if done.success() {
                    return Ok(started.elapsed());
                }
                done.describe()
            }
        };
        if Instant::now() >= deadline {
            anyhow::bail!(
                "it was not ready within {} ({last})",
                humantime::format_duration(timeout)
            );
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn tcp_connect(addr: &str, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{addr}`: {e}"))?
        .collect();
    let mut last = format!("`{addr}` resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout.max(Duration::from_millis(1))) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("no connection to `{addr}`: {e}"),
        }
    }
    Err(last)
}

/// Runs `command` with its output captured (its last lines), killed with its whole process group
/// at its timeout.
// NB: a start command that leaves its daemon holding the command's output is done when it exits
// (`process` watches the exit, not the end of the output). The daemon must not write to that
// output later: nobody reads it any more (EPIPE). The anonymous file used here before took such
// writes, without bound; daemons point their output elsewhere (`>/dev/null 2>&1`, a log).
pub fn run_bounded(command: RunOptions) -> Result<Finished> {
    let line = command.command_line();
    let done =
        process::run(&command, &mut |_| {}).with_context(|| format!("failed to run `{line}`"))?;
    Ok(Finished {
        line,
        status: done.status,
        output: done.last_lines.join("\n"),
    })
}
