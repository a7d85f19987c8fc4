//! Builds the upgrader's own RPM from this repository: `/usr/sbin/upgrade` and
//! `/usr/sbin/real-upgrade`, the vendor's hooks, checks, migrations and service order under
//! `/usr/share/upgrade/`, `upgrade-resume.service`, the man pages and the shell completions
//! (SPEC §2; the layout is `examples/common/upgrader.rs`).
//!
//! Usage: `cargo build --release --bins --example upgrader-rpm`, then
//! `target/release/examples/upgrader-rpm OUT_DIR [--name NAME] [--version VERSION]
//! [--bin DIR] [--assets DIR]` (or `scripts/package OUT_DIR`). It prints the package's path:
//! `OUT_DIR/NAME-VERSION-1.ARCH.rpm`. NAME is the package `[upgrader] package` names (default
//! `upgrade`), VERSION the upgrader's (default this crate's), DIR the built binaries (default
//! the directory this program was built in, e.g. `target/release`), and the assets default to
//! this checkout.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: upgrader-rpm OUT_DIR [--name NAME] [--version VERSION] [--bin DIR] [--assets DIR]";

fn main() -> ExitCode {
    match run() {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<PathBuf, String> {
    let mut out = None;
    let mut name = "upgrade".to_string();
    let mut version = env!("CARGO_PKG_VERSION").to_string();
    let mut bin = None;
    let mut assets = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("`{}` needs a value; {USAGE}", arg.to_string_lossy()))
        };
        match arg.to_str() {
            Some("--name") => name = value()?.to_string_lossy().into_owned(),
            Some("--version") => version = value()?.to_string_lossy().into_owned(),
            Some("--bin") => bin = Some(PathBuf::from(value()?)),
            Some("--assets") => assets = PathBuf::from(value()?),
            Some("-h" | "--help") => return Err(USAGE.into()),
            Some(flag) if flag.starts_with('-') => {
                return Err(format!("unknown `{flag}`; {USAGE}"));
            }
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected `{}`; {USAGE}", arg.to_string_lossy())),
        }
    }
    let out = out.ok_or(USAGE)?;
    // NB: target/PROFILE/examples/upgrader-rpm: the binaries are in target/PROFILE
    let bin = match bin {
        Some(bin) => bin,
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
            .ok_or("cannot tell where the binaries are: give `--bin DIR`")?,
    };
    for binary in common::upgrader::BINARIES {
        if !bin.join(binary).is_file() {
            return Err(format!(
                "`{}` is missing: build the binaries (`cargo build --release --bins`) or give `--bin DIR`",
                bin.join(binary).display()
            ));
        }
    }
    let spec = common::upgrader::spec(&name, &version, &assets, Some(&bin))?;
    Ok(spec.build(&out))
}
