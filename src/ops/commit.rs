//! `real-upgrade commit` (SPEC §13): accepts the open run that its health checks left
//! `unhealthy`, as it is: the run is closed as succeeded (with a note of the checks that did not
//! pass), and the cache and the restore points are pruned as after any successful run.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::exec::lock::RunLock;
use crate::model::journal::RunStatus;
use crate::state::State;

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub run: i64,
    pub to: String,
    /// The required checks that had not passed.
    pub failing: Vec<String>,
}

pub fn commit(ctx: &Context) -> Result<Committed> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let _lock = RunLock::acquire(&paths.lock)?;
    let refuse = |why: String| -> anyhow::Error {
        UpgradeError::input_hint(
            format!("nothing to commit: {why}"),
            "`commit` accepts a run whose health checks failed or could not tell \
             (`real-upgrade status` shows the open run)",
        )
        .into()
    };
    let Some(state) = State::open_existing(&paths.state_db)? else {
        return Err(refuse("this host has no history".into()));
    };
    let Some(open) = state.open_run()? else {
        return Err(refuse("no run is open".into()));
    };
    if open.record.status != RunStatus::Unhealthy {
        return Err(refuse(format!(
            "the open run {} is `{}`, not `unhealthy`; run `upgrade` to finish it",
            open.record.id, open.record.status
        )));
    }
    let failing = state
        .health(open.record.id)?
        .map(|(_, report)| report.blocking())
        .unwrap_or_default();
    let note = format!(
        "committed by hand with health checks not passing: {}",
        failing.join(", ")
    );
    super::run::succeeded(
        &state,
        open.record.id,
        &open.plan,
        &paths,
        config.restore.keep,
        Some(&note),
    )?;
    Ok(Committed {
        run: open.record.id,
        to: open.plan.to,
        failing,
    })
}
