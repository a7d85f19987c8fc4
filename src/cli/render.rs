//! Human output (stderr) and JSON documents (stdout): the one place the program speaks.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};

/// `eprintln!` that cannot panic: a terminal that went away (a lost ssh session, `2>&1 | head`)
/// must not end a run in the middle of a step. What cannot be shown is still in the log.
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// [`stderr_line!`] without the newline.
macro_rules! stderr_text {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use stderr_text;

use anyhow::Result;
use serde::Serialize;

use crate::error::{UpgradeError, find};
use crate::model::checks::{Report, Status};
use crate::model::health::{HealthReport, Outcome};
use crate::model::journal::{JournalKey, RunStatus};
use crate::model::plan::{Action, HopStep, MigrationRole, PackageOp, Plan, PlannedHook, Step};
use crate::model::services::backend_name;
use crate::ops;
use crate::steps::hooks::Phase;
use crate::steps::migrations;
use crate::ui::{Event, PlanView, Ui};

/// Renders runs and reports for a person, on stderr.
pub struct Human {
    color: bool,
    pub quiet: bool,
    /// The download progress bar, only while downloading to a terminal.
    bar: std::sync::Mutex<Option<(indicatif::ProgressBar, usize)>>,
    /// The last preflight report shown, for the `--json` document of an inhibited run.
    checks: std::sync::Mutex<Option<Report>>,
    /// The last health report shown, for the `--json` document of an unhealthy run.
    health: std::sync::Mutex<Option<HealthReport>>,
    /// The first health report shown that did not pass (the one a rollback followed).
    failed_health: std::sync::Mutex<Option<HealthReport>>,
}

impl Human {
    pub fn new(quiet: bool) -> Human {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Human {
            color,
            quiet,
            bar: std::sync::Mutex::new(None),
            checks: std::sync::Mutex::new(None),
            health: std::sync::Mutex::new(None),
            failed_health: std::sync::Mutex::new(None),
        }
    }

    /// The first health report shown that did not pass, if any.
    pub fn failed_health(&self) -> Option<HealthReport> {
        self.failed_health.lock().expect("health lock").clone()
    }

    /// The health report last shown, if any.
    pub fn last_health(&self) -> Option<HealthReport> {
        self.health.lock().expect("health lock").clone()
    }

    /// The health checks' results: those that did not pass each on a line (under `--quiet`
    /// too), then the count and the verdict.
    pub fn health_report(&self, report: &HealthReport) {
        if report.results.is_empty() {
            self.say("no health checks are declared");
            return;
        }
        self.say(&self.bold("health checks"));
        for r in &report.results {
            let label = match (r.outcome, r.required) {
                (Outcome::Passed, _) => {
                    self.say(&format!(
                        "  {} {}: {} ({})",
                        self.paint("1;32", "passed      "),
                        r.key,
                        r.measured,
                        r.source
                    ));
                    continue;
                }
                (Outcome::Failed, true) => self.paint("1;31", "failed      "),
                (Outcome::Inconclusive, true) => self.paint("1;35", "inconclusive"),
                (_, false) => self.paint("1;33", "warning     "),
            };
            stderr_line!(
                "  {label} {}: {} ({}, {} attempt(s), {})",
                r.key,
                r.measured,
                if r.required { "required" } else { "wanted" },
                r.attempts,
                r.source
            );
        }
        let passed = report
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Passed)
            .count();
        self.say(&format!(
            "  {passed} of {} passed: {}",
            report.results.len(),
            report.verdict
        ));
    }

    /// The preflight report last shown, if any.
    pub fn last_report(&self) -> Option<Report> {
        self.checks.lock().expect("checks lock").clone()
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn say(&self, text: &str) {
        if !self.quiet {
            stderr_line!("{text}");
        }
    }

    pub fn warn(&self, text: &str) {
        stderr_line!("{}: {text}", self.paint("1;33", "warning"));
    }

    pub fn error(&self, err: &anyhow::Error) {
        stderr_line!("{}: {err}", self.paint("1;31", "error"));
        for cause in err.chain().skip(1) {
            // an UpgradeError deep in the chain is the message that matters; the rest is context
            stderr_line!("  caused by: {cause}");
        }
        if let Some(UpgradeError::HookFailed { last_lines, .. }) = find(err)
            && !last_lines.is_empty()
        {
            stderr_line!("  last lines it printed:");
            for line in last_lines {
                stderr_line!("  | {line}");
            }
        }
        if let Some(hint) = find(err).and_then(UpgradeError::hint) {
            stderr_line!("{}: {hint}", self.paint("1;36", "hint"));
        }
    }

    /// The preflight report: every inhibitor and warning with its values and hint, then the
    /// notes and a count of the checks that passed.
    pub fn report(&self, report: &Report) {
        let failed: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.status != Status::Passed)
            .collect();
        let passed = report.results.len() - failed.len();
        if report.results.is_empty() {
            return;
        }
        self.say(&self.bold("preflight checks"));
        for r in &failed {
            let label = match r.status {
                Status::Inhibitor => self.paint("1;31", "inhibitor"),
                _ => self.paint("1;33", "warning  "),
            };
            // NB: inhibitors are shown under --quiet too: they are why the run stops.
            stderr_line!(
                "  {label} {}: measured `{}`, required `{}` ({})",
                r.key,
                r.measured,
                r.required,
                r.source
            );
            if let Some(hint) = &r.hint {
                stderr_line!("            {}: {hint}", self.paint("1;36", "hint"));
            }
        }
        for r in report.results.iter().filter(|r| r.note.is_some()) {
            self.say(&format!(
                "  note      {}",
                r.note.as_deref().unwrap_or_default()
            ));
        }
        let inhibitors = report.inhibitors().count();
        let warnings = report.warnings().count();
        self.say(&format!(
            "  {passed} passed, {warnings} warning(s), {inhibitors} inhibitor(s)"
        ));
    }

    /// The plan as text; steps in `done` are marked.
    pub fn render_plan(&self, plan: &Plan, done: &HashSet<JournalKey>) -> String {
        let mut out = String::new();
        let from = plan.from.as_deref().unwrap_or("nothing installed");
        let kind = match (plan.action, &plan.from) {
            (Action::Rollback, _) => "rollback",
            (Action::Uninstall, _) => "uninstall",
            (Action::Upgrade, None) => "fresh install",
            (Action::Upgrade, Some(_)) => "upgrade",
        };
        let to = Some(plan.to.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("nothing installed");
        out += &self.bold(&format!("{} {}: {from} → {to}", plan.product, kind));
        out += &format!(
            " ({} hop{})\n",
            plan.hops.len(),
            if plan.hops.len() == 1 { "" } else { "s" }
        );
        for (i, hop) in plan.hops.iter().enumerate() {
            let mark = |step: Step| {
                if done.contains(&step.key()) {
                    "  [done]"
                } else {
                    ""
                }
            };
            let stop = if hop.stop { " (required stop)" } else { "" };
            out += &format!(
                "  hop {}: {} → {}{stop}\n",
                i + 1,
                hop.from.as_deref().unwrap_or("nothing"),
                version_or_nothing(&hop.to, "nothing")
            );
            let list = |names: &[String]| {
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            };
            let hook_names = |hooks: &[PlannedHook]| {
                list(&hooks.iter().map(|h| h.name.clone()).collect::<Vec<_>>())
            };
            out += &format!(
                "    pre-upgrade hooks:  {}{}\n",
                hook_names(&hop.hooks.pre),
                mark(Step::Hop(i, HopStep::PreHooks))
            );
            let stop = match hop.from {
                None => "none (fresh install)".to_string(),
                Some(_) => list(&hop.services),
            };
            out += &format!(
                "    stop services:      {stop}{}\n",
                mark(Step::Hop(i, HopStep::StopServices))
            );
            if let (0, Some(point)) = (i, &plan.restore_point) {
                let data = match &hop.uninstall {
                    Some(u) if !u.paths.is_empty() || !u.keep.is_empty() => {
                        ", the purged and kept paths"
                    }
                    _ => "",
                };
                let data = match plan.migration_role {
                    MigrationRole::Wait if !point.is_empty() => {
                        "; not the database, which the fleet shares (the migration node's)"
                    }
                    _ => data,
                };
                out += &format!(
                    "    restore point:      {}{data}{}\n",
                    restore_point_summary(point),
                    mark(Step::Hop(i, HopStep::RestorePoint))
                );
            }
            out += &format!("    packages:{}\n", mark(Step::Hop(i, HopStep::Packages)));
            for p in &hop.packages {
                let (name, installed) = (&p.name, p.installed.as_deref().unwrap_or_default());
                let evr = p.artifact.as_ref().map_or("", |a| a.evr.as_str());
                let line = match (p.op, &p.installed) {
                    (PackageOp::Install, _) => format!("install  {name} {evr}"),
                    (PackageOp::Upgrade, Some(old)) => format!("upgrade  {name} {old} → {evr}"),
                    (PackageOp::Upgrade, None) => format!("upgrade  {name} {evr}"),
                    (PackageOp::Keep, Some(old)) if old != evr => {
                        format!("keep     {name} {old} (newer than {evr})")
                    }
                    (PackageOp::Keep, _) => format!("keep     {name} {evr}"),
                    (PackageOp::Remove, _) if plan.action == Action::Uninstall => {
                        format!("remove   {name} {installed}")
                    }
                    (PackageOp::Remove, _) if plan.action == Action::Rollback => {
                        format!("remove   {name} {installed}  (the rolled-back run added it)")
                    }
                    (PackageOp::Remove, _) => {
                        format!("remove   {name} {installed}  (no longer in the release)")
                    }
                    (PackageOp::Downgrade, _) => format!("downgrade {name} {installed} → {evr}"),
                };
                out += &format!("      {line}\n");
            }
            for p in &hop.prerequisites {
                let installed = p
                    .installed
                    .as_ref()
                    .map(|i| format!("{}.{}", i.evr, i.arch));
                let target = p
                    .artifact
                    .as_ref()
                    .map_or_else(|| p.version.to_string(), |a| a.evr.clone());
                let line = match (p.op, installed) {
                    (PackageOp::Install, _) => format!("install  {} {target}", p.name),
                    (PackageOp::Upgrade, Some(old)) => {
                        format!("upgrade  {} {old} → {target}", p.name)
                    }
                    (PackageOp::Upgrade, None) => format!("upgrade  {} {target}", p.name),
                    (PackageOp::Keep, i) => {
                        format!("keep     {} {}", p.name, i.unwrap_or_default())
                    }
                    // never planned for a prerequisite (SPEC §5, §12)
                    (PackageOp::Remove | PackageOp::Downgrade, i) => {
                        format!("remove   {} {}", p.name, i.unwrap_or_default())
                    }
                };
                out += &format!("      {line}  (prerequisite `{}`)\n", p.version);
            }
            if let Some(restore) = &hop.restore {
                let database = match restore.database {
                    true => format!(
                        "the database as of {} (what the product wrote since is lost), ",
                        restore.taken_at
                    ),
                    false => String::new(),
                };
                out += &format!(
                    "    put back:           {database}{} configuration file(s), from the restore point of run {}{}\n",
                    restore.files,
                    restore.run,
                    mark(Step::Hop(i, HopStep::RestoreData))
                );
            }
            if !hop.migrations.is_empty() && plan.migration_role == MigrationRole::Wait {
                out += &format!(
                    "    migrations:         waits for the migration node to apply them (`[database] migrate = false`){}\n",
                    mark(Step::Hop(i, HopStep::Migrate))
                );
                for m in &hop.migrations {
                    out += &format!("      {}\n", m.label);
                }
            } else if !hop.migrations.is_empty() {
                out += &format!("    migrations:{}\n", mark(Step::Hop(i, HopStep::Migrate)));
                for m in &hop.migrations {
                    out += &format!("      {}\n", m.label);
                }
            }
            out += &format!(
                "    post-upgrade hooks: {}{}\n",
                hook_names(&hop.hooks.post),
                mark(Step::Hop(i, HopStep::PostHooks))
            );
            if let Some(uninstall) = &hop.uninstall {
                out += &uninstall_summary(uninstall, mark(Step::Hop(i, HopStep::Purge)));
                continue;
            }
            let starting: Vec<String> = hop
                .services
                .iter()
                .filter(|s| !hop.stays_stopped.contains(s))
                .cloned()
                .collect();
            out += &format!(
                "    start services:     {}{}\n",
                list(&starting),
                mark(Step::Hop(i, HopStep::StartServices))
            );
            if !hop.stays_stopped.is_empty() {
                let why = match hop.to.is_empty() {
                    true => "nothing of the product stays installed",
                    false => "their packages are removed",
                };
                out += &format!(
                    "    left stopped:       {} ({why})\n",
                    hop.stays_stopped.join(", ")
                );
            }
        }
        if let Some(health) = plan
            .health
            .as_ref()
            .filter(|_| plan.steps().contains(&Step::Health))
        {
            let names: Vec<String> = health
                .programs
                .iter()
                .map(|p| format!("health.d:{}", p.name))
                .chain(health.checks.iter().map(|c| match c.check.required {
                    true => c.check.key(),
                    false => format!("{} (wanted)", c.check.key()),
                }))
                .collect();
            let done = match done.contains(&Step::Health.key()) {
                true => "  [done]",
                false => "",
            };
            out += &format!("  health checks:        {}{done}\n", names.join(", "));
        }
        out
    }
}

/// What an uninstall deletes (`--purge`) and leaves behind, and why; `mark` marks its purge
/// step done.
fn uninstall_summary(uninstall: &crate::model::plan::UninstallPlan, mark: &str) -> String {
    let mut deleted: Vec<String> = uninstall
        .paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if uninstall.database {
        deleted.insert(0, "the database's objects".into());
    }
    let deleted = match deleted.is_empty() {
        true => "nothing (data stays; `--purge` deletes it)".to_string(),
        false => deleted.join(", "),
    };
    let mut out = format!("    purge:              {deleted}{mark}\n");
    if !uninstall.left_behind.is_empty() {
        out += "    left behind:\n";
        for line in left_behind_lines(&uninstall.left_behind).lines() {
            out += &format!("    {line}\n");
        }
    }
    out
}

/// `version`, or `nothing` when it is empty (a run to nothing installed).
fn version_or_nothing<'a>(version: &'a str, nothing: &'a str) -> &'a str {
    match version.is_empty() {
        true => nothing,
        false => version,
    }
}

/// One line per thing left behind: kind, name and why.
fn left_behind_lines(left: &[crate::model::plan::LeftBehind]) -> String {
    left.iter()
        .map(|l| format!("  {:<9}{}  ({})\n", l.kind, l.name, l.why))
        .collect()
}

impl Human {
    /// What an uninstall left on the host, and why.
    pub fn left_behind(&self, left: &[crate::model::plan::LeftBehind]) {
        if left.is_empty() {
            return;
        }
        self.say("left behind:");
        for line in left_behind_lines(left).lines() {
            self.say(line);
        }
    }
}

/// What a restore point keeps, in a few words; what it cannot keep, named.
fn restore_point_summary(point: &crate::model::plan::RestorePointPlan) -> String {
    if point.is_empty() {
        return "nothing to save (nothing installed, no database)".into();
    }
    let mut parts = vec![match point.packages.len() {
        0 => "no packages (nothing installed)".to_string(),
        n => format!("{n} package(s)"),
    }];
    if point.database {
        parts.push("the database".into());
    }
    parts.push("configuration files".into());
    let mut text = parts.join(", ");
    let missing: Vec<String> = point.missing().map(|p| p.nevra()).collect();
    if !missing.is_empty() {
        text += &format!(
            " — partial: no repository has {} (a rollback to it is refused)",
            missing.join(", ")
        );
    }
    text
}

/// The results of the read-only commands, for a person.
impl Human {
    pub fn status(&self, status: &ops::status::Status) {
        self.say(&format!("product:   {}", status.product));
        self.say(&format!(
            "installed: {}",
            status.installed.as_deref().unwrap_or("nothing")
        ));
        match (&status.available, &status.index_error) {
            (Some(v), _) => self.say(&format!("available: {v}")),
            (None, Some(e)) => self.warn(&format!("the repository index could not be read: {e}")),
            (None, None) => self.say("available: no releases"),
        }
        if let (Some(run), Some(pid)) = (&status.open_run, status.running_pid) {
            self.say(&format!(
                "run {} to {} is in progress (pid {pid})",
                run.id,
                version_or_nothing(&run.to, "nothing")
            ));
        } else if let Some(run) = status
            .open_run
            .as_ref()
            .filter(|r| r.status == RunStatus::Unhealthy)
        {
            self.say(&format!(
                "run {} to {} is unhealthy: its health checks did not pass; `real-upgrade health` \
                 checks again, `upgrade` checks again and commits if they pass, `rollback` goes \
                 back, `commit` keeps it as it is",
                run.id, run.to
            ));
        } else if let Some(run) = &status.open_run {
            self.say(&format!(
                "unfinished run {} to {} ({}); run `upgrade` to resume it",
                run.id,
                version_or_nothing(&run.to, "nothing"),
                run.status
            ));
        } else if status.up_to_date == Some(true) {
            self.say("up to date");
        }
    }

    pub fn runs(&self, runs: &[ops::history::RunSummary]) {
        if runs.is_empty() {
            self.say("no runs yet");
        }
        for s in runs {
            let r = &s.run;
            let to = Some(r.to.as_str())
                .filter(|t| !t.is_empty())
                .unwrap_or("nothing");
            let health = s
                .health
                .as_ref()
                .map(|h| format!(", health: {}", h.report.verdict))
                .unwrap_or_default();
            let link = match (s.rolls_back, s.rolled_back_by) {
                (Some(undone), _) if s.automatic => {
                    format!(", undoes run {undone} after its health checks")
                }
                (Some(undone), _) => format!(", undoes run {undone}"),
                (None, Some(by)) => format!(", rolled back by run {by}"),
                (None, None) => String::new(),
            };
            self.say(&format!(
                "{:>4}  {}  {:<8}  {} → {to}  {}  (restore point: {}{health}{link})",
                r.id,
                r.started_at,
                s.action.as_str(),
                r.from.as_deref().unwrap_or("nothing"),
                r.status,
                s.restore_point.as_str()
            ));
        }
    }

    pub fn run_detail(&self, detail: &ops::history::RunDetail) {
        let record = &detail.run;
        self.say(&format!(
            "run {}: {} → {}, {} (attempts: {}, started {}, finished {})",
            record.id,
            record.from.as_deref().unwrap_or("nothing"),
            version_or_nothing(&record.to, "nothing"),
            record.status,
            record.attempts,
            record.started_at,
            record.finished_at.as_deref().unwrap_or("-")
        ));
        if let Some(e) = &record.error {
            self.say(&format!("last error: {e}"));
        }
        for entry in &detail.journal {
            self.say(&format!("  {}  {}", entry.done_at, entry.step));
        }
        if let Some(health) = &detail.health {
            self.say(&format!("health checks of {}:", health.checked_at));
            self.health_report(&health.report);
        }
    }

    pub fn hooks(&self, listing: &ops::hooks::HookListing) {
        for (phase, set) in [
            (Phase::Pre, &listing.pre),
            (Phase::Post, &listing.post),
            (Phase::Health, &listing.health),
        ] {
            self.say(&self.bold(phase.dir_name()));
            if set.run.is_empty() {
                self.say(match phase {
                    Phase::Health => "  (no health checks)",
                    _ => "  (no hooks)",
                });
            }
            for (i, h) in set.run.iter().enumerate() {
                self.say(&format!(
                    "  {:>3}. {}  ({})",
                    i + 1,
                    h.name,
                    h.path.display()
                ));
            }
            for s in &set.refused {
                self.say(&format!("  refused  {}: {}", s.path.display(), s.reason));
            }
            for s in &set.skipped {
                self.say(&format!("  skipped  {}: {}", s.path.display(), s.reason));
            }
        }
    }

    pub fn migrations(&self, status: &migrations::Status) {
        self.say(&format!("database: {}", status.database));
        for row in &status.applied {
            let by = row
                .node
                .as_ref()
                .map(|n| format!(" by `{n}`"))
                .unwrap_or_default();
            self.say(&format!(
                "  applied  {}/{}  {} ({} ms){by}",
                row.version, row.name, row.applied_at, row.duration_ms
            ));
        }
        for label in &status.pending {
            self.say(&format!("  pending  {label}"));
        }
        for row in &status.failed {
            self.warn(&format!(
                "failed   {}/{} at {}: run `real-upgrade migrations repair` once the database is repaired",
                row.version, row.name, row.applied_at
            ));
        }
        for d in &status.drifted {
            self.warn(&format!(
                "drifted  {}: applied with sha256 {}, the file now has {}",
                d.migration, d.applied_sha256, d.file_sha256
            ));
        }
        for row in &status.missing {
            self.say(&format!(
                "  missing  {}/{} (applied; its file is gone)",
                row.version, row.name
            ));
        }
    }

    pub fn finalized(&self, finalized: &migrations::Finalized) {
        match finalized.applied.len() {
            0 if finalized.planned.is_empty() => self.say(&format!(
                "`{}`: release {} and those before it have no contract migrations",
                finalized.database, finalized.version
            )),
            0 => self.say(&format!(
                "`{}`: every contract migration up to release {} was applied before",
                finalized.database, finalized.version
            )),
            n => self.say(&format!(
                "`{}`: applied {n} contract migration(s) of release {} and those before it",
                finalized.database, finalized.version
            )),
        }
    }

    pub fn service_order(&self, order: &ops::services::ServiceOrder) {
        match &order.source {
            None => self.say("no service order (`/etc/upgrade/service-order.toml` or `/usr/share/upgrade/service-order.toml`)"),
            Some(path) => self.say(&format!("service order from `{}`", path.display())),
        }
        for (n, level) in order.levels.iter().enumerate() {
            let names: Vec<String> = level
                .iter()
                .map(|s| format!("{} ({} `{}`)", s.name, backend_name(s.backend), s.unit))
                .collect();
            self.say(&format!("  level {}: {}", n + 1, names.join(", ")));
        }
    }

    pub fn keys(&self, keys: &ops::repo::KeyFiles) {
        let protection = if keys.encrypted {
            "encrypted with the password in `UPGRADE_SIGNING_PASSWORD`"
        } else {
            "unencrypted: keep it secret"
        };
        self.say(&format!(
            "wrote public key `{}` and secret key `{}` ({protection})",
            keys.public_key_file.display(),
            keys.secret_key_file.display()
        ));
        self.say(&format!(
            "configure hosts with, under `[repository]`:\npublic_key = \"{}\"",
            keys.public_key
        ));
    }
}

impl Ui for Human {
    fn plan(&self, view: &PlanView<'_>) {
        if let Some(run) = view.resumed {
            // NB: `running` means no invocation closed it: the process died holding the lock.
            if run.status == RunStatus::Running {
                self.say(&format!(
                    "run {} (started {}) was abandoned: it was killed or the machine went down mid-run",
                    run.id, run.started_at
                ));
            }
            self.say(&format!(
                "resuming run {} (started {}, last status `{}`); steps marked [done] are skipped",
                run.id, run.started_at, run.status
            ));
        }
        if !self.quiet {
            stderr_text!("{}", self.render_plan(view.plan, view.done));
        }
    }

    fn confirm(&self, question: &str) -> Result<bool> {
        let answer = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact_on(&dialoguer::console::Term::stderr())?;
        Ok(answer)
    }

    fn event(&self, event: Event<'_>) {
        let hop_name = |hop: Option<&crate::model::plan::Hop>| {
            hop.map(|h| {
                format!(
                    "{} → {}",
                    h.from.as_deref().unwrap_or("nothing"),
                    version_or_nothing(&h.to, "nothing")
                )
            })
            .unwrap_or_default()
        };
        match event {
            Event::StepStarted { step: Step::Hop(_, HopStep::Packages), hop: Some(h) } if h.uninstall.is_some() => {
                self.say(&format!("{} {}: remove the packages", self.paint("1;32", "==>"), hop_name(Some(h))))
            }
            Event::StepStarted { step, hop } => self.say(&format!("{} {}", self.paint("1;32", "==>"), step_title(step, &hop_name(hop)))),
            Event::StepAlreadyDone { step, hop } => {
                self.say(&format!("    {} (already done)", step_title(step, &hop_name(hop))))
            }
            Event::Checks { report } => {
                self.report(report);
                *self.checks.lock().expect("checks lock") = Some(report.clone());
            }
            Event::DownloadStarted { artifacts, bytes } => self.start_bar(artifacts, bytes),
            Event::DownloadProgress { bytes } => {
                if let Some((bar, _)) = self.bar.lock().expect("bar lock").as_ref() {
                    bar.inc(bytes);
                }
            }
            Event::Fetched { artifact } => match self.bar.lock().expect("bar lock").as_ref() {
                Some((bar, _)) => bar.set_message(artifact.nevra()),
                None => self.say(&format!("    verified {}", artifact.nevra())),
            },
            Event::HealthStarted { checks, timeout } => self.say(&format!(
                "    {checks} health check(s){}",
                timeout.map(|t| format!(", tried again for up to {}", humantime::format_duration(t))).unwrap_or_default()
            )),
            Event::HealthWaiting { pending, left } => self.say(&format!(
                "    not passing yet: {}; trying again for up to {}",
                pending.join(", "),
                humantime::format_duration(std::time::Duration::from_secs(left.as_secs()))
            )),
            Event::HealthChecked { report } => {
                self.health_report(report);
                *self.health.lock().expect("health lock") = Some(report.clone());
                let mut failed = self.failed_health.lock().expect("health lock");
                if failed.is_none() && !report.verdict.passed() {
                    *failed = Some(report.clone());
                }
            }
            Event::RollingBack { run } => self.warn(&format!(
                "run {run} failed its health checks: rolling the host back to its restore point"
            )),
            Event::KeptIndex { index, sequence } => self.warn(&format!("the repository is unreachable: using the index (sequence {sequence}) kept by `--download-only` in `{}`", index.display())),
            Event::DownloadFinished => {
                if let Some((bar, count)) = self.bar.lock().expect("bar lock").take() {
                    bar.finish_and_clear();
                    self.say(&format!("    verified {count} package(s) in the cache"));
                }
            }
            Event::UpgraderRefreshed { from, to } => self.say(&format!(
                "{} refreshed the upgrader: {} → {to}",
                self.paint("1;32", "==>"),
                from.unwrap_or("not installed")
            )),
            Event::HookStarted { phase, name } => self.say(&format!("    running {} hook `{name}`", phase_name(phase))),
            Event::HookAlreadyDone { phase, name } => {
                self.say(&format!("    {} hook `{name}` already done", phase_name(phase)))
            }
            Event::HookLine { name, line } => self.say(&format!("    [{name}] {line}")),
            Event::HookNotPlanned { phase, name } => self.warn(&format!(
                "{} hook `{name}` appeared after the plan was made; it is not run",
                phase_name(phase)
            )),
            Event::MigrationNotPlanned { label } => self.warn(&format!(
                "migration `{label}` appeared after the plan was made; it is not applied"
            )),
            Event::MigrationFixed { label } => self.warn(&format!(
                "migration `{label}` changed since its step failed; applying it as it is now"
            )),
            Event::MigrationApplied { label, took } => self.say(&format!(
                "    applied migration `{label}` ({} ms)",
                took.as_millis()
            )),
            Event::MigrationsUpToDate { database } => {
                self.say(&format!("    `{database}`: every migration of this hop is already applied"))
            }
            Event::MigrationsAwaited { database, missing } => self.say(&format!(
                "    waiting for the migration node to apply {} on `{database}`",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            )),
            Event::NodeNotRecorded { error } => self.warn(&format!(
                "this node's release is not recorded in the database (`migrations finalize` cannot see it): {error}"
            )),
            Event::MigrationsAppliedElsewhere { database } => self.say(&format!(
                "    `{database}`: every migration of this hop is applied (by the migration node)"
            )),
            Event::HookRebootRequested { name } => self.warn(&format!("hook `{name}` requested a reboot")),
            Event::Rebooting { command } => self.warn(&format!(
                "rebooting the host now (`{command}`): the run is journaled and resumes after the boot"
            )),
            Event::RebootNotUnderRoot { root } => self.warn(&format!(
                "[reboot] automatic: would reboot now, but the root is `{}`, not `/`, and no \
                 [reboot] command is set: the machine is not rebooted",
                root.display()
            )),
            Event::RebootFailed { command, error } => self.warn(&format!(
                "the reboot failed (`{command}`: {error}); reboot by hand, then run `upgrade` to resume"
            )),
            Event::PackagesAlreadyInstalled { names } => {
                self.say(&format!("    already installed: {}", names.join(", ")))
            }
            Event::Transaction { files } => self.say(&format!("    {files} package(s) in one transaction")),
            Event::PackagesErasing { names, uninstall } => {
                let why = match uninstall {
                    true => "the product is uninstalled",
                    false => "no longer in the release",
                };
                self.say(&format!("    erasing {} ({why})", names.join(", ")))
            }
            Event::PackageOutput { line } => self.say(&format!("    [rpm] {line}")),
            Event::ConfigFileKept { path } => self.warn(&format!(
                "rpm kept an edited configuration file and wrote `{path}` beside it; compare and merge it"
            )),
            Event::Recorded { version: "" } => self.say("    nothing is installed now"),
            Event::Recorded { version } => self.say(&format!("    installed version is now {version}")),
            Event::NoServices => self.say("    no service to stop or start"),
            Event::ServiceStopping { name } => self.say(&format!("    stopping `{name}`")),
            Event::ServiceStopped { name, took } => {
                self.say(&format!("    stopped `{name}` ({})", millis(took)))
            }
            Event::ServiceStarting { name } => self.say(&format!("    starting `{name}`")),
            Event::ServiceStarted { name, ready_after } => {
                self.say(&format!("    started `{name}`, ready after {}", millis(ready_after)))
            }
            Event::ServiceFailed { name, .. } => {
                self.say(&format!("    `{name}` failed (see the error below)"))
            }
            Event::ServicesRestoring { names } => self.warn(&format!(
                "the run failed; starting the services it stopped again: {}",
                names.join(", ")
            )),
            Event::ServiceRestoreFailed { name, error } => self.warn(&format!(
                "could not start `{name}` again; start it by hand: {error}"
            )),
        }
    }
}

impl Human {
    /// A progress bar on a terminal; none when quiet, redirected or with nothing to fetch.
    fn start_bar(&self, artifacts: usize, bytes: u64) {
        if self.quiet || bytes == 0 || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(bytes),
            indicatif::ProgressDrawTarget::stderr(),
        );
        let style = indicatif::ProgressStyle::with_template(
            "    {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {wide_msg}",
        )
        .expect("a valid template");
        bar.set_style(style);
        *self.bar.lock().expect("bar lock") = Some((bar, artifacts));
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pre => "pre-upgrade",
        Phase::Post => "post-upgrade",
        Phase::Migrate => "migration",
        Phase::Check => "check",
        Phase::Health => "health",
    }
}

