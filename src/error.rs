//! The failures that code and tests match on, and the one mapping from a failure to an exit code.
//!
//! Everything else travels as `anyhow::Error` with context; [`exit_code`] walks the chain for an
//! [`UpgradeError`] and falls back to 1 ("a step failed").

use std::fmt;

/// Exit codes of SPEC §10.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INHIBITED: u8 = 3;
    pub const DECLINED: u8 = 4;
    pub const LOCKED: u8 = 5;
    pub const REBOOT: u8 = 10;
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Bad configuration, index, command line or other input (exit 2).
    #[error("{message}")]
    Input {
        message: String,
        hint: Option<String>,
    },
    /// Preflight checks found inhibitors; nothing was changed (exit 3).
    #[error(
        "{} preflight check(s) inhibit the upgrade: {}",
        report.inhibitors().count(),
        report.inhibitors().map(|r| r.key.as_str()).collect::<Vec<_>>().join(", ")
    )]
    Inhibited {
        report: Box<crate::steps::preflight::Report>,
    },
    /// The user said no at the prompt (exit 4).
    #[error("upgrade declined, nothing was changed")]
    Declined,
    /// Another run holds the lock on this root (exit 5).
    #[error("another upgrade is running on this root (pid {pid})")]
    Locked { pid: String },
    /// A hook asked for a reboot (exit 10).
    #[error("hook `{hook}` requested a reboot")]
    RebootRequired { hook: String },
    /// A hook failed the run.
    #[error("hook `{name}` {status}")]
    HookFailed {
        name: String,
        status: HookStatus,
        last_lines: Vec<String>,
    },
    /// A step of the run failed (exit 1); `hint` says what to do next.
    #[error("{message}")]
    Step {
        message: String,
        hint: Option<String>,
    },
}

/// How a hook ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStatus {
    Exited(i32),
    Signalled(i32),
    TimedOut(std::time::Duration),
}

impl fmt::Display for HookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookStatus::Exited(code) => write!(f, "exited with {code}"),
            HookStatus::Signalled(sig) => write!(f, "was killed by signal {sig}"),
            HookStatus::TimedOut(d) => {
                write!(f, "timed out after {}", humantime::format_duration(*d))
            }
        }
    }
}

impl UpgradeError {
    pub fn input(message: impl Into<String>) -> Self {
        UpgradeError::Input {
            message: message.into(),
            hint: None,
        }
    }

    pub fn input_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UpgradeError::Input {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn step(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UpgradeError::Step {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            UpgradeError::Input { .. } => exit::USAGE,
            UpgradeError::Inhibited { .. } => exit::INHIBITED,
            UpgradeError::Declined => exit::DECLINED,
            UpgradeError::Locked { .. } => exit::LOCKED,
            UpgradeError::RebootRequired { .. } => exit::REBOOT,
            UpgradeError::HookFailed { .. } | UpgradeError::Step { .. } => exit::FAILED,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            UpgradeError::Input { hint, .. } | UpgradeError::Step { hint, .. } => hint.clone(),
            UpgradeError::Declined => None,
            UpgradeError::Inhibited { .. } => Some(
                "nothing was changed; resolve every inhibitor listed above, then run again \
                 (`real-upgrade check` runs the checks alone)"
                    .into(),
            ),
            UpgradeError::Locked { .. } => {
                Some("wait for it to finish; run `real-upgrade status` to see its progress".into())
            }
            UpgradeError::RebootRequired { .. } => {
                Some("reboot, then run `upgrade` again to resume where it stopped".into())
            }
            UpgradeError::HookFailed { .. } => {
                Some("fix the hook or what it checks, then run `upgrade` again to resume".into())
            }
        }
    }
}

/// The first [`UpgradeError`] in the chain of `err`, if any.
pub fn find(err: &anyhow::Error) -> Option<&UpgradeError> {
    // NB: `downcast_ref` sees through anyhow's context layers (an UpgradeError given as
    // context), `chain` through std sources.
    err.downcast_ref::<UpgradeError>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<UpgradeError>()))
}

/// The exit code for a failure (SPEC §10).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    find(err).map_or(exit::FAILED, UpgradeError::exit_code)
}
