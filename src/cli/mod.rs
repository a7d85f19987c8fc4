//! The command line: clap definitions ([`args`]), rendering ([`render`]), and the thin dispatch
//! from a parsed command to one operation of [`crate::ops`], whose result is rendered as text or,
//! with `--json`, printed as the same struct. Errors become messages and exit codes here, nowhere
//! else.

pub mod args;
pub mod render;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use serde::Serialize;

use self::args::{Cli, Command, HooksCommand, MigrationsCommand, RepoCommand, ServicesCommand};
use self::render::Human;
use crate::context::Context;
use crate::error::{UpgradeError, exit, exit_code, find};
use crate::model::checks::CheckResult;
use crate::model::health::HealthReport;
use crate::ops;
use crate::ops::run::RunResult;
use crate::ops::upgrade::RunOptions;
use crate::ui::{Event, Ui as _};

/// Entry point of `real-upgrade`.
pub fn real_upgrade(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let human = Human::new(cli.global.quiet);
    let json_out = cli.global.json;
    if let Err(err) = crate::interrupt::install() {
        human.error(&err);
        return ExitCode::from(exit::FAILED);
    }
    match dispatch(cli, &human) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit_code(&err);
            human.error(&err);
            if json_out {
                let mut failure = Failure::of(&err, None);
                match find(&err) {
                    Some(UpgradeError::Inhibited { .. }) => {
                        failure.results = human.last_report().map(|r| r.results)
                    }
                    Some(UpgradeError::Unhealthy { run, .. }) => {
                        failure.run = Some(*run);
                        failure.health = human.last_health();
                    }
                    Some(UpgradeError::RolledBack { run, rollback, .. }) => {
                        failure.run = Some(*run);
                        failure.rollback_run = Some(*rollback);
                        failure.health = human.failed_health();
                    }
                    _ => {}
                }
                render::json(&failure);
            }
            ExitCode::from(code)
        }
    }
}

/// What `real-upgrade ARGS` will do, as far as the `upgrade` shim must know before it.
pub struct Intent {
    /// The run itself, not `--dry-run`, and not a command line real-upgrade refuses: the shim
    /// refreshes the upgrader only then.
    pub changes_host: bool,
    /// `--yes`: nobody is asked.
    pub assume_yes: bool,
}

pub fn intent(args: &[OsString]) -> Intent {
    let argv = std::iter::once(OsString::from("real-upgrade")).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => Intent {
            changes_host: cli.command.is_none() && !cli.run.dry_run,
            assume_yes: cli.run.yes,
        },
        Err(_) => Intent {
            changes_host: false,
            assume_yes: false,
        },
    }
}

/// Prints the `--json` document of a failure on stdout (for the shim, which fails before
/// real-upgrade runs).
pub fn print_failure(err: &anyhow::Error) {
    render::json(&Failure::of(err, None));
}

/// The `--json` document of a failed command.
#[derive(Serialize)]
struct Failure {
    result: &'static str,
    exit_code: u8,
    error: String,
    hint: Option<String>,
    /// The preflight results, when checks inhibited the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<CheckResult>>,
    /// The run whose health checks failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<i64>,
    /// The health checks' results that failed the run, when this invocation ran them.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthReport>,
    /// The rollback that followed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_run: Option<i64>,
}

impl Failure {
    fn of(err: &anyhow::Error, results: Option<Vec<CheckResult>>) -> Failure {
        Failure {
            result: "failed",
            exit_code: exit_code(err),
            error: format!("{err:#}"),
            hint: find(err).and_then(UpgradeError::hint),
            results,
            run: None,
            health: None,
            rollback_run: None,
        }
    }
}

/// Prints `value` as the JSON document on stdout when `--json` was given.
fn json_if(json_out: bool, value: &impl Serialize) {
    if json_out {
        render::json(value);
    }
}

