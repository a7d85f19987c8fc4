//! The `upgrade` shim (SPEC §1): refresh the upgrader, then `exec` `real-upgrade` with the same
//! arguments, so that fixes to the upgrade logic and the vendor's hooks reach a server before
//! the upgrade that needs them.
//!
//! The refresh reads the verified index (the same trust rules as `real-upgrade`, and it records
//! the index's sequence). When `[upgrader] version` is newer than the installed upgrader package
//! (`[upgrader] package` in the root's rpm database; absent counts as older), it downloads and
//! verifies the upgrader packages and installs them in one rpm transaction under the run lock.
//! If that replaced the shim's own file, the shim re-execs itself once — the new shim, with
//! [`REEXEC_GUARD`] set, skips the refresh, so there is no loop — and then becomes
//! `real-upgrade`, found beside the shim, else in the root's `/usr/sbin`. A failed refresh stops
//! everything with its reason; the exit code follows the failure (`repo` module doc): a refused
//! index is 2, an unreachable repository or a failed transaction 1.
//!
//! "The running upgrader", for a release's `requires_upgrader`, is the installed upgrader
//! package's version, since that package carries `real-upgrade` and the vendor's hooks; on a
//! root without it, this program's own version. A release that needs a newer one is refused by
//! the plan ([`ensure_upgrader_suffices`]), never attempted with the old upgrader.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::config::Config;
use crate::context::Context;
use crate::error::UpgradeError;
use crate::model::catalog::Artifact;
use crate::model::version::compare_evr;
use crate::planner;
use crate::state::State;
use crate::steps::packages;
use crate::ui::{Event, Ui};

/// Set in the environment of the re-executed shim: it then neither refreshes nor re-execs.
pub const REEXEC_GUARD: &str = "UPGRADE_SHIM_REEXEC";

pub struct ShimOptions {
    pub self_update: bool,
    /// Ask before refreshing (the run was not given `--yes`): a person who then declines has
    /// had nothing changed.
    pub confirm: bool,
    /// Arguments for `real-upgrade`, unchanged.
    pub args: Vec<OsString>,
}

/// Never returns on success: the process becomes `real-upgrade`.
pub fn exec_real_upgrade(options: &ShimOptions, ui: &dyn Ui) -> Result<std::convert::Infallible> {
    let root = argument(&options.args, "--root").unwrap_or_else(|| PathBuf::from("/"));
    // NB: resolved before the refresh: once rpm has replaced the file, /proc/self/exe names a
    // deleted one.
    let exe = std::env::current_exe().ok();
    let reexecuted = std::env::var_os(REEXEC_GUARD).is_some();
    if options.self_update && !reexecuted {
        let before = exe.as_deref().and_then(identity);
        let ctx = Context::new(Some(root.clone()), argument(&options.args, "--config"));
        // NB: without `--yes` and without a terminal, real-upgrade refuses to run: nothing is
        // refreshed for it.
        let refreshed = match options.confirm && !ctx.interactive {
            true => false,
            false => {
                refresh(&ctx, ui, options.confirm).context("failed to refresh the upgrader")?
            }
        };
        if let (true, Some(exe)) = (refreshed, &exe)
            && identity(exe) != before
        {
            tracing::info!(exe = %exe.display(), "the shim was replaced: running the new one");
            let err = Command::new(exe)
                .env(REEXEC_GUARD, "1")
                .args(&options.args)
                .exec();
            return Err(UpgradeError::step(
                format!("failed to run the refreshed `{}`: {err}", exe.display()),
                "run `upgrade` again; the upgrader is already refreshed",
            )
            .into());
        }
    }
    let beside = exe.and_then(|exe| exe.parent().map(|d| d.join("real-upgrade")));
    let in_root = root.join("usr/sbin/real-upgrade");
    let target = beside
        .filter(|p| is_executable(p))
        .or_else(|| is_executable(&in_root).then_some(in_root.clone()));
    let Some(target) = target else {
        return Err(UpgradeError::step(
            format!(
                "cannot find `real-upgrade` beside this program or at `{}`",
                in_root.display()
            ),
            "reinstall the upgrader package",
        )
        .into());
    };
    let err = Command::new(&target).args(&options.args).exec();
    Err(UpgradeError::step(
        format!("failed to run `{}`: {err}", target.display()),
        "reinstall the upgrader package",
    )
    .into())
}

/// Installs the index's upgrader when it is newer than the installed one, asking first when
/// `confirm`. Returns whether it installed one.
pub fn refresh(ctx: &Context, ui: &dyn Ui, confirm: bool) -> Result<bool> {
    let config = Config::load(&ctx.config_path)?;
    if config.repository.url.is_none() {
        // nothing to refresh from; real-upgrade reports the missing repository
        return Ok(false);
    }
    let state = State::open_existing(&ctx.paths().state_db)?;
    let recorded = planner::Recorded::read(state.as_ref())?;
    drop(state);
    let trusted = planner::load_trusted(&config, ctx, &recorded)?;
    let Some(upgrader) = &trusted.catalog.upgrader else {
        return Ok(false);
    };
    let paths = ctx.paths();
    let rpmdb = crate::host::installed_packages(&ctx.root)?;
    let installed = rpmdb
        .newest(&config.upgrader_package())
        .map(|p| planner::version_of(&p.evr).to_string());
    if installed
        .as_deref()
        .is_some_and(|v| compare_evr(v, &upgrader.version).is_ge())
    {
        tracing::debug!(version = ?installed, "the upgrader is up to date");
        return Ok(false);
    }
    if confirm {
        let question = format!(
            "Refresh the upgrader from {} to {} first?",
            installed.as_deref().unwrap_or("nothing installed"),
            upgrader.version
        );
        if !ui.confirm(&question)? {
            return Err(UpgradeError::Declined.into());
        }
    }
    let _lock = crate::exec::lock::RunLock::acquire(&paths.lock)?;
    tracing::info!(from = ?installed, to = %upgrader.version, "refreshing the upgrader");
    let wanted: Vec<&Artifact> = upgrader
        .packages
        .iter()
        .filter(|a| {
            rpmdb
                .newest(&a.name)
                .is_none_or(|p| compare_evr(&p.evr, &a.evr).is_lt())
        })
        .collect();
    let files = crate::exec::download(&trusted.repo, &wanted, &paths.cache, ui)?;
    if !files.is_empty() {
        let report = packages::install(&ctx.root, &files)?;
        for line in &report.output {
            tracing::info!("rpm: {line}");
            ui.event(Event::PackageOutput { line });
        }
    }
    State::open(&paths.state_db)?.accept_sequence(trusted.catalog.sequence)?;
    ui.event(Event::UpgraderRefreshed {
        from: installed.as_deref(),
        to: &upgrader.version,
    });
    tracing::info!(to = %upgrader.version, "upgrader refreshed");
    Ok(true)
}

/// The value of `NAME DIR` / `NAME=DIR` among real-upgrade's arguments.
fn argument(args: &[OsString], name: &str) -> Option<PathBuf> {
    let mut iter = args.iter();
    let prefix = format!("{name}=");
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return None;
        }
        if arg == name {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix(&prefix) {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// Which file is at `path` now (rpm replaces a file by renaming a new one over it).
fn identity(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
