//! Hooks (SPEC §6): the vendor's and the administrator's executables for a phase, merged, filtered
//! and ordered the way run-parts does, and run one at a time through [`crate::process`] (a clean
//! environment, a timeout that kills the whole process group, output streamed line by line); this
//! module adds what an exit code means for a hook.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::StepContext;
use crate::context::Paths;
use crate::error::UpgradeError;
use crate::model::journal::JournalKey;
use crate::model::plan::{Action, Hop, HopStep, PlannedHook, Step};
use crate::process::{self, RunOptions, Status};
use crate::ui::Event;

/// Exit code by which a hook asks for a reboot.
pub const REBOOT_EXIT_CODE: i32 = 100;

pub use crate::model::hooks::Phase;

#[derive(Debug, Clone, Serialize)]
pub struct Hook {
    pub name: String,
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub reason: String,
}

/// NB: a file name need not be UTF-8; JSON must be, so such a path is written lossily.
fn lossy<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// What a phase's directories hold: the hooks that run, in order, and the rest with the reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HookSet {
    pub run: Vec<Hook>,
    pub skipped: Vec<Skipped>,
    /// Hooks that are refused for their ownership or mode (running as root).
    pub refused: Vec<Skipped>,
}

impl HookSet {
    /// Fails when any hook is refused; the message names each file and its mode.
    pub fn ensure_safe(&self) -> Result<(), UpgradeError> {
        if self.refused.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self
            .refused
            .iter()
            .map(|r| format!("`{}`: {}", r.path.display(), r.reason))
            .collect();
        Err(UpgradeError::step(
            format!("refusing to run unsafe hooks: {}", list.join("; ")),
            "a hook and its directory must be owned by root and not writable by group or others \
             (chown root:root, chmod go-w), then run `upgrade` again",
        ))
    }
}

/// Lists the hooks of `phase` under `paths`, vendor and admin merged (SPEC §6).
pub fn discover(paths: &Paths, phase: Phase, superuser: bool) -> Result<HookSet> {
    let vendor = paths.vendor_share.join(phase.dir_name());
    let admin = paths.admin_etc.join(phase.dir_name());
    // NB: BTreeMap<String> iterates in byte order, which is run-parts' order (LC_ALL=C).
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for dir in [&vendor, &admin] {
        // NB: the directory is checked once, not once per hook: a phase may hold a thousand.
        let dir_problem = match superuser {
            true => fs::metadata(dir).ok().and_then(|m| unsafe_owner(dir, &m)),
            false => None,
        };
        for (name, path, is_symlink) in read_dir(dir)? {
            // the admin's file replaces the vendor's
            entries.insert(
                name,
                Entry {
                    path,
                    is_symlink,
                    dir_problem: dir_problem.clone(),
                },
            );
        }
    }
    let mut set = HookSet::default();
    for (name, entry) in entries {
        let Entry {
            path,
            is_symlink,
            dir_problem,
        } = entry;
        let skip = |reason: &str| Skipped {
            name: name.clone(),
            path: path.clone(),
            reason: reason.into(),
        };
        if !valid_name(&name) {
            set.skipped.push(skip(
                "name is not a run-parts name ([A-Za-z0-9_-]+); leftovers never run",
            ));
            continue;
        }
        if is_symlink && fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null")) {
            set.skipped.push(skip("masked (symlink to /dev/null)"));
            continue;
        }
        // NB: under `--root`, an absolute link names a file of the root, not of the host: it is
        // resolved there, and the hook runs as the file it resolves to.
        let path = match is_symlink {
            true => match resolve_in_root(&paths.root, &path) {
                Ok(resolved) => resolved,
                Err(e) => {
                    set.skipped.push(skip(&format!("cannot be read: {e}")));
                    continue;
                }
            },
            false => path,
        };
        let skip = |reason: &str| Skipped {
            name: name.clone(),
            path: path.clone(),
            reason: reason.into(),
        };
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                set.skipped.push(skip(&format!("cannot be read: {e}")));
                continue;
            }
        };
        if !meta.is_file() {
            set.skipped.push(skip("not a regular file"));
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            set.skipped.push(skip("not executable"));
            continue;
        }
        if superuser && let Some(reason) = unsafe_owner(&path, &meta).or(dir_problem) {
            set.refused.push(skip(&reason));
            continue;
        }
        set.run.push(Hook { name, path });
    }
    Ok(set)
}

