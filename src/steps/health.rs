//! Health checks (SPEC §13): the `health.d` programs (discovered, filtered, ordered, masked and
//! permission-checked exactly like hooks) and the declarative `http`, `tcp` and `command` checks,
//! each attempt bounded by its own timeout, failing ones tried again every `[health] interval`
//! until `[health] timeout`. What the verdict does to the run is the executor's and the
//! operations'.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::StepContext;
use super::hooks::{self, Hook, HookEnv, Phase};
use crate::config::Health as Settings;
use crate::context::Paths;
use crate::error::{UpgradeError, find};
use crate::model::health::{HealthCheck, HealthReport, HealthResult, Outcome, Probe};
use crate::model::plan::{HealthPlan, Plan, SourcedCheck, Step};
use crate::process::{self, RunOptions, Status};
use crate::ui::{Event, Ui};

/// Exit code by which a health program (or a `command` check) says it cannot tell.
pub const INCONCLUSIVE_EXIT_CODE: i32 = 75;

/// The most of a response body an `http` check reads.
const MAX_BODY: u64 = 1 << 20;

/// How many of its last lines a failed program's result shows (the first of them).
const LAST_LINES: usize = 3;

/// One check of an evaluation.
enum Item<'a> {
    Program(&'a Hook),
    Check(&'a SourcedCheck),
}

impl Item<'_> {
    fn key(&self) -> String {
        match self {
            Item::Program(h) => format!("health.d:{}", h.name),
            Item::Check(c) => c.check.key(),
        }
    }

    fn required(&self) -> bool {
        match self {
            Item::Program(_) => true,
            Item::Check(c) => c.check.required,
        }
    }

    fn source(&self) -> String {
        match self {
            Item::Program(_) => "health.d".into(),
            Item::Check(c) => c.source.clone(),
        }
    }
}

/// The health step of a run: the plan's checks, tried until they pass or `[health] timeout`;
/// the report is recorded with the run whatever it says, and the step is journaled done only
/// when the release may stay. A verdict that it may not is [`UpgradeError::Unhealthy`].
pub fn run_gate(cx: &mut StepContext<'_, '_>, plan: &Plan, health: &HealthPlan) -> Result<()> {
    let env = HookEnv {
        phase: Phase::Health,
        action: cx.action,
        from: plan.from.clone(),
        to: plan.to.clone(),
        resumed: cx.resumed,
        root: cx.ctx.root.clone(),
        run_id: cx.run_id(),
        extra: Vec::new(),
    };
    let report = evaluate(
        cx.paths,
        cx.ctx.superuser,
        health,
        &env,
        &cx.config.health,
        true,
        cx.ui,
    )?;
    cx.journal.record_health(&report)?;
    tracing::info!(verdict = %report.verdict, "health checks done");
    if report.verdict.passed() {
        return cx
            .journal
            .mark(&Step::Health.key(), Some(report.verdict.as_str()));
    }
    let kept = match cx.action {
        crate::model::plan::Action::Rollback => "a rollback is not rolled back by itself",
        _ => "the release stays running",
    };
    Err(UpgradeError::Unhealthy {
        run: cx.run_id(),
        inconclusive: report.verdict == crate::model::health::Verdict::Inconclusive,
        failing: report.blocking(),
        kept: kept.into(),
    }
    .into())
}

/// Evaluates the checks of `health` with the environment `env`: the planned programs as they
/// are on disk now (one that is gone or resolves elsewhere fails, one that appeared is reported
/// and not run); with `wait`, failing checks are tried again until `settings.timeout`.
pub fn evaluate(
    paths: &Paths,
    superuser: bool,
    health: &HealthPlan,
    env: &HookEnv,
    settings: &Settings,
    wait: bool,
    ui: &dyn Ui,
) -> Result<HealthReport> {
    let set = hooks::discover(paths, Phase::Health, superuser)?;
    set.ensure_safe()?;
    let (programs, unplanned) = hooks::as_planned(&set, &health.programs, Phase::Health)?;
    for name in unplanned {
        tracing::warn!(
            check = name,
            "health check appeared after the plan was made; not run"
        );
        ui.event(Event::HookNotPlanned {
            phase: Phase::Health,
            name,
        });
    }
    let items: Vec<Item> = programs
        .into_iter()
        .map(Item::Program)
        .chain(health.checks.iter().map(Item::Check))
        .collect();
    let deadline = Instant::now() + settings.timeout;
    ui.event(Event::HealthStarted {
        checks: items.len(),
        timeout: wait.then_some(settings.timeout),
    });
    // NB: the client starts a thread of its own: only made when an `http` check needs it
    let needs_http = items
        .iter()
        .any(|i| matches!(i, Item::Check(c) if matches!(c.check.probe, Probe::Http { .. })));
    let http = match needs_http {
        true => Some(
            reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| anyhow::anyhow!("failed to prepare the HTTP client: {e}"))?,
        ),
        false => None,
    };
    let mut results: Vec<HealthResult> = items
        .iter()
        .map(|item| HealthResult {
            key: item.key(),
            outcome: Outcome::Inconclusive,
            required: item.required(),
            measured: "not run".into(),
            attempts: 0,
            source: item.source(),
        })
        .collect();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    let mut waiting_for: Vec<String> = Vec::new();
    loop {
        for &i in &pending {
            let timeout = match &items[i] {
                Item::Check(c) => c.check.timeout.unwrap_or(settings.check_timeout),
                Item::Program(_) => settings.check_timeout,
            };
            let r = &mut results[i];
            let (outcome, measured) =
                attempt(&items[i], env, timeout, http.as_ref(), ui, r.attempts == 0)?;
            r.outcome = outcome;
            r.measured = measured;
            r.attempts += 1;
        }
        pending.retain(|&i| results[i].outcome != Outcome::Passed);
        let now = Instant::now();
        if pending.is_empty() || !wait || now + settings.interval >= deadline {
            break;
        }
        let keys: Vec<String> = pending.iter().map(|&i| results[i].key.clone()).collect();
        if keys != waiting_for {
            ui.event(Event::HealthWaiting {
                pending: &keys,
                left: deadline - now,
            });
            waiting_for = keys;
        }
        sleep(settings.interval)?;
    }
    let report = HealthReport::new(results);
    ui.event(Event::HealthChecked { report: &report });
    Ok(report)
}

