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
    pub const ROLLED_BACK: u8 = 6;
    pub const UNHEALTHY: u8 = 7;
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
        inhibitors.len(),
        inhibitors.join(", ")
    )]
    Inhibited { inhibitors: Vec<String> },
    /// The user said no at the prompt (exit 4).
    #[error("upgrade declined, nothing was changed")]
    Declined,
    /// Another run holds the lock on this root (exit 5).
    #[error("another upgrade is running on this root (pid {pid})")]
    Locked { pid: String },
    /// Required health checks failed or could not tell, and the release stays running for a
    /// person to `rollback` or `commit` (exit 7).
    #[error(
        "health checks {} after run {run}: {}; {kept}",
        if *inconclusive { "could not tell" } else { "failed" },
        failing.join(", ")
    )]
    Unhealthy {
        run: i64,
        /// No required check failed, but one could not tell.
        inconclusive: bool,
        failing: Vec<String>,
        /// Why the release stays running.
        kept: String,
    },
    /// Required health checks failed and the host was rolled back to the run's restore point
    /// (exit 6).
    #[error(
        "health checks failed after run {run}: {}; the host was rolled back to {version} by run {rollback}",
        failing.join(", ")
    )]
    RolledBack {
        run: i64,
        failing: Vec<String>,
        rollback: i64,
        version: String,
    },
    /// `rollback` finds nothing to go back to (exit 2); nothing was changed.
    #[error("nothing to roll back: {why}")]
    NothingToRollBack { why: String },
    /// The run took no restore point (`--no-restore-point`, or before restore points existed).
    #[error(
        "run {run} took no restore point (it ran with `--no-restore-point`, or before restore points existed)"
    )]
    NoRestorePoint { run: i64 },
    /// The run's restore point was pruned, or the run stopped before taking it.
    #[error(
        "the restore point of run {run} is not there: it was pruned (`[restore] keep`) or the run stopped before taking it"
    )]
    RestorePointGone { run: i64 },
    /// The run's restore point lacks packages no repository had when it was taken.
    #[error(
        "the restore point of run {run} is partial: no repository had {} when it was taken",
        missing.join(", ")
    )]
    RestorePointPartial { run: i64, missing: Vec<String> },
    /// A rollback run is open: it must be finished first (by `rollback` without `--to-run`).
    #[error("rollback run {run} is not finished")]
    RollbackUnfinished { run: i64, to_run: bool },
    /// An uninstall run is open: it must be finished first (by `uninstall` or the plain
    /// `upgrade`), or undone by `rollback`.
    #[error("uninstall run {run} is not finished")]
    UninstallUnfinished { run: i64 },
    /// An upgrade run is open when an uninstall is asked for.
    #[error("upgrade run {run} is not finished")]
    UpgradeUnfinished { run: i64 },
    /// A hook asked for a reboot (exit 10).
    #[error("hook `{hook}` requested a reboot")]
    RebootRequired { hook: String },
    /// A hook asked for a reboot and the host is rebooting (`[reboot] automatic`, exit 10).
    #[error("hook `{hook}` requested a reboot: the host reboots (`{command}`)")]
    Rebooting { hook: String, command: String },
    /// A hook failed the run.
    #[error("hook `{name}` {status}")]
    HookFailed {
        name: String,
        status: HookStatus,
        last_lines: Vec<String>,
    },
    /// The index's minisign signature does not verify with the configured key (exit 2).
    #[error("refusing repository index `{location}`: {why} ({detail})")]
    BadSignature {
        location: String,
        why: &'static str,
        detail: String,
    },
    /// The index is past its `expires` (exit 2): stale or replayed.
    #[error("repository index `{location}` expired at {expires}")]
    IndexExpired { location: String, expires: String },
    /// The index's `sequence` is lower than one this root accepted (exit 2): a rollback attack
    /// or a stale mirror.
    #[error(
        "repository index `{location}` has sequence {sequence}, lower than {accepted} which this \
         host has already accepted: refusing an older index (rollback)"
    )]
    IndexRollback {
        location: String,
        sequence: u64,
        accepted: u64,
    },
    /// `--to` names a release the index does not list (exit 2).
    #[error("release `{version}` is not in the repository")]
    UnknownRelease {
        version: String,
        available: Vec<String>,
    },
    /// The target is older than the installed release (exit 2).
    #[error("release `{target}` is older than the installed `{installed}`")]
    Downgrade { target: String, installed: String },
    /// A downloaded or cached artifact is not the file the index names (exit 1).
    #[error("artifact `{nevra}` (`{location}`) has sha256 {actual}, the index says {expected}")]
    ChecksumMismatch {
        nevra: String,
        location: String,
        actual: String,
        expected: String,
    },
    /// A package file's header names another package than the plan (exit 1): the index and the
    /// file disagree.
    #[error("`{file}` is {actual}, but the plan installs {planned} from it")]
    PackageMismatch {
        file: String,
        planned: String,
        actual: String,
    },
    /// An applied migration's file changed since (exit 1).
    #[error(
        "applied migration `{migration}` has changed: applied with sha256 {applied}, the file now \
         has {file}"
    )]
    MigrationDrift {
        migration: String,
        applied: String,
        file: String,
    },
    /// Another runner held the database's migration lock for longer than allowed (exit 1).
    #[error(
        "timed out after {} waiting for the migration lock on `{database}`",
        humantime::format_duration(*timeout)
    )]
    LockTimeout {
        database: String,
        timeout: std::time::Duration,
    },
    /// An application node (SPEC §15) waited longer than allowed for the migration node to
    /// apply its hop's migrations (exit 1).
    #[error(
        "timed out after {} waiting for the migration node to apply {} on `{database}`",
        humantime::format_duration(*timeout),
        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
    )]
    MigrationsNotApplied {
        database: String,
        timeout: std::time::Duration,
        missing: Vec<String>,
    },
    /// `migrations finalize` while a node of the fleet runs another release (exit 1).
    #[error(
        "not every node runs {version}: {}; the contract migrations were not applied to `{database}`",
        behind.join(", ")
    )]
    NodesDisagree {
        database: String,
        version: String,
        behind: Vec<String>,
    },
    /// A person must confirm and none can be asked (exit 2).
    #[error("no terminal to ask for confirmation on")]
    NoTerminal {
        /// The command to run again with `--yes` (`upgrade`, `real-upgrade rollback`…).
        command: &'static str,
    },
    /// The rpm database holds the product's packages but no version is recorded (exit 2): a
    /// lost or emptied `state.db` must not turn an installed host into a fresh install.
    #[error(
        "the product's packages are installed ({}) but this root records no installed version",
        packages.join(", ")
    )]
    Unrecorded { packages: Vec<String> },
    /// `--to` asks for another target than the open run's, which changed the host (exit 2).
    #[error(
        "run {id} to {open_to} is open and has changed this host; it cannot go to `{asked}` instead"
    )]
    OpenRunDiffers {
        id: i64,
        open_to: String,
        asked: String,
    },
    /// `abandon` of a run that changed the host (exit 2).
    #[error("run {id} has changed this host (done: {done}); it cannot be abandoned")]
    RunChangedHost { id: i64, done: String },
    /// `state.db` cannot be opened or prepared (exit 1): corrupt, unreadable, a full disk, a
    /// symlink.
    #[error("the state database `{path}` cannot be used: {detail}")]
    StateUnusable { path: String, detail: String },
    /// `history ID` names a run this root never had (exit 2).
    #[error("there is no run {id}")]
    UnknownRun { id: i64 },
    /// Something the confirmed plan fixed is gone or different on disk (exit 1): the run does
    /// not run what the operator did not see.
    #[error("{what} {change} since the plan was made")]
    PlanChanged { what: String, change: String },
    /// A step of the run failed (exit 1); `hint` says what to do next.
    #[error("{message}")]
    Step {
        message: String,
        hint: Option<String>,
    },
    /// A planned migration begins, ends or cuts the transaction it is applied in (exit 2):
    /// refused before anything changes.
    #[error(
        "migration `{migration}` controls its own transaction: `{statement}` at line {line} of \
         `{path}`"
    )]
    MigrationTransactionControl {
        migration: String,
        path: String,
        line: usize,
        statement: String,
    },
    /// A migration ended the transaction it was applied in (exit 1): what it did before may have
    /// committed, so it is recorded as failed.
    #[error(
        "migration `{migration}` ended the transaction it was applied in on `{database}`: it may \
         be half applied, and is recorded as failed"
    )]
    MigrationEndedTransaction { migration: String, database: String },
    /// SIGINT, SIGTERM or SIGHUP stopped the run where stopping is safe (exit 130 or 143); the
    /// run stays open.
    #[error("interrupted by {signal}: the run stopped and stays open")]
    Interrupted { signal: &'static str, code: u8 },
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
            UpgradeError::Input { .. }
            | UpgradeError::BadSignature { .. }
            | UpgradeError::IndexExpired { .. }
            | UpgradeError::IndexRollback { .. }
            | UpgradeError::UnknownRelease { .. }
            | UpgradeError::Downgrade { .. }
            | UpgradeError::NoTerminal { .. }
            | UpgradeError::Unrecorded { .. }
            | UpgradeError::OpenRunDiffers { .. }
            | UpgradeError::RunChangedHost { .. }
            | UpgradeError::UnknownRun { .. }
            | UpgradeError::NothingToRollBack { .. }
            | UpgradeError::NoRestorePoint { .. }
            | UpgradeError::RestorePointGone { .. }
            | UpgradeError::RestorePointPartial { .. }
            | UpgradeError::RollbackUnfinished { .. }
            | UpgradeError::UninstallUnfinished { .. }
            | UpgradeError::UpgradeUnfinished { .. }
            | UpgradeError::MigrationTransactionControl { .. } => exit::USAGE,
            UpgradeError::Inhibited { .. } => exit::INHIBITED,
            UpgradeError::Declined => exit::DECLINED,
            UpgradeError::Locked { .. } => exit::LOCKED,
            UpgradeError::RebootRequired { .. } | UpgradeError::Rebooting { .. } => exit::REBOOT,
            UpgradeError::RolledBack { .. } => exit::ROLLED_BACK,
            UpgradeError::Unhealthy { .. } => exit::UNHEALTHY,
            UpgradeError::HookFailed { .. }
            | UpgradeError::ChecksumMismatch { .. }
            | UpgradeError::PackageMismatch { .. }
            | UpgradeError::StateUnusable { .. }
            | UpgradeError::MigrationDrift { .. }
            | UpgradeError::LockTimeout { .. }
            | UpgradeError::MigrationsNotApplied { .. }
            | UpgradeError::NodesDisagree { .. }
            | UpgradeError::PlanChanged { .. }
            | UpgradeError::Step { .. }
            | UpgradeError::MigrationEndedTransaction { .. } => exit::FAILED,
            UpgradeError::Interrupted { code, .. } => *code,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            UpgradeError::Input { hint, .. } | UpgradeError::Step { hint, .. } => hint.clone(),
            UpgradeError::Declined => None,
            UpgradeError::BadSignature { .. } => Some(
                "do not use this repository; check `public_key` under `[repository]` and ask the \
                 vendor for a correctly signed index"
                    .into(),
            ),
            UpgradeError::IndexExpired { .. } => Some(
                "the repository is stale or replayed; ask the vendor to publish it again, and \
                 check this host's clock"
                    .into(),
            ),
            UpgradeError::IndexRollback { .. } => Some(
                "the repository or a mirror serves a stale index; point `[repository] url` at an \
                 up-to-date one"
                    .into(),
            ),
            UpgradeError::UnknownRelease { available, .. } => {
                Some(format!("available releases: {}", available.join(", ")))
            }
            UpgradeError::Downgrade { .. } => {
                Some("downgrades are not supported; choose a newer release with `--to`".into())
            }
            UpgradeError::ChecksumMismatch { .. } => Some(
                "the repository or the cache holds a file other than the index names; ask the \
                 vendor for a consistent repository, then run `upgrade` again"
                    .into(),
            ),
            UpgradeError::PackageMismatch { .. } => Some(
                "the repository's index names this file for another package; ask the vendor for \
                 a consistent repository, then run `upgrade` again"
                    .into(),
            ),
            UpgradeError::MigrationDrift { .. } => Some(
                "restore the file as it was applied; a change to the schema needs a new migration"
                    .into(),
            ),
            UpgradeError::LockTimeout { .. } => Some(
                "another host is applying migrations to this database; wait for it, or raise \
                 `[database] lock_timeout`"
                    .into(),
            ),
            UpgradeError::MigrationsNotApplied { .. } => Some(
                "upgrade the migration node (`[database] migrate = true`) to this release first, \
                 then run `upgrade` here again to resume; or raise `[database] lock_timeout`"
                    .into(),
            ),
            UpgradeError::NodesDisagree { .. } => Some(
                "upgrade (or roll back) every node to the same release, then run `real-upgrade \
                 migrations finalize` again; a node that left the fleet is taken out of the \
                 table `upgrade_nodes` by hand"
                    .into(),
            ),
            UpgradeError::NoTerminal { command } => Some(match *command {
                "upgrade" => {
                    "run `upgrade --yes` to upgrade unattended, or `upgrade --dry-run` to see the \
                     plan"
                        .into()
                }
                _ => format!(
                    "run `{command} --yes` to go on unattended, or `{command} --dry-run` to see \
                     the plan"
                ),
            }),
            UpgradeError::UnknownRun { .. } => Some("`real-upgrade history` lists the runs".into()),
            UpgradeError::StateUnusable { .. } => Some(
                "check the disk and the file's permissions; if the file is damaged, restore it \
                 from a backup, or move it aside and record the installed release with \
                 `real-upgrade adopt VERSION`"
                    .into(),
            ),
            UpgradeError::Unrecorded { .. } => Some(
                "if `state.db` was lost, record the installed release with `real-upgrade adopt \
                 VERSION`, then run `upgrade`"
                    .into(),
            ),
            UpgradeError::OpenRunDiffers { .. } => {
                Some("run `upgrade` without `--to` to finish the open run first".into())
            }
            UpgradeError::RunChangedHost { .. } => Some(
                "run `upgrade` to finish it (it resumes where it stopped), or `real-upgrade \
                 rollback` to go back to its restore point (`commit` keeps a run whose health \
                 checks failed)"
                    .into(),
            ),
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
            UpgradeError::Rebooting { .. } => Some(
                "after the boot, `upgrade-resume.service` resumes the run where it stopped (or \
                 run `upgrade` again)"
                    .into(),
            ),
            UpgradeError::NothingToRollBack { .. } => None,
            UpgradeError::NoRestorePoint { .. } => Some(
                "there is nothing to put back; a later run's restore point may be named with \
                 `--to-run ID`"
                    .into(),
            ),
            UpgradeError::RestorePointGone { .. } => Some(
                "`real-upgrade history` shows the runs; a run that changed nothing can be abandoned"
                    .into(),
            ),
            UpgradeError::RestorePointPartial { .. } => Some(
                "a rollback would leave the product half put back; nothing was changed".into(),
            ),
            UpgradeError::RollbackUnfinished { to_run, .. } => Some(
                match to_run {
                    true => "run `real-upgrade rollback` without `--to-run` to finish it first",
                    false => "run `real-upgrade rollback` to finish it first",
                }
                .into(),
            ),
            UpgradeError::UninstallUnfinished { .. } => Some(
                "run `real-upgrade uninstall` (or the plain `upgrade`) to finish it, or \
                 `real-upgrade rollback` to undo it"
                    .into(),
            ),
            UpgradeError::UpgradeUnfinished { .. } => Some(
                "run `upgrade` to finish it, or `real-upgrade rollback` to undo it, then \
                 uninstall"
                    .into(),
            ),
            UpgradeError::Unhealthy { run, .. } => Some(format!(
                "fix what the checks report and run `upgrade` to check again; or `real-upgrade \
                 rollback` to go back to the restore point, or `real-upgrade commit` to keep \
                 the release as it is (`real-upgrade history {run}` shows the results)"
            )),
            UpgradeError::RolledBack { run, .. } => Some(format!(
                "the release that failed its checks is not installed; `real-upgrade history \
                 {run}` shows the checks' results"
            )),
            UpgradeError::PlanChanged { what, .. } => Some(format!(
                "put {what} back as it was when the run was planned, then run `upgrade` again to \
                 resume"
            )),
            UpgradeError::HookFailed { .. } => {
                Some("fix the hook or what it checks, then run `upgrade` again to resume".into())
            }
            UpgradeError::MigrationTransactionControl { .. } => Some(
                "`upgrade` applies each migration in a transaction with its ledger row: remove \
                 the statement from the migration, then run `upgrade` again"
                    .into(),
            ),
            UpgradeError::MigrationEndedTransaction { .. } => Some(
                "remove the `COMMIT`, `ROLLBACK` or `END` from the migration (`upgrade` applies \
                 each in a transaction of its own), repair the database, then run \
                 `real-upgrade migrations repair` and `upgrade` again"
                    .into(),
            ),
            UpgradeError::Interrupted { .. } => Some(
                "run `upgrade` again to resume the run where it stopped (or `real-upgrade \
                 abandon` if it changed nothing)"
                    .into(),
            ),
        }
    }
}

/// The first [`UpgradeError`] in the chain of `err`, if any; an interrupt wins over the
/// failures it caused on its way out (a cancelled statement, a hook ended).
pub fn find(err: &anyhow::Error) -> Option<&UpgradeError> {
    let interrupted = err
        .chain()
        .filter_map(|e| e.downcast_ref::<UpgradeError>())
        .find(|e| matches!(e, UpgradeError::Interrupted { .. }));
    // NB: `downcast_ref` sees through anyhow's context layers (an UpgradeError given as
    // context), `chain` through std sources.
    interrupted
        .or_else(|| err.downcast_ref::<UpgradeError>())
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<UpgradeError>()))
}

/// The exit code for a failure (SPEC §10).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    find(err).map_or(exit::FAILED, UpgradeError::exit_code)
}
