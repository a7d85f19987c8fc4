//! Services (SPEC §8): stopping and starting a set of services of the [`ServiceGraph`] in
//! dependency order, with readiness checks, handling services that do not depend on each other at
//! the same time (at most `[services] jobs` at once).
//!
//! A service is launched as soon as everything it waits for is done — not level by level — so the
//! time taken is the graph's critical path. Workers are scoped threads that only run commands;
//! they report back over a channel and this thread alone talks to the caller.

pub mod backend;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

pub use self::backend::Backends;
use super::StepContext;
use crate::config::Config;
use crate::context::Paths;
use crate::error::UpgradeError;
use crate::model::plan::{Hop, HopStep, Step};
pub use crate::model::services::{ServiceBackend, ServiceGraph, backend_name};
use crate::ui::{Event, Ui};

/// Whether services are stopped or started as a run's work, or started again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    /// Every service is attempted, and a failure is reported as a failed restore.
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
}

/// What happens to one service, as it happens.
#[derive(Debug)]
pub enum Progress<'a> {
    Launched {
        name: &'a str,
    },
    Stopped {
        name: &'a str,
        took: Duration,
    },
    /// Started, and ready after `ready_after` (from the start command).
    Started {
        name: &'a str,
        ready_after: Duration,
    },
    Failed {
        name: &'a str,
        error: &'a str,
    },
}

/// What a stop or start of a set did.
#[derive(Debug, Default)]
pub struct Report {
    /// Indices into the graph, in the order they finished.
    pub done: Vec<usize>,
    /// The services that failed, each with its message (status output included).
    pub failed: Vec<(usize, String)>,
    /// Not attempted: they wait for a failed service, or the run stopped at a failure.
    pub skipped: Vec<usize>,
}

/// The graph, its backends, and the bound on parallel work.
pub struct Services<'a> {
    pub graph: &'a ServiceGraph,
    pub backends: Backends,
    pub jobs: usize,
}

impl<'a> Services<'a> {
    pub fn new(graph: &'a ServiceGraph, config: &Config, paths: &Paths) -> Services<'a> {
        // NB: commands run in the root, so a relative `--root` would be resolved twice.
        let root = std::path::absolute(&paths.root).unwrap_or_else(|_| paths.root.clone());
        let runit_dir = root.join(config.services.runit_dir.trim_start_matches('/'));
        Services {
            graph,
            backends: Backends {
                root,
                runit_dir,
                timeout: config.services.timeout,
            },
            jobs: config.services.jobs.max(1),
        }
    }

    /// Stops (dependents first) or starts (dependencies first) every service of `set`.
    ///
    /// For a run, nothing new is launched after a failure; restoring after a failed run, every
    /// service is attempted.
    pub fn execute(
        &self,
        action: Action,
        set: &[usize],
        purpose: Purpose,
        on: &mut dyn FnMut(Progress<'_>),
    ) -> Report {
        let graph = self.graph;
        // NB: the packages a run installed (or a rollback put back) may have changed unit files
        if action == Action::Start
            && set
                .iter()
                .any(|&i| graph.service(i).backend == ServiceBackend::Systemd)
            && let Err(e) = self.backends.daemon_reload()
        {
            // the starts that follow report what systemd makes of the units
            tracing::warn!("{e:#}");
        }
        let n = graph.services().len();
        let mut member = vec![false; n];
        for &i in set {
            member[i] = true;
        }
        // What each service waits for, within the set.
        let waits_for = |i: usize| -> Vec<usize> {
            let edges = match action {
                Action::Start => &graph.service(i).after[..],
                Action::Stop => graph.dependents(i),
            };
            edges.iter().copied().filter(|&j| member[j]).collect()
        };
        let released_by = |i: usize| -> Vec<usize> {
            let edges = match action {
                Action::Start => graph.dependents(i),
                Action::Stop => &graph.service(i).after[..],
            };
            edges.iter().copied().filter(|&j| member[j]).collect()
        };
        let mut waiting = vec![0usize; n];
        let mut queue = std::collections::BTreeSet::new();
        for &i in set {
            waiting[i] = waits_for(i).len();
            if waiting[i] == 0 {
                queue.insert(i);
            }
        }
        let mut report = Report::default();
        let mut finished = vec![false; n];
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<(usize, Result<Duration, String>)>();
            let mut in_flight = 0;
            let mut stopping = false;
            loop {
                while in_flight < self.jobs && !stopping {
                    let Some(i) = queue.pop_first() else { break };
                    on(Progress::Launched {
                        name: &graph.service(i).name,
                    });
                    let tx = tx.clone();
                    let backends = &self.backends;
                    scope.spawn(move || {
                        let result = one(backends, graph, i, action);
                        let _ = tx.send((i, result));
                    });
                    in_flight += 1;
                }
                if in_flight == 0 {
                    break;
                }
                let Ok((i, result)) = rx.recv() else { break };
                in_flight -= 1;
                finished[i] = true;
                let name = &graph.service(i).name;
                match result {
                    Ok(took) => {
                        on(match action {
                            Action::Stop => Progress::Stopped { name, took },
                            Action::Start => Progress::Started {
                                name,
                                ready_after: took,
                            },
                        });
                        report.done.push(i);
                        crate::fault::point!("service:{action:?}:{name}");
                    }
                    Err(error) => {
                        on(Progress::Failed {
                            name,
                            error: &error,
                        });
                        report.failed.push((i, error));
                        if purpose == Purpose::Run {
                            stopping = true;
                            continue;
                        }
                    }
                }
                for j in released_by(i) {
                    waiting[j] -= 1;
                    if waiting[j] == 0 {
                        queue.insert(j);
                    }
                }
            }
        });
        report.skipped = set.iter().copied().filter(|&i| !finished[i]).collect();
        report
    }
}

