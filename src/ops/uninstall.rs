//! `real-upgrade uninstall [--purge]` (SPEC §14): an upgrade to nothing, on the same plan,
//! journal, hooks and restore point as an upgrade, so that a killed uninstall resumes as an
//! uninstall and `rollback` undoes a finished one. It needs no repository when the cache holds
//! the installed builds (the last run installed them there); the index, when it can be read
//! (or the one `--download-only` kept), names the product's packages besides the history.

use std::collections::HashSet;

use anyhow::Result;

use super::run::{Outcome, RunResult, confirm};
use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::plan::{Action, Plan};
use crate::planner::{self, Data, Recorded};
use crate::repo::Repository;
use crate::state::State;
use crate::ui::Ui;

#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Ask no question (`--yes`), the purge's included.
    pub assume_yes: bool,
    /// Show the plan and change nothing.
    pub dry_run: bool,
    /// `--purge`: the database and `[uninstall] purge_paths` go too.
    pub data: Data,
}

pub fn uninstall(ctx: &Context, opts: &UninstallOptions, ui: &dyn Ui) -> Result<Outcome> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let (_lock, existing) = super::lock_and_state(&paths, opts.dry_run)?;
    let open = existing
        .as_ref()
        .map(State::open_run)
        .transpose()?
        .flatten();
    // NB: a killed uninstall resumes as the uninstall it was (its stored plan: `--purge` or
    // not as confirmed then); any other open run must be finished first
    let (plan, record, done) = match open {
        Some(open) if open.plan.action == Action::Uninstall => {
            (open.plan, Some(open.record), open.done)
        }
        Some(open) => {
            let run = open.record.id;
            return Err(match open.plan.action {
                Action::Rollback => UpgradeError::RollbackUnfinished { run, to_run: false },
                _ => UpgradeError::UpgradeUnfinished { run },
            }
            .into());
        }
        None => {
            let recorded = Recorded::read(existing.as_ref())?;
            let Some(installed) = recorded.installed.clone() else {
                // NB: the product's packages and no recorded version (a lost `state.db`) is
                // refused with a pointer to `adopt`, as `upgrade` does, when the index says
                // which packages are the product's
                if let Ok(trusted) = planner::load_trusted(&config, ctx, &recorded) {
                    planner::ensure_nothing_installed(ctx, &config, &trusted.catalog)?;
                }
                return Ok(nothing_installed(&config));
            };
            let state = existing.as_ref().expect("a recorded version has a state");
            let mut history = Vec::new();
            for run in state.runs()? {
                history.extend(state.run(run.id)?.map(|(_, plan)| plan));
            }
            // NB: the index only adds names the history may lack (an adopted host); without
            // it (unreachable, expired) the history says what the runs installed
            let catalog = match planner::load_trusted(&config, ctx, &recorded) {
                Ok(trusted) => Some(trusted.catalog),
                Err(e) => {
                    tracing::warn!("uninstalling without the repository's index: {e:#}");
                    None
                }
            };
            let planned = planner::plan_uninstall(
                ctx,
                &config,
                catalog.as_ref(),
                &history,
                &installed,
                opts.data,
            )?;
            let report = crate::check::run(ctx, &config, &planned.plan, &planned.rpmdb)?;
            ui.event(crate::ui::Event::Checks { report: &report });
            report.ensure_passed()?;
            (planned.plan, None, HashSet::new())
        }
    };
    let resumed = record.is_some();
    let mut outcome = super::run::show(ui, &plan, &done, record.as_ref());
    if opts.dry_run {
        outcome.result = RunResult::Planned;
        return Ok(outcome);
    }
    crate::interrupt::defer();
    let from = plan.from.as_deref().unwrap_or("nothing installed");
    let verb = match resumed {
        true => "Resume the uninstall of",
        false => "Uninstall",
    };
    let deleted = purged(&config, &plan).filter(|_| !resumed);
    let command = match deleted {
        Some(_) => "real-upgrade uninstall --purge",
        None => "real-upgrade uninstall",
    };
    let question = format!("{verb} {} {from}?", plan.product);
    confirm(ctx, opts.assume_yes, ui, &question, command)?;
    if let Some(deleted) = deleted {
        confirm(
            ctx,
            opts.assume_yes,
            ui,
            &format!(
                "Delete {deleted} for good? (`real-upgrade rollback` brings them back from the \
                 restore point while it is kept)"
            ),
            command,
        )?;
    }
    let mut state = match existing {
        Some(state) => state,
        None => State::open(&paths.state_db)?,
    };
    let run_id = super::run::begin_or_resume(&mut state, &plan, record.as_ref())?;
    outcome.run_id = Some(run_id);
    let repo = Repository::configured(&config, &ctx.config_path)?;
    tracing::info!(run = run_id, from = ?plan.from, resumed, "uninstall started");
    let attempt = super::run::Attempt {
        ctx,
        config: &config,
        repo: &repo,
        run_id,
        done,
        resumed,
        ui,
    };
    outcome.config_files = super::run::execute_and_close(&mut state, &plan, attempt)?;
    outcome.result = RunResult::Uninstalled;
    Ok(outcome)
}

/// What `plan`'s purge deletes, named for the extra confirmation; `None` when nothing.
fn purged(config: &Config, plan: &Plan) -> Option<String> {
    let purge = plan
        .hops
        .first()?
        .uninstall
        .as_ref()
        .filter(|u| u.purges())?;
    let database = purge.database.then(|| {
        format!(
            "the database `{}`",
            crate::steps::migrations::db::redact(&config.database_url())
        )
    });
    let paths = purge.paths.iter().map(|p| format!("`{}`", p.display()));
    Some(
        database
            .into_iter()
            .chain(paths)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The outcome when no version is recorded: nothing to do.
fn nothing_installed(config: &Config) -> Outcome {
    let plan = Plan {
        product: config.product.clone(),
        from: None,
        to: String::new(),
        hops: Vec::new(),
        action: Action::Uninstall,
        restore_point: None,
        health: None,
        automatic_for: None,
        migration_role: Default::default(),
    };
    let mut outcome = Outcome::of(&plan, None);
    outcome.result = RunResult::NothingInstalled;
    outcome
}

/// The open run's id when it is an uninstall (killed, or failed): the plain command finishes
/// it as `uninstall` does, never as something else.
pub fn open_uninstall(ctx: &Context) -> Option<i64> {
    let state = State::open_existing_read(&ctx.paths().state_db).ok()??;
    state
        .open_run()
        .ok()?
        .filter(|o| o.plan.action == Action::Uninstall)
        .map(|o| o.record.id)
}
