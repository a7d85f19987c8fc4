//! `real-upgrade rollback` (SPEC §12): takes the host back to the restore point of the latest run
//! (or of `--to-run ID`) as a journaled run of its own, action `rollback`, that resumes as a
//! rollback when it is killed. It needs no repository: the restore point keeps the packages.

use std::collections::HashSet;

use anyhow::Result;

use super::run::{Outcome, RunResult};
use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::journal::RunStatus;
use crate::model::plan::{Action, Plan};
use crate::planner;
use crate::repo::Repository;
use crate::state::{RunRecord, State};
use crate::steps::restore::point;
use crate::ui::Ui;

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Ask no question (`--yes`).
    pub assume_yes: bool,
    /// Show the plan and change nothing.
    pub dry_run: bool,
    /// The run whose restore point to go back to, instead of the latest run's.
    pub to_run: Option<i64>,
}

pub fn rollback(ctx: &Context, opts: &RollbackOptions, ui: &dyn Ui) -> Result<Outcome> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let (_lock, state) = super::lock_and_state(&paths, opts.dry_run)?;
    let Some(mut state) = state else {
        return Err(nothing(
            "this host has no history (no run of `upgrade` took a restore point)",
        ));
    };
    let outcome = roll_back(ctx, &config, &mut state, opts, ui, None)?;
    match opts.dry_run {
        true => Ok(outcome),
        false => finished(&state, outcome),
    }
}

/// The rollback itself, under the lock the caller holds. `automatic` is the run whose failed
/// health gate starts it (SPEC §13): its plan says so (see [`finished`]).
pub(crate) fn roll_back(
    ctx: &Context,
    config: &Config,
    state: &mut State,
    opts: &RollbackOptions,
    ui: &dyn Ui,
    automatic: Option<i64>,
) -> Result<Outcome> {
    let paths = ctx.paths();
    let open = state.open_run()?;
    // NB: an open rollback resumes as a rollback, never as the upgrade it undoes
    let (plan, record, done) = match open {
        Some(open) if open.plan.action == Action::Rollback && opts.to_run.is_none() => {
            (open.plan, Some(open.record), open.done)
        }
        Some(open) if open.plan.action == Action::Rollback => {
            return Err(UpgradeError::RollbackUnfinished {
                run: open.record.id,
                to_run: true,
            }
            .into());
        }
        open => {
            let target = target(state, opts.to_run, open.as_ref().map(|o| &o.record))?;
            let Some((record, run_plan)) = state.run(target)? else {
                return Err(UpgradeError::UnknownRun { id: target }.into());
            };
            let manifest = restorable(ctx, &record, &run_plan)?;
            let installed = state.installed()?;
            let release = super::health::release_checks(state, manifest.version.as_deref())?;
            let mut planned = planner::plan_rollback(
                ctx, config, installed, target, &run_plan, &manifest, &release,
            )?;
            planned.plan.automatic_for = automatic;
            (planned.plan, None, HashSet::new())
        }
    };
    let resumed = record.is_some();
    let mut outcome = super::run::show(ui, &plan, &done, record.as_ref());
    if opts.dry_run {
        return Ok(outcome);
    }
    crate::interrupt::defer();
    let from = plan.from.as_deref().unwrap_or("nothing installed");
    let to = Some(plan.to.as_str())
        .filter(|t| !t.is_empty())
        .unwrap_or("nothing installed");
    let verb = match resumed {
        true => "Resume the rollback of",
        false => "Roll back",
    };
    let question = format!("{verb} {} from {from} to {to}?", plan.product);
    super::run::confirm(ctx, opts.assume_yes, ui, &question, "real-upgrade rollback")?;
    let source = plan.hops[0]
        .restore
        .as_ref()
        .expect("a rollback's hop puts a restore point back")
        .run;
    // NB: the undone run is closed as rolled back now: from here on the rollback is the
    // open run, and a kill resumes it
    let run_id = super::run::begin_or_resume(state, &plan, record.as_ref())?;
    // NB: a kill between beginning the rollback and closing the undone run left that one open
    // to the eye of `history`: a resumed rollback closes it again (the same status and reason)
    let why = match plan.automatic_for {
        Some(_) => format!("health checks failed; rolled back by run {run_id}"),
        None => format!("rolled back by run {run_id}"),
    };
    state.set_status(source, RunStatus::RolledBack, Some(&why))?;
    outcome.run_id = Some(run_id);
    let repo = Repository::open(&point::dir_of(&paths, source).display().to_string(), false)?;
    tracing::info!(run = run_id, of = source, from = ?plan.from, to = %plan.to, resumed, automatic = ?plan.automatic_for, "rollback started");
    let attempt = super::run::Attempt {
        ctx,
        config,
        repo: &repo,
        run_id,
        done,
        resumed,
        ui,
    };
    outcome.config_files = super::run::execute_and_close(state, &plan, attempt)?;
    outcome.result = RunResult::RolledBack;
    Ok(outcome)
}

