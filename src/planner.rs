//! Installed state + index + host → [`Plan`] (SPEC §5): reads what the plan depends on (the
//! verified index, the installed version, the rpm database, the hooks, the migrations, the service
//! graph) and hands it to [`Plan::build`], which is pure. Changes nothing.

use anyhow::Result;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::catalog::{Catalog, Summary};
use crate::model::plan::{Plan, PlanInput, PlannedHook, PlannedHooks};
use crate::model::rpm::RpmDb;
use crate::model::services::ServiceGraph;
use crate::model::version::compare_evr;
use crate::repo::trust::{self, Trusted};
use crate::state::State;
use crate::steps::hooks::{self, Phase};
use crate::steps::migrations;

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
    let mut hooks = PlannedHooks::default();
    for (phase, planned) in [(Phase::Pre, &mut hooks.pre), (Phase::Post, &mut hooks.post)] {
        let set = hooks::discover(&paths, phase, ctx.superuser)?;
        set.ensure_safe()?;
        *planned = set
            .run
            .into_iter()
            .map(|h| PlannedHook {
                name: h.name,
                path: Some(h.path),
            })
            .collect();
    }
    let plan = Plan::build(PlanInput {
        installed: installed.as_ref(),
        target: target.as_ref(),
        catalog,
        rpmdb: &rpmdb,
        hooks,
        migrations: &migrations,
        services: &services,
        upgrader_package: &config.upgrader_package(),
    })?;
    migrations::ensure_runnable(&migrations, &plan, &config.database_url(), ctx.superuser)?;
    ensure_upgrader_suffices(config, catalog, &plan, &rpmdb)?;
    Ok(Planned {
        plan,
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
