//! `real-upgrade health` (SPEC §13): the health checks alone, at any time, against the installed
//! release: the `health.d` programs and the configuration's checks as they are now, and the
//! installed release's own checks as the run that installed it planned them. Changes nothing.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::model::health::{HealthCheck, HealthReport};
use crate::model::plan::{Action, HealthPlan};
use crate::planner;
use crate::state::State;
use crate::steps::health;
use crate::steps::hooks::{HookEnv, Phase};
use crate::ui::Ui;

#[derive(Debug, Clone, Default)]
pub struct HealthOptions {
    /// Try failing checks again until `[health] timeout`, as a run's health gate does.
    pub wait: bool,
}

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub product: String,
    /// The installed version; `None` when nothing is installed (then nothing is checked).
    pub installed: Option<String>,
    #[serde(flatten)]
    pub report: HealthReport,
}

pub fn health(ctx: &Context, opts: &HealthOptions, ui: &dyn Ui) -> Result<Checked> {
    let config = Config::load(&ctx.config_path)?;
    let state = State::open_existing_read(&ctx.paths().state_db)?;
    let installed = state.as_ref().map(State::installed).transpose()?.flatten();
    let Some(version) = installed.clone() else {
        return Ok(Checked {
            product: config.product,
            installed: None,
            report: HealthReport::new(Vec::new()),
        });
    };
    let release = match &state {
        Some(state) => release_checks(state, Some(&version))?,
        None => Vec::new(),
    };
    let plan =
        planner::planned_health(ctx, &config, Some((&version, &release)))?.unwrap_or_default();
    let last_run = match &state {
        Some(state) => state.runs()?.last().map_or(0, |r| r.id),
        None => 0,
    };
    let env = HookEnv {
        phase: Phase::Health,
        action: Action::Upgrade,
        from: Some(version.clone()),
        to: version.clone(),
        resumed: false,
        root: ctx.root.clone(),
        run_id: last_run,
        extra: Vec::new(),
    };
    let report = health::evaluate(
        &ctx.paths(),
        ctx.superuser,
        &plan,
        &env,
        &config.health,
        opts.wait,
        ui,
    )?;
    Ok(Checked {
        product: config.product,
        installed,
        report,
    })
}

/// The health checks the index declared for release `version`, as the latest run to it planned
/// them; none for nothing installed, or when no run of this host's history went to it.
pub(crate) fn release_checks(state: &State, version: Option<&str>) -> Result<Vec<HealthCheck>> {
    let Some(version) = version else {
        return Ok(Vec::new());
    };
    for record in state.runs()?.iter().rev().filter(|r| r.to == version) {
        let Some((_, plan)) = state.run(record.id)? else {
            continue;
        };
        if let Some(health) = plan.health.filter(|_| plan.action == Action::Upgrade) {
            return Ok(release_only(health));
        }
    }
    Ok(Vec::new())
}

fn release_only(health: HealthPlan) -> Vec<HealthCheck> {
    health
        .checks
        .into_iter()
        .filter(|c| c.source != crate::model::plan::CONFIG_SOURCE)
        .map(|c| c.check)
        .collect()
}
