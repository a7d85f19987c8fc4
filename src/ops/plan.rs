//! `real-upgrade plan`: the plan an upgrade would run now, changing nothing.

use anyhow::Result;

use crate::config::Config;
use crate::context::Context;
use crate::model::plan::Plan;
use crate::planner;

pub struct PlanOptions {
    /// The target release; the newest when `None`.
    pub to: Option<String>,
}

pub fn plan(ctx: &Context, opts: &PlanOptions) -> Result<Plan> {
    let config = Config::load(&ctx.config_path)?;
    Ok(planner::plan(ctx, &config, opts.to.as_deref())?.plan)
}
