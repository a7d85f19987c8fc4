//! How one service is stopped, started, asked for its status and checked for readiness, per
//! backend: `systemctl`, `/etc/init.d` scripts (or `service`), runit's `sv`, and the `command`
//! backend's `sh -c` templates. Every command is bounded in time and its output captured.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::config::ServiceBackend;
use crate::model::services::{ReadyCheck, Service};

/// How often a readiness check is polled (a refused connect costs microseconds).
const POLL: Duration = Duration::from_millis(10);
/// How often runsv's state file is read while a service changes state.
const RUNIT_POLL: Duration = Duration::from_millis(2);
/// The most output kept from one command.
const OUTPUT_LIMIT: usize = 4096;

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
    /// `None` when it timed out and was killed.
    pub status: Option<ExitStatus>,
    pub output: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn describe(&self, timeout: Duration) -> String {
        let how = match self.status {
            None => format!("timed out after {}", humantime::format_duration(timeout)),
            Some(s) => match s.code() {
                Some(code) => format!("exited with {code}"),
                None => format!("was killed ({s})"),
            },
        };
        let output = self.output.trim_end();
        if output.is_empty() {
            format!("`{}` {how}", self.line)
        } else {
            format!("`{}` {how}:\n{}", self.line, indent(output))
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
        match run_bounded(command, self.timeout.min(Duration::from_secs(10))) {
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
        let done = run_bounded(command, self.timeout)?;
        if !done.success() {
            anyhow::bail!("{}", done.describe(self.timeout));
        }
        if svc.backend == ServiceBackend::Runit {
            let want = if verb == Verb::Start { "run" } else { "down" };
            self.await_runit_state(svc, want, deadline)?;
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

    fn command(&self, svc: &Service, verb: Verb) -> Option<Command> {
        let mut command;
        match svc.backend {
            // NB: systemctl talks to the host's systemd whatever the root; `--root` only
            // affects unit files, so it is not passed.
            ServiceBackend::Systemd => {
                command = Command::new("systemctl");
                command.args([verb.as_str(), &svc.unit]);
            }
            ServiceBackend::Sysv => {
                let script = self.root.join("etc/init.d").join(&svc.unit);
                if script.exists() {
                    command = Command::new(script);
                } else {
                    command = Command::new("service");
                    command.arg(&svc.unit);
                }
                command.arg(verb.as_str());
            }
            ServiceBackend::Runit => {
                // NB: sv exits 0 once the command is sent; 1-99 counts services it failed on
                // (e.g. "fail: …: runsv not running"), 100 and up is a usage or system error.
                let verb = match verb {
                    Verb::Start => "up",
                    Verb::Stop => "down",
                    Verb::Status => "status",
                };
                command = Command::new("sv");
                command.arg(verb).arg(self.runit_dir(svc));
            }
            ServiceBackend::Command => {
                let template = match verb {
                    Verb::Start => &svc.commands.start,
                    Verb::Stop => &svc.commands.stop,
                    Verb::Status => svc.commands.status.as_ref()?,
                };
                command = Command::new("sh");
                command.arg("-c").arg(template);
                command.env("UPGRADE_SERVICE", &svc.name);
            }
        }
        command
            .env("UPGRADE_ROOT", &self.root)
            .current_dir(&self.root);
        Some(command)
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
                let mut command = Command::new("sh");
                command.arg("-c").arg(cmd).current_dir(root);
                command.env("UPGRADE_ROOT", root);
                let done = run_bounded(command, remaining.max(POLL))?;
                if done.success() {
                    return Ok(started.elapsed());
                }
                done.describe(remaining)
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

/// Runs `command` with no input, stdout and stderr captured together, killed (with its whole
/// process group) after `timeout`.
pub fn run_bounded(mut command: Command, timeout: Duration) -> Result<Finished> {
    let line = command_line(&command);
    // NB: the output goes to an anonymous file, not a pipe: a start command that leaves a daemon
    // behind passes it the descriptor, and a pipe would then never reach end of file.
    let fd = nix::sys::memfd::memfd_create(
        c"upgrade-service-output",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .context("failed to create a buffer for command output")?;
    let mut file = File::from(fd);
    let out = file
        .try_clone()
        .context("failed to duplicate a descriptor")?;
    let err = file
        .try_clone()
        .context("failed to duplicate a descriptor")?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to run `{line}`"))?;
    drop(command);
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("failed to wait for `{line}`"))?
        {
            break Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        // short first: most commands are done within milliseconds
        std::thread::sleep(sleep.min(deadline - now));
        sleep = (sleep * 2).min(Duration::from_millis(10));
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .with_context(|| format!("failed to read the output of `{line}`"))?;
    let mut output = String::from_utf8_lossy(&bytes).into_owned();
    if output.len() > OUTPUT_LIMIT {
        let mut cut = output.len() - OUTPUT_LIMIT;
        while !output.is_char_boundary(cut) {
            cut += 1;
        }
        output = format!("…{}", &output[cut..]);
    }
    Ok(Finished {
        line,
        status,
        output,
    })
}

fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
