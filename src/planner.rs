//! Installed state + index + host → [`Plan`] (SPEC §5): reads what the plan depends on (the
//! verified index, the installed version, the rpm database, the hooks, the migrations, the service
//! graph) and hands it to [`Plan::build`], which is pure. Changes nothing.

use anyhow::Result;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::catalog::Artifact;
use crate::model::catalog::{Catalog, Summary};
use crate::model::plan::{
    Action, HealthPlan, Hop, LeftBehind, PackageChange, PackageOp, Plan, PlanInput, PlannedHook,
    PlannedHooks, RestorePointPlan, RestoreSource, UninstallPlan,
};
use crate::model::rpm::RpmDb;
use crate::model::services::ServiceGraph;
use crate::model::version::compare_evr;
use crate::repo::trust::{self, Trusted};
use crate::state::State;
use crate::steps::hooks::{self, Phase};
use crate::steps::migrations;
use crate::steps::migrations::db::redact;
use crate::steps::restore::{self, point::Manifest};
use std::collections::{BTreeSet, HashSet};

/// What the root's `state.db` says that planning depends on, read once per command.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The installed version; `None` on a bare host.
    pub installed: Option<String>,
    /// The highest index sequence this root accepted (rollback protection, SPEC §4).
    pub accepted_sequence: Option<u64>,
}

impl Recorded {
    pub fn read(state: Option<&State>) -> Result<Recorded> {
        Ok(match state {
            Some(state) => Recorded {
                installed: state.installed()?,
                accepted_sequence: state.accepted_sequence()?,
            },
            None => Recorded::default(),
        })
    }
}

/// A plan, and what the root's rpm database held when it was made (the preflight checks read
/// the same, so a run queries rpm once).
pub struct Planned {
    pub plan: Plan,
    pub rpmdb: RpmDb,
    /// The service graph the plan's services come from.
    pub services: ServiceGraph,
}

/// Plans an upgrade of the root in `ctx` from its installed state; changes nothing.
pub fn plan(ctx: &Context, config: &Config, to: Option<&str>) -> Result<Planned> {
    let state = State::open_existing_read(&ctx.paths().state_db)?;
    let recorded = Recorded::read(state.as_ref())?;
    let catalog = load_trusted(config, ctx, &recorded)?.catalog;
    plan_from(ctx, config, &catalog, &recorded, to)
}

/// Plans from `catalog`, already verified.
pub fn plan_from(
    ctx: &Context,
    config: &Config,
    catalog: &Catalog,
    recorded: &Recorded,
    to: Option<&str>,
) -> Result<Planned> {
    let paths = ctx.paths();
    let scheme = config.version_scheme;
    let installed = recorded
        .installed
        .as_deref()
        .map(|v| scheme.parse(v))
        .transpose()?;
    let target = to.map(|v| scheme.parse(v)).transpose()?;
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    if installed.is_none() {
        ensure_fresh(config, catalog, &rpmdb)?;
    }
    let migrations = migrations::discover(&paths.migrations, scheme)?;
    let services = crate::steps::services::load_graph(&paths, config.services.backend)?;
    let hooks = planned_hooks(ctx)?;
    let mut plan = Plan::build(PlanInput {
        installed: installed.as_ref(),
        target: target.as_ref(),
        catalog,
        rpmdb: &rpmdb,
        hooks,
        migrations: &migrations,
        services: &services,
        upgrader_package: &config.upgrader_package(),
    })?;
    plan.migration_role = config.migration_role();
    if !plan.is_up_to_date() {
        let database = has_database(config, &migrations);
        plan.restore_point = Some(RestorePointPlan::new(
            catalog,
            &rpmdb,
            installed.as_ref(),
            &config.upgrader_package(),
            database,
        ));
    }
    if !plan.is_up_to_date() {
        let release = catalog
            .releases
            .iter()
            .find(|r| r.version.to_string() == plan.to)
            .map(|r| (plan.to.as_str(), r.health.as_slice()));
        plan.health = planned_health(ctx, config, release)?;
    }
    migrations::ensure_runnable(&migrations, &plan, &config.database_url(), ctx.superuser)?;
    ensure_upgrader_suffices(config, catalog, &plan, &rpmdb)?;
    Ok(Planned {
        plan,
        rpmdb,
        services,
    })
}

