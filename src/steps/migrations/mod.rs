//! Schema migrations (SPEC §7): discovering `migrations/<version>/<NNN>-<name>[.sql]`, and applying
//! the pending ones of a hop exactly once, recorded in the `upgrade_migrations` ledger of the
//! product's own database.
//!
//! The ledger is the source of truth for what is applied, not the run journal: a run killed in
//! the middle of its migrations resumes by reading the ledger, so each migration is applied once.
//! SQL migrations commit together with their ledger row where the database allows it (SQLite,
//! PostgreSQL); on MariaDB, whose DDL commits implicitly, a failure leaves a `success = false`
//! row that blocks later runs until `real-upgrade migrations repair`. Runners on several hosts
//! sharing one database are serialised by a database lock ([`db`]).
//!
//! A fleet's application node (`[database] migrate = false`, SPEC §15) applies none: its
//! migrate step waits, bounded by `[database] lock_timeout`, until the ledger shows the hop's
//! migrations applied by the migration node ([`await_applied`]). Contract migrations
//! (`<version>/post/`) are no hop's: [`finalize`] applies them, once no recorded node runs an
//! older release.
//!
//! Planning checks every planned migration before anything changes ([`ensure_runnable`]): an
//! SQL file must be UTF-8 and must not control its transaction, and when running as root an
//! executable (and its directory) must be root's and writable by no one else, as hooks must.
//!
//! NB: transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`, `END`, savepoints) is refused by
//! reading the SQL ([`crate::model::migration::scan_sql`]), which names the file and line; as a
//! reader can be fooled, applying also notices a migration that ended its transaction and
//! records it truthfully ([`db`]), so the ledger never disagrees with the schema.

pub mod db;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use self::db::{Database, LedgerRow};
use super::StepContext;
use super::hooks::{self, HookEnv, Phase};
use crate::error::UpgradeError;
use crate::model::migration::{Dialect, Kind, Migration, Stage, scan_sql};
use crate::model::plan::{Action, Hop, HopStep, MigrationRole, Plan, PlannedMigration, Step};
use crate::model::version::{Version, VersionScheme};
use crate::ui::Event;

/// Every migration under `dir`, ordered by version (the product's scheme) then sequence.
pub fn discover(dir: &Path, scheme: VersionScheme) -> Result<Vec<Migration>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            return Err(UpgradeError::input_hint(
                format!("`{}` is not a version directory", path.display()),
                "migrations live in `migrations/<version>/<NNN>-<name>.sql`",
            )
            .into());
        }
        let version = scheme.parse(&name).map_err(|e| {
            UpgradeError::input(format!("migration directory `{}`: {e}", path.display()))
        })?;
        out.extend(discover_version(&version, &path, Stage::Expand)?);
        // NB: a fleet's contract migrations (SPEC §15) are `migrations finalize`'s, not a hop's
        let post = path.join(POST_DIR);
        if post.is_dir() {
            out.extend(discover_version(&version, &post, Stage::Contract)?);
        }
    }
    out.sort_by(|a, b| {
        (a.version.cmp(&b.version))
            .then(a.stage.cmp(&b.stage))
            .then(a.sequence.cmp(&b.sequence))
    });
    if let Some(w) = out.windows(2).find(|w| w[0].key() == w[1].key()) {
        return Err(UpgradeError::input(format!(
            "migrations `{}` and `{}` have the same number",
            w[0].path.display(),
            w[1].path.display()
        ))
        .into());
    }
    Ok(out)
}

/// The directory of a fleet's contract migrations, inside a version's.
pub const POST_DIR: &str = "post";

/// The migration files of `dir`, one version's (or its `post/`'s), unordered.
fn discover_version(version: &Version, dir: &Path, stage: Stage) -> Result<Vec<Migration>> {
    let mut out = Vec::new();
    for file in
        std::fs::read_dir(dir).with_context(|| format!("failed to read `{}`", dir.display()))?
    {
        let file = file.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let file_name = file.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || (stage == Stage::Expand && file_name == POST_DIR) {
            continue;
        }
        out.push(parse_file(version, &file_name, file.path(), stage)?);
    }
    Ok(out)
}

