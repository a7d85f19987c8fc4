//! The `upgrade` shim: refresh the upgrader, then `exec` `real-upgrade` with the same arguments.
//!
//! In this release the refresh is not built yet (it needs the signed remote index); the shim finds
//! `real-upgrade` beside itself, else in the root's `/usr/sbin`, and replaces itself with it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::error::UpgradeError;

pub struct ShimOptions {
    pub self_update: bool,
    /// Arguments for `real-upgrade`, unchanged.
    pub args: Vec<OsString>,
}

/// Never returns on success: the process becomes `real-upgrade`.
pub fn exec_real_upgrade(options: &ShimOptions) -> Result<std::convert::Infallible> {
    let root = root_argument(&options.args).unwrap_or_else(|| PathBuf::from("/"));
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("real-upgrade")));
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

/// The value of `--root DIR` / `--root=DIR` among real-upgrade's arguments.
fn root_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return None;
        }
        if arg == "--root" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--root=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
