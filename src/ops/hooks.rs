//! `real-upgrade hooks list`: what each phase's directories hold and what of it would run,
//! `health.d` included (its programs follow the hooks' rules, SPEC §13).

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::steps::hooks::{self, HookSet, Phase};

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct HookListing {
    #[serde(rename = "pre-upgrade.d")]
    pub pre: HookSet,
    #[serde(rename = "post-upgrade.d")]
    pub post: HookSet,
    #[serde(rename = "health.d")]
    pub health: HookSet,
}

pub fn list(ctx: &Context) -> Result<HookListing> {
    let paths = ctx.paths();
    Ok(HookListing {
        pre: hooks::discover(&paths, Phase::Pre, ctx.superuser)?,
        post: hooks::discover(&paths, Phase::Post, ctx.superuser)?,
        health: hooks::discover(&paths, Phase::Health, ctx.superuser)?,
    })
}
