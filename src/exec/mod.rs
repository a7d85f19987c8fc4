//! Executes a [`Plan`] step by step under the lock and the journal (SPEC §5). The executor keeps
//! the loop, the journal's "already done", and starting again the services a failed run stopped;
//! each step's own rules are its module's in [`crate::steps`]. A step is journaled as done only
//! after its effect is durable; a failure leaves the run open so the next invocation continues at
//! the failed step.

pub mod lock;

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::catalog::Artifact;
use crate::model::hooks::Phase;
use crate::model::journal::JournalKey;
use crate::model::plan::{Action, HopStep, Plan, Step};
use crate::repo::Repository;
use crate::repo::fetch;
use crate::state::{Journal, State};
use crate::steps::services::{self, ServiceGraph, Services};
use crate::steps::{StepContext, health, hooks, migrations, packages, purge, restore};
use crate::ui::{Event, Ui};

/// Fetches and verifies `artifacts` into the cache, reporting progress through `ui`.
pub fn download(
    repo: &Repository,
    artifacts: &[&Artifact],
    cache: &std::path::Path,
    ui: &dyn Ui,
) -> Result<Vec<PathBuf>> {
    let files = fetch::fetch_all(repo, artifacts, cache, &mut |p| match p {
        fetch::Progress::Started { artifacts, bytes } => {
            ui.event(Event::DownloadStarted { artifacts, bytes })
        }
        fetch::Progress::Bytes(bytes) => ui.event(Event::DownloadProgress { bytes }),
        fetch::Progress::Verified { artifact, .. } => ui.event(Event::Fetched { artifact }),
    });
    ui.event(Event::DownloadFinished);
    let files = files?;
    // NB: the sha256 proves the file is the one the index names, not that the index names it
    // rightly: the header must say the package the plan installs, before anything changes.
    for (artifact, file) in artifacts.iter().zip(&files) {
        let actual = crate::host::package_identity(file)?;
        if (
            actual.name.as_str(),
            actual.evr.as_str(),
            actual.arch.as_str(),
        ) != (
            artifact.name.as_str(),
            artifact.evr.as_str(),
            artifact.arch.as_str(),
        ) {
            return Err(UpgradeError::PackageMismatch {
                file: artifact.path.clone(),
                planned: artifact.nevra(),
                actual: actual.nevra(),
            }
            .into());
        }
    }
    Ok(files)
}

/// What [`execute`] works with: an open run of the journal and everything its steps read.
pub struct Run<'a> {
    pub ctx: &'a Context,
    pub config: &'a Config,
    pub repo: &'a Repository,
    pub state: &'a mut State,
    pub run_id: i64,
    /// The journal keys already done (a resumed run).
    pub done: HashSet<JournalKey>,
    pub resumed: bool,
    pub ui: &'a dyn Ui,
    pub graph: &'a ServiceGraph,
}

/// Executes `plan` as the open run `run`, starting again what it stopped if a step fails;
/// returns the `.rpmnew`/`.rpmsave` files the package transactions created.
pub fn execute(run: Run<'_>, plan: &Plan) -> Result<Vec<String>> {
    let paths = run.ctx.paths();
    let mut journal = Journal::new(run.state, run.run_id, run.done);
    let mut config_files = Vec::new();
    let mut cx = StepContext {
        ctx: run.ctx,
        config: run.config,
        paths: &paths,
        repo: run.repo,
        journal: &mut journal,
        ui: run.ui,
        resumed: run.resumed,
        action: plan.action,
        config_files: &mut config_files,
        verified: HashSet::new(),
    };
    let mut down = None;
    // NB: every event of the run carries its id, and of a step its key and hop, as fields of
    // these spans (the log's prefix; UPGRADE_RUN, UPGRADE_STEP, UPGRADE_HOP in the journal)
    let _span = tracing::info_span!("run", run = run.run_id).entered();
    let result = steps(&mut cx, run.graph, plan, &mut down);
    if result.is_err() {
        restore_services(&mut cx, run.graph, down);
    }
    result.map(|()| config_files)
}

/// Services of hop `.0` this run (or the interrupted one it resumes) stopped and has not started
/// again.
type Down = Option<(usize, Vec<usize>)>;