/// Follows the symlink `link` (and the links it leads to) with absolute targets taken inside
/// `root`.
fn resolve_in_root(root: &Path, link: &Path) -> io::Result<PathBuf> {
    let mut path = link.to_path_buf();
    // NB: bounded like the kernel's own limit on nested links
    for _ in 0..40 {
        let target = match fs::read_link(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(path), // not a link
            Err(e) => return Err(e),
        };
        path = match target.strip_prefix("/") {
            Ok(inside) => root.join(inside),
            Err(_) => path.parent().unwrap_or(root).join(target),
        };
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

struct Entry {
    path: PathBuf,
    is_symlink: bool,
    dir_problem: Option<String>,
}

/// (name, path, is a symlink) of every entry; the type comes from the directory itself.
fn read_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let iter = match fs::read_dir(dir) {
        Ok(iter) => iter,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", dir.display())),
    };
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_symlink = entry.file_type().is_ok_and(|t| t.is_symlink());
        out.push((name, entry.path(), is_symlink));
    }
    Ok(out)
}

/// run-parts' default name filter: `^[A-Za-z0-9_-]+$`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn unsafe_owner(path: &Path, meta: &fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != 0 {
        Some(format!(
            "`{}` is owned by uid {}, not root (mode {mode:04o})",
            path.display(),
            meta.uid()
        ))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "`{}` is writable by group or others (mode {mode:04o})",
            path.display()
        ))
    } else {
        None
    }
}

/// The environment every hook of a run gets (SPEC §6).
#[derive(Debug, Clone)]
pub struct HookEnv {
    pub phase: Phase,
    pub action: Action,
    pub from: Option<String>,
    pub to: String,
    pub resumed: bool,
    pub root: PathBuf,
    pub run_id: i64,
    /// More variables (`UPGRADE_DATABASE_URL` for data migrations).
    pub extra: Vec<(&'static str, String)>,
}

impl HookEnv {
    /// How the process runner starts `program` with this environment: in the root, bounded by
    /// `timeout`, keeping the last lines for a failure's message.
    pub fn options(&self, program: &Path, timeout: Duration) -> RunOptions {
        RunOptions {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: self.vars(),
            cwd: self.root.clone(),
            timeout,
            keep_lines: LAST_LINES,
            interruptible: true,
        }
    }

    /// The whole environment of a hook: what it inherits, then the variables of the run.
    pub fn vars(&self) -> Vec<(OsString, OsString)> {
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        let mut vars = vec![
            ("UPGRADE_PHASE", self.phase.as_str().into()),
            ("UPGRADE_ACTION", self.action.as_str().into()),
            (
                "UPGRADE_FROM_VERSION",
                self.from.clone().unwrap_or_default(),
            ),
            ("UPGRADE_TO_VERSION", self.to.clone()),
            ("UPGRADE_FRESH_INSTALL", flag(self.from.is_none())),
            ("UPGRADE_RESUMED", flag(self.resumed)),
            ("UPGRADE_ROOT", self.root.display().to_string()),
            ("UPGRADE_RUN_ID", self.run_id.to_string()),
        ];
        vars.extend(self.extra.iter().cloned());
        let mut env = process::inherited_env();
        env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        env
    }
}

/// What an uninstall's hooks learn of it (SPEC §14), so that they leave alone what it keeps:
/// `UPGRADE_PURGE` (0|1), `UPGRADE_KEEP_PATHS` (`:`-separated), `UPGRADE_KEEP_USERS` and
/// `UPGRADE_KEEP_GROUPS` (space-separated).
fn uninstall_env(plan: &crate::model::plan::UninstallPlan) -> Vec<(&'static str, String)> {
    let names = |kind: &str| -> String {
        let names: Vec<&str> = plan
            .left_behind
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.name.as_str())
            .collect();
        names.join(" ")
    };
    let paths: Vec<String> = plan.keep.iter().map(|p| p.display().to_string()).collect();
    vec![
        (
            "UPGRADE_PURGE",
            if plan.purges() { "1" } else { "0" }.into(),
        ),
        ("UPGRADE_KEEP_PATHS", paths.join(":")),
        ("UPGRADE_KEEP_USERS", names("user")),
        ("UPGRADE_KEEP_GROUPS", names("group")),
    ]
}

/// How a hook that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    Succeeded,
    RebootRequested,
}

/// How many of its last lines a failed hook's error shows.
const LAST_LINES: usize = 10;

/// Runs one hook to completion; `on_line` receives every line it prints (stdout and stderr).
pub fn run(
    hook: &Hook,
    env: &HookEnv,
    timeout: Duration,
    on_line: &mut dyn FnMut(&str),
) -> Result<HookOutcome> {
    run_program(&hook.path, &hook.name, env, timeout, on_line)
}