fn parse_file(
    version: &Version,
    file_name: &str,
    path: PathBuf,
    stage: Stage,
) -> Result<Migration> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |why: &str| -> anyhow::Error {
        UpgradeError::input_hint(
            format!("bad migration file name `{}`: {why}", path.display()),
            "name migrations `<NNN>-<name>.sql`, or `<NNN>-<name>` for an executable, with [A-Za-z0-9_-] in the name",
        )
        .into()
    };
    let (stem, kind) = match file_name.strip_suffix(".sql") {
        Some(stem) => (stem, Kind::Sql),
        None => (file_name, Kind::Executable),
    };
    let (number, rest) = stem
        .split_once('-')
        .ok_or_else(|| bad("no `-` after the number"))?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("it does not start with a number"));
    }
    if rest.is_empty()
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "the name after the number is empty or has other characters",
        ));
    }
    let sequence: u32 = number.parse().map_err(|_| bad("the number is too large"))?;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
    if kind == Kind::Executable && (!meta.is_file() || meta.permissions().mode() & 0o111 == 0) {
        return Err(bad("not `.sql` and not an executable file"));
    }
    let (sha256, _) = crate::repo::fetch::digest_file(&path)?;
    Ok(Migration {
        version: version.clone(),
        sequence,
        name: file_name.to_string(),
        path,
        kind,
        sha256,
        stage,
    })
}

/// Refuses, before anything changes, a migration of `plan` that cannot be applied as planned
/// (see [`check_runnable`]); `database_url` decides how SQL is read.
pub fn ensure_runnable(
    all: &[Migration],
    plan: &Plan,
    database_url: &str,
    superuser: bool,
) -> Result<()> {
    let by_label: HashMap<String, &Migration> = all.iter().map(|m| (m.label(), m)).collect();
    let planned: Vec<&Migration> = plan
        .hops
        .iter()
        .flat_map(|hop| &hop.migrations)
        .filter_map(|p| by_label.get(&p.label).copied())
        .collect();
    check_runnable(&planned, db::dialect(database_url), superuser)
}

/// Fails on an SQL migration that is not UTF-8 or controls its own transaction (exit 2) and,
/// as root, on executable migrations that are not root's or that others may write to, or whose
/// directory is (exit 1, naming each file and its mode as for hooks).
fn check_runnable(migrations: &[&Migration], dialect: Dialect, superuser: bool) -> Result<()> {
    let mut refused = Vec::new();
    let mut dirs = std::collections::HashSet::new();
    for m in migrations {
        match m.kind {
            Kind::Sql => {
                let text = read_sql(m)?;
                if let Some(control) = scan_sql(&text, dialect).transaction_control {
                    return Err(UpgradeError::MigrationTransactionControl {
                        migration: m.label(),
                        path: m.path.display().to_string(),
                        line: control.line,
                        statement: control.statement,
                    }
                    .into());
                }
            }
            Kind::Executable if superuser => {
                refused.extend(unsafe_owner(&m.path)?);
                // NB: a directory is checked once, however many migrations it holds.
                if let Some(dir) = m.path.parent()
                    && dirs.insert(dir)
                {
                    refused.extend(unsafe_owner(dir)?);
                }
            }
            Kind::Executable => {}
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(UpgradeError::step(
        format!("refusing to run unsafe migrations: {}", refused.join("; ")),
        "an executable migration and its directory must be owned by root and not writable by \
         group or others (chown root:root, chmod go-w), then run `upgrade` again",
    )
    .into())
}

/// Why running `path` as root is unsafe, if it is ([`hooks::unsafe_owner`]).
fn unsafe_owner(path: &Path) -> Result<Option<String>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(hooks::unsafe_owner(path, &meta))
}

/// The text of an SQL migration; not UTF-8 is an error naming the file and the line.
fn read_sql(m: &Migration) -> Result<String> {
    let bytes = std::fs::read(&m.path)
        .with_context(|| format!("failed to read migration `{}`", m.path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        UpgradeError::input_hint(
            format!(
                "migration `{}` is not valid UTF-8 (line {line})",
                m.path.display()
            ),
            "SQL migrations are UTF-8 text: convert the file (`iconv -t UTF-8`), then run \
             `upgrade` again",
        )
        .into()
    })
}

/// What the ledger and the files say together (`migrations status`).
#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub database: String,
    pub applied: Vec<LedgerRow>,
    pub pending: Vec<String>,
    pub failed: Vec<LedgerRow>,
    pub drifted: Vec<Drift>,
    /// Applied migrations whose file is gone (reported, not blocking).
    pub missing: Vec<LedgerRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub migration: String,
    pub applied_sha256: String,
    pub file_sha256: String,
}