/// Stops or starts service `i`; on failure, the message with the backend's status output.
fn one(
    backends: &Backends,
    graph: &ServiceGraph,
    i: usize,
    action: Action,
) -> Result<Duration, String> {
    let svc = graph.service(i);
    let started = Instant::now();
    let verb = match action {
        Action::Stop => "stop",
        Action::Start => "start",
    };
    let result = match action {
        Action::Stop => backends.stop(svc).map(|()| Duration::ZERO),
        Action::Start => backends.start(svc).and_then(|()| match &svc.ready {
            Some(ready) => backend::await_ready(&ready.check, ready.timeout, &backends.root)
                .map_err(|e| e.context(format!("service `{}` did not become ready", svc.name))),
            None => Ok(Duration::ZERO),
        }),
    };
    match result {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => {
            let status = backends.status(svc);
            tracing::error!(service = %svc.name, "failed to {verb}: {e:#}; status: {status}");
            let what = if e.to_string().contains("did not become ready") {
                format!("{e:#}")
            } else {
                format!("failed to {verb} service `{}`: {e:#}", svc.name)
            };
            Err(format!("{what}\nstatus {status}"))
        }
    }
}

/// The error a failed stop or start becomes: the first failure, and how many others.
pub fn failure(report: &Report, graph: &ServiceGraph) -> UpgradeError {
    let mut message = report
        .failed
        .first()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    if report.failed.len() > 1 {
        let others = graph.names(report.failed[1..].iter().map(|(i, _)| *i));
        message += &format!("\n(also failed: {})", others.join(", "));
    }
    let hint = "see the service's status above and its log, fix it, then run `upgrade` again to \
                resume (or `real-upgrade services restart`)"
        .to_string();
    UpgradeError::Step {
        message,
        hint: Some(hint),
    }
}

/// Reads the admin's `service-order.toml`, else the vendor's; no file is an empty graph.
pub fn load_graph(paths: &Paths, default: ServiceBackend) -> Result<ServiceGraph, UpgradeError> {
    let admin = paths.admin_etc.join("service-order.toml");
    let vendor = paths.vendor_share.join("service-order.toml");
    // NB: the admin's file replaces the vendor's entirely; it is not merged.
    let Some(path) = [admin, vendor].into_iter().find(|p| p.exists()) else {
        return Ok(ServiceGraph::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UpgradeError::input(format!(
            "failed to read service order `{}`: {e}",
            path.display()
        ))
    })?;
    ServiceGraph::parse(&text, &path, default)
}

