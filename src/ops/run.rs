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
use crate::ui::Ui;

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
