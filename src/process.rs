//! The one way `upgrade` runs a program it does not own (hooks, data migrations, `checks.d`, service
//! commands): a clean environment, no input, umask 022, its own process group, its output (stdout
//! and stderr together) streamed line by line, and a timeout after which the whole group is killed.
//! What the exit means is the caller's business: this module knows no hook rules.
//!
//! It is on the hot path of a phase of a thousand trivial hooks, so a run costs few system calls:
//! a `clone` sharing our address space until the exec (see [`spawn`]), one pipe, one pidfd and a
//! `poll` on both.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How a program ended: exited with a code, killed by a signal, or timed out (and then killed).
// NB: the type lives in `error` because `UpgradeError::HookFailed` carries it; it is not only a
// hook's.
pub type Status = crate::error::HookStatus;

/// The variables a program inherits from ours (SPEC §6), where set; everything else it is given.
pub const INHERITED: [&str; 6] = ["PATH", "LANG", "LC_ALL", "TERM", "HOME", "TZ"];

/// Where a program name without a slash is looked up when the given environment has no `PATH`.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// The longest line passed on: a longer one (or output without newlines) comes in pieces of this
/// size, so memory and the log stay bounded whatever a program prints.
pub const MAX_LINE: usize = 64 * 1024;

/// The longest line kept for [`Finished::last_lines`]; longer ones end in `…`.
const MAX_KEPT_LINE: usize = 1024;

/// How often a child's exit is checked where the kernel has no pidfd (Linux < 5.3).
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How often an interruptible program's run looks for an interrupt.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// How long an interrupted program's process group has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A path, or a name looked up in the `PATH` of `env`.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment: nothing of ours is passed unless it is here (see [`inherited_env`]).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// How many of the last lines to keep for [`Finished::last_lines`].
    pub keep_lines: usize,
    /// Whether an interrupt ([`crate::interrupt`]) ends it: its process group gets SIGTERM, then
    /// SIGKILL after [`GRACE`], and [`run`] fails with [`crate::error::UpgradeError::Interrupted`]. Hooks, data
    /// migrations and checks are; service commands are not (they start again what a run stopped).
    pub interruptible: bool,
}

