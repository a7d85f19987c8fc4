//! `real-upgrade history [ID]`: the runs of this root, or one run with its plan and journal.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::health::HealthReport;
use crate::model::plan::{Action, Plan};
use crate::state::{JournalEntry, RunRecord, State};
use crate::steps::restore::point;

/// One run of the list: its record, what it did, and its restore point (SPEC §12).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    pub run: RunRecord,
    pub action: Action,
    pub restore_point: RestorePoint,
    /// Its health checks' last results (SPEC §13); `None` when it ran none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// A rollback: the run it took back, and whether a failed health gate started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
    /// The rollback run that took this one back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<i64>,
}

/// A run's health checks: when they last ran, and what they said.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub checked_at: String,
    #[serde(flatten)]
    pub report: HealthReport,
}

/// Where a run's restore point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestorePoint {
    /// The run took none (`--no-restore-point`, a rollback, `adopt`, or it changed nothing).
    None,
    /// Kept: `rollback` can go back to it.
    Kept,
    /// Kept without some packages no repository had: `rollback` to it is refused.
    Partial,
    /// Pruned (`[restore] keep`), or never taken because the run stopped before.
    Gone,
}

impl RestorePoint {
    pub fn as_str(self) -> &'static str {
        match self {
            RestorePoint::None => "none",
            RestorePoint::Kept => "kept",
            RestorePoint::Partial => "partial",
            RestorePoint::Gone => "gone",
        }
    }
}

/// One run in full; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub plan: Plan,
    pub journal: Vec<JournalEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// Every run, oldest first; none on a root that never ran.
pub fn runs(ctx: &Context) -> Result<Vec<RunSummary>> {
    let Some(state) = State::open_existing_read(&ctx.paths().state_db)? else {
        return Ok(Vec::new());
    };
    let paths = ctx.paths();
    let mut out: Vec<RunSummary> = Vec::new();
    for run in state.runs()? {
        let plan = state.run(run.id)?.map(|(_, plan)| plan);
        let rolls_back = plan
            .as_ref()
            .filter(|p| p.action == Action::Rollback)
            .and_then(|p| p.hops.first())
            .and_then(|h| h.restore.as_ref())
            .map(|r| r.run);
        let automatic = plan.as_ref().is_some_and(|p| p.automatic_for.is_some());
        let action = plan.as_ref().map_or(Action::Upgrade, |p| p.action);
        let restore_point = match plan.as_ref().and_then(|p| p.restore_point.as_ref()) {
            None => RestorePoint::None,
            // implicit: nothing was installed, and there is no database
            Some(p) if p.is_empty() => RestorePoint::Kept,
            Some(_) => match point::load(&paths, run.id) {
                Ok(Some(m)) if m.partial() => RestorePoint::Partial,
                Ok(Some(_)) => RestorePoint::Kept,
                _ => RestorePoint::Gone,
            },
        };
        if let Some(undone) = rolls_back.and_then(|id| out.iter_mut().find(|s| s.run.id == id)) {
            undone.rolled_back_by = Some(run.id);
        }
        let health = health(&state, run.id)?;
        out.push(RunSummary {
            run,
            action,
            restore_point,
            health,
            rolls_back,
            automatic,
            rolled_back_by: None,
        });
    }
    Ok(out)
}

/// Run `id`; `None` on a root that never ran.
pub fn run(ctx: &Context, id: i64) -> Result<Option<RunDetail>> {
    let Some(state) = State::open_existing_read(&ctx.paths().state_db)? else {
        return Ok(None);
    };
    let (run, plan) = state.run(id)?.ok_or(UpgradeError::UnknownRun { id })?;
    let journal = state.journal(id)?;
    let health = health(&state, id)?;
    Ok(Some(RunDetail {
        run,
        plan,
        journal,
        health,
    }))
}

fn health(state: &State, run: i64) -> Result<Option<Health>> {
    Ok(state
        .health(run)?
        .map(|(checked_at, report)| Health { checked_at, report }))
}