fn step_title(step: Step, hop: &str) -> String {
    match step {
        Step::Download => "download and verify packages".into(),
        Step::Hop(_, HopStep::PreHooks) => format!("{hop}: pre-upgrade hooks"),
        Step::Hop(_, HopStep::StopServices) => format!("{hop}: stop services"),
        Step::Hop(_, HopStep::RestorePoint) => format!("{hop}: take the restore point"),
        Step::Hop(_, HopStep::StartServices) => format!("{hop}: start services"),
        Step::Hop(_, HopStep::Packages) => format!("{hop}: install packages"),
        Step::Hop(_, HopStep::Migrate) => format!("{hop}: migrate the schema"),
        Step::Hop(_, HopStep::RestoreData) => {
            format!("{hop}: put back the configuration files and the database")
        }
        Step::Hop(_, HopStep::PostHooks) => format!("{hop}: post-upgrade hooks"),
        Step::Hop(_, HopStep::Purge) => {
            format!("{hop}: purge the data, put back what is kept")
        }
        Step::Hop(_, HopStep::Record) => format!("{hop}: record the installed version"),
        Step::Health => "health checks".into(),
    }
}

fn millis(d: std::time::Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Prints `value` as the one JSON document on stdout.
pub fn json(value: &impl Serialize) {
    // NB: serialised whole before anything is written, so a value that cannot be is never
    // half a document on stdout
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
        serde_json::json!({ "result": "failed", "error": format!("the result cannot be written as JSON: {e}") })
            .to_string()
    });
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
