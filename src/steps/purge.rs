//! The purge step of an uninstall's hop (SPEC §14), after its packages are gone and its post
//! hooks ran: with `--purge`, the product's database objects (or SQLite file) and the
//! `[uninstall] purge_paths` are deleted, never a path `[uninstall] keep` protects; then every
//! `keep` path that the package removal, a hook or the purge took is put back from the run's
//! restore point, which saved them. Killed midway, it runs again and converges: what was deleted
//! stays deleted, what is kept is put back.

use anyhow::Result;

use crate::model::plan::{HopStep, Step, UninstallPlan};
use crate::steps::StepContext;
use crate::steps::restore::{database, files, point};

pub fn run_hop(cx: &mut StepContext<'_, '_>, index: usize, plan: &UninstallPlan) -> Result<()> {
    let key = Step::Hop(index, HopStep::Purge).key();
    let root = &cx.ctx.root;
    if plan.database {
        database::purge(&cx.config.database_url(), root)?;
        tracing::info!("database purged");
    }
    crate::fault::point!("purge:database");
    files::purge(root, &plan.paths, &plan.keep)?;
    crate::fault::point!("purge:paths");
    if !plan.keep.is_empty()
        && let Some(manifest) = point::load(cx.paths, cx.run_id())?
    {
        let dir = point::files_dir(cx.paths, cx.run_id());
        let back = files::put_back_missing(root, &manifest.files, &dir, &plan.keep)?;
        if !back.is_empty() {
            tracing::info!(paths = ?back, "kept paths put back");
        }
    }
    cx.journal.mark(&key, None)
}
