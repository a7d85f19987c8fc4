//! `service-order.toml` (SPEC §8) → a [`ServiceGraph`]: every service with its backend, unit,
//! readiness check and the services it starts after, checked once when loaded.
//!
//! The graph holds its services in a topological order and every `after` edge points to an
//! earlier one, so a `ServiceGraph` cannot hold a cycle or an unknown name: later code walks it
//! without re-validating.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::UpgradeError;
use crate::tomlfile::location;

/// How a service is stopped, started and asked whether it runs (`[services] backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceBackend {
    #[default]
    Systemd,
    Sysv,
    Runit,
    Command,
}

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    service: BTreeMap<String, RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    restart: Restart,
    ready: Option<Spanned<RawReady>>,
    backend: Option<ServiceBackend>,
    unit: Option<String>,
    start: Option<String>,
    stop: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<String>,
    command: Option<String>,
    #[serde(default, deserialize_with = "optional_duration")]
    timeout: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::tomlfile::duration(d).map(Some)
}

/// When a service is restarted by an upgrade besides when its packages change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Only when one of its `packages` changes (or a service it comes after restarts).
    #[default]
    OnChange,
    /// On every upgrade.
    Always,
}

/// How to tell that a started service is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyCheck {
    /// A TCP connect to `HOST:PORT` succeeds.
    Tcp(String),
    /// `sh -c COMMAND` exits 0.
    Command(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ready {
    pub check: ReadyCheck,
    pub timeout: Duration,
}

/// The `command` backend's templates, run with `sh -c`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Commands {
    pub start: String,
    pub stop: String,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    /// Indices of the services this one starts after; always lower than its own.
    #[serde(skip)]
    pub after: Vec<usize>,
    pub packages: Vec<String>,
    pub restart: Restart,
    pub ready: Option<Ready>,
    pub backend: ServiceBackend,
    /// The systemd unit, init script or runit directory name.
    pub unit: String,
    #[serde(skip)]
    pub commands: Commands,
}

/// The checked service graph, in topological order (dependencies first).
#[derive(Debug, Clone, Default)]
pub struct ServiceGraph {
    services: Vec<Service>,
    /// For each service, the indices of the services that start directly after it.
    dependents: Vec<Vec<usize>>,
    /// Service name → index in `services`.
    by_name: HashMap<String, usize>,
    /// The file it was read from; `None` when there is none.
    pub source: Option<PathBuf>,
}

impl ServiceGraph {
    /// Parses and checks `text`, read from `path`.
    pub fn parse(
        text: &str,
        path: &Path,
        default: ServiceBackend,
    ) -> Result<ServiceGraph, UpgradeError> {
        let raw: RawFile = crate::tomlfile::parse(text, path, "service order")?;
        // NB: a BTreeMap's keys come sorted, so a name is found by binary search; a linear
        // search per `after` entry made loading quadratic in the number of services.
        let names: Vec<&String> = raw.service.keys().collect();
        let index = |name: &str| names.binary_search_by(|n| n.as_str().cmp(name)).ok();
        // Edges by position in `names`, each unknown name reported with its line.
        let mut unknown = Vec::new();
        let mut edges: Vec<Vec<usize>> = Vec::new();
        for (name, svc) in &raw.service {
            let mut after = Vec::new();
            for dep in &svc.after {
                match index(dep.get_ref()) {
                    Some(i) => after.push(i),
                    None => unknown.push(format!(
                        "`{name}` starts after `{}`, which is not a service ({})",
                        dep.get_ref(),
                        location(text, path, dep.span().start)
                    )),
                }
            }
            after.sort_unstable();
            after.dedup();
            edges.push(after);
        }
        if !unknown.is_empty() {
            return Err(UpgradeError::input_hint(
                format!("invalid service order: {}", unknown.join("; ")),
                format!(
                    "declare the missing service with `[service.NAME]` or remove it from `after` in `{}`",
                    path.display()
                ),
            ));
        }
        let order = topological_order(&edges).map_err(|cycles| {
            let list: Vec<String> = cycles
                .iter()
                .map(|c| {
                    let names: Vec<String> = c.iter().map(|&i| format!("`{}`", names[i])).collect();
                    names.join(" → ")
                })
                .collect();
            UpgradeError::input_hint(
                format!(
                    "invalid service order `{}`: {} {}",
                    path.display(),
                    if list.len() == 1 {
                        "the services form a cycle:"
                    } else {
                        "the services form cycles:"
                    },
                    list.join("; ")
                ),
                "each service may only start after services that do not (transitively) start after it; remove one `after` entry of each cycle",
            )
        })?;
        // position in `names` → position in the topological order
        let mut rank = vec![0; names.len()];
        for (pos, &i) in order.iter().enumerate() {
            rank[i] = pos;
        }
        let raws: Vec<(&String, &RawService)> = raw.service.iter().collect();
        let mut services = Vec::with_capacity(order.len());
        for &i in &order {
            let (name, svc) = raws[i];
            let mut after: Vec<usize> = edges[i].iter().map(|&j| rank[j]).collect();
            after.sort_unstable();
            services.push(service(name, svc, after, default, text, path)?);
        }
        let mut dependents = vec![Vec::new(); services.len()];
        for (i, s) in services.iter().enumerate() {
            for &d in &s.after {
                dependents[d].push(i);
            }
        }
        let by_name = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(ServiceGraph {
            services,
            dependents,
            by_name,
            source: Some(path.to_path_buf()),
        })
    }