/// Reports a service's progress through `ui`, for `action` (restoring is a start).
pub fn event(ui: &dyn Ui, action: Action, purpose: Purpose, progress: Progress<'_>) {
    ui.event(match progress {
        Progress::Launched { name } => match action {
            Action::Stop => Event::ServiceStopping { name },
            Action::Start => Event::ServiceStarting { name },
        },
        Progress::Stopped { name, took } => Event::ServiceStopped { name, took },
        Progress::Started { name, ready_after } => Event::ServiceStarted { name, ready_after },
        Progress::Failed { name, error } if purpose == Purpose::Restore => {
            Event::ServiceRestoreFailed { name, error }
        }
        Progress::Failed { name, error } => Event::ServiceFailed { name, error },
    });
}

/// Starts `down` again after a failure, best effort, every failure reported.
pub fn restore(services: &Services<'_>, down: &[usize], ui: &dyn Ui) -> Report {
    if down.is_empty() {
        return Report::default();
    }
    ui.event(Event::ServicesRestoring {
        names: services.graph.names(down.iter().copied()),
    });
    services.execute(Action::Start, down, Purpose::Restore, &mut |p| {
        event(ui, Action::Start, Purpose::Restore, p)
    })
}

/// The graph's indices of a hop's services; a name the graph no longer knows changed the plan.
fn hop_services(graph: &ServiceGraph, hop: &Hop) -> Result<Vec<usize>, UpgradeError> {
    let (set, missing) = graph.resolve(&hop.services);
    if !missing.is_empty() {
        let source = graph.source.as_ref().map_or_else(
            || "service-order.toml".to_string(),
            |p| p.display().to_string(),
        );
        let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
        return Err(UpgradeError::PlanChanged {
            what: format!("the plan's services {}", names.join(", ")),
            change: format!("are no longer declared in `{source}`"),
        });
    }
    Ok(set)
}

/// The stop step of a hop: its services, dependents first. Each service that stopped is added
/// to `stopped` as it stops, also when the step fails, so the executor can start it again.
pub fn stop_hop(
    cx: &mut StepContext<'_, '_>,
    graph: &ServiceGraph,
    index: usize,
    hop: &Hop,
    stopped: &mut Vec<usize>,
) -> Result<()> {
    let key = Step::Hop(index, HopStep::StopServices).key();
    let set = hop_services(graph, hop)?;
    // a fresh install has nothing running to stop
    // NB: a step that has nothing to do is not journaled (one commit less, and the run's
    // `changes` stay empty): its resumed run finds nothing to do again.
    if hop.from.is_none() || set.is_empty() {
        cx.ui.event(Event::NoServices);
        return Ok(());
    }
    let ui = cx.ui;
    let report = Services::new(graph, cx.config, cx.paths).execute(
        Action::Stop,
        &set,
        Purpose::Run,
        &mut |p| {
            if let Progress::Stopped { name, .. } = &p {
                stopped.extend(graph.index(name));
            }
            event(ui, Action::Stop, Purpose::Run, p);
        },
    );
    if !report.failed.is_empty() {
        return Err(failure(&report, graph).into());
    }
    cx.journal.mark(&key, None)
}

/// The start step of a hop: its services, dependencies first, each waited for until ready.
/// Each service that started or failed is added to `attempted`, also when the step fails.
pub fn start_hop(
    cx: &mut StepContext<'_, '_>,
    graph: &ServiceGraph,
    index: usize,
    hop: &Hop,
    attempted: &mut Vec<usize>,
) -> Result<()> {
    let key = Step::Hop(index, HopStep::StartServices).key();
    // NB: what the plan said stays stopped, by the same rule ([`Hop::leaves_stopped`])
    let set: Vec<usize> = hop_services(graph, hop)?
        .into_iter()
        .filter(|&i| !hop.leaves_stopped(graph, i))
        .collect();
    if set.is_empty() {
        cx.ui.event(Event::NoServices);
        return Ok(()); // nothing done, nothing journaled (see `stop_hop`)
    }
    let ui = cx.ui;
    let report = Services::new(graph, cx.config, cx.paths).execute(
        Action::Start,
        &set,
        Purpose::Run,
        &mut |p| event(ui, Action::Start, Purpose::Run, p),
    );
    attempted.extend(report.done.iter().copied());
    attempted.extend(report.failed.iter().map(|(i, _)| *i));
    if !report.failed.is_empty() {
        return Err(failure(&report, graph).into());
    }
    cx.journal.mark(&key, None)
}
