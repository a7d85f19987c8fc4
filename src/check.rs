//! Preflight checks (SPEC §9): what a release or the administrator requires of the host, all
//! evaluated before anything changes and all reported together, the way `leapp preupgrade` does.
//!
//! Checks are declared in a [`Checks`] table — per release in the index (`[releases.checks]`) and
//! in `upgrade.toml` (`[checks]`) — plus custom check executables in `checks.d/` (vendor and admin
//! directories merged like hooks). [`evaluate`] turns them, with the plan's prerequisite packages,
//! into a [`Report`]: one [`CheckResult`] per stable key, with its status, the measured and the
//! required value and a hint. Any inhibitor stops the upgrade with exit 3; warnings are shown.
//!
//! The declarations, their keys and the `check --json` document are described in the README
//! ("Preflight checks"), the one place an operator reads them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::config::{Config, PackageBackend};
use crate::context::{Context, Paths};
use crate::model::checks::{BITS32, CheckResult, Checks, Report, Severity, Size, Status};
use crate::model::plan::{PackageOp, Plan};
use crate::model::rpm::RpmDb;
use crate::process;
use crate::steps::hooks::{self, HookEnv, Phase};
use crate::steps::packages::{self, TestProblem};
use crate::ui::{Event, Ui};

/// What [`evaluate`] reads.
pub struct PreflightInput<'a> {
    pub root: &'a Path,
    pub paths: &'a Paths,
    pub superuser: bool,
    /// The configuration's `[checks]`.
    pub config: &'a Checks,
    pub plan: &'a Plan,
    /// What the root's rpm database held when the plan was made.
    pub rpmdb: &'a RpmDb,
    /// Prerequisites without a repository build can come from the system's repositories.
    pub system_repositories: bool,
    pub timeout: Duration,
    /// The product's database (`[database] url`), which a restore point saves.
    pub database_url: String,
}

/// Runs every check of the configuration, of each release the plan passes through, the custom
/// checks and the prerequisite policy; changes nothing.
pub fn evaluate(input: &PreflightInput<'_>) -> Result<Report> {
    let host = Host::read(input.root, input.rpmdb)?;
    let mut results = Vec::new();
    let mut declared: Vec<(&Checks, String)> = vec![(input.config, "config".to_string())];
    for hop in &input.plan.hops {
        declared.push((&hop.checks, format!("release {}", hop.to)));
    }
    for (checks, source) in &declared {
        results.extend(evaluate_checks(checks, source, &host));
    }
    results.extend(prerequisites(input));
    results.extend(package_arches(input.plan, &host.arch));
    results.extend(custom_checks(input)?);
    results.extend(restore_point(input));
    // NB: severity overrides are the configuration's: the administrator has the last word.
    for r in &mut results {
        let matches = |list: &[String]| {
            list.iter()
                .any(|k| k == &r.key || (k.ends_with(':') && r.key.starts_with(k.as_str())))
        };
        // the configuration comes first in `declared`, so its lists win over the releases'
        for (checks, _) in &declared {
            if matches(&checks.warnings) {
                r.severity = Severity::Warning;
            } else if matches(&checks.inhibitors) {
                r.severity = Severity::Inhibitor;
            } else {
                continue;
            }
            break;
        }
        if r.status != Status::Passed {
            r.status = match r.severity {
                Severity::Warning => Status::Warning,
                Severity::Inhibitor => Status::Inhibitor,
            };
        }
    }
    Ok(Report { results }.finish())
}

/// What the checks measure on this host and root, read once.
struct Host<'a> {
    root: PathBuf,
    arch: String,
    os_release: Result<BTreeMap<String, String>, String>,
    meminfo: Result<(u64, u64), String>,
    rpmdb: &'a RpmDb,
}

impl<'a> Host<'a> {
    fn read(root: &Path, rpmdb: &'a RpmDb) -> Result<Host<'a>> {
        let os_path = root.join("etc/os-release");
        let os_release = std::fs::read_to_string(&os_path)
            .map(|t| crate::host::parse_os_release(&t))
            .map_err(|e| format!("cannot read `{}`: {e}", os_path.display()));
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| format!("cannot read `/proc/meminfo`: {e}"))
            .and_then(|t| parse_meminfo(&t));
        Ok(Host {
            root: root.to_path_buf(),
            arch: std::env::consts::ARCH.to_string(),
            os_release,
            meminfo,
            rpmdb,
        })
    }
}

