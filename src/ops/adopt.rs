//! `real-upgrade adopt VERSION`: take over an installation that predates this tool.
//!
//! The root's rpm database must hold exactly the packages of release VERSION; then the installed
//! version is recorded and every migration up to VERSION is entered in the ledger as applied (a
//! baseline), so the next upgrade starts from there.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::exec::lock::RunLock;
use crate::model::plan::Plan;
use crate::model::version::compare_evr;
use crate::planner::{self, Recorded};
use crate::state::State;
use crate::steps::migrations::{self, db};

#[derive(Debug, Serialize)]
pub struct Adopted {
    pub product: String,
    pub version: String,
    pub run_id: i64,
    /// Migrations recorded as applied without running them.
    pub baseline: Vec<String>,
    pub database: Option<String>,
}

pub fn adopt(ctx: &Context, version: &str) -> Result<Adopted> {
    let config = Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let _lock = RunLock::acquire(&paths.lock)?;
    let version = config.version_scheme.parse(version)?;
    let mut state = State::open(&paths.state_db)?;
    if let Some(installed) = state.installed()? {
        return Err(UpgradeError::input(format!(
            "this root already records {} {installed} as installed; nothing to adopt",
            config.product
        ))
        .into());
    }
    let recorded = Recorded::read(Some(&state))?;
    let catalog = planner::load_trusted(&config, ctx, &recorded)?.catalog;
    let release = catalog.release(&version).ok_or_else(|| {
        UpgradeError::input_hint(
            format!("release `{version}` is not in the repository"),
            "adopt the release that is installed; `real-upgrade status` shows the available ones",
        )
    })?;
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    let mismatches: Vec<String> = release
        .packages
        .iter()
        .filter_map(|a| match rpmdb.newest(&a.name) {
            None => Some(format!(
                "`{}` is not installed (release {version} has {})",
                a.name, a.evr
            )),
            Some(p) if compare_evr(&p.evr, &a.evr).is_ne() => Some(format!(
                "`{}` is at {}, release {version} has {}",
                a.name, p.evr, a.evr
            )),
            Some(_) => None,
        })
        .collect();
    if !mismatches.is_empty() {
        return Err(UpgradeError::input_hint(
            format!(
                "the rpm database does not match release {version}: {}",
                mismatches.join("; ")
            ),
            "adopt the release whose packages are installed, or install them first",
        )
        .into());
    }
    let all = migrations::discover(&paths.migrations, config.version_scheme)?;
    let (baseline, database) = if all.iter().any(|m| m.version <= version) {
        let node = migrations::node_name(&config)?;
        let mut database = db::connect(&config.database_url(), &ctx.root, &node)?;
        (
            migrations::baseline(database.as_mut(), &all, &version)?,
            Some(database.describe()),
        )
    } else {
        (Vec::new(), None)
    };
    let plan = Plan {
        product: config.product.clone(),
        from: None,
        to: version.to_string(),
        hops: Vec::new(),
        action: crate::model::plan::Action::Upgrade,
        restore_point: None,
        health: None,
        automatic_for: None,
        migration_role: Default::default(),
    };
    let run_id = state.record_adoption(&plan)?;
    tracing::info!(run = run_id, version = %version, "installation adopted");
    Ok(Adopted {
        product: config.product,
        version: version.to_string(),
        run_id,
        baseline,
        database,
    })
}