    /// Every service, dependencies first.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn service(&self, i: usize) -> &Service {
        &self.services[i]
    }

    /// The services that start directly after service `i`.
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// `set` and every service that comes after one of them (transitively), in graph order.
    pub fn closure(&self, set: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut on = vec![false; self.services.len()];
        for i in set {
            on[i] = true;
        }
        // NB: graph order is topological, so one forward pass sees every dependency first.
        for i in 0..self.services.len() {
            if !on[i] && self.services[i].after.iter().any(|&d| on[d]) {
                on[i] = true;
            }
        }
        (0..self.services.len()).filter(|&i| on[i]).collect()
    }

    /// The named services and everything after them; an unknown name is an input error.
    pub fn with_dependents(&self, names: &[String]) -> Result<Vec<usize>, UpgradeError> {
        let mut set = Vec::new();
        for name in names {
            let i = self.index(name).ok_or_else(|| {
                UpgradeError::input_hint(
                    format!("there is no service `{name}`"),
                    format!(
                        "the services are: {}",
                        self.names(0..self.services.len()).join(", ")
                    ),
                )
            })?;
            set.push(i);
        }
        Ok(self.closure(set))
    }

    /// The services an upgrade that changes `changed` packages restarts (SPEC §8).
    pub fn affected(&self, changed: &HashSet<&str>) -> Vec<usize> {
        self.closure(self.services.iter().enumerate().filter_map(|(i, s)| {
            let hit = s.restart == Restart::Always
                || s.packages.iter().any(|p| changed.contains(p.as_str()));
            hit.then_some(i)
        }))
    }

    pub fn names(&self, set: impl IntoIterator<Item = usize>) -> Vec<String> {
        set.into_iter()
            .map(|i| self.services[i].name.clone())
            .collect()
    }

    /// `names` as indices; names the graph does not know (any more) are returned apart.
    pub fn resolve(&self, names: &[String]) -> (Vec<usize>, Vec<String>) {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.index(name) {
                Some(i) => found.push(i),
                None => missing.push(name.clone()),
            }
        }
        found.sort_unstable();
        (found, missing)
    }

    /// The services of `set` by level: each level starts together, after the levels before it.
    pub fn levels(&self, set: &[usize]) -> Vec<Vec<usize>> {
        let member: HashSet<usize> = set.iter().copied().collect();
        let mut level = vec![0usize; self.services.len()];
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for &i in set {
            let l = self.services[i]
                .after
                .iter()
                .filter(|d| member.contains(d))
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
            level[i] = l;
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            levels[l].push(i);
        }
        levels
    }
}

fn service(
    name: &str,
    raw: &RawService,
    after: Vec<usize>,
    default: ServiceBackend,
    text: &str,
    path: &Path,
) -> Result<Service, UpgradeError> {
    let backend = raw.backend.unwrap_or(default);
    let bad = |message: String| {
        UpgradeError::input_hint(
            format!("invalid service order `{}`: {message}", path.display()),
            format!("fix `[service.{name}]`"),
        )
    };
    let ready = match &raw.ready {
        None => None,
        Some(spanned) => {
            let at = location(text, path, spanned.span().start);
            let r = spanned.get_ref();
            let check = match (&r.tcp, &r.command) {
                (Some(addr), None) => {
                    let port = addr.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
                    if !matches!(port, Some(Ok(_))) {
                        return Err(bad(format!(
                            "service `{name}`: `ready.tcp` must be `HOST:PORT`, not `{addr}` ({at})"
                        )));
                    }
                    ReadyCheck::Tcp(addr.clone())
                }
                (None, Some(cmd)) => ReadyCheck::Command(cmd.clone()),
                _ => {
                    return Err(bad(format!(
                        "service `{name}`: `ready` needs exactly one of `tcp` or `command` ({at})"
                    )));
                }
            };
            Some(Ready {
                check,
                timeout: r.timeout.unwrap_or(DEFAULT_READY_TIMEOUT),
            })
        }
    };
    let commands = match backend {
        ServiceBackend::Command => match (&raw.start, &raw.stop) {
            (Some(start), Some(stop)) => Commands {
                start: start.clone(),
                stop: stop.clone(),
                status: raw.status.clone(),
            },
            _ => {
                return Err(bad(format!(
                    "service `{name}` uses the `command` backend and needs both `start` and `stop` commands"
                )));
            }
        },
        _ => {
            if raw.start.is_some() || raw.stop.is_some() || raw.status.is_some() {
                return Err(bad(format!(
                    "service `{name}`: `start`, `stop` and `status` are only used by the `command` backend, not `{}`",
                    backend_name(backend)
                )));
            }
            Commands::default()
        }
    };
    let unit = match (&raw.unit, backend) {
        (Some(unit), _) => unit.clone(),
        (None, ServiceBackend::Systemd) => format!("{name}.service"),
        (None, _) => name.to_string(),
    };
    Ok(Service {
        name: name.to_string(),
        after,
        packages: raw.packages.clone(),
        restart: raw.restart,
        ready,
        backend,
        unit,
        commands,
    })
}

