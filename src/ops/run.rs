//! What every command that executes a plan shares (the upgrade, the rollback, and `commit`,
//! which closes a run): the outcome it reports, the confirmation, and how a run is closed.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::journal::JournalKey;
use crate::model::journal::RunStatus;
use crate::model::plan::{LeftBehind, Plan};
use crate::repo::Repository;
use crate::state::{RunRecord, State};
use crate::ui::{Event, Ui};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    UpToDate,
    Planned,
    Downloaded,
    Upgraded,
    RolledBack,
    /// An uninstall finished: nothing is installed.
    Uninstalled,
    /// `uninstall` found nothing installed.
    NothingInstalled,
}

/// What a run did, for the renderer and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub result: RunResult,
    pub product: String,
    pub from: Option<String>,
    pub to: String,
    pub run_id: Option<i64>,
    pub resumed: bool,
    /// `.rpmnew` / `.rpmsave` files the package transactions created.
    pub config_files: Vec<String>,
    /// What an uninstall leaves on the host on purpose, and why (SPEC §14).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<LeftBehind>,
    pub plan: Plan,
}

impl Outcome {
    /// The outcome of `plan` before it runs (run `run_id` when resumed).
    pub(crate) fn of(plan: &Plan, run_id: Option<i64>) -> Outcome {
        Outcome {
            result: RunResult::Planned,
            product: plan.product.clone(),
            from: plan.from.clone(),
            to: plan.to.clone(),
            run_id,
            resumed: run_id.is_some(),
            config_files: Vec::new(),
            left_behind: plan
                .hops
                .iter()
                .filter_map(|h| h.uninstall.as_ref())
                .flat_map(|u| u.left_behind.clone())
                .collect(),
            plan: plan.clone(),
        }
    }
}

/// Records how the run ended: succeeded closes it (and prunes the cache to its plan, and the
/// restore points to the newest `keep`); a failure or a reboot request leaves it open.
pub(crate) fn close(
    state: &State,
    run_id: i64,
    plan: &Plan,
    paths: &crate::context::Paths,
    keep: usize,
    result: Result<Vec<String>>,
) -> Result<Vec<String>> {
    let err = match result {
        Ok(config_files) => {
            succeeded(state, run_id, plan, paths, keep, None)?;
            return Ok(config_files);
        }
        Err(err) => err,
    };
    let status = match crate::error::find(&err) {
        Some(UpgradeError::RebootRequired { .. }) => RunStatus::Reboot,
        Some(UpgradeError::Unhealthy { .. }) => RunStatus::Unhealthy,
        _ => RunStatus::Failed,
    };
    let message = format!("{err:#}");
    tracing::error!(run = run_id, %status, "{message}");
    if let Err(e) = state.set_status(run_id, status, Some(&message)) {
        tracing::error!("failed to record the run's status: {e:#}");
    }
    Err(err)
}

/// Closes run `run_id` as succeeded (with `note`), and prunes the cache to its plan and the
/// restore points to the newest `keep`.
pub(crate) fn succeeded(
    state: &State,
    run_id: i64,
    plan: &Plan,
    paths: &crate::context::Paths,
    keep: usize,
    note: Option<&str>,
) -> Result<()> {
    state.set_status(run_id, RunStatus::Succeeded, note)?;
    tracing::info!(run = run_id, to = %plan.to, action = plan.action.as_str(), "run succeeded");
    // NB: the restore point holds its packages itself: the cache keeps what the run installed,
    // for the next restore point
    let installed = plan.hops.iter().flat_map(|h| h.artifacts());
    crate::repo::fetch::prune(&paths.cache, installed);
    crate::steps::restore::point::prune(paths, keep, run_id);
    Ok(())
}

/// Shows `plan` — the steps `done` marked, as the open run `record` when it resumes one — and
/// returns its outcome before it runs.
pub(crate) fn show(
    ui: &dyn Ui,
    plan: &Plan,
    done: &std::collections::HashSet<JournalKey>,
    record: Option<&RunRecord>,
) -> Outcome {
    ui.plan(&crate::ui::PlanView {
        plan,
        done,
        resumed: record,
    });
    Outcome::of(plan, record.map(|r| r.id))
}

/// Begins `plan` as a new run of the journal, or resumes `record`'s; returns its id.
pub(crate) fn begin_or_resume(
    state: &mut State,
    plan: &Plan,
    record: Option<&RunRecord>,
) -> Result<i64> {
    match record {
        Some(record) => {
            state.resume_run(record.id)?;
            Ok(record.id)
        }
        None => state.begin_run(plan, None),
    }
}

