//! Executes a [`Plan`] step by step under the lock and the journal (SPEC §5).
//!
//! `upgrade()` either resumes the open run of this root (its stored plan, skipping what the journal
//! says is done) or plans a new one, shows it through the [`Ui`], asks, and executes. A step is
//! journaled as done only after its effect is durable; a failure leaves the run open so the next
//! invocation continues at the failed step.

pub mod adopt;
pub mod lock;
pub mod services;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, PackageBackend};
use crate::context::{Context, Paths};
use crate::error::UpgradeError;
use crate::plan::{Hop, PackageOp, Plan, PlanInput, PlannedHooks, Step};
use crate::repo::Repository;
use crate::repo::fetch;
use crate::repo::index::{Artifact, Catalog};
use crate::repo::trust::{self, Trusted};
use crate::state::{RunRecord, State};
use crate::steps::hooks::{self, HookEnv, HookOutcome, Phase};
use crate::steps::migrations::{self, db as migration_db};
use crate::steps::packages::{self, RpmDb};
use crate::steps::preflight;
use crate::steps::services::{self as service_steps, Action, Progress, ServiceGraph, Services};

/// How the caller talks to a person: the run never prints, it reports through this.
pub trait Ui {
    /// Shows the plan; `done` holds the journal keys already done when resuming.
    fn plan(&self, view: &PlanView<'_>);
    /// Asks a yes/no question; only called when a person is at a terminal.
    fn confirm(&self, question: &str) -> Result<bool>;
    fn event(&self, event: Event<'_>);
}

pub struct PlanView<'a> {
    pub plan: &'a Plan,
    pub done: &'a HashSet<String>,
    pub resumed: Option<&'a RunRecord>,
}

#[derive(Debug)]
pub enum Event<'a> {
    StepStarted {
        step: Step,
        hop: Option<&'a Hop>,
    },
    StepAlreadyDone {
        step: Step,
        hop: Option<&'a Hop>,
    },
    /// The download step fetches `artifacts` files of `bytes` bytes (cached ones included).
    DownloadStarted {
        artifacts: usize,
        bytes: u64,
    },
    /// `bytes` more bytes are in the cache.
    DownloadProgress {
        bytes: u64,
    },
    Fetched {
        artifact: &'a Artifact,
    },
    /// The preflight report, before the confirmation; an inhibitor then fails the run.
    Checks {
        report: &'a preflight::Report,
    },
    DownloadFinished,
    /// The shim installed a newer upgrader (`from` is the installed one, if any).
    UpgraderRefreshed {
        from: Option<&'a str>,
        to: &'a str,
    },
    HookStarted {
        phase: Phase,
        name: &'a str,
    },
    HookAlreadyDone {
        phase: Phase,
        name: &'a str,
    },
    HookLine {
        name: &'a str,
        line: &'a str,
    },
    MigrationApplied {
        label: &'a str,
        took: std::time::Duration,
    },
    MigrationsUpToDate {
        database: &'a str,
    },
    HookRebootRequested {
        name: &'a str,
    },
    PackagesAlreadyInstalled {
        names: Vec<String>,
    },
    Transaction {
        files: usize,
    },
    /// A line rpm printed during the transaction (scriptlet output, warnings).
    PackageOutput {
        line: &'a str,
    },
    ConfigFileKept {
        path: &'a str,
    },
    Recorded {
        version: &'a str,
    },
    /// The step has no service to stop or start.
    NoServices,
    ServiceStopping {
        name: &'a str,
    },
    ServiceStopped {
        name: &'a str,
        took: Duration,
    },
    ServiceStarting {
        name: &'a str,
    },
    ServiceStarted {
        name: &'a str,
        ready_after: Duration,
    },
    ServiceFailed {
        name: &'a str,
        error: &'a str,
    },
    /// A run failed after stopping services: they are started again (best effort).
    ServicesRestoring {
        names: Vec<String>,
    },
    ServiceRestoreFailed {
        name: &'a str,
        error: &'a str,
    },
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ask no question (`--yes`).
    pub assume_yes: bool,
    pub to: Option<String>,
    pub dry_run: bool,
    pub download_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    UpToDate,
    Planned,
    Downloaded,
    Upgraded,
}

/// What a run did, for the renderer and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub result: RunResult,
    pub product: String,
    pub from: Option<String>,
    pub to: String,
    pub run_id: Option<i64>,
    pub resumed: bool,
    /// `.rpmnew` / `.rpmsave` files the package transactions created.
    pub config_files: Vec<String>,
    pub plan: Plan,
}

