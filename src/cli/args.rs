//! The clap definitions of both binaries; `man/` and the shell completions are generated from them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_STATUS: &str = "\
Exit status:
  0   done, or already up to date
  1   a step failed (the run stays open; run again to resume)
  2   bad usage, configuration or input
  3   preflight checks inhibited the upgrade
  4   declined at the prompt
  5   another run holds the lock on this root
  6   health checks failed after the upgrade and the host was rolled back to its restore point
  7   health checks failed or could not tell, and the release stays running for a person
      (`rollback`, `commit`, or run again to check again)
  10  a hook requested a reboot (reboot, then run again to resume; with [reboot] automatic =
      true the host reboots itself and upgrade-resume.service resumes the run after the boot)
  130/143  interrupted by SIGINT / SIGTERM or SIGHUP (the run stays open; run again to resume)";

/// Upgrade the product installed on this server to the newest release, or install it.
///
/// Compares the installed and available versions, shows the plan, asks for confirmation, then
/// runs the pre-upgrade.d hooks, stops the affected services, installs the packages, runs the
/// post-upgrade.d hooks, starts the services in dependency order, records the new version and
/// runs the health checks: a release that fails them is rolled back. Every step is journaled: an
/// interrupted run resumes where it stopped.
///
/// A hook that exits 100 asks for a reboot: the run stops (exit 10) and resumes at the next hook.
/// With [reboot] automatic = true in upgrade.toml it reboots the host itself ([reboot] command,
/// default `systemctl reboot`; under a --root other than / only when a command is set), and
/// upgrade-resume.service runs `real-upgrade --yes --after-reboot` at boot to finish the run.
#[derive(Debug, Parser)]
#[command(name = "real-upgrade", version, after_long_help = EXIT_STATUS, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Work on the system under DIR, like `rpm --root` (tests and the demo use a sandbox); it
    /// must exist
    #[arg(long, value_name = "DIR", global = true, value_parser = existing_dir)]
    pub root: Option<PathBuf>,
    /// Read the configuration from FILE instead of ROOT/etc/upgrade/upgrade.toml; it must exist
    #[arg(long, value_name = "FILE", global = true, value_parser = existing_file)]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout (human output stays on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more (repeat for more detail)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Say only what went wrong
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Upgrade without asking for confirmation (cron, Ansible, CI)
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Upgrade to VERSION instead of the newest release (through every required stop)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Download and verify every package of the plan, then stop
    #[arg(short = 'd', long)]
    pub download_only: bool,
    /// Take no restore point: `rollback` of this run is then refused
    #[arg(long)]
    pub no_restore_point: bool,
    /// Only resume the open run if it stopped for a reboot a hook asked for; otherwise do
    /// nothing and exit 0 (upgrade-resume.service runs this at boot)
    #[arg(long, conflicts_with_all = ["to", "download_only", "no_restore_point"])]
    pub after_reboot: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the installed version, the newest available and any unfinished run
    Status,
    /// Show what an upgrade would do, and change nothing
    Plan {
        /// Plan the upgrade to VERSION instead of the newest release
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// Run the preflight checks alone and report every problem; change nothing
    ///
    /// Evaluates the checks of every release the upgrade would pass through, the configuration's
    /// `[checks]` and the custom checks in checks.d, and the prerequisite packages. Exits 3 when any
    /// check inhibits the upgrade.
    Check {
        /// Check the upgrade to VERSION instead of the newest release
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// List past runs, or show one run and its journal
    History {
        /// The run to show
        id: Option<i64>,
    },
    /// Inspect the hook directories
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Inspect or repair the schema migration ledger of the product's database
    #[command(subcommand)]
    Migrations(MigrationsCommand),
    /// Record an installation that predates this tool as release VERSION
    ///
    /// Checks that the root's rpm database holds the packages of VERSION, records VERSION as
    /// installed and every migration up to VERSION as applied (a baseline), without running any.
    Adopt {
        /// The release that is installed
        version: String,
    },
    /// Close the open run if it has changed nothing yet, so the next run plans anew
    ///
    /// A run that stopped before its first hook, package or migration (say, on an index the
    /// vendor has since fixed) can be dropped; one that changed the host must be finished with
    /// `upgrade`.
    Abandon,
    /// Take the host back to the restore point of the latest run (or of `--to-run ID`)
    ///
    /// Shows what goes back — the packages (from the files the restore point keeps, so no
    /// repository is needed), the packages the run added (removed), the configuration files and
    /// the database, and what is lost with it (what the product wrote since) — asks, then runs
    /// as a journaled run of its own: pre hooks (`UPGRADE_ACTION=rollback`), stop the services,
    /// one rpm transaction back, configuration files and database, post hooks, start the
    /// services, record the version, health checks. A rollback that is stopped resumes as a
    /// rollback.
    Rollback {
        /// Roll back without asking for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
        /// Show the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Go back to the restore point of run ID instead of the latest run's
        #[arg(long, value_name = "ID")]
        to_run: Option<i64>,
    },
    /// Remove the product: an upgrade to nothing, undone by `rollback`
    ///
    /// Shows the plan and asks, then runs as a journaled run (action `uninstall`): restore
    /// point (packages, configuration, database, and the --purge and [uninstall] keep paths),
    /// pre hooks (`UPGRADE_ACTION=uninstall`, `UPGRADE_TO_VERSION` empty), stop every service
    /// of the product (dependents first), remove the product's packages in one rpm transaction,
    /// post hooks, record "nothing installed". Never removed: prerequisites, the operating
    /// system's packages, the upgrader package (so `upgrade` installs again, as a fresh
    /// install) and the [uninstall] keep paths, users and groups; the run lists what it left
    /// behind and why.
    ///
    /// In upgrade.toml: [uninstall] purge_paths = ["/var/lib/demo/files"] (deleted by --purge
    /// only), keep = ["/var/lib/demo/files/license.key"] (never removed; put back if rpm or a
    /// hook took it), keep_users = ["demo"], keep_groups = ["demo"]. Hooks get UPGRADE_PURGE
    /// (0|1), UPGRADE_KEEP_PATHS (`:`-separated), UPGRADE_KEEP_USERS and UPGRADE_KEEP_GROUPS.
    ///
    /// Data stays by default: the database and the data paths are untouched, and a later
    /// `upgrade` finds them. `real-upgrade rollback` undoes an uninstall, with or without
    /// --purge, while its restore point is kept ([restore] keep). A stopped uninstall resumes
    /// as an uninstall (plain `upgrade` finishes it too). Exit codes: 0 done (or nothing
    /// installed), 1 a step failed, 2 bad usage or configuration, 3 preflight inhibited, 4
    /// declined, 5 locked, 130/143 interrupted.
    Uninstall {
        /// Also delete the product's data: drop its database objects (the SQLite file; every
        /// object of the PostgreSQL or MariaDB database, which itself stays) and remove
        /// [uninstall] purge_paths; asks again, naming them (--yes answers)
        #[arg(long)]
        purge: bool,
        /// Uninstall (and purge) without asking for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
        /// Show the plan and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the health checks alone against the installed release; change nothing
    ///
    /// Runs the executables in health.d (vendor /usr/share/upgrade/health.d and admin
    /// /etc/upgrade/health.d, merged like hooks: exit 0 passes, 1 fails, 75 cannot tell), the
    /// configuration's [[health.check]] entries and the installed release's own checks (`http`,
    /// `tcp`, `command`). Each check runs once unless --wait. Exits 0 when every required check
    /// passes (a `wanted` one that fails is a warning), 7 when one fails or cannot tell.
    Health {
        /// Try failing checks again until [health] timeout, as a run's health gate does
        #[arg(long)]
        wait: bool,
    },
    /// Accept the open run whose health checks failed, as it is
    ///
    /// A run whose required health checks failed with [health] on_failure = "stop", could not
    /// tell (exit 75), or could not be rolled back stays open as `unhealthy`. `commit` closes it
    /// as succeeded, keeping the release that is installed; `rollback` takes it back instead, and
    /// `upgrade` runs its checks again.
    Commit,
    /// Show the service order, or restart services in it
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Vendor tools for publishing a repository
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// List the hooks each phase would run (and the health.d checks), in order, and what is
    /// skipped and why
    List,
}

#[derive(Debug, Subcommand)]
pub enum MigrationsCommand {
    /// List applied, pending, failed, drifted and missing migrations
    Status,
    /// Clear failed migrations from the ledger after the database was repaired by hand
    Repair,
    /// Apply a fleet's contract migrations once every node runs the installed release
    ///
    /// Contract migrations live in `migrations/<version>/post/`: no upgrade applies them, as
    /// they may break the release before (a column dropped that it still reads). This applies
    /// those of the installed release and the releases before it that the ledger does not hold,
    /// each exactly once, under the database's migration lock. It is refused while a node
    /// recorded in the shared database (`upgrade_nodes`) runs another release.
    Finalize,
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Print the services by level: each level starts together, after the levels before it
    Order,
    /// Restart services in dependency order, waiting until each is ready
    ///
    /// Stops them dependents first and starts them dependencies first, services that do not
    /// depend on each other at the same time. A service that does not become ready fails the
    /// command, and the services it stopped are started again.
    Restart {
        /// The services to restart, with every service that comes after them (default: all)
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Write DIR/index.toml from DIR/releases.toml and the RPM files it names
    Index {
        /// The repository directory
        dir: PathBuf,
    },
    /// Create a minisign key pair for signing the index: DIR/upgrade.pub and DIR/upgrade.key
    ///
    /// The secret key is written unencrypted, readable by its owner only, unless
    /// UPGRADE_SIGNING_PASSWORD is set: then it is encrypted with that password. Existing keys are
    /// never overwritten. Put the printed public key under [repository] public_key on every host.
    Keygen {
        /// Where to write the key pair
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Sign FILE (the repository's index.toml), writing FILE.minisig
    ///
    /// The signature is in minisign format: `minisign -Vm FILE -P PUBLIC_KEY` verifies it. If
    /// the secret key has a password, set UPGRADE_SIGNING_PASSWORD.
    Sign {
        /// The file to sign
        file: PathBuf,
        /// The secret key made by `repo keygen`
        #[arg(long, value_name = "FILE", default_value = "upgrade.key")]
        key: PathBuf,
    },
}

/// Refresh the upgrader, then run `real-upgrade` with the same arguments.
///
/// Every argument other than --no-self-update is passed to real-upgrade unchanged; see
/// real-upgrade(8) for them. real-upgrade is looked for beside this program, then in the root's
/// /usr/sbin (the root given with --root, else /).
#[derive(Debug, Parser)]
#[command(name = "upgrade", version, after_long_help = EXIT_STATUS, max_term_width = 100)]
pub struct ShimCli {
    /// Do not refresh the upgrader before running real-upgrade
    #[arg(long)]
    pub no_self_update: bool,
    /// Arguments for real-upgrade
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "REAL-UPGRADE ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}

/// `--root`: an existing directory, made absolute at once. NB: a relative root would mean
/// another place for every program the run starts in another directory, and a journaled run
/// resumed from elsewhere.
fn existing_dir(text: &str) -> Result<PathBuf, String> {
    existing(text, std::fs::Metadata::is_dir, "a directory")
}

/// `--config`: an existing file, made absolute; a missing one is not silently the defaults.
fn existing_file(text: &str) -> Result<PathBuf, String> {
    existing(text, std::fs::Metadata::is_file, "a file")
}

fn existing(
    text: &str,
    kind: fn(&std::fs::Metadata) -> bool,
    what: &str,
) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(m) if kind(&m) => std::path::absolute(&path).map_err(|e| format!("`{text}`: {e}")),
        Ok(_) => Err(format!("`{text}` is not {what}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("`{text}` does not exist"))
        }
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}
