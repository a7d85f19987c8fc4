//! `real-upgrade migrations status|repair|finalize`: the ledger against the files, clearing
//! failed rows once a person has repaired the database, and a fleet's contract migrations once
//! every node runs the installed release (SPEC §15).

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::hooks::Phase;
use crate::model::plan::Action;
use crate::steps::hooks::{self, HookEnv};
use crate::steps::migrations::db::{self, LedgerRow};
use crate::steps::migrations::{self, Status};

pub fn status(ctx: &Context) -> Result<Status> {
    let config = Config::load(&ctx.config_path)?;
    let all = migrations::discover(&ctx.paths().migrations, config.version_scheme)?;
    let url = config.database_url();
    Ok(
        match db::connect_existing(&url, &ctx.root, &migrations::node_name(&config)?)? {
            Some(mut database) => migrations::status(database.as_mut(), &all)?,
            None => Status {
                database: db::redact(&url),
                pending: all.iter().map(|m| m.label()).collect(),
                ..Default::default()
            },
        },
    )
}

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub database: String,
    pub cleared: Vec<LedgerRow>,
}

pub fn repair(ctx: &Context) -> Result<Repaired> {
    let config = Config::load(&ctx.config_path)?;
    let node = migrations::node_name(&config)?;
    let mut database = db::connect(&config.database_url(), &ctx.root, &node)?;
    database.prepare_ledger()?;
    database.lock(config.database.lock_timeout)?;
    let cleared = database.repair();
    database.unlock();
    Ok(Repaired {
        database: database.describe(),
        cleared: cleared?,
    })
}

/// `migrations finalize`: the contract migrations (`<version>/post/`) of the installed release
/// and those before it, applied once every node recorded in the database runs it; `applied` and
/// `done` report each one as it commits.
pub fn finalize(
    ctx: &Context,
    applied: &mut dyn FnMut(&str, std::time::Duration),
    line: &mut dyn FnMut(&str, &str),
) -> Result<migrations::Finalized> {
    let config = Config::load(&ctx.config_path)?;
    let state = crate::state::State::open_existing_read(&ctx.paths().state_db)?;
    let installed = state
        .as_ref()
        .map(|s| s.installed())
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            UpgradeError::input_hint(
                "nothing is installed: there is no release to finalize",
                "run `upgrade` first; `finalize` applies the contract migrations of the release \
                 every node runs",
            )
        })?;
    let version = config.version_scheme.parse(&installed)?;
    let all = migrations::discover(&ctx.paths().migrations, config.version_scheme)?;
    let node = migrations::node_name(&config)?;
    let url = config.database_url();
    let mut database = db::connect(&url, &ctx.root, &node)?;
    let env = HookEnv {
        phase: Phase::Migrate,
        action: Action::Upgrade,
        from: Some(installed.clone()),
        to: installed.clone(),
        resumed: false,
        root: ctx.root.clone(),
        run_id: 0,
        extra: vec![(
            "UPGRADE_DATABASE_URL",
            db::url_for_programs(&url, &ctx.root)?,
        )],
    };
    let timeout = config.hooks.timeout;
    migrations::finalize(
        database.as_mut(),
        &all,
        &version,
        config.database.lock_timeout,
        ctx.superuser,
        &mut |m| {
            let label = m.label();
            hooks::run_program(&m.path, &label, &env, timeout, &mut |text| {
                line(&label, text)
            })?;
            Ok(())
        },
        &mut |m, took| applied(&m.label(), took),
    )
}