fn dispatch(cli: Cli, human: &Human) -> Result<u8> {
    let ctx = Context::new(cli.global.root.clone(), cli.global.config.clone());
    let json_out = cli.global.json;
    let to = |sub: Option<String>| sub.or(cli.run.to.clone());
    match cli.command {
        None => upgrade(&ctx, &cli.run, json_out, human),
        Some(Command::Plan { to: sub }) => {
            let shown = ops::plan::plan(&ctx, &ops::plan::PlanOptions { to: to(sub) })?;
            let plan = &shown.plan;
            if let Some(run) = &shown.open_run {
                human.say(&format!(
                    "run {} is open (`{}`): `upgrade` resumes this plan; steps marked [done] are skipped",
                    run.id, run.status
                ));
            }
            if json_out {
                render::json(plan);
            } else if plan.is_up_to_date() {
                human.say(&format!(
                    "{} {} is installed: up to date",
                    plan.product, plan.to
                ));
            } else {
                render::stderr_text!("{}", human.render_plan(plan, &shown.done));
            }
            Ok(exit::OK)
        }
        Some(Command::Check { to: sub }) => {
            let checked = ops::check::check(&ctx, &ops::check::CheckOptions { to: to(sub) })?;
            json_if(json_out, &checked);
            let report = checked.report();
            human.report(&report);
            if let Err(inhibited) = report.ensure_passed() {
                human.error(&inhibited.into());
                return Ok(exit::INHIBITED);
            }
            if report.results.is_empty() {
                human.say("no preflight checks are declared");
            }
            Ok(exit::OK)
        }
        Some(Command::Status) => {
            let status = ops::status::status(&ctx)?;
            json_if(json_out, &status);
            human.status(&status);
            Ok(exit::OK)
        }
        Some(Command::History { id: None }) => {
            let runs = ops::history::runs(&ctx)?;
            json_if(json_out, &runs);
            human.runs(&runs);
            Ok(exit::OK)
        }
        Some(Command::History { id: Some(id) }) => {
            match ops::history::run(&ctx, id)? {
                Some(detail) => {
                    json_if(json_out, &detail);
                    human.run_detail(&detail);
                }
                None => {
                    json_if(json_out, &[(); 0]);
                    human.runs(&[]);
                }
            }
            Ok(exit::OK)
        }
        Some(Command::Hooks(HooksCommand::List)) => {
            let listing = ops::hooks::list(&ctx)?;
            human.hooks(&listing);
            json_if(json_out, &listing);
            Ok(exit::OK)
        }
        Some(Command::Migrations(MigrationsCommand::Status)) => {
            let status = ops::migrations::status(&ctx)?;
            json_if(json_out, &status);
            human.migrations(&status);
            Ok(exit::OK)
        }
        Some(Command::Migrations(MigrationsCommand::Repair)) => {
            let repaired = ops::migrations::repair(&ctx)?;
            json_if(json_out, &repaired);
            if repaired.cleared.is_empty() {
                human.say(&format!("`{}`: no failed migrations", repaired.database));
            }
            for row in &repaired.cleared {
                human.say(&format!(
                    "cleared failed migration {}/{}; the next run applies it again",
                    row.version, row.name
                ));
            }
            Ok(exit::OK)
        }
        Some(Command::Migrations(MigrationsCommand::Finalize)) => {
            let finalized = ops::migrations::finalize(
                &ctx,
                &mut |label, took| human.event(Event::MigrationApplied { label, took }),
                &mut |name, line| human.event(Event::HookLine { name, line }),
            )?;
            json_if(json_out, &finalized);
            human.finalized(&finalized);
            Ok(exit::OK)
        }
        Some(Command::Adopt { version }) => {
            let adopted = ops::adopt::adopt(&ctx, &version)?;
            json_if(json_out, &adopted);
            human.say(&format!(
                "adopted {} {} (run {})",
                adopted.product, adopted.version, adopted.run_id
            ));
            if let Some(db) = &adopted.database {
                human.say(&format!(
                    "recorded {} migration(s) as applied in `{db}`",
                    adopted.baseline.len()
                ));
            }
            Ok(exit::OK)
        }
        Some(Command::Abandon) => {
            let abandoned = ops::abandon::abandon(&ctx)?;
            json_if(json_out, &abandoned);
            match (abandoned.run, &abandoned.to) {
                (Some(id), Some(to)) => human.say(&format!(
                    "abandoned run {id} to {to}; the next `upgrade` plans anew"
                )),
                _ => human.say("no open run"),
            }
            Ok(exit::OK)
        }
        Some(Command::Rollback {
            yes,
            dry_run,
            to_run,
        }) => {
            let opts = ops::rollback::RollbackOptions {
                assume_yes: yes,
                dry_run,
                to_run,
            };
            if !dry_run {
                open_log(&ctx, human);
            }
            let outcome = ops::rollback::rollback(&ctx, &opts, human)?;
            Ok(report_rollback(&outcome, json_out, human))
        }
        Some(Command::Uninstall {
            purge,
            yes,
            dry_run,
        }) => {
            let opts = ops::uninstall::UninstallOptions {
                assume_yes: yes,
                dry_run,
                data: match purge {
                    true => crate::planner::Data::Purge,
                    false => crate::planner::Data::Keep,
                },
            };
            if !dry_run {
                open_log(&ctx, human);
            }
            let outcome = ops::uninstall::uninstall(&ctx, &opts, human)?;
            Ok(report_uninstall(&outcome, json_out, human))
        }
        Some(Command::Health { wait }) => {
            let checked = ops::health::health(&ctx, &ops::health::HealthOptions { wait }, human)?;
            json_if(json_out, &checked);
            if checked.installed.is_none() {
                human.say(&format!(
                    "{}: nothing is installed, nothing to check",
                    checked.product
                ));
            }
            Ok(match checked.report.verdict.passed() {
                true => exit::OK,
                false => exit::UNHEALTHY,
            })
        }
        Some(Command::Commit) => {
            let committed = ops::commit::commit(&ctx)?;
            json_if(json_out, &committed);
            human.say(&format!(
                "committed run {}: {} stays installed, with failing health checks: {}",
                committed.run,
                committed.to,
                committed.failing.join(", ")
            ));
            Ok(exit::OK)
        }
        Some(Command::Services(ServicesCommand::Order)) => {
            let order = ops::services::order(&ctx)?;
            json_if(json_out, &order);
            human.service_order(&order);
            Ok(exit::OK)
        }
        Some(Command::Services(ServicesCommand::Restart { names })) => {
            open_log(&ctx, human);
            let restarted = ops::services::restart(&ctx, &names, human)?;
            json_if(json_out, &restarted);
            human.say(&format!(
                "restarted {} service(s)",
                restarted.services.len()
            ));
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Index { dir })) => {
            let published = ops::repo::index(&dir)?;
            json_if(json_out, &published);
            human.say(&format!(
                "wrote `{}`: sequence {}, {} release(s), {} package(s)",
                published.index, published.sequence, published.releases, published.packages
            ));
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Keygen { dir })) => {
            let keys = ops::repo::keygen(&dir)?;
            json_if(json_out, &keys);
            human.keys(&keys);
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Sign { file, key })) => {
            let signed = ops::repo::sign(&file, &key)?;
            json_if(json_out, &signed);
            human.say(&format!("wrote `{}`", signed.signature.display()));
            Ok(exit::OK)
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "real-upgrade",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
    }
}

