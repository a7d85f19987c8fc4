//! `upgrade`: the shim that refreshes the upgrader, then becomes `real-upgrade`.

use std::process::ExitCode;

use clap::Parser;
use upgrade::cli::args::ShimCli;
use upgrade::cli::render::Human;
use upgrade::ops::self_update::{ShimOptions, exec_real_upgrade};

fn main() -> ExitCode {
    let cli = ShimCli::parse();
    let quiet = cli.args.iter().any(|a| a == "-q" || a == "--quiet");
    let human = Human::new(quiet);
    // NB: clap stops at the first argument it does not know (`--root DIR`), so an option given
    // after it is one of real-upgrade's arguments: take it out wherever it is.
    let mut self_update = !cli.no_self_update;
    let args: Vec<std::ffi::OsString> = cli
        .args
        .into_iter()
        .filter(|a| {
            let ours = a == "--no-self-update";
            self_update &= !ours;
            !ours
        })
        .collect();
    // NB: only a run that will change the host refreshes the upgrader: not `--dry-run`, `plan`,
    // `status`, `--help` or a command line real-upgrade will refuse anyway.
    let intent = upgrade::cli::intent(&args);
    let self_update = self_update && intent.changes_host;
    let confirm = !intent.assume_yes;
    let json = args.iter().any(|a| a == "--json");
    let options = ShimOptions {
        self_update,
        confirm,
        args,
    };
    match exec_real_upgrade(&options, &human) {
        Ok(never) => match never {},
        Err(err) => {
            human.error(&err);
            if json {
                upgrade::cli::print_failure(&err);
            }
            ExitCode::from(upgrade::error::exit_code(&err))
        }
    }
}
