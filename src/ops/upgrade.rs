//! The default command (SPEC §5): resume the open run or plan a new one, check, show, confirm,
//! download, and hand the plan to [`crate::exec`].

use std::collections::HashSet;

use anyhow::Result;

use super::run::{Outcome, RunResult, close, confirm};
use crate::check;
use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::exec;
use crate::model::catalog::Artifact;
use crate::model::health::OnFailure;
use crate::model::journal::JournalKey;
use crate::model::journal::RunStatus;
use crate::model::plan::{Action, HopStep, Plan, Step};
use crate::model::rpm::RpmDb;
use crate::model::services::ServiceGraph;
use crate::planner::{self, Recorded};
use crate::repo::Repository;
use crate::repo::trust::Trusted;
use crate::state::{OpenRun, RunRecord, State};
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
    /// `--no-restore-point`: the run takes none, and its rollback is refused.
    pub no_restore_point: bool,
}

/// The default command: plan or resume, show, confirm, execute.
pub fn upgrade(ctx: &Context, opts: &RunOptions, ui: &dyn Ui) -> Result<Outcome> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let (_lock, existing) = super::lock_and_state(&paths, opts.dry_run)?;
    // NB: a killed rollback resumes as a rollback, never as the upgrade it undoes (SPEC §12):
    // its stored plan puts back the restore point's packages, not the repository's. The CLI
    // hands the plain command to `rollback` (`ops::rollback::open_rollback`); anything else
    // is refused here
    if let Some(open) = existing
        .as_ref()
        .map(State::open_run)
        .transpose()?
        .flatten()
        && open.plan.action != Action::Upgrade
    {
        return Err(match open.plan.action {
            Action::Uninstall => UpgradeError::UninstallUnfinished {
                run: open.record.id,
            },
            _ => UpgradeError::RollbackUnfinished {
                run: open.record.id,
                to_run: false,
            },
        }
        .into());
    }
    let (plan, source) = match open_run(&config, opts, existing.as_ref())? {
        // NB: a resumed run executes its stored plan: nothing is planned (or read of the host)
        // again, and its checks ran before its first attempt.
        Some(open) => (
            open.plan,
            Source::Resumed {
                record: open.record,
                done: open.done,
            },
        ),
        None => {
            let recorded = Recorded::read(existing.as_ref())?;
            let trusted = planner::load_trusted(&config, ctx, &recorded)?;
            if let Some(index) = &trusted.kept {
                ui.event(Event::KeptIndex {
                    index,
                    sequence: trusted.catalog.sequence,
                });
            }
            let to = opts.to.as_deref();
            let mut planned = planner::plan_from(ctx, &config, &trusted.catalog, &recorded, to)?;
            if opts.no_restore_point {
                planned.plan.restore_point = None;
            }
            let source = Source::Planned {
                trusted: Box::new(trusted),
                rpmdb: planned.rpmdb,
                graph: planned.services,
            };
            (planned.plan, source)
        }
    };
    let record = match &source {
        Source::Resumed { record, .. } => Some(record),
        Source::Planned { .. } => None,
    };
    let mut outcome = Outcome::of(&plan, record.map(|r| r.id));
    outcome.result = RunResult::UpToDate;
    if plan.is_up_to_date() {
        return Ok(outcome);
    }
    let no_keys = HashSet::new();
    ui.plan(&PlanView {
        plan: &plan,
        done: match &source {
            Source::Resumed { done, .. } => done,
            Source::Planned { .. } => &no_keys,
        },
        resumed: record,
    });
    if let Source::Planned { rpmdb, .. } = &source {
        let report = check::run(ctx, &config, &plan, rpmdb)?;
        ui.event(Event::Checks { report: &report });
        report.ensure_passed()?;
    }
    if opts.dry_run {
        outcome.result = RunResult::Planned;
        return Ok(outcome);
    }
    let repo = Repository::configured(&config, &ctx.config_path)?;
    // NB: until here a signal ends the process at once: nothing changed. From here on it is
    // noted, and the run stops where it safely can (SPEC §5); the prompt answers it itself.
    crate::interrupt::defer();
    if opts.download_only {
        let artifacts: Vec<&Artifact> = plan.artifacts().collect();
        exec::download(&repo, &artifacts, &paths.cache, ui)?;
        if let Source::Planned { trusted, .. } = &source {
            trusted.keep(&paths.cache)?;
        }
        // NB: the transactions are tested against the rpm database as it was planned from: not
        // once an open run has gone past its download step (its packages may be changing)
        let unchanged = match &source {
            Source::Planned { .. } => true,
            Source::Resumed { done, .. } => !done.contains(&Step::Download.key()),
        };
        if unchanged {
            check::ensure_transactions(&ctx.root, &plan, &paths.cache, ui)?;
        }
        outcome.result = RunResult::Downloaded;
        return Ok(outcome);
    }
    let from = plan.from.as_deref().unwrap_or("nothing installed");
    let verb = match record.is_some() {
        true => "Resume the upgrade",
        false => "Upgrade",
    };
    let question = format!("{verb} {} from {from} to {}?", plan.product, plan.to);
    confirm(ctx, opts.assume_yes, ui, &question, "upgrade")?;
    let mut state = match existing {
        Some(state) => state,
        None => State::open(&paths.state_db)?,
    };
    let (run_id, done, graph) = begin(ctx, &config, &mut state, &plan, source)?;
    outcome.run_id = Some(run_id);
    let result = exec::execute(
        exec::Run {
            ctx,
            config: &config,
            repo: &repo,
            state: &mut state,
            run_id,
            done,
            resumed: outcome.resumed,
            ui,
            graph: &graph,
        },
        &plan,
    );
    let closed = close(&state, run_id, &plan, &paths, config.restore.keep, result);
    outcome.config_files = match closed {
        Ok(files) => files,
        Err(err) => {
            let err = super::run::reboot_if_automatic(ctx, &config, ui, err);
            return Err(health_failed(ctx, &config, &mut state, run_id, err, ui));
        }
    };
    outcome.result = RunResult::Upgraded;
    Ok(outcome)
}