/// Plans an upgrade of the root in `ctx` from its installed state; changes nothing.
pub fn plan(ctx: &Context, config: &Config, to: Option<&str>) -> Result<Plan> {
    let catalog = load_catalog(ctx, config)?;
    plan_from(ctx, config, &catalog, to)
}

fn plan_from(ctx: &Context, config: &Config, catalog: &Catalog, to: Option<&str>) -> Result<Plan> {
    let paths = ctx.paths();
    let installed = match State::open_existing(&paths.state_db)? {
        Some(state) => state.installed()?,
        None => None,
    };
    let scheme = config.version_scheme;
    let installed = installed.map(|v| scheme.parse(&v)).transpose()?;
    let target = to.map(|v| scheme.parse(v)).transpose()?;
    let rpmdb = RpmDb::load(&ctx.root)?;
    let migrations = migrations::discover(&paths.migrations, scheme)?;
    let services = ServiceGraph::load(&paths, config.services.backend)?;
    let mut hooks = PlannedHooks::default();
    for (phase, names) in [(Phase::Pre, &mut hooks.pre), (Phase::Post, &mut hooks.post)] {
        let set = hooks::discover(&paths, phase, ctx.superuser)?;
        set.ensure_safe()?;
        *names = set.run.into_iter().map(|h| h.name).collect();
    }
    let plan = Plan::build(PlanInput {
        installed: installed.as_ref(),
        target: target.as_ref(),
        catalog,
        rpmdb: &rpmdb,
        hooks,
        migrations: &migrations,
        services: &services,
    })?;
    crate::selfupdate::ensure_upgrader_suffices(config, catalog, &plan, &rpmdb)?;
    Ok(plan)
}

/// The configured repository's index, verified (signature, expiry, rollback; SPEC §4).
pub fn load_catalog(ctx: &Context, config: &Config) -> Result<Catalog> {
    Ok(load_trusted(ctx, config)?.catalog)
}

/// [`load_catalog`], with the repository it came from.
pub fn load_trusted(ctx: &Context, config: &Config) -> Result<Trusted> {
    let accepted = match State::open_existing(&ctx.paths().state_db)? {
        Some(state) => state.accepted_sequence()?,
        None => None,
    };
    trust::load(config, &ctx.config_path, accepted)
}

/// What `status` needs of the index: [`load_catalog`]'s checks, without the package tables.
pub fn load_summary(ctx: &Context, config: &Config) -> Result<crate::repo::index::Summary> {
    let accepted = match State::open_existing(&ctx.paths().state_db)? {
        Some(state) => state.accepted_sequence()?,
        None => None,
    };
    trust::load_summary(config, &ctx.config_path, accepted)
}

/// Fetches and verifies `artifacts` into the cache, reporting progress through `ui`.
pub fn download(
    repo: &Repository,
    artifacts: &[&Artifact],
    cache: &std::path::Path,
    ui: &dyn Ui,
) -> Result<Vec<PathBuf>> {
    let files = fetch::fetch_all(repo, artifacts, cache, &mut |p| match p {
        fetch::Progress::Started { artifacts, bytes } => {
            ui.event(Event::DownloadStarted { artifacts, bytes })
        }
        fetch::Progress::Bytes(bytes) => ui.event(Event::DownloadProgress { bytes }),
        fetch::Progress::Verified { artifact, .. } => ui.event(Event::Fetched { artifact }),
    });
    ui.event(Event::DownloadFinished);
    files
}

/// Runs every preflight check of `plan` and of the configuration (SPEC §9); changes nothing.
pub fn preflight(ctx: &Context, config: &Config, plan: &Plan) -> Result<preflight::Report> {
    preflight::evaluate(&preflight::PreflightInput {
        root: &ctx.root,
        paths: &ctx.paths(),
        superuser: ctx.superuser,
        config: &config.checks,
        plan,
        system_repositories: config.packages.backend == PackageBackend::Dnf
            && !config.packages.repos.is_empty(),
        timeout: config.hooks.timeout,
    })
}

