//! How the library talks to a person without printing: operations and the executor report
//! through a [`Ui`] ([`Event`]s, the plan, a yes/no question); [`crate::cli`] implements it for a
//! terminal, tests for a recording.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;

use crate::model::catalog::Artifact;
use crate::model::checks::Report;
use crate::model::health::HealthReport;
use crate::model::hooks::Phase;
use crate::model::journal::JournalKey;
use crate::model::plan::{Hop, Plan, Step};
use crate::state::RunRecord;

/// How the caller talks to a person: the run never prints, it reports through this.
pub trait Ui {
    /// Shows the plan; `done` holds the journal keys already done when resuming.
    fn plan(&self, view: &PlanView<'_>);
    /// Asks a yes/no question; only called when a person is at a terminal.
    fn confirm(&self, question: &str) -> Result<bool>;
    fn event(&self, event: Event<'_>);
}

pub struct PlanView<'a> {
    pub plan: &'a Plan,
    pub done: &'a HashSet<JournalKey>,
    pub resumed: Option<&'a RunRecord>,
}

#[derive(Debug)]
pub enum Event<'a> {
    StepStarted {
        step: Step,
        hop: Option<&'a Hop>,
    },
    StepAlreadyDone {
        step: Step,
        hop: Option<&'a Hop>,
    },
    /// The download step fetches `artifacts` files of `bytes` bytes (cached ones included).
    DownloadStarted {
        artifacts: usize,
        bytes: u64,
    },
    /// `bytes` more bytes are in the cache.
    DownloadProgress {
        bytes: u64,
    },
    Fetched {
        artifact: &'a Artifact,
    },
    /// The repository is unreachable: the run plans from the index `--download-only` kept.
    KeptIndex {
        index: &'a std::path::Path,
        sequence: u64,
    },
    /// The preflight report, before the confirmation; an inhibitor then fails the run.
    Checks {
        report: &'a Report,
    },
    DownloadFinished,
    /// The shim installed a newer upgrader (`from` is the installed one, if any).
    UpgraderRefreshed {
        from: Option<&'a str>,
        to: &'a str,
    },
    HookStarted {
        phase: Phase,
        name: &'a str,
    },
    HookAlreadyDone {
        phase: Phase,
        name: &'a str,
    },
    HookLine {
        name: &'a str,
        line: &'a str,
    },
    /// A hook that appeared since the plan was made: reported, not run (the plan is the
    /// contract).
    HookNotPlanned {
        phase: Phase,
        name: &'a str,
    },
    /// A migration that appeared since the plan was made: reported, not applied.
    MigrationNotPlanned {
        label: &'a str,
    },
    /// A planned migration changed after its step failed: the fix is applied.
    MigrationFixed {
        label: &'a str,
    },
    MigrationApplied {
        label: &'a str,
        took: std::time::Duration,
    },
    MigrationsUpToDate {
        database: &'a str,
    },
    /// An application node (SPEC §15) waits for the migration node's migrations.
    MigrationsAwaited {
        database: &'a str,
        missing: &'a [String],
    },
    /// This node's release could not be written to the shared database (`upgrade_nodes`).
    NodeNotRecorded {
        error: &'a str,
    },
    /// The migrations an application node waited for are applied.
    MigrationsAppliedElsewhere {
        database: &'a str,
    },
    HookRebootRequested {
        name: &'a str,
    },
    /// `[reboot] automatic`: the run stopped for a reboot, and `command` reboots the host now.
    Rebooting {
        command: &'a str,
    },
    /// `[reboot] automatic` under a root other than `/` with no `[reboot] command`: the
    /// machine is not rebooted.
    RebootNotUnderRoot {
        root: &'a std::path::Path,
    },
    /// The reboot command failed: a person must reboot.
    RebootFailed {
        command: &'a str,
        error: &'a str,
    },
    PackagesAlreadyInstalled {
        names: Vec<String>,
    },
    Transaction {
        files: usize,
    },
    /// A line rpm printed during the transaction (scriptlet output, warnings).
    PackageOutput {
        line: &'a str,
    },
    ConfigFileKept {
        path: &'a str,
    },
    Recorded {
        version: &'a str,
    },
    /// The step has no service to stop or start.
    NoServices,
    ServiceStopping {
        name: &'a str,
    },
    ServiceStopped {
        name: &'a str,
        took: Duration,
    },
    ServiceStarting {
        name: &'a str,
    },
    ServiceStarted {
        name: &'a str,
        ready_after: Duration,
    },
    ServiceFailed {
        name: &'a str,
        error: &'a str,
    },
    /// A run failed after stopping services: they are started again (best effort).
    ServicesRestoring {
        names: Vec<String>,
    },
    ServiceRestoreFailed {
        name: &'a str,
        error: &'a str,
    },
    /// The health checks begin: `checks` of them, tried again until `timeout` when given.
    HealthStarted {
        checks: usize,
        timeout: Option<Duration>,
    },
    /// These checks have not passed yet; they are tried again for `left` at most.
    HealthWaiting {
        pending: &'a [String],
        left: Duration,
    },
    /// Run `run` failed its health checks: it is rolled back now (SPEC §13).
    RollingBack {
        run: i64,
    },
    /// The health checks' verdict.
    HealthChecked {
        report: &'a HealthReport,
    },
    /// The packages step erases the product's packages the release no longer lists (or every
    /// one of them: `uninstall`).
    PackagesErasing {
        names: Vec<String>,
        uninstall: bool,
    },
}
