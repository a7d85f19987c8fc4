//! `real-upgrade services order|restart`: the service graph by start level, and restarting the
//! services a person names (and everything after them), or all of them, with the same ordering,
//! parallelism, readiness checks and restoring-after-failure as an upgrade, under the run lock.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::exec::lock;
use crate::model::services::{Ready, Restart, ServiceBackend};
use crate::steps::services::{self, Action, Progress, Purpose, Services, event, restore};
use crate::ui::Ui;

/// The service graph by start level; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceOrder {
    /// The file it was read from; `None` when there is none.
    pub source: Option<PathBuf>,
    pub levels: Vec<Vec<OrderedService>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderedService {
    pub name: String,
    pub after: Vec<String>,
    pub packages: Vec<String>,
    pub restart: Restart,
    pub backend: ServiceBackend,
    pub unit: String,
    pub ready: Option<Ready>,
}

pub fn order(ctx: &Context) -> Result<ServiceOrder> {
    let config = Config::load(&ctx.config_path)?;
    let graph = services::load_graph(&ctx.paths(), config.services.backend)?;
    let all: Vec<usize> = (0..graph.services().len()).collect();
    let levels = graph
        .levels(&all)
        .iter()
        .map(|level| {
            level
                .iter()
                .map(|&i| {
                    let s = graph.service(i);
                    OrderedService {
                        name: s.name.clone(),
                        after: graph.names(s.after.iter().copied()),
                        packages: s.packages.clone(),
                        restart: s.restart,
                        backend: s.backend,
                        unit: s.unit.clone(),
                        ready: s.ready.clone(),
                    }
                })
                .collect()
        })
        .collect();
    Ok(ServiceOrder {
        source: graph.source.clone(),
        levels,
    })
}

/// What `services restart` did; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Restarted {
    /// Always `restarted`.
    pub result: &'static str,
    /// The services restarted, in start order.
    pub services: Vec<String>,
}

/// Restarts `names` and the services after them (every service when `names` is empty).
pub fn restart(ctx: &Context, names: &[String], ui: &dyn Ui) -> Result<Restarted> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let graph = services::load_graph(&paths, config.services.backend)?;
    let set = match names.is_empty() {
        true => (0..graph.services().len()).collect(),
        false => graph.with_dependents(names)?,
    };
    let _lock = lock::RunLock::acquire(&paths.lock)?;
    // NB: a signal in the middle does not leave a service stopped: the restart goes on to its
    // end (each command bounded by its timeout), then exits 130/143.
    crate::interrupt::defer();
    let services = Services::new(&graph, &config, &paths);
    tracing::info!(services = ?graph.names(set.iter().copied()), "restarting services");
    let mut stopped = Vec::new();
    let report = services.execute(Action::Stop, &set, Purpose::Run, &mut |p| {
        if let Progress::Stopped { name, .. } = &p {
            stopped.extend(graph.index(name));
        }
        event(ui, Action::Stop, Purpose::Run, p);
    });
    if !report.failed.is_empty() {
        restore(&services, &stopped, ui);
        return Err(services::failure(&report, &graph).into());
    }
    let report = services.execute(Action::Start, &set, Purpose::Run, &mut |p| {
        event(ui, Action::Start, Purpose::Run, p)
    });
    if !report.failed.is_empty() {
        restore(&services, &report.skipped, ui);
        return Err(services::failure(&report, &graph).into());
    }
    crate::interrupt::check()?;
    Ok(Restarted {
        result: "restarted",
        services: graph.names(set),
    })
}