/// The default command: plan or resume, show, confirm, execute.
pub fn upgrade(ctx: &Context, opts: &RunOptions, ui: &dyn Ui) -> Result<Outcome> {
    let config = crate::config::Config::load(&ctx.config_path)?;
    let paths = ctx.paths();
    let _lock = match opts.dry_run {
        true => None,
        false => Some(lock::RunLock::acquire(&paths.lock)?),
    };
    let existing = State::open_existing(&paths.state_db)?;
    let open = match &existing {
        Some(state) => state.open_run()?,
        None => None,
    };
    let (plan, done, record, accepted) = match open {
        Some(open) => (open.plan, open.done, Some(open.record), None),
        None => {
            let trusted = load_trusted(ctx, &config)?;
            let plan = plan_from(ctx, &config, &trusted.catalog, opts.to.as_deref())?;
            (plan, HashSet::new(), None, Some(trusted.catalog.sequence))
        }
    };
    let mut outcome = Outcome {
        result: RunResult::UpToDate,
        product: plan.product.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        run_id: record.as_ref().map(|r| r.id),
        resumed: record.is_some(),
        config_files: Vec::new(),
        plan: plan.clone(),
    };
    if plan.is_up_to_date() {
        return Ok(outcome);
    }
    ui.plan(&PlanView {
        plan: &plan,
        done: &done,
        resumed: record.as_ref(),
    });
    // NB: a resumed run has changed things already; its checks ran before its first attempt.
    if record.is_none() {
        let report = preflight(ctx, &config, &plan)?;
        ui.event(Event::Checks { report: &report });
        report.ensure_passed()?;
    }
    if opts.dry_run {
        outcome.result = RunResult::Planned;
        return Ok(outcome);
    }
    let repo = Repository::configured(&config, &ctx.config_path)?;
    if opts.download_only {
        let artifacts: Vec<&Artifact> = plan.artifacts().collect();
        download(&repo, &artifacts, &paths.cache, ui)?;
        outcome.result = RunResult::Downloaded;
        return Ok(outcome);
    }
    confirm(ctx, opts, ui, &plan, record.is_some())?;
    // NB: an unreachable database is found before anything changes, not after the packages.
    let migrating = plan
        .hops
        .iter()
        .enumerate()
        .any(|(h, hop)| !hop.migrations.is_empty() && !done.contains(&Step::Migrate(h).key()));
    if migrating {
        migration_db::connect(&config.database_url(), &ctx.root)?;
    }
    let graph = ServiceGraph::load(&paths, config.services.backend)?;
    let mut state = match existing {
        Some(state) => state,
        None => State::open(&paths.state_db)?,
    };
    if let Some(sequence) = accepted {
        state.accept_sequence(sequence)?;
    }
    let run_id = match &record {
        Some(r) => {
            state.resume_run(r.id)?;
            r.id
        }
        None => state.begin_run(&plan)?,
    };
    outcome.run_id = Some(run_id);
    tracing::info!(run = run_id, from = ?plan.from, to = %plan.to, resumed = record.is_some(), "run started");
    let mut exec = Executor {
        ctx,
        config: &config,
        paths: &paths,
        repo: &repo,
        state: &mut state,
        run_id,
        done,
        resumed: record.is_some(),
        ui,
        config_files: Vec::new(),
        graph: &graph,
        down: None,
    };
    let result = exec.execute(&plan);
    let config_files = std::mem::take(&mut exec.config_files);
    match result {
        Ok(()) => {
            state.set_status(run_id, "succeeded", None)?;
            tracing::info!(run = run_id, to = %plan.to, "run succeeded");
            outcome.result = RunResult::Upgraded;
            outcome.config_files = config_files;
            Ok(outcome)
        }
        Err(err) => {
            let reboot = matches!(
                crate::error::find(&err),
                Some(UpgradeError::RebootRequired { .. })
            );
            let status = if reboot { "reboot" } else { "failed" };
            let message = format!("{err:#}");
            tracing::error!(run = run_id, status, "{message}");
            if let Err(e) = state.set_status(run_id, status, Some(&message)) {
                tracing::error!("failed to record the run's status: {e:#}");
            }
            Err(err)
        }
    }
}

fn confirm(
    ctx: &Context,
    opts: &RunOptions,
    ui: &dyn Ui,
    plan: &Plan,
    resuming: bool,
) -> Result<()> {
    if opts.assume_yes {
        return Ok(());
    }
    if !ctx.interactive {
        return Err(UpgradeError::input_hint(
            "no terminal to ask for confirmation on",
            "run `upgrade --yes` to upgrade unattended, or `upgrade --dry-run` to see the plan",
        )
        .into());
    }
    let from = plan.from.as_deref().unwrap_or("nothing installed");
    let verb = if resuming {
        "Resume the upgrade"
    } else {
        "Upgrade"
    };
    let question = format!("{verb} {} from {from} to {}?", plan.product, plan.to);
    if ui.confirm(&question)? {
        Ok(())
    } else {
        Err(UpgradeError::Declined.into())
    }
}