/// (MemTotal, SwapTotal) in bytes.
fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("`/proc/meminfo` has no `{name}` line"))
    };
    Ok((field("MemTotal:")?, field("SwapTotal:")?))
}

fn result(key: String, source: &str, severity: Severity) -> CheckResult {
    CheckResult {
        key,
        status: Status::Passed,
        severity,
        measured: String::new(),
        required: String::new(),
        hint: None,
        source: source.to_string(),
        note: None,
    }
}

impl CheckResult {
    fn measured(mut self, m: impl Into<String>, required: impl Into<String>) -> Self {
        self.measured = m.into();
        self.required = required.into();
        self
    }

    /// Marks the check failed with `hint`; [`evaluate`] turns it into a warning or inhibitor.
    fn fail_if(mut self, failed: bool, hint: impl FnOnce() -> String) -> Self {
        if failed {
            self.status = Status::Inhibitor;
            self.hint = Some(hint());
        }
        self
    }
}

fn evaluate_checks(c: &Checks, source: &str, host: &Host<'_>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let inhibitor = |key: &str| result(key.to_string(), source, Severity::Inhibitor);
    if !c.arch.is_empty() {
        out.push(
            inhibitor("arch")
                .measured(&host.arch, c.arch.join(" | "))
                .fail_if(!c.arch.contains(&host.arch), || {
                    format!(
                        "this release runs on {}; move the product to such a machine",
                        c.arch.join(", ")
                    )
                }),
        );
    }
    let os = host.os_release.as_ref();
    if !c.os_id.is_empty() {
        let (measured, ok) = match os {
            Ok(os) => {
                let id = os.get("ID").cloned().unwrap_or_default();
                let like = os.get("ID_LIKE").cloned().unwrap_or_default();
                let ok = c
                    .os_id
                    .iter()
                    .any(|want| *want == id || like.split_whitespace().any(|l| l == want));
                (id, ok)
            }
            Err(e) => (e.clone(), false),
        };
        out.push(
            inhibitor("os-id")
                .measured(measured, c.os_id.join(" | "))
                .fail_if(!ok, || {
                    format!(
                        "this release supports {}; upgrade or reinstall the operating system",
                        c.os_id.join(", ")
                    )
                }),
        );
    }
    if let Some(range) = &c.os_version {
        let (measured, ok) = match os {
            Ok(os) => match os.get("VERSION_ID") {
                Some(v) => (v.clone(), range.contains(v)),
                None => ("no VERSION_ID in /etc/os-release".into(), false),
            },
            Err(e) => (e.clone(), false),
        };
        out.push(
            inhibitor("os-version")
                .measured(measured, range.to_string())
                .fail_if(!ok, || {
                    format!("upgrade the operating system to a version in `{range}` first")
                }),
        );
    }
    for (path, need) in &c.free_space {
        let key = format!("free-space:{path}");
        let r = match free_space(&host.root, path) {
            Ok((avail, at)) => inhibitor(&key)
                .measured(Size(avail).to_string(), format!(">= {need}"))
                .fail_if(avail < need.0, || {
                    format!(
                        "free at least {} on the filesystem holding `{}`",
                        Size(need.0 - avail),
                        at.display()
                    )
                }),
            Err(e) => inhibitor(&key)
                .measured(e, format!(">= {need}"))
                .fail_if(true, || "check that the path exists under the root".into()),
        };
        out.push(r);
    }
    if let Some(need) = c.memory {
        let r = match &host.meminfo {
            Ok((mem, _)) => inhibitor("memory")
                .measured(Size(*mem).to_string(), format!(">= {need}"))
                .fail_if(*mem < need.0, || {
                    format!("this release needs {need} of memory; add memory to the host")
                }),
            Err(e) => inhibitor("memory")
                .measured(e.clone(), format!(">= {need}"))
                .fail_if(true, || "check `/proc/meminfo`".into()),
        };
        out.push(r);
    }
    if let Some(ratio) = c.swap_ratio {
        let warning = result("swap".into(), source, Severity::Warning);
        let r = match &host.meminfo {
            Ok((mem, swap)) => {
                let need = (*mem as f64 * ratio) as u64;
                warning
                    .measured(
                        Size(*swap).to_string(),
                        format!(">= {} ({ratio} × memory)", Size(need)),
                    )
                    .fail_if(*swap < need, || {
                        format!(
                            "add {} of swap (a swap file with mkswap and swapon)",
                            Size(need - swap)
                        )
                    })
            }
            Err(e) => warning
                .measured(e.clone(), format!("{ratio} × memory"))
                .fail_if(true, || "check `/proc/meminfo`".into()),
        };
        out.push(r);
    }
    // required packages must be installed, forbidden ones must not
    let wanted = c.packages_required.iter().map(|n| (n, true));
    for (name, required) in wanted.chain(c.packages_forbidden.iter().map(|n| (n, false))) {
        let (key, expected) = match required {
            true => (format!("package-required:{name}"), "installed"),
            false => (format!("package-forbidden:{name}"), "not installed"),
        };
        let installed = host.rpmdb.newest(name);
        let r = inhibitor(&key)
            .measured(
                installed.map_or("not installed".into(), |p| format!("{}.{}", p.evr, p.arch)),
                expected,
            )
            .fail_if(installed.is_some() != required, || match required {
                true => format!("install `{name}` (dnf install {name}), then run again"),
                false => format!(
                    "remove `{name}`, which conflicts with this release (dnf remove {name})"
                ),
            });
        out.push(r);
    }
    for addr in &c.ports_free {
        let key = format!("port-free:{addr}");
        let r = match resolve(addr) {
            Ok(sock) => {
                let bound = TcpListener::bind(sock);
                let measured = match &bound {
                    Ok(_) => "free".to_string(),
                    Err(e) => format!("in use ({e})"),
                };
                inhibitor(&key)
                    .measured(measured, "free")
                    .fail_if(bound.is_err(), || {
                        format!(
                            "stop what listens on `{addr}` (ss -ltnp 'sport = :{}')",
                            sock.port()
                        )
                    })
            }
            Err(e) => inhibitor(&key)
                .measured(e, "free")
                .fail_if(true, || "write the address as HOST:PORT".into()),
        };
        out.push(r);
    }
    for addr in &c.ports_reachable {
        let key = format!("port-reachable:{addr}");
        let r = match resolve(addr) {
            Ok(sock) => {
                let conn = TcpStream::connect_timeout(&sock, Duration::from_secs(3));
                let measured = match &conn {
                    Ok(_) => "reachable".to_string(),
                    Err(e) => format!("unreachable ({e})"),
                };
                inhibitor(&key)
                    .measured(measured, "reachable")
                    .fail_if(conn.is_err(), || {
                        format!("start the service on `{addr}` or open the way to it")
                    })
            }
            Err(e) => inhibitor(&key)
                .measured(e, "reachable")
                .fail_if(true, || "write the address as HOST:PORT".into()),
        };
        out.push(r);
    }
    out
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{addr}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{addr}` resolves to no address"))
}

/// Available bytes for an unprivileged user on the filesystem holding `path` under `root`;
/// a path that does not exist yet is measured at its nearest existing parent.
fn free_space(root: &Path, path: &str) -> Result<(u64, PathBuf), String> {
    let mut at = root.join(path.trim_start_matches('/'));
    while !at.exists() {
        if !at.pop() {
            return Err(format!("`{path}` has no existing parent under the root"));
        }
    }
    let stat = nix::sys::statvfs::statvfs(&at)
        .map_err(|e| format!("statvfs `{}` failed: {e}", at.display()))?;
    #[allow(clippy::unnecessary_cast)] // NB: the field types differ between libcs
    let avail = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    Ok((avail, at))
}

/// The bytes of the files an uninstall's restore point saves besides the configuration (its
/// purge and keep paths, SPEC §14); 0 for other runs, and for what cannot be read.
fn uninstall_paths_size(input: &PreflightInput<'_>) -> u64 {
    let Some(uninstall) = input.plan.hops.first().and_then(|h| h.uninstall.as_ref()) else {
        return 0;
    };
    let roots: Vec<std::path::PathBuf> = uninstall
        .paths
        .iter()
        .chain(&uninstall.keep)
        .cloned()
        .collect();
    let files = crate::steps::restore::files::tree(input.root, &roots).unwrap_or_default();
    files
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(input.root.join(p.strip_prefix("/").ok()?)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// What the run's restore point needs (SPEC §12): the client programs of the database's engine
/// (`restore-point:tool:COMMAND`, an inhibitor: not a surprise mid-run), room for it beside the
/// state (`restore-point:space`, its size estimated), and every installed package kept
/// (`restore-point:packages`, a warning: a partial restore point can not be rolled back to).
fn restore_point(input: &PreflightInput<'_>) -> Vec<CheckResult> {
    use crate::steps::restore::database;
    let Some(point) = &input.plan.restore_point else {
        return Vec::new();
    };
    let source = "restore point";
    let mut out = Vec::new();
    let mut database_size = 0;
    if point.database {
        match database::missing_tools(&input.database_url, &database::Tools::from_env()) {
            Ok(missing) => {
                for tool in missing {
                    out.push(
                        result(
                            format!("restore-point:tool:{}", tool.command),
                            source,
                            Severity::Inhibitor,
                        )
                        .measured(tool.to_string(), "installed, as new as the server")
                        .fail_if(true, || {
                            format!(
                                "install `{}` (Debian, Ubuntu) or `{}` (RHEL), or run with \
                                 `--no-restore-point`",
                                tool.debian, tool.rhel
                            )
                        }),
                    );
                }
            }
            // NB: the server's version is asked of the server: an unreachable database is
            // the run's own error, found before anything changes (`begin`, exit 1)
            Err(e) => tracing::debug!("client programs not checked: {e:#}"),
        }
        // NB: an unreachable database is found before anything changes anyway (`begin`)
        database_size = database::estimate_size(&input.database_url, input.root).unwrap_or(0);
    }
    let packages: u64 = point
        .packages
        .iter()
        .filter_map(|p| p.artifact.as_ref())
        .map(|a| a.size)
        .sum();
    let need = packages + database_size + uninstall_paths_size(input);
    let at = input
        .paths
        .restore
        .strip_prefix(input.root)
        .unwrap_or(&input.paths.restore);
    let at = at.display().to_string();
    out.push(match free_space(input.root, &at) {
        Ok((avail, dir)) => result("restore-point:space".into(), source, Severity::Inhibitor)
            .measured(Size(avail).to_string(), format!(">= {}", Size(need)))
            .fail_if(avail < need, || {
                format!(
                    "free at least {} on the filesystem holding `{}`, or run with \
                     `--no-restore-point`",
                    Size(need - avail),
                    dir.display()
                )
            }),
        Err(e) => result("restore-point:space".into(), source, Severity::Inhibitor)
            .measured(e, format!(">= {}", Size(need)))
            .fail_if(true, || {
                "check that `/var/lib` exists under the root".into()
            }),
    });
    let missing: Vec<String> = point.missing().map(|p| p.nevra()).collect();
    out.push(
        result("restore-point:packages".into(), source, Severity::Warning)
            .measured(
                match missing.is_empty() {
                    true => "every installed package".to_string(),
                    false => format!("no repository has {}", missing.join(", ")),
                },
                "every installed package kept",
            )
            .fail_if(!missing.is_empty(), || {
                "the restore point will be partial: `rollback` to it will be refused".into()
            }),
    );
    out
}

/// Every package the plan installs must be built for this machine (or `noarch`); key
/// `package-arch:NAME`, reported only when one is not (a passed result per package would bury
/// the declared checks). NB: rpm refuses such a package only inside the transaction, after the
/// services were stopped.
fn package_arches(plan: &Plan, arch: &str) -> Vec<CheckResult> {
    plan.hops
        .iter()
        .flat_map(|hop| {
            hop.artifacts()
                .map(move |a| (a, format!("release {}", hop.to)))
        })
        .filter(|(a, _)| a.arch != arch && a.arch != "noarch")
        .map(|(a, source)| {
            result(
                format!("package-arch:{}", a.name),
                &source,
                Severity::Inhibitor,
            )
            .measured(a.arch.clone(), format!("{arch} or noarch"))
            .fail_if(a.arch != arch && a.arch != "noarch", || {
                format!(
                    "`{}` is built for {}; ask the vendor for a {arch} build",
                    a.nevra(),
                    a.arch
                )
            })
        })
        .collect()
}

/// The prerequisite policy's problems: a 32-bit build where a 64-bit one is needed, and a
/// prerequisite to install or upgrade that no configured source has.
fn prerequisites(input: &PreflightInput<'_>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for hop in &input.plan.hops {
        let source = format!("release {}", hop.to);
        for p in &hop.prerequisites {
            let needed_arch = p
                .artifact
                .as_ref()
                .map_or(std::env::consts::ARCH, |a| a.arch.as_str());
            let installed = p
                .installed
                .as_ref()
                .map_or("not installed".to_string(), |i| {
                    format!("{}.{}", i.evr, i.arch)
                });
            if let Some(i) = &p.installed
                && BITS32.contains(&i.arch.as_str())
                && !BITS32.contains(&needed_arch)
                && needed_arch != "noarch"
            {
                out.push(
                    result(
                        format!("prerequisite-arch:{}", p.name),
                        &source,
                        Severity::Inhibitor,
                    )
                    .measured(
                        installed.clone(),
                        format!("{} {} {needed_arch}", p.name, p.version),
                    )
                    .fail_if(true, || {
                        format!(
                            "the 32-bit `{}` {} is installed where the {needed_arch} build \
                                 in `{}` is needed; replace it (dnf swap {}.{} {}.{needed_arch})",
                            p.name, i.evr, p.version, p.name, i.arch, p.name
                        )
                    }),
                );
                continue;
            }
            let unavailable =
                p.op != PackageOp::Keep && p.artifact.is_none() && !input.system_repositories;
            let mut r = result(
                format!("prerequisite:{}", p.name),
                &source,
                Severity::Inhibitor,
            )
            .measured(installed, format!("{} {}", p.name, p.version))
            .fail_if(unavailable, || {
                format!(
                    "`{}` {} cannot be had from any configured source: publish it in the \
                         repository, install it by hand, or use `backend = \"dnf\"` with \
                         `repos` under `[packages]`",
                    p.name, p.version
                )
            });
            r.note = p.note.clone();
            out.push(r);
        }
    }
    out
}

