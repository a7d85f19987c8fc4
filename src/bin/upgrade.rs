//! `upgrade`: the shim that refreshes the upgrader, then becomes `real-upgrade`.

use std::process::ExitCode;

use clap::Parser;
use upgrade::cli::args::ShimCli;
use upgrade::cli::render::Human;
use upgrade::selfupdate::{ShimOptions, exec_real_upgrade};

fn main() -> ExitCode {
    let cli = ShimCli::parse();
    let quiet = cli.args.iter().any(|a| a == "-q" || a == "--quiet");
    let human = Human::new(quiet);
    let options = ShimOptions {
        self_update: !cli.no_self_update,
        args: cli.args,
    };
    match exec_real_upgrade(&options, &human) {
        Ok(never) => match never {},
        Err(err) => {
            human.error(&err);
            ExitCode::from(upgrade::error::exit_code(&err))
        }
    }
}