/// The hooks of both phases as they are now, refused when one is unsafe.
fn planned_hooks(ctx: &Context) -> Result<PlannedHooks> {
    let paths = ctx.paths();
    let mut hooks = PlannedHooks::default();
    for (phase, planned) in [(Phase::Pre, &mut hooks.pre), (Phase::Post, &mut hooks.post)] {
        *planned = planned_phase(&paths, phase, ctx.superuser)?;
    }
    Ok(hooks)
}

/// The executables of `phase` as they are now, each with the file it resolves to; refused when
/// one is unsafe.
fn planned_phase(
    paths: &crate::context::Paths,
    phase: Phase,
    superuser: bool,
) -> Result<Vec<PlannedHook>> {
    let set = hooks::discover(paths, phase, superuser)?;
    set.ensure_safe()?;
    Ok(set
        .run
        .into_iter()
        .map(|h| PlannedHook {
            name: h.name,
            path: Some(h.path),
        })
        .collect())
}

/// The health checks of a plan (SPEC §13): the `health.d` programs as they are now (refused when
/// one is unsafe), the configuration's checks and `release`'s (its version and checks).
pub fn planned_health(
    ctx: &Context,
    config: &Config,
    release: Option<(&str, &[crate::model::health::HealthCheck])>,
) -> Result<Option<HealthPlan>> {
    let programs = planned_phase(&ctx.paths(), Phase::Health, ctx.superuser)?;
    Ok(HealthPlan::new(programs, &config.health.check, release))
}

/// The way back to the restore point `manifest` of run `run` (whose plan was `run_plan`), from
/// `installed` (SPEC §12): one hop that puts the restore point's package builds back (from the
/// files it keeps), removes the product's packages the host has and it had not, puts its
/// configuration files and database back, and stops and starts every service. It needs no
/// repository.
pub fn plan_rollback(
    ctx: &Context,
    config: &Config,
    installed: Option<String>,
    run: i64,
    run_plan: &Plan,
    manifest: &Manifest,
    release_health: &[crate::model::health::HealthCheck],
) -> Result<Planned> {
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    let services = crate::steps::services::load_graph(&ctx.paths(), config.services.backend)?;
    let mut packages = Vec::new();
    for kept in &manifest.packages {
        let now = rpmdb.newest(&kept.name).map(|p| p.evr.clone());
        let op = match &now {
            None => PackageOp::Install,
            Some(evr) => match compare_evr(evr, &kept.evr) {
                std::cmp::Ordering::Greater => PackageOp::Downgrade,
                std::cmp::Ordering::Less => PackageOp::Upgrade,
                std::cmp::Ordering::Equal => PackageOp::Keep,
            },
        };
        packages.push(PackageChange {
            op,
            name: kept.name.clone(),
            installed: now,
            artifact: Some(Artifact {
                name: kept.name.clone(),
                evr: kept.evr.clone(),
                arch: kept.arch.clone(),
                path: format!("{}/{}", restore::point::PACKAGES, kept.file),
                sha256: kept.sha256.clone(),
                size: kept.size,
            }),
        });
    }
    // the product's packages the run (or an earlier one) added: what the rolled-back plan or
    // the restore point names, that the restore point does not hold
    let saved: HashSet<&str> = manifest.packages.iter().map(|k| k.name.as_str()).collect();
    let named: BTreeSet<&str> = run_plan
        .hops
        .iter()
        .flat_map(|h| h.packages.iter().map(|p| p.name.as_str()))
        .chain(
            run_plan
                .restore_point
                .iter()
                .flat_map(|r| r.packages.iter().map(|p| p.name.as_str())),
        )
        .collect();
    for name in named.into_iter().filter(|n| !saved.contains(n)) {
        if let Some(now) = rpmdb.newest(name) {
            packages.push(PackageChange {
                op: PackageOp::Remove,
                name: name.to_string(),
                installed: Some(now.evr.clone()),
                artifact: None,
            });
        }
    }
    let to = manifest.version.clone().unwrap_or_default();
    let mut hop = Hop {
        from: installed.clone(),
        to: to.clone(),
        stop: false,
        packages,
        migrations: Vec::new(),
        hooks: planned_hooks(ctx)?,
        services: services.names(0..services.services().len()),
        prerequisites: Vec::new(),
        checks: Default::default(),
        restore: Some(RestoreSource {
            run,
            taken_at: manifest.taken_at.clone(),
            database: manifest.database.is_some(),
            files: manifest.files.shown(),
        }),
        uninstall: None,
        stays_stopped: Vec::new(),
    };
    hop.note_stays_stopped(&services);
    // NB: a rollback to nothing installed has nothing to check
    let health = match to.is_empty() {
        true => None,
        false => planned_health(ctx, config, Some((to.as_str(), release_health)))?,
    };
    Ok(Planned {
        plan: Plan {
            product: config.product.clone(),
            from: installed,
            to,
            hops: vec![hop],
            action: Action::Rollback,
            restore_point: None,
            health,
            automatic_for: None,
            migration_role: Default::default(),
        },
        rpmdb,
        services,
    })
}