pub fn status(db: &mut dyn Database, all: &[Migration]) -> Result<Status> {
    db.prepare_ledger()?;
    let ledger = db.ledger()?;
    let files: HashMap<(String, u32), &Migration> = all.iter().map(|m| (m.key(), m)).collect();
    let mut status = Status {
        database: db.describe(),
        ..Status::default()
    };
    for row in &ledger {
        match files.get(&(row.version.clone(), row.sequence)) {
            None => status.missing.push(row.clone()),
            Some(m) if m.sha256 != row.sha256 => status.drifted.push(Drift {
                migration: m.label(),
                applied_sha256: row.sha256.clone(),
                file_sha256: m.sha256.clone(),
            }),
            Some(_) => {}
        }
        if row.success {
            status.applied.push(row.clone());
        } else {
            status.failed.push(row.clone());
        }
    }
    let recorded: std::collections::HashSet<(String, u32)> = ledger
        .iter()
        .map(|r| (r.version.clone(), r.sequence))
        .collect();
    status.pending = all
        .iter()
        .filter(|m| !recorded.contains(&m.key()))
        .map(Migration::label)
        .collect();
    Ok(status)
}

/// Refuses to go on when the ledger holds a failed migration or an applied file changed.
fn check_ledger(db: &dyn Database, ledger: &[LedgerRow], all: &[Migration]) -> Result<()> {
    if let Some(row) = ledger.iter().find(|r| !r.success) {
        return Err(UpgradeError::step(
            format!(
                "migration `{}/{}` failed earlier on `{}` and may be half applied",
                row.version,
                row.name,
                db.describe()
            ),
            "repair the database by hand, then run `real-upgrade migrations repair` and `upgrade` again",
        )
        .into());
    }
    let by_key: HashMap<(String, u32), &LedgerRow> = ledger
        .iter()
        .map(|r| ((r.version.clone(), r.sequence), r))
        .collect();
    for m in all {
        if let Some(row) = by_key.get(&m.key())
            && row.sha256 != m.sha256
        {
            return Err(UpgradeError::MigrationDrift {
                migration: m.label(),
                applied: row.sha256.clone(),
                file: m.sha256.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// Runs an executable migration; the caller provides the environment and output handling.
pub type RunExecutable<'a> = dyn FnMut(&Migration) -> Result<()> + 'a;

/// Applies the pending migrations of a hop under the database lock; returns what it applied.
pub fn apply(
    db: &mut dyn Database,
    all: &[Migration],
    hop: &[&Migration],
    lock_timeout: Duration,
    run_executable: &mut RunExecutable<'_>,
    on_applied: &mut dyn FnMut(&Migration, Duration),
) -> Result<Vec<String>> {
    // NB: lock first: two hosts creating the ledger table at once collide in the catalog.
    db.lock(lock_timeout)?;
    let result = (|| {
        db.prepare_ledger()?;
        // NB: read after taking the lock: another host may have applied some meanwhile.
        let ledger = db.ledger()?;
        check_ledger(db, &ledger, all)?;
        let applied: std::collections::HashSet<(String, u32)> = ledger
            .iter()
            .map(|r| (r.version.clone(), r.sequence))
            .collect();
        let pending: Vec<&Migration> = hop
            .iter()
            .copied()
            .filter(|m| !applied.contains(&m.key()))
            .collect();
        let mut done = Vec::new();
        let mut i = 0;
        while i < pending.len() {
            crate::interrupt::check()?;
            if pending[i].kind == Kind::Executable {
                let m = pending[i];
                let started = Instant::now();
                run_executable(m)?;
                db.record(m, true, started.elapsed())?;
                crate::fault::point!("migration:{}", m.label());
                on_applied(m, started.elapsed());
                done.push(m.label());
                i += 1;
                continue;
            }
            // a run of consecutive SQL migrations goes to the database as one batch
            let end = pending[i..]
                .iter()
                .position(|m| m.kind != Kind::Sql)
                .map_or(pending.len(), |n| i + n);
            let batch = &pending[i..end];
            let sql = batch
                .iter()
                .map(|m| read_sql(m))
                .collect::<Result<Vec<_>>>()?;
            let outcome = db.apply_sql(batch, &sql);
            for (m, took) in batch.iter().zip(&outcome.applied) {
                on_applied(m, *took);
                done.push(m.label());
            }
            if let Some((index, err)) = outcome.failed {
                // NB: a migration that ended its transaction says so itself: nothing rolled back;
                // an interrupt is not the migration's failure.
                if let Some(
                    UpgradeError::MigrationEndedTransaction { .. }
                    | UpgradeError::Interrupted { .. },
                ) = crate::error::find(&err)
                {
                    return Err(err);
                }
                return Err(err.context(UpgradeError::step(
                    format!(
                        "migration `{}` failed on `{}`",
                        batch[index].label(),
                        db.describe()
                    ),
                    db.failure_hint(),
                )));
            }
            i = end;
        }
        Ok(done)
    })();
    db.unlock();
    result
}

/// Waits until the ledger shows every migration of `hop` applied by another node (an
/// application node's migrate step, SPEC §15), at most `timeout`; `waiting` is told once what
/// is still missing when the first look finds some. Fails naming the migrations still missing
/// after `timeout`, and at once on one applied from a file other than this host's.
pub fn await_applied(
    db: &mut dyn Database,
    hop: &[&Migration],
    timeout: Duration,
    waiting: &mut dyn FnMut(&[String]),
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    // NB: the ledger may not exist yet: the migration node has not begun
    db.prepare_ledger()?;
    let mut told = false;
    loop {
        crate::interrupt::check()?;
        let ledger = db.ledger()?;
        let by_key: HashMap<(String, u32), &LedgerRow> = ledger
            .iter()
            .map(|r| ((r.version.clone(), r.sequence), r))
            .collect();
        let mut missing = Vec::new();
        for m in hop {
            match by_key.get(&m.key()) {
                Some(row) if row.sha256 != m.sha256 => {
                    return Err(UpgradeError::MigrationDrift {
                        migration: m.label(),
                        applied: row.sha256.clone(),
                        file: m.sha256.clone(),
                    }
                    .into());
                }
                Some(row) if row.success => {}
                _ => missing.push(m.label()),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(UpgradeError::MigrationsNotApplied {
                database: db.describe(),
                timeout,
                missing,
            }
            .into());
        }
        if !told {
            waiting(&missing);
            told = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(AWAIT_INTERVAL));
    }
}

/// How often an application node reads the ledger while it waits.
const AWAIT_INTERVAL: Duration = Duration::from_millis(250);

/// This host's name in the shared database: `[database] node`, else the host name.
pub fn node_name(config: &crate::config::Config) -> Result<String> {
    match &config.database.node {
        Some(node) => Ok(node.clone()),
        None => crate::host::hostname(),
    }
}

/// Records in the product's database which release this node runs, when the product has a
/// database (SPEC §15: `migrations finalize` compares the nodes). Nothing installed changes
/// nothing: an uninstall leaves the database untouched (SPEC §14), and a node that left the
/// fleet is taken out of `upgrade_nodes` by a person.
pub fn record_node(cx: &StepContext<'_, '_>, version: Option<&str>) -> Result<()> {
    let Some(version) = version else {
        return Ok(());
    };
    let has_migrations = !discover(&cx.paths.migrations, cx.config.version_scheme)?.is_empty();
    if !has_migrations && cx.config.database.url.is_none() {
        return Ok(());
    }
    let node = node_name(cx.config)?;
    let Some(mut db) = db::connect_existing(&cx.config.database_url(), &cx.ctx.root, &node)? else {
        return Ok(());
    };
    db.record_node(version)
}

/// What `migrations finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct Finalized {
    pub database: String,
    /// The release every recorded node runs.
    pub version: String,
    /// The contract migrations it applied, in order; empty when all were applied before.
    pub applied: Vec<String>,
    /// The contract migrations of that release and those before it, with their sha256: what
    /// was applied, or had been.
    pub planned: Vec<crate::model::plan::PlannedMigration>,
}

/// Applies the contract migrations (`<version>/post/`) of `installed` and the releases before
/// it that the ledger does not hold, exactly once (under the database lock, read again after
/// taking it); refused while a node recorded in `upgrade_nodes` runs another release.
pub fn finalize(
    db: &mut dyn Database,
    all: &[Migration],
    installed: &Version,
    lock_timeout: Duration,
    superuser: bool,
    run_executable: &mut RunExecutable<'_>,
    on_applied: &mut dyn FnMut(&Migration, Duration),
) -> Result<Finalized> {
    db.prepare_ledger()?;
    let nodes = db.nodes()?;
    let version = installed.to_string();
    let behind: Vec<String> = nodes
        .iter()
        .filter(|n| n.version != version)
        .map(|n| format!("`{}` runs {}", n.node, n.version))
        .collect();
    if !behind.is_empty() {
        return Err(UpgradeError::NodesDisagree {
            database: db.describe(),
            version,
            behind,
        }
        .into());
    }
    let contract = crate::model::migration::contract_up_to(all, installed);
    check_runnable(&contract, db::dialect(&db.describe()), superuser)?;
    let planned = contract
        .iter()
        .map(|m| PlannedMigration {
            label: m.label(),
            sha256: Some(m.sha256.clone()),
        })
        .collect();
    let applied = apply(db, all, &contract, lock_timeout, run_executable, on_applied)?;
    Ok(Finalized {
        database: db.describe(),
        version,
        applied,
        planned,
    })
}

/// Records every migration up to `version` as applied without running it (`adopt`): the
/// contract migrations (`post/`) of the releases before it too, not those of `version` itself,
/// which `migrations finalize` applies once every node runs it.
pub fn baseline(
    db: &mut dyn Database,
    all: &[Migration],
    version: &Version,
) -> Result<Vec<String>> {
    db.prepare_ledger()?;
    let applied: std::collections::HashSet<(String, u32)> = db
        .ledger()?
        .iter()
        .map(|r| (r.version.clone(), r.sequence))
        .collect();
    let mut done = Vec::new();
    for m in all
        .iter()
        .filter(|m| match m.stage {
            Stage::Expand => m.version <= *version,
            Stage::Contract => m.version < *version,
        })
        .filter(|m| !applied.contains(&m.key()))
    {
        db.record(m, true, Duration::ZERO)?;
        done.push(m.label());
    }
    Ok(done)
}

/// How a planned migration whose file changed since the plan is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// The step never ran: the operator confirmed the file as it was.
    Refuse,
    /// The step ran and failed, and the operator was told to fix the migration and resume: a
    /// migration not yet applied may have changed (it is reported).
    AcceptFix,
}

/// The planned migrations as they are on disk now, in the plan's order.
#[derive(Debug, Default)]
pub struct AsPlanned<'a> {
    pub run: Vec<&'a Migration>,
    /// Planned migrations whose file changed since (accepted as a fix).
    pub changed: Vec<String>,
    /// The hop's migrations that appeared since: not applied.
    pub unplanned: Vec<String>,
}

/// The migrations of `planned` as they are on disk now: fails naming a planned migration whose
/// file is gone, or has another sha256 than when planned (unless `changed` accepts a fix).
pub fn as_planned<'a>(
    all: &'a [Migration],
    planned: &[PlannedMigration],
    in_hop: &[&'a Migration],
    changed: Changed,
) -> Result<AsPlanned<'a>, UpgradeError> {
    let by_label: HashMap<String, &Migration> = all.iter().map(|m| (m.label(), m)).collect();
    let mut out = AsPlanned::default();
    for p in planned {
        let what = || format!("migration `{}`", p.label);
        let Some(m) = by_label.get(&p.label) else {
            return Err(UpgradeError::PlanChanged {
                what: what(),
                change: "is gone".into(),
            });
        };
        if let Some(sha256) = &p.sha256
            && *sha256 != m.sha256
        {
            if changed == Changed::Refuse {
                return Err(UpgradeError::PlanChanged {
                    what: what(),
                    change: format!("has sha256 {} instead of {sha256}", m.sha256),
                });
            }
            // NB: an applied migration that changed is refused by the ledger check (drift).
            out.changed.push(p.label.clone());
        }
        out.run.push(*m);
    }
    out.unplanned = in_hop
        .iter()
        .map(|m| m.label())
        .filter(|l| !planned.iter().any(|p| p.label == *l))
        .collect();
    Ok(out)
}

/// The migrate step of a hop: the planned migrations not yet in the ledger, exactly once; on an
/// application node ([`MigrationRole::Wait`]), waiting until another node applied them.
pub fn run_hop(
    cx: &mut StepContext<'_, '_>,
    index: usize,
    hop: &Hop,
    role: MigrationRole,
) -> Result<()> {
    let key = Step::Hop(index, HopStep::Migrate).key();
    if cx.action == Action::Rollback {
        // NB: a rollback migrates nothing: it puts the database of its restore point back
        return Ok(());
    }
    let scheme = cx.config.version_scheme;
    let all = discover(&cx.paths.migrations, scheme)?;
    let to = scheme.parse(&hop.to)?;
    let from = hop.from.as_deref().map(|v| scheme.parse(v)).transpose()?;
    let in_hop = crate::model::migration::in_hop(&all, from.as_ref(), &to);
    let begun = key.begun();
    let changed = match cx.journal.is_done(&begun) {
        true => Changed::AcceptFix,
        false => Changed::Refuse,
    };
    let AsPlanned {
        run: pending,
        changed,
        unplanned,
    } = as_planned(&all, &hop.migrations, &in_hop, changed)?;
    for label in &unplanned {
        tracing::warn!(migration = %label, "migration appeared after the plan was made; not applied");
        cx.ui.event(Event::MigrationNotPlanned { label });
    }
    for label in &changed {
        tracing::warn!(migration = %label, "migration changed after it failed; applying it as it is now");
        cx.ui.event(Event::MigrationFixed { label });
    }
    if !pending.is_empty() && role == MigrationRole::Wait {
        let node = node_name(cx.config)?;
        let mut db = db::connect(&cx.config.database_url(), &cx.ctx.root, &node)?;
        let database = db.describe();
        let ui = cx.ui;
        await_applied(
            db.as_mut(),
            &pending,
            cx.config.database.lock_timeout,
            &mut |missing| {
                tracing::info!(missing = ?missing, "waiting for the migration node's migrations");
                ui.event(Event::MigrationsAwaited {
                    database: &database,
                    missing,
                });
            },
        )?;
        cx.ui.event(Event::MigrationsAppliedElsewhere {
            database: &database,
        });
        return cx.journal.mark(&key, None);
    }
    if !pending.is_empty() {
        let url = cx.config.database_url();
        // NB: again, for a resumed run and for a migration fixed after it failed.
        check_runnable(&pending, db::dialect(&url), cx.ctx.superuser)?;
        if !cx.journal.is_done(&begun) {
            cx.journal.mark(&begun, None)?;
        }
        let mut db = db::connect(&url, &cx.ctx.root, &node_name(cx.config)?)?;
        let env = HookEnv {
            phase: Phase::Migrate,
            action: cx.action,
            from: hop.from.clone(),
            to: hop.to.clone(),
            resumed: cx.resumed,
            root: cx.ctx.root.clone(),
            run_id: cx.run_id(),
            extra: vec![(
                "UPGRADE_DATABASE_URL",
                db::url_for_programs(&url, &cx.ctx.root)?,
            )],
        };
        let ui = cx.ui;
        let timeout = cx.config.hooks.timeout;
        let applied = apply(
            db.as_mut(),
            &all,
            &pending,
            cx.config.database.lock_timeout,
            &mut |m| {
                let label = m.label();
                hooks::run_program(&m.path, &label, &env, timeout, &mut |line| {
                    tracing::info!(migration = %label, "{line}");
                    ui.event(Event::HookLine { name: &label, line });
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
            cx.ui.event(Event::MigrationsUpToDate {
                database: &db.describe(),
            });
        }
        return cx.journal.mark(&key, None);
    }
    // nothing planned: nothing done, nothing journaled (as the services steps)
    Ok(())
}
