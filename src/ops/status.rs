//! `real-upgrade status`: what is installed, what the repository offers, and the open run.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::planner;
use crate::state::{RunRecord, State};

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub product: String,
    pub installed: Option<String>,
    /// The newest release of the index; `None` when it lists none or could not be read.
    pub available: Option<String>,
    /// `None` when either side is unknown.
    pub up_to_date: Option<bool>,
    pub open_run: Option<RunRecord>,
    /// The PID of a run in progress on this root (it holds the lock).
    pub running_pid: Option<u32>,
    /// Why the index could not be read; status still reports the rest.
    pub index_error: Option<String>,
}

pub fn status(ctx: &Context) -> Result<Status> {
    let config = Config::load(&ctx.config_path)?;
    let state = State::open_existing_read(&ctx.paths().state_db)?;
    let recorded = planner::Recorded::read(state.as_ref())?;
    let open_run = match &state {
        Some(s) => s.open_run()?.map(|o| o.record),
        None => None,
    };
    let installed = recorded.installed.clone();
    let (available, index_error) = match planner::load_summary(&config, ctx, &recorded) {
        Ok(summary) => (summary.newest, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let up_to_date = match (&installed, &available) {
        (Some(i), Some(a)) => Some(config.version_scheme.parse(i)? >= *a),
        _ => None,
    };
    Ok(Status {
        product: config.product,
        installed,
        available: available.map(|v| v.to_string()),
        up_to_date,
        open_run,
        running_pid: crate::exec::lock::holder(&ctx.paths().lock),
        index_error,
    })
}
