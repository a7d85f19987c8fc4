//! `real-upgrade`: parse the command line and hand it to the library.

fn main() -> std::process::ExitCode {
    upgrade::cli::real_upgrade(std::env::args_os())
}
