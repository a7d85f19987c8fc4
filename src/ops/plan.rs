//! `real-upgrade plan`: the plan `upgrade` would run now, changing nothing. With a run open, that
//! is the open run's stored plan, which `upgrade` resumes (SPEC §5, "Open runs").

use std::collections::HashSet;

use anyhow::Result;

use crate::config::Config;
use crate::context::Context;
use crate::model::journal::JournalKey;
use crate::model::plan::Plan;
use crate::ops::upgrade::RunOptions;
use crate::planner;
use crate::state::{RunRecord, State};

pub struct PlanOptions {
    /// The target release; the newest when `None`.
    pub to: Option<String>,
}

/// The plan, and the open run it belongs to when `upgrade` would resume one.
pub struct PlanShown {
    pub plan: Plan,
    pub open_run: Option<RunRecord>,
    /// The open run's journal keys already done.
    pub done: HashSet<JournalKey>,
}

pub fn plan(ctx: &Context, opts: &PlanOptions) -> Result<PlanShown> {
    let config = Config::load(&ctx.config_path)?;
    let state = State::open_existing_read(&ctx.paths().state_db)?;
    // NB: what `upgrade` would resume, by the same rule; a dry run closes nothing
    let as_upgrade = RunOptions {
        to: opts.to.clone(),
        dry_run: true,
        ..RunOptions::default()
    };
    if let Some(open) = super::upgrade::open_run(&config, &as_upgrade, state.as_ref())? {
        return Ok(PlanShown {
            plan: open.plan,
            open_run: Some(open.record),
            done: open.done,
        });
    }
    drop(state);
    Ok(PlanShown {
        plan: planner::plan(ctx, &config, opts.to.as_deref())?.plan,
        open_run: None,
        done: HashSet::new(),
    })
}