/// The end of a finished rollback: one that a failed health gate started ends in
/// [`UpgradeError::RolledBack`] (exit 6), whether this invocation began it or resumed it.
pub(crate) fn finished(state: &State, outcome: Outcome) -> Result<Outcome> {
    let Some(run) = outcome.plan.automatic_for else {
        return Ok(outcome);
    };
    let failing = state
        .health(run)?
        .map(|(_, report)| report.blocking())
        .unwrap_or_default();
    Err(UpgradeError::RolledBack {
        run,
        failing,
        rollback: outcome.run_id.unwrap_or_default(),
        version: match outcome.to.is_empty() {
            true => "nothing installed".into(),
            false => outcome.to.clone(),
        },
    }
    .into())
}

/// The open run's id when it is a rollback (killed, or failed): the plain command finishes it
/// as `rollback` does, never as the upgrade it undoes (SPEC §12).
/// NB: a state it cannot read (an emptied `state.db`) is `None`: the upgrade reports it, with
/// its hint.
pub fn open_rollback(ctx: &Context) -> Option<i64> {
    let state = State::open_existing_read(&ctx.paths().state_db).ok()??;
    state
        .open_run()
        .ok()?
        .filter(|o| o.plan.action == Action::Rollback)
        .map(|o| o.record.id)
}

fn nothing(why: impl Into<String>) -> anyhow::Error {
    UpgradeError::NothingToRollBack { why: why.into() }.into()
}

/// The run to roll back: `to_run`, the open run, or the latest run that changed the host and
/// was not rolled back already.
fn target(state: &State, to_run: Option<i64>, open: Option<&RunRecord>) -> Result<i64> {
    if let Some(id) = to_run {
        return Ok(id);
    }
    if let Some(open) = open {
        return Ok(open.id);
    }
    let runs = state.runs()?;
    let latest = runs
        .iter()
        .rev()
        .find(|r| !matches!(r.status, RunStatus::Abandoned | RunStatus::Adopted));
    match latest {
        None => Err(nothing("no run of `upgrade` changed this host")),
        Some(r) if r.status == RunStatus::RolledBack => Err(nothing(format!(
            "run {} was rolled back already ({}); name an older run with `--to-run ID`",
            r.id,
            r.error.as_deref().unwrap_or("rolled back")
        ))),
        Some(r) => match state.run(r.id)? {
            Some((_, plan)) if plan.action == Action::Rollback => Err(nothing(format!(
                "the latest run ({}) is a rollback; name an older run with `--to-run ID`",
                r.id
            ))),
            _ => Ok(r.id),
        },
    }
}

/// The restore point of `record`, when a rollback to it can be done.
pub(crate) fn restorable(
    ctx: &Context,
    record: &RunRecord,
    plan: &Plan,
) -> Result<point::Manifest> {
    if plan.action == Action::Rollback {
        return Err(nothing(format!("run {} is a rollback", record.id)));
    }
    // NB: `--to-run` of a run rolled back already went back to its restore point again, wiping
    // what the product wrote since, without a word: refused as without `--to-run`
    if record.status == RunStatus::RolledBack {
        return Err(nothing(format!(
            "run {} was rolled back already ({}); name an older run with `--to-run ID`",
            record.id,
            record.error.as_deref().unwrap_or("rolled back")
        )));
    }
    if let Some(point) = plan.restore_point.as_ref().filter(|p| p.is_empty()) {
        // NB: a fresh install without a database takes no restore-point step: the plan says
        // what there is to go back to (nothing)
        return Ok(point::Manifest {
            run: record.id,
            product: plan.product.clone(),
            version: point.version.clone(),
            taken_at: record.started_at.clone(),
            packages: Vec::new(),
            missing: Vec::new(),
            database: None,
            files: Default::default(),
        });
    }
    let run = record.id;
    if plan.restore_point.is_none() {
        return Err(UpgradeError::NoRestorePoint { run }.into());
    }
    let Some(manifest) = point::load(&ctx.paths(), run)? else {
        return Err(UpgradeError::RestorePointGone { run }.into());
    };
    if manifest.partial() {
        return Err(UpgradeError::RestorePointPartial {
            run,
            missing: manifest.missing,
        }
        .into());
    }
    Ok(manifest)
}