/// After run `run_id` failed with `err`: when its health gate failed, the host goes back to its
/// restore point in this invocation (SPEC §13) unless `[health] on_failure = "stop"`, a check
/// could not tell, or the restore point cannot be put back; then the release stays, and the
/// error says why. Any other failure is returned as it is.
fn health_failed(
    ctx: &Context,
    config: &Config,
    state: &mut State,
    run_id: i64,
    err: anyhow::Error,
    ui: &dyn Ui,
) -> anyhow::Error {
    let Some(UpgradeError::Unhealthy {
        inconclusive,
        failing,
        ..
    }) = crate::error::find(&err)
    else {
        return err;
    };
    let unhealthy = |kept: String| -> anyhow::Error {
        UpgradeError::Unhealthy {
            run: run_id,
            inconclusive: *inconclusive,
            failing: failing.clone(),
            kept,
        }
        .into()
    };
    if *inconclusive {
        return unhealthy("the release stays running for a person to decide".into());
    }
    if config.health.on_failure == OnFailure::Stop {
        return unhealthy("the release stays running (`[health] on_failure = \"stop\"`)".into());
    }
    let restorable = state.run(run_id).and_then(|run| match run {
        Some((record, plan)) => super::rollback::restorable(ctx, &record, &plan).map(|_| ()),
        None => Err(UpgradeError::UnknownRun { id: run_id }.into()),
    });
    if let Err(why) = restorable {
        return unhealthy(format!(
            "the release stays running, since it cannot be rolled back: {why:#}"
        ));
    }
    ui.event(Event::RollingBack { run: run_id });
    let opts = super::rollback::RollbackOptions {
        assume_yes: true,
        dry_run: false,
        to_run: Some(run_id),
    };
    let rolled_back = super::rollback::roll_back(ctx, config, state, &opts, ui, Some(run_id))
        .and_then(|outcome| super::rollback::finished(state, outcome));
    match rolled_back {
        // NB: `finished` makes an automatic rollback's end an error; should it not, the same one
        Ok(outcome) => UpgradeError::RolledBack {
            run: run_id,
            failing: failing.clone(),
            rollback: outcome.run_id.unwrap_or_default(),
            version: outcome.to,
        }
        .into(),
        Err(e) => e,
    }
}

