//! `real-upgrade abandon`: closes the open run when it has changed nothing on the host, so the
//! next `upgrade` plans anew (say, from an index the vendor fixed). A run that changed something
//! must be finished (or, later, rolled back).

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::error::UpgradeError;
use crate::exec::lock::RunLock;
use crate::model::journal::RunStatus;
use crate::state::State;

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Abandoned {
    /// The run closed; `None` when no run was open.
    pub run: Option<i64>,
    pub to: Option<String>,
}

pub fn abandon(ctx: &Context) -> Result<Abandoned> {
    let paths = ctx.paths();
    let _lock = RunLock::acquire(&paths.lock)?;
    let Some(state) = State::open_existing(&paths.state_db)? else {
        return Ok(Abandoned {
            run: None,
            to: None,
        });
    };
    let Some(open) = state.open_run()? else {
        return Ok(Abandoned {
            run: None,
            to: None,
        });
    };
    let changes = open.changes();
    if !changes.is_empty() {
        let done: Vec<&str> = changes.iter().map(|k| k.as_str()).collect();
        return Err(UpgradeError::RunChangedHost {
            id: open.record.id,
            done: done.join(", "),
        }
        .into());
    }
    state.set_status(open.record.id, RunStatus::Abandoned, Some("abandoned"))?;
    tracing::info!(run = open.record.id, "run abandoned");
    Ok(Abandoned {
        run: Some(open.record.id),
        to: Some(open.plan.to),
    })
}