/// Whether this host saves (and an uninstall's `--purge` drops) the product's database: it has
/// one (migrations, or one configured) and it is this host's, not a fleet's that an application
/// node shares (SPEC §15: restoring that is the migration node's rollback, decided by a person).
fn has_database(config: &Config, migrations: &[crate::model::migration::Migration]) -> bool {
    config.migration_role().is_apply() && (!migrations.is_empty() || config.database.url.is_some())
}

/// What an uninstall does with the product's data (SPEC §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// The database and the data paths stay (the default).
    Keep,
    /// `--purge`: the database objects (or SQLite file) and `[uninstall] purge_paths` go.
    Purge,
}

/// The uninstall of the product installed at `installed` (SPEC §14): one hop to nothing that
/// stops every service, removes the product's packages in one transaction and, with
/// [`Data::Purge`], deletes its data; the restore point before it keeps the packages, the
/// configuration, the database and the paths the run removes, so that `rollback` undoes it.
///
/// The product's packages are those any release of `catalog` lists (when the index could be
/// read) or any run of `history` planned, less every prerequisite, the upgrader's packages and
/// `[upgrader] package`; the restore point keeps each installed build from the artifact either
/// names (the cache holds what the last run installed). So it needs no repository when the
/// cache has the installed builds.
pub fn plan_uninstall(
    ctx: &Context,
    config: &Config,
    catalog: Option<&Catalog>,
    history: &[Plan],
    installed: &str,
    data: Data,
) -> Result<Planned> {
    let paths = ctx.paths();
    let scheme = config.version_scheme;
    let version = scheme.parse(installed)?;
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    let services = crate::steps::services::load_graph(&paths, config.services.backend)?;
    let migrations = migrations::discover(&paths.migrations, scheme)?;
    let upgrader = config.upgrader_package();
    let releases = catalog.iter().flat_map(|c| &c.releases);
    let prerequisites: BTreeSet<&str> = releases
        .clone()
        .flat_map(|r| r.prerequisites.iter().map(|p| p.name.as_str()))
        .chain(
            history
                .iter()
                .flat_map(|p| &p.hops)
                .flat_map(|h| h.prerequisites.iter().map(|p| p.name.as_str())),
        )
        .collect();
    let not_product: HashSet<&str> = catalog
        .iter()
        .flat_map(|c| &c.upgrader)
        .flat_map(|u| u.packages.iter().map(|a| a.name.as_str()))
        .chain(prerequisites.iter().copied())
        .chain([upgrader.as_str()])
        .collect();
    let kept = history
        .iter()
        .flat_map(|p| &p.restore_point)
        .flat_map(|r| &r.packages);
    let artifacts: Vec<&Artifact> = releases
        .clone()
        .flat_map(|r| &r.packages)
        .chain(
            history
                .iter()
                .filter(|p| p.action == Action::Upgrade)
                .flat_map(|p| p.hops.iter().flat_map(|h| h.artifacts())),
        )
        .chain(kept.clone().filter_map(|p| p.artifact.as_ref()))
        .collect();
    let names: BTreeSet<&str> = artifacts
        .iter()
        .map(|a| a.name.as_str())
        .chain(
            history
                .iter()
                .flat_map(|p| &p.hops)
                .flat_map(|h| h.packages.iter().map(|p| p.name.as_str())),
        )
        .chain(kept.map(|p| p.name.as_str()))
        .filter(|n| !not_product.contains(n))
        .collect();
    let database = has_database(config, &migrations);
    let point = RestorePointPlan::of(&names, &artifacts, &rpmdb, Some(&version), database);
    let mut removed: Vec<PackageChange> = Vec::new();
    for saved in &point.packages {
        if removed.iter().all(|p| p.name != saved.name) {
            removed.push(PackageChange {
                op: PackageOp::Remove,
                name: saved.name.clone(),
                installed: Some(saved.evr.clone()),
                artifact: None,
            });
        }
    }
    let left_behind = prerequisites
        .iter()
        .filter(|n| rpmdb.newest(n).is_some())
        .map(|n| (*n, "a prerequisite: the operating system's, never removed"))
        .chain(rpmdb.newest(&upgrader).map(|_| {
            (
                upgrader.as_str(),
                "the upgrader: `upgrade` can install again",
            )
        }))
        .map(|(name, why)| LeftBehind {
            kind: "package".into(),
            name: name.to_string(),
            why: why.into(),
        })
        .collect();
    let uninstall = uninstall_plan(config, database, data, left_behind);
    let mut hop = Hop {
        from: Some(installed.to_string()),
        to: String::new(),
        stop: false,
        packages: removed,
        migrations: Vec::new(),
        hooks: planned_hooks(ctx)?,
        services: services.names(0..services.services().len()),
        prerequisites: Vec::new(),
        checks: Default::default(),
        restore: None,
        uninstall: Some(uninstall),
        stays_stopped: Vec::new(),
    };
    hop.note_stays_stopped(&services);
    Ok(Planned {
        plan: Plan {
            product: config.product.clone(),
            from: Some(installed.to_string()),
            to: String::new(),
            hops: vec![hop],
            action: Action::Uninstall,
            restore_point: Some(point),
            health: None,
            automatic_for: None,
            migration_role: Default::default(),
        },
        rpmdb,
        services,
    })
}

