//! `real-upgrade check`: the preflight report alone (SPEC §9), changing nothing; with the plan's
//! packages downloaded already, also the conflicts of its transactions.

use anyhow::Result;
use serde::Serialize;

use crate::check;
use crate::config::Config;
use crate::context::Context;
use crate::model::checks::{CheckResult, Report};
use crate::planner;

pub struct CheckOptions {
    pub to: Option<String>,
}

/// The report with the plan it was made for; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub product: String,
    pub from: Option<String>,
    pub to: String,
    pub inhibited: bool,
    pub inhibitors: usize,
    pub warnings: usize,
    pub results: Vec<CheckResult>,
}

impl Checked {
    pub fn report(&self) -> Report {
        Report {
            results: self.results.clone(),
        }
    }
}

pub fn check(ctx: &Context, opts: &CheckOptions) -> Result<Checked> {
    let config = Config::load(&ctx.config_path)?;
    let planner::Planned { plan, rpmdb, .. } = planner::plan(ctx, &config, opts.to.as_deref())?;
    let mut report = check::run(ctx, &config, &plan, &rpmdb)?;
    let downloaded = check::downloaded_transactions(&ctx.root, &plan, &ctx.paths().cache)?;
    report.results.extend(downloaded.results);
    let report = report.finish();
    Ok(Checked {
        inhibited: report.is_inhibited(),
        inhibitors: report.inhibitors().count(),
        warnings: report.warnings().count(),
        results: report.results,
        product: plan.product,
        from: plan.from,
        to: plan.to,
    })
}