/// Where a run's plan came from.
enum Source {
    /// The open run's stored plan, with what it has done.
    Resumed {
        record: RunRecord,
        done: HashSet<JournalKey>,
    },
    /// Planned now, from the verified index, and what the planner read of the host.
    Planned {
        trusted: Box<Trusted>,
        rpmdb: RpmDb,
        graph: ServiceGraph,
    },
}

/// The open run to resume, if any. NB: an explicit `--to` other than the open run's target
/// replans only when the open run changed nothing (it is closed as abandoned, unless this is a
/// dry run); a run that did must be finished (SPEC §5, "Open runs"). `plan` asks the same.
pub(crate) fn open_run(
    config: &Config,
    opts: &RunOptions,
    state: Option<&State>,
) -> Result<Option<OpenRun>> {
    let Some(state) = state else {
        return Ok(None);
    };
    let Some(open) = state.open_run()? else {
        return Ok(None);
    };
    let scheme = config.version_scheme;
    let Some(to) = opts
        .to
        .as_ref()
        .filter(|to| scheme.parse(to).ok() != scheme.parse(&open.plan.to).ok())
    else {
        return Ok(Some(open));
    };
    scheme.parse(to)?;
    if !open.changes().is_empty() {
        return Err(UpgradeError::OpenRunDiffers {
            id: open.record.id,
            open_to: open.plan.to.clone(),
            asked: to.clone(),
        }
        .into());
    }
    if !opts.dry_run {
        let why = format!("replanned to `{to}` before it changed anything");
        state.set_status(open.record.id, RunStatus::Abandoned, Some(&why))?;
    }
    Ok(None)
}

/// Begins the run in the journal (or resumes it); returns its id, what is done and the service
/// graph. NB: an unreachable database is found here, before anything changes, not after the
/// packages.
fn begin(
    ctx: &Context,
    config: &Config,
    state: &mut State,
    plan: &Plan,
    source: Source,
) -> Result<(i64, HashSet<JournalKey>, ServiceGraph)> {
    let done = match &source {
        Source::Resumed { done, .. } => done.clone(),
        Source::Planned { .. } => HashSet::new(),
    };
    let migrating = plan.hops.iter().enumerate().any(|(h, hop)| {
        !hop.migrations.is_empty() && !done.contains(&Step::Hop(h, HopStep::Migrate).key())
    });
    if migrating {
        // NB: a SQLite database that does not exist yet is not created here: the restore point
        // (taken after this) must record it as absent, so that the rollback of a fresh install
        // removes it again instead of leaving an empty file; the migrate step creates it
        migration_db::connect_existing(&config.database_url(), &ctx.root, "")?;
    }
    let (run_id, graph) = match source {
        Source::Resumed { record, .. } => {
            state.resume_run(record.id)?;
            let graph = services::load_graph(&ctx.paths(), config.services.backend)?;
            (record.id, graph)
        }
        Source::Planned { trusted, graph, .. } => (
            state.begin_run(plan, Some(trusted.catalog.sequence))?,
            graph,
        ),
    };
    tracing::info!(run = run_id, from = ?plan.from, to = %plan.to, resumed = !done.is_empty(), "run started");
    Ok((run_id, done, graph))
}

/// The open run when it stopped for a reboot a hook asked for (status `reboot`), for
/// `--after-reboot`: read only, so that a boot with nothing to resume writes nothing.
pub fn waiting_for_reboot(ctx: &Context) -> Result<Option<i64>> {
    let Some(state) = State::open_existing_read(&ctx.paths().state_db)? else {
        return Ok(None);
    };
    Ok(state
        .open_run()?
        .filter(|open| open.record.status == RunStatus::Reboot)
        .map(|open| open.record.id))
}