/// What an uninstall deletes and leaves, from `[uninstall]` and `data`; `left_behind` holds the
/// packages it leaves already.
fn uninstall_plan(
    config: &Config,
    database: bool,
    data: Data,
    mut left_behind: Vec<LeftBehind>,
) -> UninstallPlan {
    let section = &config.uninstall;
    let kept = |p: &std::path::Path| section.keep.iter().any(|k| p.starts_with(k));
    let entry = |kind: &str, name: String, why: &str| LeftBehind {
        kind: kind.into(),
        name,
        why: why.into(),
    };
    let keep = "`[uninstall] keep`: never removed";
    left_behind.extend(
        section
            .keep
            .iter()
            .map(|p| entry("path", p.display().to_string(), keep)),
    );
    left_behind.extend(
        section
            .keep_users
            .iter()
            .map(|u| entry("user", u.clone(), "`[uninstall] keep_users`: never removed")),
    );
    left_behind.extend(section.keep_groups.iter().map(|g| {
        entry(
            "group",
            g.clone(),
            "`[uninstall] keep_groups`: never removed",
        )
    }));
    let stays = "data stays without `--purge`";
    let purge = data == Data::Purge;
    if database && !purge {
        left_behind.push(entry("database", redact(&config.database_url()), stays));
    }
    let paths: Vec<std::path::PathBuf> = section
        .purge_paths
        .iter()
        .filter(|p| !kept(p))
        .cloned()
        .collect();
    if !purge {
        left_behind.extend(
            paths
                .iter()
                .map(|p| entry("path", p.display().to_string(), stays)),
        );
    }
    UninstallPlan {
        database: database && purge,
        paths: if purge { paths } else { Vec::new() },
        keep: section.keep.clone(),
        left_behind,
    }
}

