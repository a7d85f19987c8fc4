//! `real-upgrade history [ID]`: the runs of this root, or one run with its plan and journal.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::error::UpgradeError;
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
}

/// Every run, oldest first; none on a root that never ran.
pub fn runs(ctx: &Context) -> Result<Vec<RunSummary>> {
    let Some(state) = State::open_existing_read(&ctx.paths().state_db)? else {
        return Ok(Vec::new());
    };
    let paths = ctx.paths();
    let mut out = Vec::new();
    for run in state.runs()? {
        let plan = state.run(run.id)?.map(|(_, plan)| plan);
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
        out.push(RunSummary {
            run,
            action,
            restore_point,
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
    Ok(Some(RunDetail { run, plan, journal }))
}