pub fn backend_name(backend: ServiceBackend) -> &'static str {
    match backend {
        ServiceBackend::Systemd => "systemd",
        ServiceBackend::Sysv => "sysv",
        ServiceBackend::Runit => "runit",
        ServiceBackend::Command => "command",
    }
}

/// Kahn's algorithm, ties broken by position (so by name); on failure every cycle, each as a
/// closed path of positions (`a → b → a`).
fn topological_order(after: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = after.len();
    let mut waiting: Vec<usize> = after.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, deps) in after.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // What is left is cycles and what comes after them; each strongly connected component of it
    // with an edge inside is a cycle to report.
    let left: Vec<usize> = (0..n).filter(|&i| waiting[i] > 0).collect();
    let reach = |from: usize| -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack = after[from].clone();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(after[i].iter().copied());
            }
        }
        seen
    };
    let reaches: BTreeMap<usize, HashSet<usize>> = left.iter().map(|&i| (i, reach(i))).collect();
    let mut reported = HashSet::new();
    let mut cycles = Vec::new();
    for &i in &left {
        if reported.contains(&i) || !reaches[&i].contains(&i) {
            continue;
        }
        let component: BTreeSet<usize> = left
            .iter()
            .copied()
            .filter(|j| reaches[&i].contains(j) && reaches[j].contains(&i))
            .collect();
        reported.extend(component.iter().copied());
        // walk from i along edges inside the component until a node repeats
        let mut path = vec![i];
        let mut at = i;
        loop {
            let next = after[at]
                .iter()
                .copied()
                .find(|j| component.contains(j))
                .expect("a node of a cycle has an edge inside it");
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle = path.split_off(pos);
                cycle.push(next);
                // written in start order: each one starts after the one before it
                cycle.reverse();
                cycles.push(cycle);
                break;
            }
            path.push(next);
            at = next;
        }
    }
    Err(cycles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceGraph, UpgradeError> {
        ServiceGraph::parse(
            text,
            Path::new("/usr/share/upgrade/service-order.toml"),
            ServiceBackend::Systemd,
        )
    }

    const SPEC: &str = r#"
[service.postgresql]
[service.demo-api]
after = ["postgresql"]
packages = ["demo-server"]
ready = { tcp = "127.0.0.1:8080", timeout = "30s" }
[service.nginx]
after = ["demo-api"]
restart = "always"
[service.cron]
"#;

    #[test]
    fn spec_example_levels_and_affected() {
        let g = parse(SPEC).unwrap();
        let all: Vec<usize> = (0..g.services().len()).collect();
        let levels: Vec<Vec<String>> = g.levels(&all).into_iter().map(|l| g.names(l)).collect();
        assert_eq!(
            levels,
            [vec!["cron", "postgresql"], vec!["demo-api"], vec!["nginx"]]
        );
        let changed: HashSet<&str> = ["demo-server"].into();
        assert_eq!(g.names(g.affected(&changed)), ["demo-api", "nginx"]);
        assert_eq!(g.names(g.affected(&HashSet::new())), ["nginx"]);
        assert_eq!(
            g.names(g.with_dependents(&["postgresql".into()]).unwrap()),
            ["postgresql", "demo-api", "nginx"]
        );
        let api = &g.services()[g.index("demo-api").unwrap()];
        assert_eq!(api.unit, "demo-api.service");
        assert_eq!(api.ready.as_ref().unwrap().timeout, Duration::from_secs(30));
    }

    #[test]
    fn unknown_names_and_cycles_are_named() {
        let err = parse("[service.a]\nafter = [\"b\", \"ghost\"]\n[service.b]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a` starts after `ghost`"), "{err}");
        assert!(err.contains("service-order.toml:2:15"), "{err}");
        let err = parse(
            "[service.a]\nafter = [\"c\"]\n[service.b]\nafter = [\"a\"]\n[service.c]\nafter = [\"b\"]\n\
             [service.d]\nafter = [\"d\"]\n[service.e]\nafter = [\"a\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`a` → `b` → `c` → `a`"), "{err}");
        assert!(err.contains("`d` → `d`"), "{err}");
        assert!(!err.contains("`e`"), "{err}");
    }

    #[test]
    fn bad_fields() {
        assert!(
            parse("[service.a]\nbogus = 1\n")
                .unwrap_err()
                .to_string()
                .contains(":2:1")
        );
        let err = parse("[service.a]\nready = { timeout = \"3s\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one of"), "{err}");
        let err = parse("[service.a]\nbackend = \"command\"\nstart = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs both"), "{err}");
    }
}
