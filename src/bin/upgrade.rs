//! `upgrade`: the shim that refreshes the upgrader, then becomes `real-upgrade`.

use std::process::ExitCode;

use clap::Parser;
use upgrade::cli::args::ShimCli;
use upgrade::selfupdate::{ShimOptions, exec_real_upgrade};

fn main() -> ExitCode {
    let cli = ShimCli::parse();
    let options = ShimOptions {
        self_update: !cli.no_self_update,
        args: cli.args,
    };
    match exec_real_upgrade(&options) {
        Ok(never) => match never {},
        Err(err) => {
            upgrade::cli::render::Human::new(false).error(&err);
            ExitCode::from(upgrade::error::exit_code(&err))
        }
    }
}