/// Starts the log of a command that changes the host; a log that cannot be written is a warning.
fn open_log(ctx: &Context, human: &Human) {
    let log = ctx.paths().log;
    if let Err(e) = crate::log::init(&log) {
        human.warn(&format!("cannot write the log `{}`: {e}", log.display()));
    }
}

fn upgrade(ctx: &Context, args: &args::RunArgs, json_out: bool, human: &Human) -> Result<u8> {
    let opts = RunOptions {
        assume_yes: args.yes,
        to: args.to.clone(),
        dry_run: args.dry_run,
        download_only: args.download_only,
        no_restore_point: args.no_restore_point,
    };
    // NB: at every boot (upgrade-resume.service): nothing is written unless a run waits
    if args.after_reboot {
        match ops::upgrade::waiting_for_reboot(ctx)? {
            Some(run) => human.say(&format!("run {run} stopped for a reboot: resuming it")),
            None => {
                human.say("no run is waiting for a reboot: nothing to do");
                json_if(
                    json_out,
                    &serde_json::json!({ "result": "nothing-to-resume" }),
                );
                return Ok(exit::OK);
            }
        }
    }
    if !opts.dry_run {
        open_log(ctx, human);
    }
    // NB: the plain command finishes a rollback that was killed, as a rollback (SPEC §12);
    // with `--to`, `--download-only` or `--no-restore-point` the upgrade refuses
    let plain = opts.to.is_none() && !opts.download_only && !opts.no_restore_point;
    if plain && ops::rollback::open_rollback(ctx).is_some() {
        let rollback = ops::rollback::RollbackOptions {
            assume_yes: opts.assume_yes,
            dry_run: opts.dry_run,
            to_run: None,
        };
        let outcome = ops::rollback::rollback(ctx, &rollback, human)?;
        return Ok(report_rollback(&outcome, json_out, human));
    }
    // NB: and an uninstall that was killed, as an uninstall (its stored plan)
    if plain && ops::uninstall::open_uninstall(ctx).is_some() {
        let uninstall = ops::uninstall::UninstallOptions {
            assume_yes: opts.assume_yes,
            dry_run: opts.dry_run,
            data: crate::planner::Data::Keep,
        };
        let outcome = ops::uninstall::uninstall(ctx, &uninstall, human)?;
        return Ok(report_uninstall(&outcome, json_out, human));
    }
    let outcome = ops::upgrade::upgrade(ctx, &opts, human)?;
    match outcome.result {
        RunResult::UpToDate => human.say(&format!(
            "{} {} is installed: up to date",
            outcome.product, outcome.to
        )),
        RunResult::Planned => human.say("dry run: nothing was changed"),
        RunResult::Downloaded => {
            human.say("download only: every package is in the cache and verified")
        }
        RunResult::Upgraded | RunResult::RolledBack => {
            human.say(&format!("{} {} is installed", outcome.product, outcome.to));
        }
        // NB: the upgrade never ends so; the plain command hands an open uninstall over above
        RunResult::Uninstalled | RunResult::NothingInstalled => {
            human.say(&format!("{}: nothing installed", outcome.product));
        }
    }
    json_if(json_out, &outcome);
    Ok(exit::OK)
}