fn steps(
    cx: &mut StepContext<'_, '_>,
    graph: &ServiceGraph,
    plan: &Plan,
    down: &mut Down,
) -> Result<()> {
    for step in plan.steps() {
        let hop = match step {
            Step::Download | Step::Health => None,
            Step::Hop(h, _) => Some(&plan.hops[h]),
        };
        let key = step.key();
        if cx.journal.is_done(&key) {
            cx.ui.event(Event::StepAlreadyDone { step, hop });
            // NB: a resumed run whose services were stopped must still start them, also when it
            // fails before its start step.
            // An uninstall's removed packages have no service left to start.
            let removed = |h| {
                hop.is_some_and(|hop| hop.uninstall.is_some())
                    && cx.journal.is_done(&Step::Hop(h, HopStep::Packages).key())
            };
            if let (Step::Hop(h, HopStep::StopServices), Some(hop)) = (step, hop)
                && hop.from.is_some()
                && !removed(h)
                && !cx
                    .journal
                    .is_done(&Step::Hop(h, HopStep::StartServices).key())
            {
                let (set, _) = graph.resolve(&hop.services);
                *down = Some((h, set));
            }
            continue;
        }
        // NB: an interrupt stops the run between steps (SPEC §5); within a step, where the step
        // can stop safely (a hook, between migrations), and never within an rpm transaction.
        crate::interrupt::check()?;
        cx.ui.event(Event::StepStarted { step, hop });
        let span = tracing::info_span!("step", step = %key, hop = tracing::field::Empty);
        if let Some(hop) = hop {
            let from = hop.from.as_deref().unwrap_or("nothing");
            let to = Some(hop.to.as_str()).filter(|to| !to.is_empty());
            let hop = format!("{from}->{}", to.unwrap_or("nothing"));
            span.record("hop", tracing::field::display(hop));
        }
        let _span = span.entered();
        tracing::info!("step started");
        crate::fault::point!("step:{key}");
        if step == Step::Health {
            if let Some(checks) = &plan.health {
                health::run_gate(cx, plan, checks)?;
            }
            continue;
        }
        let Step::Hop(h, kind) = step else {
            let artifacts: Vec<&Artifact> = plan.artifacts().collect();
            let files = download(cx.repo, &artifacts, &cx.paths.cache, cx.ui)?;
            // NB: the transactions are tested with the files, before the first change. A
            // rollback's goes back to builds this host had, from its own restore point: rpm
            // tests it itself, before it changes anything.
            if plan.action == Action::Upgrade {
                crate::check::ensure_transactions(&cx.ctx.root, plan, &cx.paths.cache, cx.ui)?;
            }
            cx.journal.mark(&key, None)?;
            cx.verified.extend(files);
            continue;
        };
        let hop = &plan.hops[h];
        match kind {
            HopStep::PreHooks => hooks::run_phase(cx, h, hop, Phase::Pre)?,
            HopStep::StopServices => {
                let mut stopped = Vec::new();
                let result = services::stop_hop(cx, graph, h, hop, &mut stopped);
                // NB: whatever did stop is restored if the run fails, this step's failure
                // included.
                *down = Some((h, stopped));
                result?;
            }
            HopStep::RestorePoint => {
                if let Some(point) = &plan.restore_point {
                    restore::point::take(cx, plan, point)?;
                }
            }
            HopStep::RestoreData => {
                if let Some(source) = &hop.restore {
                    restore::point::put_back(cx, h, source)?;
                }
            }
            HopStep::Packages => {
                packages::run_hop(cx, h, hop)?;
                // NB: an uninstall's services went with its packages: a later failure has
                // nothing to start again
                if hop.uninstall.is_some() {
                    *down = None;
                }
            }
            HopStep::Purge => {
                if let Some(uninstall) = &hop.uninstall {
                    purge::run_hop(cx, h, uninstall)?;
                }
            }
            HopStep::Migrate => migrations::run_hop(cx, h, hop, plan.migration_role)?,
            HopStep::PostHooks => hooks::run_phase(cx, h, hop, Phase::Post)?,
            HopStep::StartServices => {
                let mut attempted = Vec::new();
                let result = services::start_hop(cx, graph, h, hop, &mut attempted);
                if let Some((_, down)) = down.as_mut() {
                    // the failed ones are named in the error; restoring retries only the rest
                    down.retain(|i| !attempted.contains(i));
                }
                result?;
                *down = None;
            }
            HopStep::Record => {
                // NB: an empty `to` is nothing installed (the rollback of a fresh install)
                let version = Some(hop.to.as_str()).filter(|v| !v.is_empty());
                // NB: before the journal, so that a killed run records the node again; a
                // database that cannot be reached does not undo the run (reported)
                if let Err(e) = migrations::record_node(cx, version) {
                    tracing::warn!("failed to record this node's release: {e:#}");
                    cx.ui.event(Event::NodeNotRecorded {
                        error: &format!("{e:#}"),
                    });
                }
                cx.journal.record_installed(&key, version)?;
                cx.ui.event(Event::Recorded { version: &hop.to });
            }
        }
        tracing::info!("step done");
    }
    Ok(())
}

/// After a failure: starts what this run stopped and did not start again (best effort). When
/// all of them start, the stop step is journaled as not done, so the resumed run stops them again
/// before it goes on.
fn restore_services(cx: &mut StepContext<'_, '_>, graph: &ServiceGraph, down: Down) {
    let Some((hop, down)) = down else {
        return;
    };
    if down.is_empty() {
        return;
    }
    let report = services::restore(&Services::new(graph, cx.config, cx.paths), &down, cx.ui);
    tracing::warn!(
        started = ?graph.names(report.done.iter().copied()),
        failed = ?graph.names(report.failed.iter().map(|(i, _)| *i)),
        "services restored after a failure"
    );
    if report.failed.is_empty() && report.skipped.is_empty() {
        let key = Step::Hop(hop, HopStep::StopServices).key();
        if let Err(e) = cx.journal.unmark(&key) {
            tracing::error!("failed to reopen step `{key}` in the journal: {e:#}");
        }
    }
}
