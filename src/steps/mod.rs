//! One module per kind of step the run executes. Steps act; they never plan. Each hop step has
//! the same shape — `fn(&mut StepContext, hop index, &Hop) -> Result<()>` — and owns its rules:
//! what the plan fixed and how to check it is still so, what a resumed run skips, and marking
//! itself done in the journal once its effect is durable.
//!
//! - [`hooks`]: discovering and running `pre-upgrade.d` / `post-upgrade.d` executables.
//! - [`packages`]: the one transaction per hop (`rpm -U` or `dnf install`), an interrupted rpm.
//! - [`migrations`]: the hop's schema migrations, exactly once (the ledger).
//! - [`services`]: the service graph, stopped and started in dependency order, in parallel.
//! - [`health`]: the health checks after the services start, and their verdict (SPEC §13).
//! - [`purge`]: an uninstall's `--purge` deletions and its `keep` paths put back (SPEC §14).
//! - [`restore`]: a restore point's building blocks — the database saved and given back exactly,
//!   configuration files saved and put back with their modes and owners.

pub mod health;
pub mod hooks;
pub mod migrations;
pub mod packages;
pub mod purge;
pub mod restore;
pub mod services;

use std::collections::HashSet;
use std::path::PathBuf;

use crate::config::Config;
use crate::context::{Context, Paths};
use crate::repo::Repository;
use crate::state::Journal;
use crate::ui::Ui;

/// What every step reads, and the run's journal it marks itself done in.
pub struct StepContext<'a, 'j> {
    pub ctx: &'a Context,
    pub config: &'a Config,
    pub paths: &'a Paths,
    pub repo: &'a Repository,
    pub journal: &'a mut Journal<'j>,
    pub ui: &'a dyn Ui,
    /// This invocation resumes an open run (hooks see `UPGRADE_RESUMED=1`).
    pub resumed: bool,
    /// What the run does (hooks see `UPGRADE_ACTION`).
    pub action: crate::model::plan::Action,
    /// `.rpmnew` / `.rpmsave` files the package transactions created.
    pub config_files: &'a mut Vec<String>,
    /// Cache files this invocation's download step verified (sha256 and header) moments ago;
    /// empty for a resumed run whose download was done before, which verifies them again.
    pub verified: HashSet<PathBuf>,
}

impl StepContext<'_, '_> {
    pub fn run_id(&self) -> i64 {
        self.journal.run_id()
    }
}
