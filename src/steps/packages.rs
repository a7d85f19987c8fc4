//! The package backends: what the root's rpm database holds, and one transaction per hop —
//! `rpm -U` of our verified artifacts, or `dnf install` of them and the prerequisites into the
//! root (`--installroot`), so dependencies come from the system's own repositories.
//!
//! NB: rpm exits 0 when a `%post` scriptlet fails, so its output is read for `scriptlet failed`;
//! it also reports the config files it did not overwrite (`.rpmnew`) or moved aside
//! (`.rpmsave`), which the run passes on to the operator.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::StepContext;
use crate::config::PackageBackend;
use crate::error::UpgradeError;
use crate::host::{DBPATH, rpm};
use crate::model::journal::JournalKey;
use crate::model::plan::{Hop, HopStep, PackageOp, Step};
use crate::model::rpm::{InstalledPackage, RpmDb};
use crate::repo::fetch;
use crate::ui::Event;

/// Erases the copies of the hop's packages that an interrupted `rpm -U` left installed beside
/// the ones it installed (rpm adds the new header before it erases the old one), as the
/// transaction would have; returns them as `name-evr.arch`. For a package the hop `downgraded`
/// (a rollback's `--oldpackage`), the copy left is the newer one.
///
/// NB: a kill of rpm between the two leaves both versions in the database; the resumed run sees
/// the one it wants and skips the transaction, so without this the other header stayed for good.
pub fn erase_interrupted<'a>(
    root: &Path,
    db: &RpmDb,
    artifacts: impl Iterator<Item = &'a crate::model::catalog::Artifact>,
    downgraded: &HashSet<&str>,
) -> Result<Vec<String>> {
    use crate::model::version::compare_evr;
    let mut stale = Vec::new();
    for a in artifacts {
        let Some(installed) = db.packages.get(&a.name) else {
            continue;
        };
        let same_arch: Vec<&InstalledPackage> =
            installed.iter().filter(|p| p.arch == a.arch).collect();
        // the copy the transaction installed, if it got that far
        let kept = match downgraded.contains(a.name.as_str()) {
            true => same_arch.iter().find(|p| p.evr == a.evr),
            false => same_arch
                .iter()
                .max_by(|x, y| compare_evr(&x.evr, &y.evr))
                .filter(|n| compare_evr(&n.evr, &a.evr).is_ge()),
        };
        let Some(kept) = kept else {
            continue;
        };
        stale.extend(
            same_arch
                .iter()
                .filter(|p| p.evr != kept.evr)
                .map(|p| format!("{}-{}.{}", a.name, p.evr, p.arch)),
        );
    }
    erase_stale(root, stale)
}

/// Erases `stale` (`name-evr.arch`), what an interrupted transaction left; returns it.
fn erase_stale(root: &Path, stale: Vec<String>) -> Result<Vec<String>> {
    if stale.is_empty() {
        return Ok(stale);
    }
    tracing::warn!(packages = ?stale, "erasing what an interrupted rpm transaction left behind");
    let mut cmd = rpm(root);
    cmd.arg("-e").arg("--nodeps").args(&stale);
    let output = crate::process::output_holding_run_lock(&mut cmd)
        .context("failed to run `rpm -e`; is rpm installed?")?;
    transaction("rpm -e", output, &[])?;
    Ok(stale)
}

