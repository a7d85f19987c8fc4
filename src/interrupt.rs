//! Interrupts (SPEC §5). Every command ends at SIGINT, SIGTERM or SIGHUP at once, as it would
//! without a handler, except that the program it runs (a `checks.d` check, say, in a process
//! group of its own that the terminal's Ctrl-C does not reach) gets SIGTERM first instead of
//! running on as an orphan.
//!
//! A command that changes the host [`defer`]s them instead: a signal is noted, not obeyed on the
//! spot. The run looks at [`received`] where stopping is safe — between steps, in the process
//! runner (which then ends the running hook's process group), between migrations — and ends with
//! [`UpgradeError::Interrupted`] (exit 130 or 143), the run left open and the services it stopped
//! started again. An rpm transaction is never cut: rpm runs in a process group of its own, which a
//! Ctrl-C at the terminal does not reach, and the signal waits for it to end.
//!
//! At the confirmation prompt nothing has changed yet: there a signal ends the process at once,
//! the terminal given back as it was; Ctrl-C is a decline (exit 4).

use std::cell::UnsafeCell;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::error::UpgradeError;

/// The first signal received since [`install`], 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Set by [`defer`]: signals are noted for the run to stop where it safely can.
static DEFERRED: AtomicBool = AtomicBool::new(false);

/// The process group of the interruptible program running now, 0 for none ([`Child`]).
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

/// Set while [`at_prompt`] waits for an answer: a signal then ends the process.
static AT_PROMPT: AtomicBool = AtomicBool::new(false);

/// The terminal at the prompt, and its settings before the prompt changed them.
static PROMPT_TTY: AtomicI32 = AtomicI32::new(-1);
static PROMPT_TERMIOS: SavedTermios = SavedTermios(UnsafeCell::new(None));

/// Written once, before [`AT_PROMPT`] is set, and only read while it is.
struct SavedTermios(UnsafeCell<Option<libc::termios>>);

// SAFETY: see the type's comment: the one write happens-before every read (AT_PROMPT's
// release/acquire), and there is no write while a read may happen.
unsafe impl Sync for SavedTermios {}

/// The signals that interrupt a run.
pub const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Handles SIGINT, SIGTERM and SIGHUP from now on (see the module's documentation); every
/// command calls it first.
pub fn install() -> anyhow::Result<()> {
    // NB: SA_RESTART: a system call the signal lands in goes on (rpm's `waitpid`, a database
    // read), and a deferring run looks at the flag where it may stop.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in SIGNALS {
        // SAFETY: `on_signal` only does what is async-signal-safe (atomics, killpg, tcsetattr,
        // write, sigaction, raise, _exit).
        unsafe { sigaction(signal, &action) }
            .map_err(|e| anyhow::anyhow!("failed to handle {signal}: {e}"))?;
    }
    Ok(())
}

/// From now on a signal is noted, not obeyed: the run stops where it safely can. A signal that
/// came before is noted already.
pub fn defer() {
    DEFERRED.store(true, Ordering::SeqCst);
}

/// Marks an interruptible program's process group as the one a signal ends, while it lives.
pub struct Child(());

impl Child {
    pub fn running(group: i32) -> Child {
        CHILD_GROUP.store(group, Ordering::SeqCst);
        Child(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        CHILD_GROUP.store(0, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if !AT_PROMPT.load(Ordering::Acquire) {
        if !DEFERRED.load(Ordering::SeqCst) {
            die_of(signal);
        }
        return;
    }
    // At the prompt: nothing changed yet. Give the terminal back as it was, and go.
    let tty = PROMPT_TTY.load(Ordering::Acquire);
    // SAFETY: written before AT_PROMPT was set (see SavedTermios).
    if let (true, Some(termios)) = (tty >= 0, unsafe { &*PROMPT_TERMIOS.0.get() }) {
        // SAFETY: tcsetattr is async-signal-safe; the termios is a valid one read from `tty`.
        unsafe { libc::tcsetattr(tty, libc::TCSANOW, termios) };
    }
    let (message, code): (&[u8], i32) = match signal {
        libc::SIGINT => (
            b"\x1b[?25h\nupgrade declined, nothing was changed\n",
            crate::error::exit::DECLINED.into(),
        ),
        _ => (
            b"\x1b[?25h\ninterrupted at the prompt, nothing was changed\n",
            exit_code(signal).into(),
        ),
    };
    // SAFETY: write and _exit are async-signal-safe; the buffer is static.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(code);
    }
}

/// Ends the process of `signal` as if it had no handler, after SIGTERM to the running program's
/// process group.
fn die_of(signal: libc::c_int) {
    let group = CHILD_GROUP.load(Ordering::SeqCst);
    // SAFETY: killpg, signal, sigemptyset, sigaddset, pthread_sigmask, raise and _exit are
    // async-signal-safe; the set is a local one.
    unsafe {
        if group > 0 {
            libc::killpg(group, libc::SIGTERM);
        }
        libc::signal(signal, libc::SIG_DFL);
        // NB: the signal is blocked while its handler runs: unblocked, the raised one is
        // delivered at once and the process dies of it, as the caller (a shell) expects.
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
        libc::raise(signal);
        libc::_exit(128 + signal);
    }
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// Fails with [`UpgradeError::Interrupted`] once a signal was received.
pub fn check() -> Result<(), UpgradeError> {
    match received() {
        Some(signal) => Err(UpgradeError::Interrupted {
            signal: signal.as_str(),
            code: exit_code(signal as i32),
        }),
        None => Ok(()),
    }
}

/// 130 for SIGINT, 143 for the others (SPEC §10).
fn exit_code(signal: libc::c_int) -> u8 {
    match signal {
        libc::SIGINT => 130,
        _ => 143,
    }
}

/// Runs `ask` (a prompt on the terminal) so that a signal meanwhile ends the process as the
/// prompt's answer would: SIGINT (Ctrl-C) declines with exit 4, SIGTERM and SIGHUP exit 143; the
/// terminal's settings and cursor are given back first. A signal received before is answered the
/// same way without asking.
pub fn at_prompt<T>(ask: impl FnOnce() -> T) -> T {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok();
    if let Some(tty) = &tty {
        let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios it is given when it returns 0.
        if unsafe { libc::tcgetattr(tty.as_raw_fd(), termios.as_mut_ptr()) } == 0 {
            // SAFETY: AT_PROMPT is not set, so the handler reads nothing (see SavedTermios);
            // tcgetattr returned 0.
            unsafe { *PROMPT_TERMIOS.0.get() = Some(termios.assume_init()) };
            PROMPT_TTY.store(tty.as_raw_fd(), Ordering::Release);
        }
    }
    AT_PROMPT.store(true, Ordering::Release);
    if let Some(signal) = received() {
        // a signal that came before the prompt: answer it now, as the handler would have
        on_signal(signal as i32);
    }
    let answer = ask();
    AT_PROMPT.store(false, Ordering::Release);
    PROMPT_TTY.store(-1, Ordering::Release);
    drop(tty);
    answer
}

/// Runs `work`, calling `cancel` once from another thread if a signal arrives meanwhile (to cut a
/// database statement that would otherwise hold the interrupted run for its whole length).
pub fn cancelling<T>(cancel: impl FnOnce() + Send, work: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if received().is_some() {
                    cancel();
                    return;
                }
                std::thread::park_timeout(WATCH);
            }
        });
        let out = work();
        done.store(true, Ordering::Release);
        watcher.thread().unpark();
        out
    })
}

/// How often [`cancelling`] looks for a signal.
const WATCH: std::time::Duration = std::time::Duration::from_millis(50);
