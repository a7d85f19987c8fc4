//! Services (SPEC §8): stopping and starting a set of services of the [`ServiceGraph`] in
//! dependency order, with readiness checks, handling services that do not depend on each other at
//! the same time (at most `[services] jobs` at once).
//!
//! A service is launched as soon as everything it waits for is done — not level by level — so the
//! time taken is the graph's critical path. Workers are scoped threads that only run commands;
//! they report back over a channel and this thread alone talks to the caller.

pub mod backend;
pub mod graph;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

pub use self::backend::Backends;
pub use self::graph::{ServiceGraph, backend_name};
use crate::config::Config;
use crate::context::Paths;
use crate::error::UpgradeError;

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
    /// Without `keep_going`, nothing new is launched after a failure; with it (restoring after
    /// a failed run) every service is attempted.
    pub fn execute(
        &self,
        action: Action,
        set: &[usize],
        keep_going: bool,
        on: &mut dyn FnMut(Progress<'_>),
    ) -> Report {
        let graph = self.graph;
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
                        if !keep_going {
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