/// Sleeps `d`, ending early (with the error) on an interrupt.
fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        crate::interrupt::check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// One attempt of one check: how it came out and what it saw. Fails only on an interrupt.
fn attempt(
    item: &Item<'_>,
    env: &HookEnv,
    timeout: Duration,
    http: Option<&reqwest::blocking::Client>,
    ui: &dyn Ui,
    first: bool,
) -> Result<(Outcome, String)> {
    // NB: a check tried again every few seconds prints the same each time: its output is shown
    // on the first attempt, logged on every one, and its last line is in the result
    let run = |options: RunOptions, name: &str| -> Result<(Outcome, String)> {
        let finished = match process::run(&options, &mut |line| {
            tracing::info!(check = name, "{line}");
            if first {
                ui.event(Event::HookLine { name, line });
            }
        }) {
            Ok(finished) => finished,
            Err(e) if matches!(find(&e), Some(UpgradeError::Interrupted { .. })) => return Err(e),
            Err(e) => return Ok((Outcome::Failed, format!("{e:#}"))),
        };
        let last = finished
            .last_lines
            .last()
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        Ok(match finished.status {
            Status::Exited(0) => (Outcome::Passed, format!("exit 0{last}")),
            Status::Exited(INCONCLUSIVE_EXIT_CODE) => (
                Outcome::Inconclusive,
                format!("exit {INCONCLUSIVE_EXIT_CODE}{last}"),
            ),
            Status::Exited(code) => (Outcome::Failed, format!("exit {code}{last}")),
            status => (Outcome::Failed, format!("{status}{last}")),
        })
    };
    let check = match item {
        Item::Program(hook) => {
            let mut options = env.options(&hook.path, timeout);
            options.keep_lines = LAST_LINES;
            return run(options, &hook.name);
        }
        Item::Check(c) => &c.check,
    };
    match &check.probe {
        Probe::Command { command } => {
            let mut options = env.options(std::path::Path::new("/bin/sh"), timeout);
            options.args = vec!["-c".into(), command.into()];
            options.keep_lines = LAST_LINES;
            run(options, &check.name)
        }
        Probe::Tcp { address } => Ok(tcp(address, timeout)),
        Probe::Http { url, status, body } => match http {
            Some(http) => Ok(get(http, check, url, *status, body, timeout)),
            None => Ok((Outcome::Failed, "no HTTP client was prepared".into())),
        },
    }
}

fn tcp(address: &str, timeout: Duration) -> (Outcome, String) {
    let addrs = match address.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(e) => return (Outcome::Failed, format!("cannot resolve `{address}`: {e}")),
    };
    let mut last = format!("`{address}` resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return (Outcome::Passed, format!("connected to {addr}")),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    (Outcome::Failed, last)
}

fn get(
    http: &reqwest::blocking::Client,
    check: &HealthCheck,
    url: &str,
    expected: u16,
    body: &Option<String>,
    timeout: Duration,
) -> (Outcome, String) {
    let response = match http.get(url).timeout(timeout).send() {
        Ok(r) => r,
        Err(e) => {
            let why = match e.is_timeout() {
                true => format!("no answer within {}", humantime::format_duration(timeout)),
                false => std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |s| format!("{e}: {s}")),
            };
            tracing::debug!(check = %check.name, "{why}");
            return (Outcome::Failed, why);
        }
    };
    let status = response.status().as_u16();
    if status != expected {
        return (
            Outcome::Failed,
            format!("HTTP {status} (expected {expected})"),
        );
    }
    let Some(wanted) = body else {
        return (Outcome::Passed, format!("HTTP {status}"));
    };
    let mut text = String::new();
    if let Err(e) = response.take(MAX_BODY).read_to_string(&mut text) {
        return (
            Outcome::Failed,
            format!("HTTP {status}, the body could not be read: {e}"),
        );
    }
    match text.contains(wanted.as_str()) {
        true => (
            Outcome::Passed,
            format!("HTTP {status}, body has `{wanted}`"),
        ),
        false => (
            Outcome::Failed,
            format!("HTTP {status}, body lacks `{wanted}`"),
        ),
    }
}
