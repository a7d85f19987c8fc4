//! `real-upgrade migrations status|repair`: the ledger against the files, and clearing failed
//! rows once a person has repaired the database.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::steps::migrations::db::{self, LedgerRow};
use crate::steps::migrations::{self, Status};

pub fn status(ctx: &Context) -> Result<Status> {
    let config = Config::load(&ctx.config_path)?;
    let all = migrations::discover(&ctx.paths().migrations, config.version_scheme)?;
    let url = config.database_url();
    Ok(match db::connect_existing(&url, &ctx.root)? {
        Some(mut database) => migrations::status(database.as_mut(), &all)?,
        None => Status {
            database: db::redact(&url),
            pending: all.iter().map(|m| m.label()).collect(),
            ..Default::default()
        },
    })
}

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub database: String,
    pub cleared: Vec<LedgerRow>,
}

pub fn repair(ctx: &Context) -> Result<Repaired> {
    let config = Config::load(&ctx.config_path)?;
    let mut database = db::connect(&config.database_url(), &ctx.root)?;
    database.prepare_ledger()?;
    database.lock(config.database.lock_timeout)?;
    let cleared = database.repair();
    database.unlock();
    Ok(Repaired {
        database: database.describe(),
        cleared: cleared?,
    })
}
