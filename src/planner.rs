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
    Action, HealthPlan, Hop, PackageChange, PackageOp, Plan, PlanInput, PlannedHook, PlannedHooks,
    RestorePointPlan, RestoreSource,
};
use crate::model::rpm::RpmDb;
use crate::model::services::ServiceGraph;
use crate::model::version::compare_evr;
use crate::repo::trust::{self, Trusted};
use crate::state::State;
use crate::steps::hooks::{self, Phase};
use crate::steps::migrations;
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
    if !plan.is_up_to_date() {
        // NB: the database is saved when the product has one: migrations to apply, or one
        // configured.
        let database = !migrations.is_empty() || config.database.url.is_some();
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
        },
        rpmdb,
        services,
    })
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