/// Runs the executables of `checks.d` (vendor and admin merged like hooks): each prints one line
/// and exits 0 (pass), 1 (warning) or 2 (inhibitor).
fn custom_checks(input: &PreflightInput<'_>) -> Result<Vec<CheckResult>> {
    let set = hooks::discover(input.paths, Phase::Check, input.superuser)?;
    let mut out = Vec::new();
    let env = HookEnv {
        phase: Phase::Check,
        action: input.plan.action,
        from: input.plan.from.clone(),
        to: input.plan.to.clone(),
        resumed: false,
        root: input.root.to_path_buf(),
        run_id: 0,
        extra: Vec::new(),
    };
    for refused in &set.refused {
        out.push(
            result(
                format!("custom:{}", refused.name),
                "checks.d",
                Severity::Inhibitor,
            )
            .measured(
                refused.reason.clone(),
                "owned by root, not group/world-writable",
            )
            .fail_if(true, || {
                "chown root:root and chmod go-w the check and its directory".into()
            }),
        );
    }
    for check in &set.run {
        // NB: a check's exit code is its verdict, not a failure: it runs through the process
        // runner directly, not as a hook.
        let finished = process::run(&env.options(&check.path, input.timeout), &mut |_| {});
        let (status, measured) = match finished {
            Ok(f) => {
                let line = f.last_lines.last().cloned().unwrap_or_default();
                match f.status {
                    process::Status::Exited(0) => (Status::Passed, line),
                    process::Status::Exited(1) => (Status::Warning, line),
                    process::Status::Exited(2) => (Status::Inhibitor, line),
                    process::Status::Exited(c) => {
                        (Status::Inhibitor, format!("exited with {c}: {line}"))
                    }
                    other => (Status::Inhibitor, format!("`{}` {other}", check.name)),
                }
            }
            Err(e) => (Status::Inhibitor, format!("{e:#}")),
        };
        let severity = match status {
            Status::Warning => Severity::Warning,
            _ => Severity::Inhibitor,
        };
        let mut r = result(format!("custom:{}", check.name), "checks.d", severity)
            .measured(measured, "exit 0");
        if status != Status::Passed {
            r.status = status;
            r.hint = Some(format!(
                "fix what `{}` reports, or ask its author (`{}`)",
                check.name,
                check.path.display()
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// The conflicts of each hop's package transaction, found before anything changes (SPEC §5):
/// `rpm -U --test` of the hop's downloaded files against the root's rpm database, and for a hop
/// that removes packages, `rpm -e --test` of them and the requirements of its files. Keys
/// `file-conflict:NAME` (NAME, a package the hop installs, would overwrite another package's
/// files), `removal-breaks:NAME` (NAME, installed or installed by the hop, needs a package the
/// hop removes) and `package-transaction:VERSION` (anything else rpm refuses); always
/// inhibitors. Changes nothing; needs every artifact of the plan in `cache`.
///
/// NB: conflicts with the packages a hop erases before its install (the product's packages the
/// release no longer lists, [`crate::steps::packages::run_hop`]) are not conflicts: that is how
/// a package renamed without `Obsoletes` replaces the old one. Later hops are tested against the
/// database as it is now, so what concerns a package an earlier hop (or the same hop) replaces
/// or removes cannot be judged here and is left to that hop's own transaction. A root without
/// an rpm database holds no package to conflict with: nothing is tested (rpm still refuses two
/// packages of one transaction that conflict, before it changes anything).
pub fn transactions(root: &Path, plan: &Plan, cache: &Path) -> Result<Report> {
    let mut results = Vec::new();
    if !crate::host::has_rpm_database(root) {
        return Ok(Report { results });
    }
    // names whose entry in the database is not what the hop's transaction will meet
    let mut replaced: HashSet<&str> = HashSet::new();
    for hop in &plan.hops {
        let removed: Vec<&str> = hop.removals().collect();
        // what the database holds of them now (not what an earlier hop installs)
        let erased: Vec<String> = removed
            .iter()
            .filter(|n| !replaced.contains(*n))
            .map(|n| n.to_string())
            .collect();
        let changed = hop.packages.iter().map(|p| (p.op, p.name.as_str()));
        let prerequisites = hop.prerequisites.iter().map(|p| (p.op, p.name.as_str()));
        replaced.extend(
            changed
                .chain(prerequisites)
                .filter(|(op, _)| *op != PackageOp::Keep)
                .map(|(_, name)| name),
        );
        let files: Vec<PathBuf> = hop
            .artifacts()
            .map(|a| crate::repo::fetch::cache_path(cache, a))
            .collect();
        let mut problems = Vec::new();
        if !erased.is_empty() {
            problems.extend(packages::test_erase(root, &erased)?);
        }
        if !files.is_empty() {
            problems.extend(packages::test_install(root, &files)?);
            if !removed.is_empty() {
                problems.extend(packages::requiring(root, &files, &removed)?);
            }
        }
        let source = format!("release {}", hop.to);
        results.extend(transaction_results(&problems, &replaced, &source, &hop.to));
    }
    Ok(Report { results }.finish())
}

/// [`transactions`] when every artifact of `plan` is in `cache` already (put there by
/// `--download-only` or an earlier attempt, and verified then); else nothing: the download step
/// tests them.
pub fn downloaded_transactions(root: &Path, plan: &Plan, cache: &Path) -> Result<Report> {
    let downloaded = plan
        .artifacts()
        .all(|a| crate::repo::fetch::cache_path(cache, a).is_file());
    match downloaded {
        true => transactions(root, plan, cache),
        false => Ok(Report::default()),
    }
}

/// What one package of a hop conflicts with.
#[derive(Default)]
struct Conflict {
    /// `PATH owned by NEVRA`, as measured.
    files: Vec<String>,
    /// The installed packages that hold some of its files.
    installed: BTreeSet<String>,
    /// The packages of the same transaction that ship some of its files.
    released: BTreeSet<String>,
}

/// What one package needs of the packages a hop removes.
#[derive(Default)]
struct Needs {
    /// `name-evr.arch`.
    package: String,
    capabilities: BTreeSet<String>,
    /// Installed now, or one the hop installs.
    installed: bool,
}

/// The results of one hop's test transaction: its conflicts by package, but those with what
/// `replaced` names, and whatever else rpm refused.
fn transaction_results(
    problems: &[TestProblem],
    replaced: &HashSet<&str>,
    source: &str,
    to: &str,
) -> Vec<CheckResult> {
    let mut conflicts: BTreeMap<&str, Conflict> = BTreeMap::new();
    let mut needs: BTreeMap<&str, Needs> = BTreeMap::new();
    let mut other = Vec::new();
    for problem in problems {
        match problem {
            TestProblem::ConflictsInstalled {
                path,
                package,
                installed,
            } => {
                let owner = packages::nevra_name(installed);
                if replaced.contains(owner) {
                    continue;
                }
                let c = conflicts.entry(packages::nevra_name(package)).or_default();
                c.files.push(format!("{path} owned by {installed}"));
                c.installed.insert(format!("`{owner}`"));
            }
            TestProblem::ConflictsBetween {
                path,
                package,
                other,
            } => {
                let c = conflicts.entry(packages::nevra_name(package)).or_default();
                c.files.push(format!("{path} also in {other}"));
                c.released
                    .insert(format!("`{}`", packages::nevra_name(other)));
            }
            TestProblem::NeededBy {
                capability,
                package,
                installed,
            } => {
                let name = packages::nevra_name(package);
                if *installed && replaced.contains(name) {
                    continue;
                }
                let n = needs.entry(name).or_default();
                n.capabilities.insert(format!("`{capability}`"));
                n.package = package.clone();
                n.installed = *installed;
            }
            // NB: no problem: the packages step skips a build that is installed already (a
            // later hop may list again the build an earlier one removes)
            TestProblem::AlreadyInstalled { .. } => {}
            TestProblem::Other(line) => other.push(line.clone()),
        }
    }
    let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut out: Vec<CheckResult> = conflicts
        .into_iter()
        .map(|(name, c)| {
            let shown = match c.files.len() {
                n if n > 3 => format!("{} and {} more", c.files[..3].join(", "), n - 3),
                _ => c.files.join(", "),
            };
            let hint = match c.installed.is_empty() {
                false => format!(
                    "`{name}` of {source} and the installed {} hold the same files: remove \
                     what is not the product's if nothing needs it (`dnf remove`), or ask the \
                     vendor for a `{name}` that does not conflict; nothing was changed",
                    list(&c.installed)
                ),
                true => format!(
                    "`{name}` and {} of {source} ship the same files: ask the vendor for a \
                     release whose packages do not conflict; nothing was changed",
                    list(&c.released)
                ),
            };
            result(format!("file-conflict:{name}"), source, Severity::Inhibitor)
                .measured(shown, "no file another package holds")
                .fail_if(true, || hint)
        })
        .collect();
    out.extend(needs.into_iter().map(|(name, n)| {
        let needed = list(&n.capabilities);
        let hint = match n.installed {
            true => format!(
                "{source} removes what the installed `{name}` needs ({needed}): remove `{name}` \
                 if nothing needs it (`dnf remove`), or ask the vendor; nothing was changed"
            ),
            false => format!(
                "`{name}` of {source} requires {needed}, which the release no longer ships: ask \
                 the vendor for a release that does not; nothing was changed"
            ),
        };
        result(
            format!("removal-breaks:{name}"),
            source,
            Severity::Inhibitor,
        )
        .measured(
            format!("{} needs {needed}", n.package),
            "nothing needs what the hop removes",
        )
        .fail_if(true, || hint)
    }));
    if !other.is_empty() {
        out.push(
            result(
                format!("package-transaction:{to}"),
                source,
                Severity::Inhibitor,
            )
            .measured(other.join("; "), "rpm accepts the transaction")
            .fail_if(true, || {
                "resolve what rpm reports (`rpm -U --test` of the release's packages), then run \
                 again; nothing was changed"
                    .into()
            }),
        );
    }
    out
}

/// [`transactions`], shown through `ui` when it finds a problem, which stops the run (exit 3)
/// with nothing changed.
pub fn ensure_transactions(root: &Path, plan: &Plan, cache: &Path, ui: &dyn Ui) -> Result<()> {
    let report = transactions(root, plan, cache)?;
    if !report.results.is_empty() {
        ui.event(Event::Checks { report: &report });
    }
    Ok(report.ensure_passed()?)
}

/// Runs every preflight check of `plan` and of the configuration (SPEC §9); changes nothing.
pub fn run(ctx: &Context, config: &Config, plan: &Plan, rpmdb: &RpmDb) -> Result<Report> {
    let report = evaluate(&PreflightInput {
        root: &ctx.root,
        paths: &ctx.paths(),
        superuser: ctx.superuser,
        config: &config.checks,
        plan,
        rpmdb,
        system_repositories: config.packages.backend == PackageBackend::Dnf
            && !config.packages.repos.is_empty(),
        timeout: config.hooks.timeout,
        database_url: config.database_url(),
    })?;
    // NB: an interrupted `checks.d` program is not a verdict on the host.
    crate::interrupt::check()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_problems_become_inhibitors_but_those_about_what_the_hop_replaces() {
        let installed = |path: &str, package: &str, owner: &str| TestProblem::ConflictsInstalled {
            path: path.into(),
            package: package.into(),
            installed: owner.into(),
        };
        let problems = [
            installed("/a", "demo-new-2-1.x86_64", "demo-old-1-1.x86_64"),
            installed("/b", "demo-tool-2-1.x86_64", "os-tool-1-1.x86_64"),
            TestProblem::ConflictsBetween {
                path: "/c".into(),
                package: "demo-x-2-1.noarch".into(),
                other: "demo-y-2-1.noarch".into(),
            },
            TestProblem::Other("installing package demo-z needs 2MB more space".into()),
            TestProblem::NeededBy {
                capability: "demo-old".into(),
                package: "demo-server-1-1.x86_64".into(),
                installed: true,
            },
            TestProblem::NeededBy {
                capability: "demo-old".into(),
                package: "demo-server-2-1.x86_64".into(),
                installed: false,
            },
            TestProblem::AlreadyInstalled {
                package: "demo-old-1-1.x86_64".into(),
            },
        ];
        // demo-server is upgraded by the hop, demo-old removed
        let replaced = HashSet::from(["demo-old", "demo-server"]);
        let results = transaction_results(&problems, &replaced, "release 2.0.0", "2.0.0");
        let keys: Vec<(&str, &str)> = results
            .iter()
            .map(|r| (r.key.as_str(), r.measured.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("file-conflict:demo-tool", "/b owned by os-tool-1-1.x86_64"),
                ("file-conflict:demo-x", "/c also in demo-y-2-1.noarch"),
                (
                    "removal-breaks:demo-server",
                    "demo-server-2-1.x86_64 needs `demo-old`"
                ),
                (
                    "package-transaction:2.0.0",
                    "installing package demo-z needs 2MB more space"
                ),
            ]
        );
        assert!(results.iter().all(|r| r.status == Status::Inhibitor));
        assert!(
            results[0]
                .hint
                .as_ref()
                .unwrap()
                .contains("the installed `os-tool`")
        );
        assert!(
            results[1]
                .hint
                .as_ref()
                .unwrap()
                .contains("`demo-y` of release 2.0.0")
        );
    }

    #[test]
    fn os_release_and_meminfo() {
        let os =
            crate::host::parse_os_release("ID=\"rocky\"\nVERSION_ID='9.3'\nID_LIKE=rhel centos\n");
        assert_eq!(os["ID"], "rocky");
        assert_eq!(os["VERSION_ID"], "9.3");
        let (mem, swap) = parse_meminfo("MemTotal:  1024 kB\nSwapTotal: 0 kB\n").unwrap();
        assert_eq!((mem, swap), (1 << 20, 0));
    }
}