/// Removes the staged files (`PATH;XXXXXXXX`) an rpm killed while unpacking `files` left beside
/// their paths under `root`; returns how many. rpm opens them exclusively, so without this the
/// transaction redone after the kill fails with `cpio: open failed - File exists`.
pub fn remove_staged(root: &Path, files: &[PathBuf]) -> Result<usize> {
    let mut removed = 0;
    for file in files {
        let meta = rpm::PackageMetadata::open(file)
            .map_err(|e| anyhow::anyhow!("failed to read RPM package `{}`: {e}", file.display()))?;
        let paths = meta.get_file_paths().map_err(|e| {
            anyhow::anyhow!("failed to list the files of `{}`: {e}", file.display())
        })?;
        for path in paths {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let dir = root.join(dir.strip_prefix("/").unwrap_or(dir));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let prefix = format!("{};", name.to_string_lossy());
            for entry in entries.flatten() {
                let entry_name = entry.file_name();
                let entry_name = entry_name.to_string_lossy();
                let staged = entry_name.strip_prefix(&prefix).is_some_and(|suffix| {
                    suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if staged {
                    let path = entry.path();
                    std::fs::remove_file(&path)
                        .with_context(|| format!("failed to remove `{}`", path.display()))?;
                    tracing::warn!(path = %path.display(), "removed a file an interrupted rpm left");
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// What one transaction did besides installing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransactionReport {
    /// Config files rpm left beside the operator's edited ones (`.rpmnew`) or moved aside
    /// (`.rpmsave`), as the paths rpm printed.
    pub config_files: Vec<String>,
    pub output: Vec<String>,
}

/// Erases every installed build of the packages `names` (the product's packages the hop no
/// longer lists), ignoring dependencies: the hop's install that follows is the other half of
/// the same change.
pub fn erase_dropped(root: &Path, names: &[String]) -> Result<TransactionReport> {
    let mut cmd = rpm(root);
    cmd.args(["-e", "--nodeps", "--allmatches"]).args(names);
    run_rpm(cmd, "rpm -e", "rpm-erase")
}

/// Runs the rpm transaction `cmd` (`what`: `rpm -U`, `rpm -e`) between the fault points
/// `POINT:before` and `POINT:after`.
fn run_rpm(mut cmd: Command, what: &str, point: &str) -> Result<TransactionReport> {
    crate::fault::point!("{point}:before");
    let output = crate::process::output_holding_run_lock(&mut cmd)
        .with_context(|| format!("failed to run `{what}`; is rpm installed?"))?;
    crate::fault::point!("{point}:after");
    transaction(what, output, &[])
}

/// A problem a test transaction found (`rpm -U --test`, `rpm -e --test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestProblem {
    /// `path` of the package being installed (`name-evr.arch`) is also `installed`'s.
    ConflictsInstalled {
        path: String,
        package: String,
        installed: String,
    },
    /// Two packages of the transaction carry different files at `path`.
    ConflictsBetween {
        path: String,
        package: String,
        other: String,
    },
    /// `package` (`name-evr.arch`) needs `capability`, which the transaction takes away; an
    /// `installed` package, or one the transaction installs.
    NeededBy {
        capability: String,
        package: String,
        installed: bool,
    },
    /// `package` (`name-evr.arch`) is installed already.
    AlreadyInstalled { package: String },
    /// Anything else rpm reported (disk space, an installed newer build…), as it said it.
    Other(String),
}

/// `rpm -U --test --nodeps` of `files` against the root's database: the problems rpm reports,
/// changing nothing. Dependencies are not tested: prerequisites from the system's repositories
/// and earlier hops of the plan are not there yet.
pub fn test_install(root: &Path, files: &[PathBuf]) -> Result<Vec<TestProblem>> {
    let mut cmd = rpm(root);
    cmd.args(["-U", "--test", "--nodeps"])
        .args(files.iter().map(|f| OsString::from(f.as_os_str())));
    test_transaction(cmd, "rpm -U --test", root)
}

/// `rpm -e --test` of every installed build of `names`: what needs them, changing nothing.
pub fn test_erase(root: &Path, names: &[String]) -> Result<Vec<TestProblem>> {
    let mut cmd = rpm(root);
    cmd.args(["-e", "--test", "--allmatches"]).args(names);
    test_transaction(cmd, "rpm -e --test", root)
}

/// Runs the test transaction `cmd` (`what`) and reads its problems.
fn test_transaction(mut cmd: Command, what: &str, root: &Path) -> Result<Vec<TestProblem>> {
    let output = cmd
        .output()
        .with_context(|| format!("failed to run `{what}`; is rpm installed?"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    // NB: rpm prints each problem on a line of its own, indented by a tab
    let problems: Vec<TestProblem> = text
        .lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .map(test_problem)
        .collect();
    if !output.status.success() && problems.is_empty() {
        return Err(UpgradeError::step(
            format!(
                "`{what}` on root `{}` failed ({}): {}",
                root.display(),
                output.status,
                text.trim()
            ),
            "check the rpm database with `rpm --root ROOT --dbpath /var/lib/rpm -qa`",
        )
        .into());
    }
    Ok(problems)
}

/// The packages of `files` that require one of `removed` by name while neither `files` nor
/// another installed package provides it: what the transaction of a hop that removes `removed`
/// would refuse, read from the package headers (`rpm -U --test` cannot tell: the removed
/// packages are still installed).
pub fn requiring(root: &Path, files: &[PathBuf], removed: &[&str]) -> Result<Vec<TestProblem>> {
    let mut provided = std::collections::HashSet::new();
    let mut requires = Vec::new();
    for file in files {
        let meta = rpm::PackageMetadata::open(file)
            .map_err(|e| anyhow::anyhow!("failed to read RPM package `{}`: {e}", file.display()))?;
        let header = |e: rpm::Error| {
            anyhow::anyhow!("failed to read the header of `{}`: {e}", file.display())
        };
        let identity = crate::host::package_identity(file)?;
        provided.insert(identity.name.clone());
        provided.extend(
            meta.get_provides()
                .map_err(header)?
                .into_iter()
                .map(|d| d.name),
        );
        for d in meta.get_requires().map_err(header)? {
            if removed.contains(&d.name.as_str()) {
                requires.push((d.name, identity.nevra()));
            }
        }
    }
    let mut unmet = Vec::new();
    for (capability, package) in requires {
        if provided.contains(&capability) {
            continue;
        }
        let output = rpm(root)
            .args(["-q", "--whatprovides", &capability, "--qf", "%{NAME}\n"])
            .output()
            .context("failed to run `rpm -q --whatprovides`; is rpm installed?")?;
        let stays = output.status.success()
            && String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|name| !removed.contains(&name));
        if !stays {
            unmet.push((capability, package));
        }
    }
    Ok(unmet
        .into_iter()
        .map(|(capability, package)| TestProblem::NeededBy {
            capability,
            package,
            installed: false,
        })
        .collect())
}

/// One problem line of `rpm -U --test`, without its tab.
fn test_problem(line: &str) -> TestProblem {
    let conflict = || {
        let rest = line.strip_prefix("file ")?;
        if let Some((path, rest)) = rest.split_once(" from install of ") {
            let (package, installed) = rest.split_once(" conflicts with file from package ")?;
            return Some(TestProblem::ConflictsInstalled {
                path: path.into(),
                package: package.into(),
                installed: installed.into(),
            });
        }
        let (path, rest) = rest.split_once(" conflicts between attempted installs of ")?;
        let (package, other) = rest.split_once(" and ")?;
        Some(TestProblem::ConflictsBetween {
            path: path.into(),
            package: package.into(),
            other: other.into(),
        })
    };
    if let Some(package) = line
        .strip_prefix("package ")
        .and_then(|rest| rest.strip_suffix(" is already installed"))
    {
        return TestProblem::AlreadyInstalled {
            package: package.into(),
        };
    }
    if let Some((capability, package)) = line.split_once(" is needed by ") {
        let (package, installed) = match package.strip_prefix("(installed) ") {
            Some(p) => (p, true),
            None => (package, false),
        };
        return TestProblem::NeededBy {
            capability: capability.into(),
            package: package.into(),
            installed,
        };
    }
    conflict().unwrap_or_else(|| TestProblem::Other(line.trim().to_string()))
}

/// `name` of rpm's `name-[epoch:]version-release.arch`.
pub fn nevra_name(nevra: &str) -> &str {
    let nvr = nevra.rsplit_once('.').map_or(nevra, |(nvr, _)| nvr);
    let mut parts = nvr.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(name)) => name,
        _ => nevra,
    }
}

/// Installs or upgrades `files` into `root` in one `rpm -U` transaction.
pub fn install(root: &Path, files: &[PathBuf]) -> Result<TransactionReport> {
    install_again(root, files, Attempt::First, false)
}

/// Whether a transaction is done for the first time, or again after one that began and did not
/// finish (then files whose package is installed already are installed again, `--replacepkgs`,
/// running their scriptlets again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    First,
    Again,
}

/// [`install`], as the `attempt` of this transaction.
pub fn install_again(
    root: &Path,
    files: &[PathBuf],
    attempt: Attempt,
    older: bool,
) -> Result<TransactionReport> {
    let mut cmd = rpm(root);
    cmd.arg("-U");
    if older {
        // a rollback: back to the builds of its restore point
        cmd.arg("--oldpackage");
    }
    if attempt == Attempt::Again {
        cmd.arg("--replacepkgs");
    }
    cmd.args(files.iter().map(|f| OsString::from(f.as_os_str())));
    run_rpm(cmd, "rpm -U", "rpm")
}

/// How dnf reaches the system's repositories (`[packages]` in `upgrade.toml`).
#[derive(Debug, Clone, Default)]
pub struct DnfOptions {
    /// Base URLs of the system's repositories (`file:///srv/os-repo`, `https://…`).
    pub repos: Vec<String>,
    pub gpgcheck: bool,
    pub releasever: Option<String>,
}

/// Installs `files` (verified artifacts) and `specs` (`name >= version` of prerequisites the
/// repository does not ship) into `root` in one `dnf install` transaction; dependencies are
/// resolved from the configured system repositories only.
pub fn dnf_install(
    root: &Path,
    files: &[PathBuf],
    specs: &[String],
    opts: &DnfOptions,
) -> Result<TransactionReport> {
    let mut cmd = Command::new("dnf");
    // NB: out of the terminal's process group, as rpm (`host::rpm`): never cut by a Ctrl-C.
    cmd.process_group(0);
    cmd.arg("install")
        .args(["-y", "--noplugins", "--setopt=install_weak_deps=False"])
        .arg("--installroot")
        .arg(root)
        // NB: only the configured repositories: none from the host's or the root's reposdir.
        .arg("--setopt=reposdir=/nonexistent/upgrade-no-reposdir")
        .arg("--setopt=skip_if_unavailable=False");
    for (i, url) in opts.repos.iter().enumerate() {
        cmd.arg(format!("--repofrompath=upgrade-system-{i},{url}"));
    }
    if let Some(releasever) = &opts.releasever {
        cmd.arg("--releasever").arg(releasever);
    }
    if !opts.gpgcheck {
        cmd.arg("--nogpgcheck");
    }
    if Path::new("/etc/debian_version").exists() {
        // NB: Debian's librpm keeps its database in `~/.rpmdb`; inside the root that would be
        // `/root/.rpmdb`, invisible to `rpm --dbpath /var/lib/rpm`. A HOME whose `.rpmmacros`
        // sets the standard path makes dnf's transaction use the root's real database.
        let home = root.join("var/lib/upgrade/dnf-home");
        std::fs::create_dir_all(&home)
            .with_context(|| format!("failed to create `{}`", home.display()))?;
        let macros = home.join(".rpmmacros");
        std::fs::write(&macros, format!("%_dbpath {DBPATH}\n"))
            .with_context(|| format!("failed to write `{}`", macros.display()))?;
        cmd.env("HOME", &home);
    }
    cmd.arg("--")
        .args(files.iter().map(|f| OsString::from(f.as_os_str())))
        .args(specs);
    let output = crate::process::output_holding_run_lock(&mut cmd)
        .context("failed to run `dnf install`; is dnf installed?")?;
    transaction("dnf", output, specs)
}

/// Reads a finished transaction's output; `specs` are the prerequisites asked of dnf by name.
fn transaction(
    tool: &str,
    output: std::process::Output,
    specs: &[String],
) -> Result<TransactionReport> {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let report = TransactionReport {
        config_files: lines.iter().filter_map(|l| config_file(l)).collect(),
        output: lines.clone(),
    };
    let tail = || {
        lines
            .iter()
            .rev()
            .take(8)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    if !output.status.success() {
        let missing: Vec<&String> = specs
            .iter()
            .filter(|s| {
                let name = s.split_whitespace().next().unwrap_or(s);
                lines
                    .iter()
                    .any(|l| l.contains("No match for argument") && l.contains(name))
                    || lines
                        .iter()
                        .any(|l| l.contains("nothing provides") && l.contains(name))
            })
            .collect();
        let hint = if missing.is_empty() {
            format!("fix the cause {tool} names, then run `upgrade` again to resume at this step")
        } else {
            let needed: Vec<String> = missing.iter().map(|s| format!("`{s}`")).collect();
            format!(
                "no configured source has {}; add a repository that does to `repos` under \
                 `[packages]`, then run `upgrade` again to resume at this step",
                needed.join(", ")
            )
        };
        return Err(UpgradeError::step(
            format!(
                "the {tool} transaction failed ({}):\n  {}",
                output.status,
                tail()
            ),
            hint,
        )
        .into());
    }
    if let Some(line) = lines.iter().find(|l| scriptlet_failed(l)) {
        return Err(UpgradeError::step(
            format!("a package scriptlet failed although rpm exited 0: {line}"),
            "the packages are installed but their scriptlet did not finish; repair what it \
             reports, then run `upgrade` again",
        )
        .into());
    }
    Ok(report)
}

/// `warning: %post(p-1-1.x86_64) scriptlet failed, exit status 1` (shell scriptlets) or
/// `error: lua script failed: …` (rpm's embedded Lua).
fn scriptlet_failed(line: &str) -> bool {
    line.contains("scriptlet failed")
        || line.starts_with("error: lua script failed")
        || line.contains("scriptlet failure in rpm package") // dnf: `Non-fatal POSTIN scriptlet failure…`
}

/// `warning: /etc/x created as /etc/x.rpmnew` / `warning: /etc/x saved as /etc/x.rpmsave`.
fn config_file(line: &str) -> Option<String> {
    let rest = line.strip_prefix("warning: ")?;
    let (_, new) = rest
        .split_once(" created as ")
        .or_else(|| rest.split_once(" saved as "))?;
    Some(new.trim().to_string())
}

/// The packages step of a hop: the erase of the product's packages the release no longer lists,
/// then one transaction of what the hop installs or upgrades. A resumed run erases only what is
/// still installed, skips what is installed already, erases the old copies an interrupted
/// `rpm -U` left beside the new ones, and does again a transaction that began and did not finish.
///
/// NB: rpm's command line cannot erase and install in one transaction, so the dropped packages
/// are erased (`rpm -e --nodeps`) right before the `rpm -U`: a package renamed without
/// `Obsoletes` ships the same files as the one it replaces, which would conflict if both were
/// installed at once. The step is journaled as begun before the erase and done only after the
/// install; a kill between the two resumes with the erase done (nothing is left to erase) and
/// redoes the install. Conflicts with anything else were tested after the download
/// ([`crate::check::transactions`]), before anything changed.
pub fn run_hop(cx: &mut StepContext<'_, '_>, index: usize, hop: &Hop) -> Result<()> {
    let key = Step::Hop(index, HopStep::Packages).key();
    let dnf = cx.config.packages.backend == PackageBackend::Dnf;
    let begun = key.begun();
    let interrupted = !dnf && cx.journal.is_done(&begun);
    // NB: what rpm holds matters only when part of this hop may be installed already (a
    // transaction began), when dnf chooses prerequisites, or when the hop erases (what is still
    // installed); otherwise the plan says it all, and the run reads the rpm database once, when
    // it plans.
    let downgraded: HashSet<&str> = hop
        .packages
        .iter()
        .filter(|p| p.op == PackageOp::Downgrade)
        .map(|p| p.name.as_str())
        .collect();
    let query = dnf || interrupted || hop.removals().next().is_some() || !downgraded.is_empty();
    let mut db = RpmDb::default();
    if query {
        db = crate::host::installed_packages(&cx.ctx.root)?;
        if !erase_interrupted(&cx.ctx.root, &db, hop.artifacts(), &downgraded)?.is_empty() {
            db = crate::host::installed_packages(&cx.ctx.root)?;
        }
    }
    let erase: Vec<String> = hop
        .removals()
        .filter(|name| db.packages.contains_key(*name))
        .map(str::to_string)
        .collect();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut already = Vec::new();
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
            let order = crate::model::version::compare_evr(&p.evr, &a.evr);
            if downgraded.contains(a.name.as_str()) {
                return order.is_eq() && !interrupted;
            }
            // NB: rpm cut inside its transaction may have installed a package without running its
            // %post (no rollback): a transaction that began and did not finish is done again.
            order.is_gt() || (order.is_eq() && !interrupted)
        });
        if present {
            already.push(a.nevra());
            continue;
        }
        let cached = fetch::cache_path(&cx.paths.cache, a);
        match cx.verified.contains(&cached) {
            true => files.push(cached),
            false => files.push(fetch::fetch(cx.repo, a, &cx.paths.cache)?),
        }
    }
    if !already.is_empty() {
        cx.ui
            .event(Event::PackagesAlreadyInstalled { names: already });
    }
    let mut detail = None;
    let install = !files.is_empty() || !specs.is_empty();
    if install || !erase.is_empty() {
        if !dnf {
            cx.journal.mark(&begun, None)?;
        }
        // NB: each transaction's output is shown as soon as it ends: an `.rpmsave` the erase
        // made is told also when the install then fails
        let mut config_files = Vec::new();
        if !erase.is_empty() {
            cx.ui.event(Event::PackagesErasing {
                names: erase.clone(),
                uninstall: cx.action == crate::model::plan::Action::Uninstall,
            });
            let report = erase_dropped(&cx.ctx.root, &erase)?;
            config_files.extend(show(cx, &key, report));
        }
        if install {
            cx.ui.event(Event::Transaction {
                files: files.len() + specs.len(),
            });
            let report = match dnf {
                true => dnf_install(&cx.ctx.root, &files, &specs, &dnf_options(cx)?)?,
                false => {
                    if interrupted {
                        remove_staged(&cx.ctx.root, &files)?;
                    }
                    let attempt = match interrupted {
                        true => Attempt::Again,
                        false => Attempt::First,
                    };
                    let older = !downgraded.is_empty();
                    install_again(&cx.ctx.root, &files, attempt, older)?
                }
            };
            config_files.extend(show(cx, &key, report));
        }
        detail = Some(serde_json::to_string(&config_files)?);
        cx.config_files.extend(config_files);
    }
    cx.journal.mark(&key, detail.as_deref())
}

/// Shows what a transaction of step `key` printed and the config files it set aside; returns
/// those files.
fn show(cx: &StepContext<'_, '_>, key: &JournalKey, report: TransactionReport) -> Vec<String> {
    for line in &report.output {
        tracing::info!(step = %key, "rpm: {line}");
        cx.ui.event(Event::PackageOutput { line });
    }
    // NB: a rollback's restore-data step puts the restore point's files back and removes the
    // `.rpmnew`/`.rpmsave` files the restore point did not have: nothing to merge by hand
    if cx.action == crate::model::plan::Action::Rollback {
        for path in &report.config_files {
            tracing::info!(path = %path, "config file set aside; the restore point's is put back");
        }
        return Vec::new();
    }
    for path in &report.config_files {
        tracing::warn!(path = %path, "config file kept beside the packaged one");
        cx.ui.event(Event::ConfigFileKept { path });
    }
    report.config_files
}

fn dnf_options(cx: &StepContext<'_, '_>) -> Result<DnfOptions> {
    let p = &cx.config.packages;
    let releasever = match &p.releasever {
        Some(v) => Some(v.clone()),
        None => crate::host::os_release(&cx.ctx.root)?.remove("VERSION_ID"),
    };
    Ok(DnfOptions {
        repos: p.repos.clone(),
        gpgcheck: p.gpgcheck,
        releasever,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_file_lines() {
        assert_eq!(
            super::config_file("warning: /etc/demo/a.conf created as /etc/demo/a.conf.rpmnew"),
            Some("/etc/demo/a.conf.rpmnew".into())
        );
        assert_eq!(
            super::config_file("warning: /etc/b saved as /etc/b.rpmsave"),
            Some("/etc/b.rpmsave".into())
        );
        assert_eq!(super::config_file("Preparing..."), None);
    }

    #[test]
    fn test_transaction_lines() {
        use super::TestProblem;
        assert_eq!(
            super::test_problem(
                "file /opt/a b from install of new-3:1.0-1.noarch conflicts with file from \
                 package os-tool-1.0-1.el9.x86_64"
            ),
            TestProblem::ConflictsInstalled {
                path: "/opt/a b".into(),
                package: "new-3:1.0-1.noarch".into(),
                installed: "os-tool-1.0-1.el9.x86_64".into(),
            }
        );
        assert_eq!(
            super::test_problem(
                "file /opt/x conflicts between attempted installs of a-1-1.noarch and b-2-1.noarch"
            ),
            TestProblem::ConflictsBetween {
                path: "/opt/x".into(),
                package: "a-1-1.noarch".into(),
                other: "b-2-1.noarch".into(),
            }
        );
        assert_eq!(
            super::test_problem("demo-legacy is needed by (installed) tool-1-1.noarch"),
            TestProblem::NeededBy {
                capability: "demo-legacy".into(),
                package: "tool-1-1.noarch".into(),
                installed: true,
            }
        );
        assert_eq!(
            super::test_problem("package a-1-1.noarch is already installed"),
            TestProblem::AlreadyInstalled {
                package: "a-1-1.noarch".into()
            }
        );
        assert_eq!(
            super::test_problem("installing package a-1-1.noarch needs 2MB more space"),
            TestProblem::Other("installing package a-1-1.noarch needs 2MB more space".into())
        );
        assert_eq!(super::nevra_name("os-tool-1.0-1.el9.x86_64"), "os-tool");
        assert_eq!(super::nevra_name("new-3:1.0-1.noarch"), "new");
    }

    #[test]
    fn scriptlet_failure_lines() {
        assert!(super::scriptlet_failed(
            "warning: %post(demo-1-1.x86_64) scriptlet failed, exit status 1"
        ));
        assert!(super::scriptlet_failed(
            "error: %prein(demo-1-1.x86_64) scriptlet failed, exit status 2"
        ));
        assert!(super::scriptlet_failed(
            "error: lua script failed: [string \"%post(x)\"]:1: boom"
        ));
        assert!(!super::scriptlet_failed(
            "warning: /etc/a created as /etc/a.rpmnew"
        ));
    }
}