/// The end of an uninstall, whichever command ran it: what it left behind, its last line, and
/// `--json`.
fn report_uninstall(outcome: &ops::run::Outcome, json_out: bool, human: &Human) -> u8 {
    match outcome.result {
        RunResult::Planned => human.say("dry run: nothing was changed"),
        RunResult::NothingInstalled => human.say(&format!(
            "{}: nothing is installed, nothing to uninstall",
            outcome.product
        )),
        _ => {
            human.left_behind(&outcome.left_behind);
            human.say(&format!(
                "{} is uninstalled: nothing installed; `real-upgrade rollback` brings it back",
                outcome.product
            ));
        }
    }
    json_if(json_out, outcome);
    exit::OK
}

/// The end of a rollback, whichever command ran it: its last line, and `--json`.
fn report_rollback(outcome: &ops::run::Outcome, json_out: bool, human: &Human) -> u8 {
    match outcome.result {
        RunResult::Planned => human.say("dry run: nothing was changed"),
        _ if outcome.to.is_empty() => human.say(&format!(
            "{} is rolled back: nothing installed",
            outcome.product
        )),
        _ => human.say(&format!(
            "{} is rolled back: {} is installed",
            outcome.product, outcome.to
        )),
    }
    json_if(json_out, outcome);
    exit::OK
}

/// The roff man pages of both binaries and of every subcommand (`real-upgrade-status.8`,
/// `real-upgrade-migrations-repair.8`, …), generated from the clap definitions: a page's
/// "SUBCOMMANDS" section names exactly these.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    man_page(args::ShimCli::command(), "upgrade", "upgrade", &mut pages);
    man_page(Cli::command(), "real-upgrade", "real-upgrade", &mut pages);
    pages
}

fn man_page(cmd: clap::Command, page: &str, bin: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    // NB: no page for clap's `help` subcommand, so none is named either
    let cmd = cmd
        .version(None)
        .disable_help_subcommand(true)
        .display_name(page.to_string())
        .bin_name(bin.to_string());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        man_page(
            sub.clone(),
            &format!("{page}-{name}"),
            &format!("{bin} {name}"),
            pages,
        );
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .render(&mut out)
        .expect("rendering to memory");
    pages.push((format!("{page}.8"), out));
}
