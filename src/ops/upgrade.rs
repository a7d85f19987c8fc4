//! The default command (SPEC §5): resume the open run or plan a new one, check, show, confirm,
//! download, and hand the plan to [`crate::exec`].

use std::collections::HashSet;

use anyhow::Result;
use serde::Serialize;

use crate::check;
use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::exec::{self, lock};
use crate::model::catalog::Artifact;
use crate::model::journal::RunStatus;
use crate::model::plan::{HopStep, Plan, Step};
use crate::planner::{self, Recorded};
use crate::repo::Repository;
use crate::state::State;
use crate::steps::migrations::db as migration_db;
use crate::steps::services;
use crate::ui::{Event, PlanView, Ui};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ask no question (`--yes`).
    pub assume_yes: bool,
    pub to: Option<String>,
    pub dry_run: bool,
    pub download_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    UpToDate,
    Planned,
    Downloaded,
    Upgraded,
}

/// What a run did, for the renderer and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub result: RunResult,
    pub product: String,
    pub from: Option<String>,
    pub to: String,
    pub run_id: Option<i64>,
    pub resumed: bool,
    /// `.rpmnew` / `.rpmsave` files the package transactions created.
    pub config_files: Vec<String>,
    pub plan: Plan,
}

/// The default command: plan or resume, show, confirm, execute.
pub fn upgrade(ctx: &Context, opts: &RunOptions, ui: &dyn Ui) -> Result<Outcome> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let _lock = match opts.dry_run {
        true => None,
        false => Some(lock::RunLock::acquire(&paths.lock)?),
    };
    let existing = State::open_existing(&paths.state_db)?;
    let open = match &existing {
        Some(state) => state.open_run()?,
        None => None,
    };
    // NB: a resumed run executes its stored plan: nothing is planned (or read of the host)
    // again, and its checks ran before its first attempt.
    let (plan, done, record, fresh) = match open {
        Some(open) => (open.plan, open.done, Some(open.record), None),
        None => {
            let recorded = Recorded::read(existing.as_ref())?;
            let trusted = planner::load_trusted(&config, ctx, &recorded)?;
            if let Some(index) = &trusted.kept {
                ui.event(Event::KeptIndex {
                    index,
                    sequence: trusted.catalog.sequence,
                });
            }
            let planned = planner::plan_from(
                ctx,
                &config,
                &trusted.catalog,
                &recorded,
                opts.to.as_deref(),
            )?;
            (
                planned.plan,
                HashSet::new(),
                None,
                Some((trusted, planned.rpmdb, planned.services)),
            )
        }
    };
    let mut outcome = Outcome {
        result: RunResult::UpToDate,
        product: plan.product.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        run_id: record.as_ref().map(|r| r.id),
        resumed: record.is_some(),
        config_files: Vec::new(),
        plan: plan.clone(),
    };
    if plan.is_up_to_date() {
        return Ok(outcome);
    }
    ui.plan(&PlanView {
        plan: &plan,
        done: &done,
        resumed: record.as_ref(),
    });
    if let Some((_, rpmdb, _)) = &fresh {
        let report = check::run(ctx, &config, &plan, rpmdb)?;
        ui.event(Event::Checks { report: &report });
        report.ensure_passed()?;
    }
    if opts.dry_run {
        outcome.result = RunResult::Planned;
        return Ok(outcome);
    }
    let repo = Repository::configured(&config, &ctx.config_path)?;
    if opts.download_only {
        let artifacts: Vec<&Artifact> = plan.artifacts().collect();
        exec::download(&repo, &artifacts, &paths.cache, ui)?;
        if let Some((trusted, ..)) = &fresh {
            trusted.keep(&paths.cache)?;
        }
        outcome.result = RunResult::Downloaded;
        return Ok(outcome);
    }
    confirm(ctx, opts, ui, &plan, record.is_some())?;
    // NB: an unreachable database is found before anything changes, not after the packages.
    let migrating = plan.hops.iter().enumerate().any(|(h, hop)| {
        !hop.migrations.is_empty() && !done.contains(&Step::Hop(h, HopStep::Migrate).key())
    });
    if migrating {
        migration_db::connect(&config.database_url(), &ctx.root)?;
    }
    let mut state = match existing {
        Some(state) => state,
        None => State::open(&paths.state_db)?,
    };
    let graph = match fresh {
        Some((trusted, _, graph)) => {
            state.accept_sequence(trusted.catalog.sequence)?;
            graph
        }
        None => services::load_graph(&paths, config.services.backend)?,
    };
    let run_id = match &record {
        Some(r) => {
            state.resume_run(r.id)?;
            r.id
        }
        None => state.begin_run(&plan)?,
    };
    outcome.run_id = Some(run_id);
    tracing::info!(run = run_id, from = ?plan.from, to = %plan.to, resumed = record.is_some(), "run started");
    let result = exec::execute(
        exec::Run {
            ctx,
            config: &config,
            repo: &repo,
            state: &mut state,
            run_id,
            done,
            resumed: record.is_some(),
            ui,
            graph: &graph,
        },
        &plan,
    );
    match result {
        Ok(config_files) => {
            state.set_status(run_id, RunStatus::Succeeded, None)?;
            tracing::info!(run = run_id, to = %plan.to, "run succeeded");
            crate::repo::fetch::prune(&paths.cache, plan.artifacts());
            outcome.result = RunResult::Upgraded;
            outcome.config_files = config_files;
            Ok(outcome)
        }
        Err(err) => {
            let reboot = matches!(
                crate::error::find(&err),
                Some(UpgradeError::RebootRequired { .. })
            );
            let status = if reboot {
                RunStatus::Reboot
            } else {
                RunStatus::Failed
            };
            let message = format!("{err:#}");
            tracing::error!(run = run_id, %status, "{message}");
            if let Err(e) = state.set_status(run_id, status, Some(&message)) {
                tracing::error!("failed to record the run's status: {e:#}");
            }
            Err(err)
        }
    }
}

fn confirm(
    ctx: &Context,
    opts: &RunOptions,
    ui: &dyn Ui,
    plan: &Plan,
    resuming: bool,
) -> Result<()> {
    if opts.assume_yes {
        return Ok(());
    }
    if !ctx.interactive {
        return Err(UpgradeError::NoTerminal.into());
    }
    let from = plan.from.as_deref().unwrap_or("nothing installed");
    let verb = if resuming {
        "Resume the upgrade"
    } else {
        "Upgrade"
    };
    let question = format!("{verb} {} from {from} to {}?", plan.product, plan.to);
    if ui.confirm(&question)? {
        Ok(())
    } else {
        Err(UpgradeError::Declined.into())
    }
}