impl RunOptions {
    /// The program and its arguments, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A program that ended (or timed out and was killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: Status,
    /// The last lines it printed, at most `keep_lines`, each at most 1 KiB.
    pub last_lines: Vec<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// [`INHERITED`] as this process has them.
pub fn inherited_env() -> Vec<(OsString, OsString)> {
    INHERITED
        .iter()
        .filter_map(|&k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
        .collect()
}

/// Runs `options.program` to its end; `on_line` receives every line it prints.
///
/// It is over when the program exits: what it printed until then is passed on, and processes it
/// left behind are left alone (see the `NB` in the body). At the timeout its whole process group
/// gets SIGKILL, with no grace period; at an interrupt (when [`RunOptions::interruptible`])
/// SIGTERM, then SIGKILL after [`GRACE`].
pub fn run(options: &RunOptions, on_line: &mut dyn FnMut(&str)) -> Result<Finished> {
    let program = resolve(&options.program, &options.env);
    let (reader, writer) = io::pipe().context("failed to create a pipe for program output")?;
    // NB: the umask is this process's, which the child inherits (as does this process from the
    // first run on: what it creates itself gets 022 too).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let pid = spawn(
        &program,
        &options.args,
        &options.env,
        &options.cwd,
        writer.as_fd(),
    )
    .with_context(|| format!("failed to start `{}`", program.display()))?;
    // NB: this process keeps a write end of its own until the program is over, so that the pipe
    // never reaches its end while the program runs: the program's exit (the pidfd) is the one
    // wake-up at its end, not its output's end of file first and then its exit, a context
    // switch less per program (the output it left is taken at the exit, as ever).
    let _interruptible = options
        .interruptible
        .then(|| crate::interrupt::Child::running(pid.as_raw()));
    let mut running = Running::new(pid, reader, writer)?;
    let mut lines = Lines::new(options.keep_lines);
    let deadline = Instant::now() + options.timeout;
    let exit = loop {
        let now = Instant::now();
        // NB: checked on every turn, however much the program prints (issue 12, item 3).
        if now >= deadline {
            running.kill(&mut lines, on_line)?;
            break None;
        }
        let mut wait = deadline - now;
        if options.interruptible {
            if let Err(interrupted) = crate::interrupt::check() {
                running.terminate(&mut lines, on_line)?;
                lines.flush(on_line);
                return Err(interrupted.into());
            }
            wait = wait.min(INTERRUPT_POLL);
        }
        if let Some(exit) = running.wait_for_output_or_exit(wait, &mut lines, on_line)? {
            break Some(exit);
        }
    };
    lines.flush(on_line);
    let status = exit.unwrap_or(Status::TimedOut(options.timeout));
    Ok(Finished {
        status,
        last_lines: lines.last.into(),
    })
}

/// How much stack the child of [`spawn`] has until its exec (it calls a few system calls).
const CHILD_STACK: usize = 64 * 1024;

/// Starts `program` (a path) with `args` and exactly `env` (the last value of a name wins), in
/// `cwd`, with no input (`/dev/null`) and its output (stdout and stderr) to `output`, in a process
/// group of its own, with no signal blocked or handled; returns its pid.
///
/// NB: not `std::process::Command`, whose glibc `posix_spawn` child sets the disposition of every
/// one of the 64 signals before its exec (128 system calls while this process waits, about 50 µs
/// a program here: a tenth of a trivial hook). This is the same `clone` that `posix_spawn` makes
/// (`CLONE_VM | CLONE_VFORK`: this thread waits until the child has exec'd or exited, and nothing
/// of our address space is copied), with only the signals this process handles reset.
fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    cwd: &Path,
    output: BorrowedFd<'_>,
) -> io::Result<Pid> {
    let c = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` holds a NUL byte", s.to_string_lossy()),
            )
        })
    };
    // NB: a name [`resolve`] found nowhere is not found, as with `execvp`: `execve` would take it
    // as a path relative to `cwd` (the root).
    if !program.as_os_str().as_bytes().contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let path = c(program.as_os_str())?;
    let cwd = c(cwd.as_os_str())?;
    let argv = std::iter::once(Ok(path.clone()))
        .chain(args.iter().map(|a| c(a)))
        .collect::<io::Result<Vec<CString>>>()?;
    let vars: BTreeMap<&OsStr, &OsStr> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let envp = vars
        .into_iter()
        .map(|(k, v)| {
            c(OsStr::from_bytes(
                &[k.as_bytes(), b"=", v.as_bytes()].concat(),
            ))
        })
        .collect::<io::Result<Vec<CString>>>()?;
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let (input, output) = (dev_null()?.as_raw_fd(), output.as_raw_fd());
    let reset = handled_signals();
    let failed = AtomicI32::new(0);
    thread_local! {
        // NB: one per thread, made once: this thread waits while its child uses it
        static STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; CHILD_STACK]);
    }
    // NB: no signal may reach the child before it has reset what we handle: our handlers would
    // run in it, on our memory. All are blocked in this thread across the clone (the child
    // inherits the mask), and the child unblocks them once it has reset the handlers.
    let mut mask = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut mask),
    )?;
    let child = Box::new(|| -> isize {
        // SAFETY: this runs in the child, which shares our memory until its exec and has only
        // these system calls to make: nothing here allocates, locks or unwinds, and everything it
        // reads was made before the clone and outlives it (this thread waits meanwhile).
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            for &signal in reset {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::setpgid(0, 0) == 0
                && libc::dup2(input, 0) == 0
                && libc::dup2(output, 1) == 1
                && libc::dup2(output, 2) == 2
                && libc::chdir(cwd.as_ptr()) == 0
                && libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) == 0
            {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            failed.store(*libc::__errno_location(), Ordering::Relaxed);
            libc::_exit(127)
        }
    });
    // SAFETY: see the child's own comment; CLONE_VFORK keeps the stack and what the child reads
    // alive and untouched until it has exec'd or exited.
    let cloned = STACK.with_borrow_mut(|stack| unsafe {
        nix::sched::clone(
            child,
            stack,
            CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
            Some(libc::SIGCHLD),
        )
    });
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)?;
    let pid = cloned?;
    match failed.load(Ordering::Relaxed) {
        0 => Ok(pid),
        errno => {
            let _ = waitpid(pid, None);
            Err(io::Error::from_raw_os_error(errno))
        }
    }
}

/// `/dev/null`, opened once (close-on-exec: the children get it as their input by `dup2`).
fn dev_null() -> io::Result<&'static OwnedFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd);
    }
    let file = fs::File::open("/dev/null")?;
    Ok(NULL.get_or_init(|| file.into()))
}

/// The signals a child must have back at their default before it unblocks signals: those this
/// process handles (looked at once, at the first program: the interrupt handlers are installed
/// first thing), and SIGPIPE, which Rust's runtime ignores and a program expects at its default
/// (as `std::process::Command` has it). Signals ignored otherwise stay ignored across the exec, as
/// with `posix_spawn`; a handled one is reset by the exec itself anyway.
fn handled_signals() -> &'static [libc::c_int] {
    static HANDLED: OnceLock<Vec<libc::c_int>> = OnceLock::new();
    HANDLED.get_or_init(|| {
        let mut handled = vec![libc::SIGPIPE];
        for signal in 1..=libc::SIGRTMAX() {
            // SAFETY: a query: sigaction writes the current action into `action`.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            let queried = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
            let default =
                action.sa_sigaction == libc::SIG_DFL || action.sa_sigaction == libc::SIG_IGN;
            if queried == 0 && !default && signal != libc::SIGPIPE {
                handled.push(signal);
            }
        }
        for signal in crate::interrupt::SIGNALS {
            if !handled.contains(&(signal as libc::c_int)) {
                handled.push(signal as libc::c_int);
            }
        }
        handled
    })
}

/// `program` as a path: a name without a slash is looked up in the `PATH` of `env`, as `execvp`
/// would in the child; a name found nowhere stays as it is, and spawning it fails.
fn resolve(program: &Path, env: &[(OsString, OsString)]) -> PathBuf {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return program.to_path_buf();
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(OsStr::new(DEFAULT_PATH), |(_, v)| v.as_os_str());
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| program.to_path_buf())
}

/// A spawned child, its output pipe and (where the kernel has them) a pidfd that becomes readable
/// when it exits. Dropped before the child is reaped (an error, a panic in a callback), it kills
/// the child's process group, so nothing runs on unbounded.
struct Running {
    /// The program's pid, which is also its process group's.
    pid: Pid,
    /// `None` once the pipe is at end of file.
    reader: Option<io::PipeReader>,
    pidfd: Option<OwnedFd>,
    reaped: bool,
    buf: Vec<u8>,
    /// A write end of the pipe, held until the program is over (see [`run`]).
    _writer: io::PipeWriter,
}

impl Running {
    fn new(pid: Pid, reader: io::PipeReader, writer: io::PipeWriter) -> Result<Running> {
        let pidfd = pidfd_open(pid.as_raw());
        let running = Running {
            pid,
            reader: Some(reader),
            pidfd,
            reaped: false,
            buf: vec![0; MAX_LINE],
            _writer: writer,
        };
        if let Some(reader) = &running.reader {
            set_nonblocking(reader)?;
        }
        Ok(running)
    }

    /// Waits at most `wait` for output or the child's exit; passes on what it read, and returns
    /// the exit status once the child has exited.
    fn wait_for_output_or_exit(
        &mut self,
        wait: Duration,
        lines: &mut Lines,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Option<Status>> {
        let wait = match self.pidfd {
            Some(_) => wait,
            None => wait.min(EXIT_POLL),
        };
        // rounded up: a poll of 0 ms for the last fraction of a millisecond would spin
        let millis = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let (output, exited) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(reader) = &self.reader {
                fds.push(PollFd::new(reader.as_fd(), PollFlags::POLLIN));
            }
            if let Some(pidfd) = &self.pidfd {
                fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("failed to wait for a program"),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let output = self.reader.is_some() && ready(&fds[0]);
            let exited = match self.pidfd {
                Some(_) => ready(fds.last().expect("the pidfd is polled")),
                // without a pidfd: look on every turn (at most every EXIT_POLL)
                None => true,
            };
            (output, exited)
        };
        if output {
            self.read(usize::MAX, lines, on_line);
        }
        if !exited {
            return Ok(None);
        }
        let Some(status) = self.reap(WaitPidFlag::WNOHANG)? else {
            return Ok(None);
        };
        self.reaped = true;
        // NB: a program is done when it exits (issue 12, item 2). Whatever it left behind — a
        // daemon it started on purpose — keeps running, and may still hold the pipe: we take what
        // the pipe held at the exit and stop reading. Such a process gets EPIPE (SIGPIPE) if it
        // writes to that output later, so a daemon must point its output elsewhere
        // (`setsid daemon >/dev/null 2>&1 &`), as daemons do.
        self.read_rest(lines, on_line);
        Ok(Some(status))
    }

    /// One read of what the pipe holds, at most `limit` bytes; how many it passed on.
    // NB: one read per wake-up while the program runs, so that the deadline and the exit are
    // looked at between reads however fast it prints.
    fn read(&mut self, limit: usize, lines: &mut Lines, on_line: &mut dyn FnMut(&str)) -> usize {
        let Some(reader) = &mut self.reader else {
            return 0;
        };
        let want = limit.min(self.buf.len());
        loop {
            match reader.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    lines.push(&self.buf[..n], on_line);
                    return n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
                Err(_) => break,
            }
        }
        self.reader = None; // at end of file (or broken): not polled again
        0
    }

    /// Reads what the pipe holds now, and not what a process left behind writes after that.
    fn read_rest(&mut self, lines: &mut Lines, on_line: &mut dyn FnMut(&str)) {
        let Some(reader) = &self.reader else {
            return;
        };
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes the number of bytes in the pipe into the int it is given.
        let mut left = match unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut queued) }
        {
            0 => queued.max(0) as usize,
            _ => MAX_LINE, // never seen on Linux pipes; still bounded
        };
        while left > 0 {
            match self.read(left, lines, on_line) {
                0 => break,
                n => left -= n,
            }
        }
    }

    /// SIGTERM to the whole process group; SIGKILL to it if the child has not exited after
    /// [`GRACE`]; then reaps the child and takes what the pipe holds.
    fn terminate(&mut self, lines: &mut Lines, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let group = self.pid;
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + GRACE;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return self.kill(lines, on_line);
            }
            if self
                .wait_for_output_or_exit(deadline - now, lines, on_line)?
                .is_some()
            {
                // NB: what the group left behind gets SIGKILL too: nothing of an interrupted hook
                // runs on beside the resumed run's second attempt.
                let _ = killpg(group, Signal::SIGKILL);
                return Ok(());
            }
        }
    }

    /// SIGKILL to the whole process group, then reaps the child and takes what the pipe holds.
    fn kill(&mut self, lines: &mut Lines, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let _ = killpg(self.pid, Signal::SIGKILL);
        self.reap(WaitPidFlag::empty())?;
        self.reaped = true;
        self.read_rest(lines, on_line);
        Ok(())
    }

    /// Reaps the program if it has exited (waiting for that unless `WNOHANG`): how it ended.
    fn reap(&mut self, flags: WaitPidFlag) -> Result<Option<Status>> {
        loop {
            return match waitpid(self.pid, Some(flags)) {
                Ok(WaitStatus::Exited(_, code)) => Ok(Some(Status::Exited(code))),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    Ok(Some(Status::Signalled(signal as i32)))
                }
                Ok(WaitStatus::StillAlive) => Ok(None),
                // stopped or continued (not asked for): still running
                Ok(_) if flags.contains(WaitPidFlag::WNOHANG) => Ok(None),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => Err(e).context("failed to wait for a program"),
            };
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = killpg(self.pid, Signal::SIGKILL);
            let _ = self.reap(WaitPidFlag::empty());
        }
    }
}

/// Splits output into lines in time linear in its size, cutting lines longer than [`MAX_LINE`]
/// into pieces, and keeps the last few for messages.
struct Lines {
    partial: Vec<u8>,
    last: VecDeque<String>,
    keep: usize,
}

impl Lines {
    fn new(keep: usize) -> Lines {
        Lines {
            partial: Vec::new(),
            last: VecDeque::with_capacity(keep),
            keep,
        }
    }

    fn push(&mut self, mut bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
        // NB: only the new bytes are searched, and a line is taken from `bytes` itself when
        // nothing is pending: no byte is looked at or moved more than a few times (issue 12,
        // item 16: the old splitter searched and shifted the pending bytes on every read).
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() && i <= MAX_LINE {
                self.emit(&bytes[..i], on_line);
            } else {
                self.append(&bytes[..i], on_line);
                let line = std::mem::take(&mut self.partial);
                self.emit(&line, on_line);
                self.partial = line;
                self.partial.clear();
            }
            bytes = &bytes[i + 1..];
        }
        self.append(bytes, on_line);
    }

    /// Adds to the pending line, passing on a piece each time it reaches [`MAX_LINE`].
    fn append(&mut self, mut bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
        while self.partial.len() + bytes.len() > MAX_LINE {
            let room = MAX_LINE - self.partial.len();
            self.partial.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            let cut = char_boundary(&self.partial);
            let piece = std::mem::take(&mut self.partial);
            self.emit(&piece[..cut], on_line);
            self.partial = piece;
            self.partial.drain(..cut); // at most 3 bytes stay
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Passes on what is pending, at the end of the output.
    fn flush(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, on_line);
        }
    }

    fn emit(&mut self, line: &[u8], on_line: &mut dyn FnMut(&str)) {
        let line = String::from_utf8_lossy(line);
        on_line(&line);
        if self.keep == 0 {
            return;
        }
        if self.last.len() == self.keep {
            self.last.pop_front();
        }
        let kept = match line.len() > MAX_KEPT_LINE {
            true => {
                let mut end = MAX_KEPT_LINE;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &line[..end])
            }
            false => line.into_owned(),
        };
        self.last.push_back(kept);
    }
}

/// Where to cut `bytes` so that a UTF-8 character begun in its last three bytes is not split:
/// its length, or the start of that unfinished character.
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let b = bytes[len - back];
        if b & 0b1100_0000 != 0b1000_0000 {
            // the last lead (or ASCII) byte: is its character complete?
            let width = match b {
                0xF0..=0xF7 => 4,
                0xE0..=0xEF => 3,
                0xC0..=0xDF => 2,
                _ => 1,
            };
            return if width > back { len - back } else { len };
        }
    }
    len
}

fn set_nonblocking(reader: &io::PipeReader) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(reader, FcntlArg::F_GETFL).context("fcntl(F_GETFL) on a pipe")?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(reader, FcntlArg::F_SETFL(flags)).context("fcntl(F_SETFL) on a pipe")?;
    Ok(())
}

/// A descriptor that becomes readable when `pid` exits (Linux ≥ 5.3); `None` where unsupported.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The run lock's descriptor while a run holds it ([`set_run_lock`]), -1 otherwise.
static RUN_LOCK: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Notes the descriptor of the run lock (`flock`) this process holds, or `None` once released.
pub fn set_run_lock(fd: Option<std::os::fd::RawFd>) {
    RUN_LOCK.store(fd.unwrap_or(-1), std::sync::atomic::Ordering::SeqCst);
}

/// Runs `cmd` (an rpm or dnf transaction) to its end with its output captured, handing it a copy
/// of the run lock: the lock then stays held for as long as the transaction runs, also when this
/// process is killed meanwhile (`kill -9`, its process group killed: the transaction runs in a
/// group of its own and is never cut), so a second run waits for it instead of starting
/// alongside it (issue 12, item 1).
// NB: only transactions get it: a hook may leave a daemon running, which would keep the lock.
// The copy is made just before the spawn and closed just after; no other program is started
// meanwhile (the package step runs alone).
pub fn output_holding_run_lock(cmd: &mut Command) -> io::Result<std::process::Output> {
    let fd = RUN_LOCK.load(std::sync::atomic::Ordering::SeqCst);
    let inherited = match fd {
        // SAFETY: the descriptor is the run lock's, open while RUN_LOCK holds it.
        0.. => Some(nix::unistd::dup(unsafe {
            std::os::fd::BorrowedFd::borrow_raw(fd)
        })?),
        _ => None,
    };
    let output = cmd.output();
    drop(inherited);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> RunOptions {
        RunOptions {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            timeout,
            keep_lines: 3,
            interruptible: false,
        }
    }

    fn run_sh(script: &str, timeout: Duration) -> (Finished, Vec<String>, Duration) {
        let started = Instant::now();
        let mut lines = Vec::new();
        let done = run(&sh(script, timeout), &mut |l| lines.push(l.to_string())).unwrap();
        (done, lines, started.elapsed())
    }

    /// Kills a process left behind by a test, when the test ends however it ends.
    struct Reap(i32);

    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }

    /// The signal masks of `/proc/PID/status` (`SigBlk`, `SigIgn`, `SigCgt`), of `status`'s lines.
    fn signal_masks<'a>(status: impl IntoIterator<Item = &'a str>) -> Vec<(String, u64)> {
        status
            .into_iter()
            .filter_map(|l| l.split_once(":\t"))
            .filter(|(k, _)| ["SigBlk", "SigIgn", "SigCgt"].contains(k))
            .map(|(k, v)| (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap()))
            .collect()
    }

    #[test]
    fn a_program_starts_with_no_signal_blocked_ignored_or_handled() {
        // NB: this process (Rust's runtime) ignores SIGPIPE, and the spawn blocks every signal
        // across its clone: neither may reach the program
        let ours = std::fs::read_to_string("/proc/self/status").unwrap();
        let pipe = 1 << (libc::SIGPIPE - 1);
        let ignored = signal_masks(ours.lines())[1].1;
        assert_ne!(ignored & pipe, 0, "this process ignores SIGPIPE");
        let mut options = sh("", SEC10);
        options.program = "cat".into();
        options.args = vec!["/proc/self/status".into()];
        let mut lines = Vec::new();
        let done = run(&options, &mut |l| lines.push(l.to_string())).unwrap();
        assert!(done.success(), "{done:?}");
        // NB: glibc's own signals (32, 33) are left as they are, as posix_spawn leaves them (a
        // test binary started by cargo has them ignored)
        let glibc = 0b11 << 31;
        let masks: Vec<(String, u64)> = signal_masks(lines.iter().map(String::as_str))
            .into_iter()
            .map(|(k, v)| (k, v & !glibc))
            .collect();
        assert_eq!(
            masks,
            [
                ("SigBlk".into(), 0),
                ("SigIgn".into(), 0),
                ("SigCgt".into(), 0)
            ]
        );
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let cases = [
            (dir.path().join("missing"), "/", "No such file or directory"),
            (script.clone(), "/", "Permission denied"),
            (
                "/bin/true".into(),
                "/nonexistent-cwd",
                "No such file or directory",
            ),
        ];
        for (program, cwd, reason) in cases {
            let mut options = sh("", SEC10);
            options.program = program.clone();
            options.cwd = cwd.into();
            let err = run(&options, &mut |_| {}).unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                format!(
                    "failed to start `{}`: {reason} (os error {})",
                    program.display(),
                    match reason {
                        "Permission denied" => 13,
                        _ => 2,
                    }
                )
            );
        }
    }

    #[test]
    fn exit_codes_signals_and_lines_come_back() {
        let (done, lines, _) = run_sh("echo one; echo two >&2; printf three; exit 3", SEC10);
        assert_eq!(done.status, Status::Exited(3));
        assert_eq!(lines, ["one", "two", "three"]);
        assert_eq!(done.last_lines, ["one", "two", "three"]);
        let (done, _, _) = run_sh("kill -9 $$", SEC10);
        assert_eq!(done.status, Status::Signalled(9));
        assert!(!done.success());
        assert!(run_sh("true", SEC10).0.success());
    }

    const SEC10: Duration = Duration::from_secs(10);

    #[test]
    fn the_environment_is_clean_and_the_rest_as_documented() {
        let mut options = sh("env; umask; pwd; cat; echo stdin-done", SEC10);
        options.env.push(("ONLY_THIS".into(), "1".into()));
        options.cwd = std::env::temp_dir();
        options.keep_lines = 100;
        let done = run(&options, &mut |_| {}).unwrap();
        let mut env: Vec<&str> = done.last_lines.iter().map(String::as_str).collect();
        let tail = env.split_off(env.len() - 3);
        // sh itself may add PWD, SHLVL and `_`
        env.retain(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="));
        env.sort();
        assert_eq!(env, ["ONLY_THIS=1", "PATH=/usr/bin:/bin"]);
        let tmp = std::env::temp_dir().canonicalize().unwrap();
        assert_eq!(tail, ["0022", tmp.to_str().unwrap(), "stdin-done"]);
    }

    #[test]
    fn a_name_is_looked_up_in_the_given_path() {
        let path = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .find(|d| d.join("sh").exists())
            .unwrap();
        assert_eq!(
            resolve(Path::new("sh"), &[("PATH".into(), path.clone().into())]),
            path.join("sh")
        );
        assert_eq!(
            resolve(Path::new("sh"), &[("PATH".into(), "/nonexistent".into())]),
            Path::new("sh")
        );
        assert_eq!(resolve(Path::new("./x"), &[]), Path::new("./x"));
        // found nowhere: not found, though a file of that name is in the working directory
        let dir = tempfile::tempdir().unwrap();
        let decoy = dir.path().join("upgrade-no-such-program");
        std::fs::write(&decoy, "#!/bin/sh\necho decoy\n").unwrap();
        std::fs::set_permissions(&decoy, fs::Permissions::from_mode(0o755)).unwrap();
        let mut missing = sh("", SEC10);
        missing.program = "upgrade-no-such-program".into();
        missing.cwd = dir.path().into();
        let err = run(&missing, &mut |_| {}).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "failed to start `upgrade-no-such-program`: No such file or directory (os error 2)"
        );
    }

    /// This thread's voluntary context switches so far.
    fn switches() -> i64 {
        // SAFETY: getrusage fills the zeroed rusage it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        usage.ru_nvcsw
    }

    #[test]
    fn a_program_costs_two_wake_ups_its_start_and_its_exit() {
        // NB: the start is posix_spawn's (the parent waits for the exec); the end is the pidfd
        // alone, not the output's end of file first (400 hooks: 400 context switches less)
        // NB: a program that closes its output a little before it exits, so that the two are
        // told apart: it wakes its runner once, at the exit
        let options = sh("exec >&- 2>&-; sleep 0.01", SEC10);
        let runs = 20;
        let before = switches();
        for _ in 0..runs {
            assert!(run(&options, &mut |_| {}).unwrap().success());
        }
        let per_run = (switches() - before) as f64 / runs as f64;
        assert!(
            per_run < 2.5,
            "{per_run} voluntary context switches per program"
        );
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let pidfile = tempfile::NamedTempFile::new().unwrap();
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.path().display());
        let (done, _, took) = run_sh(&script, Duration::from_millis(300));
        assert_eq!(done.status, Status::TimedOut(Duration::from_millis(300)));
        assert!(took < Duration::from_secs(5), "{took:?}");
        let pid: i32 = fs::read_to_string(pidfile.path())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _reap = Reap(pid);
        let gone = (0..250).any(|_| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            std::thread::sleep(Duration::from_millis(20));
            stat.is_empty() || stat.split(' ').nth(2) == Some("Z")
        });
        assert!(gone, "the background child {pid} outlived the timeout");
    }

    #[test]
    fn it_is_done_when_it_exits_though_a_child_holds_its_output() {
        // the child left behind inherits stdout and stderr: the pipe never reaches end of file
        let (done, lines, took) = run_sh("sleep 300 & echo $!; echo bye; exit 4", SEC10);
        let _reap = Reap(lines[0].parse().unwrap());
        assert_eq!(done.status, Status::Exited(4));
        assert_eq!(lines[1], "bye");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // killed on its own, it is noticed at once too
        let (done, lines, took) = run_sh("sleep 300 & echo $!; kill -9 $$", SEC10);
        let _reap = Reap(lines[0].parse().unwrap());
        assert_eq!(done.status, Status::Signalled(9));
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn the_timeout_holds_for_a_program_that_keeps_printing() {
        let (done, lines, took) = run_sh("yes", Duration::from_millis(500));
        assert_eq!(done.status, Status::TimedOut(Duration::from_millis(500)));
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(lines.len() > 1000 && lines.iter().all(|l| l == "y"));
    }

    #[test]
    fn output_without_newlines_comes_in_bounded_pieces_in_linear_time() {
        let started = Instant::now();
        let (done, lines, _) = run_sh("head -c 20000000 /dev/zero | tr '\\0' x", SEC10 * 6);
        assert!(done.success());
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(lines.iter().map(String::len).sum::<usize>(), 20_000_000);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(lines.len(), 20_000_000_usize.div_ceil(MAX_LINE));
        assert!(
            done.last_lines
                .iter()
                .all(|l| l.len() <= MAX_KEPT_LINE + "…".len())
        );
        assert_eq!(done.last_lines.len(), 3);
    }

    #[test]
    fn lines_are_split_whatever_the_reads() {
        let text = "a\n\nbc\nd€f\n".repeat(100) + "end";
        let expect: Vec<String> = text.split('\n').map(str::to_string).collect();
        for size in [1, 2, 3, 7, 4096] {
            let mut lines = Lines::new(2);
            let mut got = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                lines.push(chunk, &mut |l| got.push(l.to_string()));
            }
            lines.flush(&mut |l| got.push(l.to_string()));
            assert_eq!(got, expect, "reads of {size}");
            assert_eq!(lines.last, ["d€f", "end"]);
        }
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        // 'é' is two bytes: with one byte of padding, a character straddles every cut
        let text = format!("x{}\n", "é".repeat(MAX_LINE));
        let mut lines = Lines::new(3);
        let mut got = Vec::new();
        for chunk in text.as_bytes().chunks(5000) {
            lines.push(chunk, &mut |l| got.push(l.to_string()));
        }
        lines.flush(&mut |l| got.push(l.to_string()));
        assert!(
            got.iter()
                .all(|l| !l.contains('\u{FFFD}') && l.len() <= MAX_LINE)
        );
        assert_eq!(got.concat(), text.trim_end());
        assert_eq!(got.len(), 3);
        assert!(lines.last[0].ends_with('…') && lines.last[0].len() <= MAX_KEPT_LINE + 3);
        assert_eq!(lines.last[2], "é");
    }

    #[test]
    fn char_boundary_keeps_an_unfinished_character_back() {
        assert_eq!(char_boundary(b"abc"), 3);
        assert_eq!(char_boundary("aé".as_bytes()), 3);
        assert_eq!(char_boundary(&"aé".as_bytes()[..2]), 1);
        assert_eq!(char_boundary(&"a€".as_bytes()[..3]), 1);
        assert_eq!(char_boundary(&"a𝄞".as_bytes()[..4]), 1);
        assert_eq!(char_boundary("a𝄞".as_bytes()), 5);
        assert_eq!(char_boundary(b"a\x80\x80\x80"), 4); // not UTF-8: cut anywhere
    }
}