/// Refuses a host with none recorded installed whose rpm database holds the product's packages
/// (those `catalog` lists): `uninstall` has nothing recorded to take it from (`adopt` first).
pub fn ensure_nothing_installed(ctx: &Context, config: &Config, catalog: &Catalog) -> Result<()> {
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    Ok(ensure_fresh(config, catalog, &rpmdb)?)
}

/// A host is fresh only when the rpm database holds none of the product's packages (SPEC §5);
/// the upgrader's own packages may be there (the operator installs them first).
fn ensure_fresh(config: &Config, catalog: &Catalog, rpmdb: &RpmDb) -> Result<(), UpgradeError> {
    let own = config.upgrader_package();
    let upgrader: Vec<&str> = catalog
        .upgrader
        .iter()
        .flat_map(|u| u.packages.iter().map(|a| a.name.as_str()))
        .chain([own.as_str()])
        .collect();
    let mut installed: Vec<String> = catalog
        .releases
        .iter()
        .flat_map(|r| &r.packages)
        .map(|a| a.name.as_str())
        .filter(|n| !upgrader.contains(n) && rpmdb.newest(n).is_some())
        .map(str::to_string)
        .collect();
    installed.sort();
    installed.dedup();
    if installed.is_empty() {
        return Ok(());
    }
    Err(UpgradeError::Unrecorded {
        packages: installed,
    })
}

/// The configured repository's index, verified (signature, expiry, rollback; SPEC §4), with
/// the repository it came from.
pub fn load_trusted(config: &Config, ctx: &Context, recorded: &Recorded) -> Result<Trusted> {
    trust::load(config, ctx, recorded.accepted_sequence)
}

/// What `status` needs of the index: [`load_trusted`]'s checks, without the package tables.
pub fn load_summary(config: &Config, ctx: &Context, recorded: &Recorded) -> Result<Summary> {
    trust::load_summary(config, &ctx.config_path, recorded.accepted_sequence)
}

/// The version of the upgrader that runs: the installed upgrader package's, else this program's.
pub fn running_upgrader(config: &Config, rpmdb: &RpmDb) -> String {
    rpmdb
        .newest(&config.upgrader_package())
        .map_or(env!("CARGO_PKG_VERSION"), |p| version_of(&p.evr))
        .to_string()
}

/// Refuses a plan with a hop to a release whose `requires_upgrader` is newer than the running
/// upgrader.
pub fn ensure_upgrader_suffices(
    config: &Config,
    catalog: &Catalog,
    plan: &Plan,
    rpmdb: &RpmDb,
) -> Result<(), UpgradeError> {
    let running = running_upgrader(config, rpmdb);
    for hop in &plan.hops {
        let required = catalog
            .releases
            .iter()
            .find(|r| r.version.to_string() == hop.to)
            .and_then(|r| r.requires_upgrader.as_deref());
        if let Some(required) = required
            && compare_evr(&running, required).is_lt()
        {
            return Err(UpgradeError::input_hint(
                format!(
                    "release `{}` requires upgrader `{required}` or newer; the running upgrader \
                     (`{}`) is `{running}`",
                    hop.to,
                    config.upgrader_package()
                ),
                "run `upgrade` without `--no-self-update` so that it refreshes the upgrader \
                 first, or choose an earlier release with `--to`",
            ));
        }
    }
    Ok(())
}

/// `1.2.0` of `[E:]1.2.0-1`.
pub fn version_of(evr: &str) -> &str {
    let v = evr.split_once(':').map_or(evr, |(_, v)| v);
    v.rsplit_once('-').map_or(v, |(v, _)| v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_of_evr() {
        assert_eq!(super::version_of("1:1.2.0-1"), "1.2.0");
        assert_eq!(super::version_of("1.2.0-1"), "1.2.0");
        assert_eq!(super::version_of("1.2.0"), "1.2.0");
    }
}
