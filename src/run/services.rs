//! `real-upgrade services restart`: the services a person names (and everything after them), or
//! all of them, stopped and started with the same ordering, parallelism, readiness checks and
//! restoring-after-failure as an upgrade, under the run lock.

use anyhow::Result;

use super::{Event, Ui, lock};
use crate::config::Config;
use crate::context::Context;
use crate::steps::services::{self, Action, Progress, ServiceGraph, Services};

/// Reports a service's progress through `ui`, for `action` (restoring is a start).
pub fn event(ui: &dyn Ui, action: Action, restoring: bool, progress: Progress<'_>) {
    ui.event(match progress {
        Progress::Launched { name } => match action {
            Action::Stop => Event::ServiceStopping { name },
            Action::Start => Event::ServiceStarting { name },
        },
        Progress::Stopped { name, took } => Event::ServiceStopped { name, took },
        Progress::Started { name, ready_after } => Event::ServiceStarted { name, ready_after },
        Progress::Failed { name, error } if restoring => {
            Event::ServiceRestoreFailed { name, error }
        }
        Progress::Failed { name, error } => Event::ServiceFailed { name, error },
    });
}

/// Restarts `names` and the services after them (every service when `names` is empty); returns
/// the names restarted, in start order.
pub fn restart(ctx: &Context, names: &[String], ui: &dyn Ui) -> Result<Vec<String>> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let graph = ServiceGraph::load(&paths, config.services.backend)?;
    let set = match names.is_empty() {
        true => (0..graph.services().len()).collect(),
        false => graph.with_dependents(names)?,
    };
    let _lock = lock::RunLock::acquire(&paths.lock)?;
    let services = Services::new(&graph, &config, &paths);
    tracing::info!(services = ?graph.names(set.iter().copied()), "restarting services");
    let mut stopped = Vec::new();
    let report = services.execute(Action::Stop, &set, false, &mut |p| {
        if let Progress::Stopped { name, .. } = &p {
            stopped.extend(graph.index(name));
        }
        event(ui, Action::Stop, false, p);
    });
    if !report.failed.is_empty() {
        restore(&services, &stopped, ui);
        return Err(services::failure(&report, &graph).into());
    }
    let report = services.execute(Action::Start, &set, false, &mut |p| {
        event(ui, Action::Start, false, p)
    });
    if !report.failed.is_empty() {
        restore(&services, &report.skipped, ui);
        return Err(services::failure(&report, &graph).into());
    }
    Ok(graph.names(set))
}

/// Starts `down` again after a failure, best effort, every failure reported.
pub fn restore(services: &Services<'_>, down: &[usize], ui: &dyn Ui) -> services::Report {
    if down.is_empty() {
        return services::Report::default();
    }
    ui.event(Event::ServicesRestoring {
        names: services.graph.names(down.iter().copied()),
    });
    services.execute(Action::Start, down, true, &mut |p| {
        event(ui, Action::Start, true, p)
    })
}