/// [`run`] for an executable that follows the hook rules but is not a hook of a phase (an
/// executable data migration): `name` labels its output and its failure.
pub fn run_program(
    path: &Path,
    name: &str,
    env: &HookEnv,
    timeout: Duration,
    on_line: &mut dyn FnMut(&str),
) -> Result<HookOutcome> {
    let finished = process::run(&env.options(path, timeout), on_line)?;
    match finished.status {
        Status::Exited(0) => Ok(HookOutcome::Succeeded),
        Status::Exited(REBOOT_EXIT_CODE) => Ok(HookOutcome::RebootRequested),
        status => Err(UpgradeError::HookFailed {
            name: name.to_string(),
            status,
            last_lines: finished.last_lines,
        }
        .into()),
    }
}

/// The hooks of `planned` as they are on disk now: fails naming a planned hook that is gone,
/// refused, or resolves to another file than when planned; returns the hooks to run, in the
/// plan's order, and the names of hooks that appeared since (not run).
pub fn as_planned<'s>(
    set: &'s HookSet,
    planned: &[PlannedHook],
    phase: Phase,
) -> Result<(Vec<&'s Hook>, Vec<&'s str>), UpgradeError> {
    let mut run = Vec::with_capacity(planned.len());
    for p in planned {
        let what = || format!("{} hook `{}`", phase.as_str(), p.name);
        // NB: hooks are sorted by name: a binary search, not a scan per hook.
        let found = set
            .run
            .binary_search_by(|h| h.name.as_bytes().cmp(p.name.as_bytes()))
            .ok()
            .map(|i| &set.run[i]);
        match (found, &p.path) {
            (None, _) => {
                return Err(UpgradeError::PlanChanged {
                    what: what(),
                    change: format!("is no longer in `{}`", phase.dir_name()),
                });
            }
            (Some(h), Some(path)) if h.path != *path => {
                return Err(UpgradeError::PlanChanged {
                    what: what(),
                    change: format!(
                        "resolves to `{}` instead of `{}`",
                        h.path.display(),
                        path.display()
                    ),
                });
            }
            (Some(h), _) => run.push(h),
        }
    }
    let names: std::collections::HashSet<&str> = planned.iter().map(|p| p.name.as_str()).collect();
    let unplanned = set
        .run
        .iter()
        .map(|h| h.name.as_str())
        .filter(|n| !names.contains(n))
        .collect();
    Ok((run, unplanned))
}

/// The pre or post hooks step of hop `index`: the planned hooks, each journaled as it ends, a
/// resumed run skipping those done; exit 100 stops the run for a reboot (SPEC §6).
pub fn run_phase(
    cx: &mut StepContext<'_, '_>,
    index: usize,
    hop: &Hop,
    phase: Phase,
) -> Result<()> {
    let (planned, step) = match phase {
        Phase::Pre => (&hop.hooks.pre, HopStep::PreHooks),
        _ => (&hop.hooks.post, HopStep::PostHooks),
    };
    let set = discover(cx.paths, phase, cx.ctx.superuser)?;
    set.ensure_safe()?;
    let (hooks, unplanned) = as_planned(&set, planned, phase)?;
    for name in unplanned {
        tracing::warn!(
            hook = name,
            "hook appeared after the plan was made; not run"
        );
        cx.ui.event(Event::HookNotPlanned { phase, name });
    }
    let env = HookEnv {
        phase,
        action: cx.action,
        from: hop.from.clone(),
        to: hop.to.clone(),
        resumed: cx.resumed,
        root: cx.ctx.root.clone(),
        run_id: cx.run_id(),
        extra: hop
            .uninstall
            .as_ref()
            .map(uninstall_env)
            .unwrap_or_default(),
    };
    let keys: Vec<JournalKey> = hooks
        .iter()
        .map(|h| JournalKey::hook(index, phase.as_str(), &h.name))
        .collect();
    for (hook, key) in hooks.iter().zip(&keys) {
        let name = hook.name.as_str();
        if cx.journal.is_done(key) {
            cx.ui.event(Event::HookAlreadyDone { phase, name });
            continue;
        }
        cx.ui.event(Event::HookStarted { phase, name });
        // NB: its lines carry its name as a span's field (UPGRADE_HOOK in the journal)
        let _span = tracing::info_span!("hook", hook = %name).entered();
        tracing::info!("hook started");
        let ui = cx.ui;
        let outcome = run(hook, &env, cx.config.hooks.timeout, &mut |line| {
            tracing::info!("{line}");
            ui.event(Event::HookLine { name, line });
        })?;
        cx.journal.mark_hook(key)?;
        if outcome == HookOutcome::RebootRequested {
            tracing::warn!("hook requested a reboot");
        } else {
            tracing::info!("hook done");
        }
        if outcome == HookOutcome::RebootRequested {
            cx.journal.sync_hooks()?;
            cx.ui.event(Event::HookRebootRequested { name });
            return Err(UpgradeError::RebootRequired {
                hook: hook.name.clone(),
            }
            .into());
        }
    }
    cx.journal.mark_phase(&Step::Hop(index, step).key(), &keys)
}