/// One attempt at an open run, whose plan needs no index: what [`execute_and_close`] executes
/// it with.
pub(crate) struct Attempt<'a> {
    pub ctx: &'a Context,
    pub config: &'a crate::config::Config,
    /// Where its packages come from (a rollback's: its restore point).
    pub repo: &'a Repository,
    pub run_id: i64,
    pub done: std::collections::HashSet<JournalKey>,
    pub resumed: bool,
    pub ui: &'a dyn Ui,
}

/// Executes `plan` as the open run of `attempt` and closes it ([`close`]); returns the
/// `.rpmnew`/`.rpmsave` files its transactions created.
pub(crate) fn execute_and_close(
    state: &mut State,
    plan: &Plan,
    attempt: Attempt<'_>,
) -> Result<Vec<String>> {
    let paths = attempt.ctx.paths();
    let graph = crate::steps::services::load_graph(&paths, attempt.config.services.backend)?;
    let result = crate::exec::execute(
        crate::exec::Run {
            ctx: attempt.ctx,
            config: attempt.config,
            repo: attempt.repo,
            state: &mut *state,
            run_id: attempt.run_id,
            done: attempt.done,
            resumed: attempt.resumed,
            ui: attempt.ui,
            graph: &graph,
        },
        plan,
    );
    let keep = attempt.config.restore.keep;
    close(state, attempt.run_id, plan, &paths, keep, result)
        .map_err(|err| reboot_if_automatic(attempt.ctx, attempt.config, attempt.ui, err))
}

/// The bound on the reboot command (`systemctl reboot` queues the reboot and returns).
const REBOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// After [`close`] recorded that the run stopped for a hook's reboot request (the journal is
/// durable: the next boot resumes at the next hook), reboots the host when `[reboot] automatic`
/// (SPEC §6) and says so; every other error, and a reboot that is not done, is returned as it
/// is. Either way the exit code stays 10.
///
/// NB: the root's `/` is this machine; under another root (a sandbox) the machine is not
/// rebooted unless `[reboot] command` says how.
pub(crate) fn reboot_if_automatic(
    ctx: &Context,
    config: &crate::config::Config,
    ui: &dyn Ui,
    err: anyhow::Error,
) -> anyhow::Error {
    let Some(UpgradeError::RebootRequired { hook }) = crate::error::find(&err) else {
        return err;
    };
    if !config.reboot.automatic {
        return err;
    }
    let hook = hook.clone();
    let command = match &config.reboot.command {
        Some(command) => command.clone(),
        None if ctx.root == std::path::Path::new("/") => crate::config::REBOOT_COMMAND.to_string(),
        None => {
            ui.event(Event::RebootNotUnderRoot { root: &ctx.root });
            return err;
        }
    };
    ui.event(Event::Rebooting { command: &command });
    tracing::warn!(hook = %hook, command = %command, "rebooting the host for the hook's request");
    let options = crate::process::RunOptions {
        program: "sh".into(),
        args: vec!["-c".into(), command.clone().into()],
        env: crate::process::inherited_env(),
        cwd: "/".into(),
        timeout: REBOOT_TIMEOUT,
        keep_lines: 5,
        interruptible: false,
    };
    let finished = crate::process::run(&options, &mut |line| tracing::info!("reboot: {line}"));
    let error = match finished {
        Ok(finished) if finished.success() => {
            return UpgradeError::Rebooting { hook, command }.into();
        }
        Ok(finished) => format!("{}: {}", finished.status, finished.last_lines.join("; ")),
        Err(e) => format!("{e:#}"),
    };
    tracing::error!(command = %command, "the reboot failed: {error}");
    ui.event(Event::RebootFailed {
        command: &command,
        error: &error,
    });
    err
}

/// Asks `question` unless `assume_yes`; no terminal to ask on is an error, not a decline, whose
/// hint names `command` (to run again with `--yes`).
pub(crate) fn confirm(
    ctx: &Context,
    assume_yes: bool,
    ui: &dyn Ui,
    question: &str,
    command: &'static str,
) -> Result<()> {
    if assume_yes {
        return Ok(());
    }
    if !ctx.interactive {
        return Err(UpgradeError::NoTerminal { command }.into());
    }
    if crate::interrupt::at_prompt(|| ui.confirm(question))? {
        Ok(())
    } else {
        Err(UpgradeError::Declined.into())
    }
}
