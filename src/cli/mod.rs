//! The command line: clap definitions ([`args`]), rendering ([`render`]), and the thin dispatch
//! from a parsed command to the library. Errors become messages and exit codes here, nowhere else.

pub mod args;
pub mod render;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use serde_json::json;

use self::args::{Cli, Command, HooksCommand, MigrationsCommand, RepoCommand, ServicesCommand};
use self::render::Human;
use crate::config::Config;
use crate::context::Context;
use crate::error::{exit, exit_code, find};
use crate::run::{self, RunOptions, RunResult};
use crate::state::State;
use crate::steps::hooks::{self, Phase};
use crate::steps::services::{self, ServiceGraph};

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
    match dispatch(cli, &human) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit_code(&err);
            human.error(&err);
            if json_out {
                let mut doc = json!({
                    "result": "failed",
                    "exit_code": code,
                    "error": format!("{err:#}"),
                    "hint": find(&err).and_then(|e| e.hint()),
                });
                if let Some(crate::error::UpgradeError::Inhibited { report }) = find(&err) {
                    doc["results"] = json!(report.results);
                }
                render::json(&doc);
            }
            ExitCode::from(code)
        }
    }
}

fn dispatch(cli: Cli, human: &Human) -> Result<u8> {
    let ctx = Context::new(cli.global.root.clone(), cli.global.config.clone());
    let json_out = cli.global.json;
    match cli.command {
        None => upgrade(&ctx, &cli.run, json_out, human),
        Some(Command::Plan { to }) => {
            let config = Config::load(&ctx.config_path)?;
            let plan = run::plan(&ctx, &config, to.as_deref().or(cli.run.to.as_deref()))?;
            if json_out {
                render::json(&plan);
            } else if plan.is_up_to_date() {
                human.say(&format!(
                    "{} {} is installed: up to date",
                    plan.product, plan.to
                ));
            } else {
                eprint!("{}", human.render_plan(&plan, &Default::default()));
            }
            Ok(exit::OK)
        }
        Some(Command::Check { to }) => check(
            &ctx,
            to.as_deref().or(cli.run.to.as_deref()),
            json_out,
            human,
        ),
        Some(Command::Status) => status(&ctx, json_out, human),
        Some(Command::History { id }) => history(&ctx, id, json_out, human),
        Some(Command::Hooks(HooksCommand::List)) => hooks_list(&ctx, json_out, human),
        Some(Command::Migrations(MigrationsCommand::Status)) => {
            migrations_status(&ctx, json_out, human)
        }
        Some(Command::Migrations(MigrationsCommand::Repair)) => {
            migrations_repair(&ctx, json_out, human)
        }
        Some(Command::Adopt { version }) => {
            let adopted = run::adopt::adopt(&ctx, &version)?;
            if json_out {
                render::json(&adopted);
            }
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
        Some(Command::Services(ServicesCommand::Order)) => services_order(&ctx, json_out, human),
        Some(Command::Services(ServicesCommand::Restart { names })) => {
            if let Err(e) = crate::log::init(&ctx.paths().log) {
                human.warn(&format!("cannot write the log: {e}"));
            }
            let restarted = run::services::restart(&ctx, &names, human)?;
            if json_out {
                render::json(&json!({ "result": "restarted", "services": restarted }));
            }
            human.say(&format!("restarted {} service(s)", restarted.len()));
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Index { dir })) => {
            let published = crate::repo::publish::write_index(&dir)?;
            if json_out {
                render::json(&published);
            }
            human.say(&format!(
                "wrote `{}`: sequence {}, {} release(s), {} package(s)",
                published.index, published.sequence, published.releases, published.packages
            ));
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Keygen { dir })) => {
            let keys = crate::repo::trust::keygen(&dir)?;
            if json_out {
                render::json(&keys);
            }
            let protection = if keys.encrypted {
                "encrypted with the password in `UPGRADE_SIGNING_PASSWORD`"
            } else {
                "unencrypted: keep it secret"
            };
            human.say(&format!(
                "wrote public key `{}` and secret key `{}` ({protection})",
                keys.public_key_file.display(),
                keys.secret_key_file.display()
            ));
            human.say(&format!(
                "configure hosts with, under `[repository]`:\npublic_key = \"{}\"",
                keys.public_key
            ));
            Ok(exit::OK)
        }
        Some(Command::Repo(RepoCommand::Sign { file, key })) => {
            let signature = crate::repo::trust::sign(&file, &key)?;
            if json_out {
                render::json(&json!({ "file": file, "signature": signature }));
            }
            human.say(&format!("wrote `{}`", signature.display()));
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

fn upgrade(ctx: &Context, args: &args::RunArgs, json_out: bool, human: &Human) -> Result<u8> {
    let opts = RunOptions {
        assume_yes: args.yes,
        to: args.to.clone(),
        dry_run: args.dry_run,
        download_only: args.download_only,
    };
    if !opts.dry_run {
        let log = ctx.paths().log;
        if let Err(e) = crate::log::init(&log) {
            human.warn(&format!("cannot write the log `{}`: {e}", log.display()));
        }
    }
    let outcome = run::upgrade(ctx, &opts, human)?;
    match outcome.result {
        RunResult::UpToDate => human.say(&format!(
            "{} {} is installed: up to date",
            outcome.product, outcome.to
        )),
        RunResult::Planned => human.say("dry run: nothing was changed"),
        RunResult::Downloaded => {
            human.say("download only: every package is in the cache and verified")
        }
        RunResult::Upgraded => {
            human.say(&format!("{} {} is installed", outcome.product, outcome.to));
        }
    }
    if json_out {
        render::json(&outcome);
    }
    Ok(exit::OK)
}

/// `real-upgrade check`: the preflight report alone; exit 3 when inhibited.
fn check(ctx: &Context, to: Option<&str>, json_out: bool, human: &Human) -> Result<u8> {
    let config = Config::load(&ctx.config_path)?;
    let plan = run::plan(ctx, &config, to)?;
    let report = run::preflight(ctx, &config, &plan)?;
    let inhibitors = report.inhibitors().count();
    if json_out {
        render::json(&json!({
            "product": plan.product,
            "from": plan.from,
            "to": plan.to,
            "inhibited": inhibitors > 0,
            "inhibitors": inhibitors,
            "warnings": report.warnings().count(),
            "results": report.results,
        }));
    }
    human.report(&report);
    if inhibitors > 0 {
        human.error(&report.ensure_passed().unwrap_err().into());
        return Ok(exit::INHIBITED);
    }
    if report.results.is_empty() {
        human.say("no preflight checks are declared");
    }
    Ok(exit::OK)
}

fn status(ctx: &Context, json_out: bool, human: &Human) -> Result<u8> {
    let config = Config::load(&ctx.config_path)?;
    let state = State::open_existing(&ctx.paths().state_db)?;
    let installed = match &state {
        Some(s) => s.installed()?,
        None => None,
    };
    let open = match &state {
        Some(s) => s.open_run()?.map(|o| o.record),
        None => None,
    };
    let available = run::load_summary(ctx, &config).map(|s| s.newest.map(|v| v.to_string()));
    let (available, index_error) = match available {
        Ok(v) => (v, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let up_to_date = match (&installed, &available) {
        (Some(i), Some(a)) => {
            let scheme = config.version_scheme;
            Some(scheme.parse(i)? >= scheme.parse(a)?)
        }
        _ => None,
    };
    if json_out {
        render::json(&json!({
            "product": config.product,
            "installed": installed,
            "available": available,
            "up_to_date": up_to_date,
            "open_run": open,
            "index_error": index_error,
        }));
    }
    human.say(&format!("product:   {}", config.product));
    human.say(&format!(
        "installed: {}",
        installed.as_deref().unwrap_or("nothing")
    ));
    match (&available, &index_error) {
        (Some(v), _) => human.say(&format!("available: {v}")),
        (None, Some(e)) => human.warn(&format!("the repository index could not be read: {e}")),
        (None, None) => human.say("available: no releases"),
    }
    if let Some(run) = &open {
        human.say(&format!(
            "unfinished run {} to {} ({}); run `upgrade` to resume it",
            run.id, run.to, run.status
        ));
    } else if up_to_date == Some(true) {
        human.say("up to date");
    }
    Ok(exit::OK)
}

fn history(ctx: &Context, id: Option<i64>, json_out: bool, human: &Human) -> Result<u8> {
    let state = State::open_existing(&ctx.paths().state_db)?;
    let Some(state) = state else {
        if json_out {
            render::json(&json!([]));
        }
        human.say("no runs yet");
        return Ok(exit::OK);
    };
    let Some(id) = id else {
        let runs = state.runs()?;
        if json_out {
            render::json(&runs);
        }
        for r in &runs {
            human.say(&format!(
                "{:>4}  {}  {} → {}  {}",
                r.id,
                r.started_at,
                r.from.as_deref().unwrap_or("nothing"),
                r.to,
                r.status
            ));
        }
        return Ok(exit::OK);
    };
    let Some((record, plan)) = state.run(id)? else {
        return Err(crate::error::UpgradeError::input_hint(
            format!("there is no run {id}"),
            "`real-upgrade history` lists the runs",
        )
        .into());
    };
    let journal = state.journal(id)?;
    if json_out {
        render::json(&json!({ "run": record, "plan": plan, "journal": journal }));
    }
    human.say(&format!(
        "run {}: {} → {}, {} (attempts: {}, started {}, finished {})",
        record.id,
        record.from.as_deref().unwrap_or("nothing"),
        record.to,
        record.status,
        record.attempts,
        record.started_at,
        record.finished_at.as_deref().unwrap_or("-")
    ));
    if let Some(e) = &record.error {
        human.say(&format!("last error: {e}"));
    }
    for entry in &journal {
        human.say(&format!("  {}  {}", entry.done_at, entry.step));
    }
    Ok(exit::OK)
}

fn hooks_list(ctx: &Context, json_out: bool, human: &Human) -> Result<u8> {
    let paths = ctx.paths();
    let mut doc = serde_json::Map::new();
    for phase in [Phase::Pre, Phase::Post] {
        let set = hooks::discover(&paths, phase, ctx.superuser)?;
        human.say(&human.bold(phase.dir_name()));
        if set.run.is_empty() {
            human.say("  (no hooks)");
        }
        for (i, h) in set.run.iter().enumerate() {
            human.say(&format!(
                "  {:>3}. {}  ({})",
                i + 1,
                h.name,
                h.path.display()
            ));
        }
        for s in &set.refused {
            human.say(&format!("  refused  {}: {}", s.path.display(), s.reason));
        }
        for s in &set.skipped {
            human.say(&format!("  skipped  {}: {}", s.path.display(), s.reason));
        }
        doc.insert(phase.dir_name().into(), serde_json::to_value(&set)?);
    }
    if json_out {
        render::json(&doc);
    }
    Ok(exit::OK)
}

fn migrations_status(ctx: &Context, json_out: bool, human: &Human) -> Result<u8> {
    use crate::steps::migrations::{self, db};
    let config = Config::load(&ctx.config_path)?;
    let all = migrations::discover(&ctx.paths().migrations, config.version_scheme)?;
    let url = config.database_url();
    let status = match db::connect_existing(&url, &ctx.root)? {
        Some(mut database) => migrations::status(database.as_mut(), &all)?,
        None => migrations::Status {
            database: db::redact(&url),
            pending: all.iter().map(|m| m.label()).collect(),
            ..Default::default()
        },
    };
    if json_out {
        render::json(&status);
    }
    human.say(&format!("database: {}", status.database));
    for row in &status.applied {
        human.say(&format!(
            "  applied  {}/{}  {} ({} ms)",
            row.version, row.name, row.applied_at, row.duration_ms
        ));
    }
    for label in &status.pending {
        human.say(&format!("  pending  {label}"));
    }
    for row in &status.failed {
        human.warn(&format!("failed   {}/{} at {}: run `real-upgrade migrations repair` once the database is repaired", row.version, row.name, row.applied_at));
    }
    for d in &status.drifted {
        human.warn(&format!(
            "drifted  {}: applied with sha256 {}, the file now has {}",
            d.migration, d.applied_sha256, d.file_sha256
        ));
    }
    for row in &status.missing {
        human.say(&format!(
            "  missing  {}/{} (applied; its file is gone)",
            row.version, row.name
        ));
    }
    Ok(exit::OK)
}

fn migrations_repair(ctx: &Context, json_out: bool, human: &Human) -> Result<u8> {
    use crate::steps::migrations::db;
    let config = Config::load(&ctx.config_path)?;
    let mut database = db::connect(&config.database_url(), &ctx.root)?;
    database.prepare_ledger()?;
    database.lock(config.database.lock_timeout)?;
    let removed = database.repair();
    database.unlock();
    let removed = removed?;
    if json_out {
        render::json(&json!({ "database": database.describe(), "cleared": removed }));
    }
    if removed.is_empty() {
        human.say(&format!("`{}`: no failed migrations", database.describe()));
    }
    for row in &removed {
        human.say(&format!(
            "cleared failed migration {}/{}; the next run applies it again",
            row.version, row.name
        ));
    }
    Ok(exit::OK)
}

fn services_order(ctx: &Context, json_out: bool, human: &Human) -> Result<u8> {
    let config = Config::load(&ctx.config_path)?;
    let graph = ServiceGraph::load(&ctx.paths(), config.services.backend)?;
    let all: Vec<usize> = (0..graph.services().len()).collect();
    let levels = graph.levels(&all);
    if json_out {
        let levels: Vec<Vec<serde_json::Value>> = levels
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|&i| {
                        let s = graph.service(i);
                        json!({
                            "name": s.name,
                            "after": graph.names(s.after.iter().copied()),
                            "packages": s.packages,
                            "restart": s.restart,
                            "backend": s.backend,
                            "unit": s.unit,
                            "ready": s.ready,
                        })
                    })
                    .collect()
            })
            .collect();
        render::json(&json!({ "source": graph.source, "levels": levels }));
    }
    match &graph.source {
        None => human.say("no service order (`/etc/upgrade/service-order.toml` or `/usr/share/upgrade/service-order.toml`)"),
        Some(path) => human.say(&format!("service order from `{}`", path.display())),
    }
    for (n, level) in levels.iter().enumerate() {
        let names: Vec<String> = level
            .iter()
            .map(|&i| {
                let s = graph.service(i);
                format!(
                    "{} ({} `{}`)",
                    s.name,
                    services::backend_name(s.backend),
                    s.unit
                )
            })
            .collect();
        human.say(&format!("  level {}: {}", n + 1, names.join(", ")));
    }
    Ok(exit::OK)
}

/// The roff man pages of both binaries, generated from the clap definitions.
pub fn man_pages() -> Vec<(&'static str, Vec<u8>)> {
    let render = |cmd: clap::Command| {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.version(None))
            .section("8")
            .render(&mut out)
            .expect("rendering to memory");
        out
    };
    vec![
        ("upgrade.8", render(args::ShimCli::command())),
        ("real-upgrade.8", render(Cli::command())),
    ]
}