struct Executor<'a> {
    ctx: &'a Context,
    config: &'a Config,
    paths: &'a Paths,
    repo: &'a Repository,
    state: &'a mut State,
    run_id: i64,
    done: HashSet<String>,
    resumed: bool,
    ui: &'a dyn Ui,
    config_files: Vec<String>,
    graph: &'a ServiceGraph,
    /// Services of hop `.0` this run (or the interrupted one it resumes) stopped and has not
    /// started again.
    down: Option<(usize, Vec<usize>)>,
}

impl Executor<'_> {
    fn execute(&mut self, plan: &Plan) -> Result<()> {
        let result = self.steps(plan);
        if result.is_err() {
            self.restore_services();
        }
        result
    }

    fn steps(&mut self, plan: &Plan) -> Result<()> {
        for step in plan.steps() {
            let hop = step.hop().map(|h| &plan.hops[h]);
            let key = step.key();
            if self.done.contains(&key) {
                self.ui.event(Event::StepAlreadyDone { step, hop });
                // NB: a resumed run whose services were stopped must still start them, also
                // when it fails before its start step.
                if let (Step::StopServices(h), Some(hop)) = (step, hop)
                    && hop.from.is_some()
                    && !self.done.contains(&Step::StartServices(h).key())
                {
                    let (set, _) = self.graph.resolve(&hop.services);
                    self.down = Some((h, set));
                }
                continue;
            }
            self.ui.event(Event::StepStarted { step, hop });
            tracing::info!(run = self.run_id, step = %key, "step started");
            crate::fault::point!("step:{key}");
            match (step, hop) {
                (Step::Download, _) => {
                    let artifacts: Vec<&Artifact> = plan.artifacts().collect();
                    download(self.repo, &artifacts, &self.paths.cache, self.ui)?;
                    self.state.mark_done(self.run_id, &key, None)?;
                }
                (Step::PreHooks(h), Some(hop)) => self.hooks(h, hop, Phase::Pre, &key)?,
                (Step::PostHooks(h), Some(hop)) => self.hooks(h, hop, Phase::Post, &key)?,
                (Step::Packages(_), Some(hop)) => self.packages(hop, &key)?,
                (Step::Migrate(_), Some(hop)) => self.migrate(hop, &key)?,
                (Step::StopServices(h), Some(hop)) => self.stop_services(h, hop, &key)?,
                (Step::StartServices(_), Some(hop)) => self.start_services(hop, &key)?,
                (Step::Record(_), Some(hop)) => {
                    self.state.record_installed(self.run_id, &key, &hop.to)?;
                    self.ui.event(Event::Recorded { version: &hop.to });
                }
                _ => unreachable!("every hop step has a hop"),
            }
            tracing::info!(run = self.run_id, step = %key, "step done");
        }
        Ok(())
    }

    fn hooks(&mut self, index: usize, hop: &Hop, phase: Phase, key: &str) -> Result<()> {
        let set = hooks::discover(self.paths, phase, self.ctx.superuser)?;
        set.ensure_safe()?;
        let env = HookEnv {
            phase,
            from: hop.from.clone(),
            to: hop.to.clone(),
            resumed: self.resumed,
            root: self.ctx.root.clone(),
            run_id: self.run_id,
            extra: Vec::new(),
        };
        for hook in &set.run {
            let hook_key = format!("hop{index}:{}:{}", phase.as_str(), hook.name);
            if self.done.contains(&hook_key) {
                self.ui.event(Event::HookAlreadyDone {
                    phase,
                    name: &hook.name,
                });
                continue;
            }
            self.ui.event(Event::HookStarted {
                phase,
                name: &hook.name,
            });
            let ui = self.ui;
            let name = hook.name.as_str();
            let outcome = hooks::run(hook, &env, self.config.hooks.timeout, &mut |line| {
                tracing::info!(hook = name, "{line}");
                ui.event(Event::HookLine { name, line });
            })?;
            self.state.mark_hook_done(self.run_id, &hook_key)?;
            if outcome == HookOutcome::RebootRequested {
                self.state.sync_hook_marks()?;
                self.ui.event(Event::HookRebootRequested { name });
                return Err(UpgradeError::RebootRequired {
                    hook: hook.name.clone(),
                }
                .into());
            }
        }
        let keys: Vec<String> = set
            .run
            .iter()
            .map(|h| format!("hop{index}:{}:{}", phase.as_str(), h.name))
            .collect();
        self.state.mark_phase_done(self.run_id, key, &keys)?;
        Ok(())
    }

    fn migrate(&mut self, hop: &Hop, key: &str) -> Result<()> {
        let scheme = self.config.version_scheme;
        let all = migrations::discover(&self.paths.migrations, scheme)?;
        let to = scheme.parse(&hop.to)?;
        let from = hop.from.as_deref().map(|v| scheme.parse(v)).transpose()?;
        let pending = migrations::in_hop(&all, from.as_ref(), &to);
        if !pending.is_empty() {
            let url = self.config.database_url();
            let mut db = migration_db::connect(&url, &self.ctx.root)?;
            let env = HookEnv {
                phase: Phase::Migrate,
                from: hop.from.clone(),
                to: hop.to.clone(),
                resumed: self.resumed,
                root: self.ctx.root.clone(),
                run_id: self.run_id,
                extra: vec![(
                    "UPGRADE_DATABASE_URL",
                    migration_db::url_for_programs(&url, &self.ctx.root)?,
                )],
            };
            let ui = self.ui;
            let timeout = self.config.hooks.timeout;
            let applied = migrations::apply(
                db.as_mut(),
                &all,
                &pending,
                self.config.database.lock_timeout,
                &mut |m| {
                    let hook = hooks::Hook {
                        name: m.label(),
                        path: m.path.clone(),
                    };
                    let name = hook.name.clone();
                    hooks::run(&hook, &env, timeout, &mut |line| {
                        tracing::info!(migration = %name, "{line}");
                        ui.event(Event::HookLine { name: &name, line });
                    })?;
                    Ok(())
                },
                &mut |m, took| {
                    let label = m.label();
                    tracing::info!(migration = %label, took_ms = took.as_millis() as u64, "migration applied");
                    ui.event(Event::MigrationApplied {
                        label: &label,
                        took,
                    });
                },
            )?;
            if applied.is_empty() {
                self.ui.event(Event::MigrationsUpToDate {
                    database: &db.describe(),
                });
            }
        }
        self.state.mark_done(self.run_id, key, None)?;
        Ok(())
    }

    /// The graph's indices of a hop's services; a name the graph no longer knows is an error.
    fn hop_services(&self, hop: &Hop) -> Result<Vec<usize>> {
        let (set, missing) = self.graph.resolve(&hop.services);
        if !missing.is_empty() {
            let source = self.graph.source.as_ref().map_or_else(
                || "service-order.toml".to_string(),
                |p| p.display().to_string(),
            );
            return Err(UpgradeError::step(
                format!(
                    "the plan names services that `{source}` no longer declares: {}",
                    missing.join(", ")
                ),
                "restore those services in the service order, then run `upgrade` again to resume",
            )
            .into());
        }
        Ok(set)
    }

    fn services(&self) -> Services<'_> {
        Services::new(self.graph, self.config, self.paths)
    }

    fn stop_services(&mut self, index: usize, hop: &Hop, key: &str) -> Result<()> {
        let set = self.hop_services(hop)?;
        // a fresh install has nothing running to stop
        if hop.from.is_none() || set.is_empty() {
            self.ui.event(Event::NoServices);
            self.state.mark_done(self.run_id, key, None)?;
            return Ok(());
        }
        let ui = self.ui;
        let graph = self.graph;
        let mut stopped = Vec::new();
        let report = self
            .services()
            .execute(Action::Stop, &set, false, &mut |p| {
                if let Progress::Stopped { name, .. } = &p {
                    stopped.extend(graph.index(name));
                }
                services::event(ui, Action::Stop, false, p);
            });
        // NB: whatever did stop is restored if the run fails, this step's failure included.
        self.down = Some((index, stopped));
        if !report.failed.is_empty() {
            return Err(service_steps::failure(&report, self.graph).into());
        }
        self.state.mark_done(self.run_id, key, None)?;
        Ok(())
    }

    fn start_services(&mut self, hop: &Hop, key: &str) -> Result<()> {
        let set = self.hop_services(hop)?;
        if set.is_empty() {
            self.ui.event(Event::NoServices);
            self.state.mark_done(self.run_id, key, None)?;
            return Ok(());
        }
        let ui = self.ui;
        let report = self
            .services()
            .execute(Action::Start, &set, false, &mut |p| {
                services::event(ui, Action::Start, false, p)
            });
        if let Some((_, down)) = &mut self.down {
            // the failed ones are named in the error; restoring retries only the rest
            down.retain(|i| !report.done.contains(i) && !report.failed.iter().any(|(f, _)| f == i));
        }
        if !report.failed.is_empty() {
            return Err(service_steps::failure(&report, self.graph).into());
        }
        self.down = None;
        self.state.mark_done(self.run_id, key, None)?;
        Ok(())
    }

    /// After a failure: starts what this run stopped and did not start again (best effort).
    /// When all of them start, the stop step is journaled as not done, so the resumed run stops
    /// them again before it goes on.
    fn restore_services(&mut self) {
        let Some((hop, down)) = self.down.take() else {
            return;
        };
        if down.is_empty() {
            return;
        }
        let report = services::restore(&self.services(), &down, self.ui);
        tracing::warn!(
            run = self.run_id,
            started = ?self.graph.names(report.done.iter().copied()),
            failed = ?self.graph.names(report.failed.iter().map(|(i, _)| *i)),
            "services restored after a failure"
        );
        if report.failed.is_empty() && report.skipped.is_empty() {
            let key = Step::StopServices(hop).key();
            if let Err(e) = self.state.unmark(self.run_id, &key) {
                tracing::error!("failed to reopen step `{key}` in the journal: {e:#}");
            }
        }
    }

    fn packages(&mut self, hop: &Hop, key: &str) -> Result<()> {
        let mut db = RpmDb::load(&self.ctx.root)?;
        if !packages::erase_interrupted(&self.ctx.root, &db, hop.artifacts())?.is_empty() {
            db = RpmDb::load(&self.ctx.root)?;
        }
        let mut files: Vec<PathBuf> = Vec::new();
        let mut already = Vec::new();
        let dnf = self.config.packages.backend == PackageBackend::Dnf;
        let begun = format!("{key}:begun");
        let interrupted = !dnf && self.done.contains(&begun);
        // prerequisites the repository does not ship: dnf finds them in the system's repositories
        let specs: Vec<String> = hop
            .prerequisites
            .iter()
            .filter(|p| dnf && p.op != PackageOp::Keep && p.artifact.is_none())
            .filter(|p| {
                !db.newest(&p.name)
                    .is_some_and(|i| p.version.contains(&i.evr))
            })
            .map(|p| p.dnf_spec())
            .collect();
        for a in hop.artifacts() {
            // NB: a run killed inside `rpm -U` may have committed the transaction already.
            let present = db.newest(&a.name).is_some_and(|p| {
                let order = crate::version::compare_evr(&p.evr, &a.evr);
                // NB: rpm cut inside its transaction may have installed a package without running its
                // %post (no rollback): a transaction that began and did not finish is done again.
                order.is_gt() || (order.is_eq() && !interrupted)
            });
            if present {
                already.push(a.nevra());
                continue;
            }
            files.push(fetch::fetch(self.repo, a, &self.paths.cache)?);
        }
        if !already.is_empty() {
            self.ui
                .event(Event::PackagesAlreadyInstalled { names: already });
        }
        let mut detail = None;
        if !files.is_empty() || !specs.is_empty() {
            self.ui.event(Event::Transaction {
                files: files.len() + specs.len(),
            });
            let report = match dnf {
                true => {
                    packages::dnf_install(&self.ctx.root, &files, &specs, &self.dnf_options()?)?
                }
                false => {
                    self.state.mark_done(self.run_id, &begun, None)?;
                    if interrupted {
                        packages::remove_staged(&self.ctx.root, &files)?;
                    }
                    packages::install_again(&self.ctx.root, &files, interrupted)?
                }
            };
            for line in &report.output {
                tracing::info!(step = key, "rpm: {line}");
                self.ui.event(Event::PackageOutput { line });
            }
            for path in &report.config_files {
                tracing::warn!(path = %path, "config file kept beside the packaged one");
                self.ui.event(Event::ConfigFileKept { path });
            }
            detail = Some(serde_json::to_string(&report.config_files)?);
            self.config_files.extend(report.config_files);
        }
        self.state.mark_done(self.run_id, key, detail.as_deref())?;
        Ok(())
    }

    fn dnf_options(&self) -> Result<packages::DnfOptions> {
        let p = &self.config.packages;
        let releasever = match &p.releasever {
            Some(v) => Some(v.clone()),
            None => preflight::os_release(&self.ctx.root)?.remove("VERSION_ID"),
        };
        Ok(packages::DnfOptions {
            repos: p.repos.clone(),
            gpgcheck: p.gpgcheck,
            releasever,
        })
    }
}
