//! `real-upgrade history [ID]`: the runs of this root, or one run with its plan and journal.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::plan::Plan;
use crate::state::{JournalEntry, RunRecord, State};

/// One run in full; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub plan: Plan,
    pub journal: Vec<JournalEntry>,
}

/// Every run, oldest first; none on a root that never ran.
pub fn runs(ctx: &Context) -> Result<Vec<RunRecord>> {
    match State::open_existing_read(&ctx.paths().state_db)? {
        Some(state) => state.runs(),
        None => Ok(Vec::new()),
    }
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
