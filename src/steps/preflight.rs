//! Preflight checks (SPEC §9): what a release or the administrator requires of the host, all
//! evaluated before anything changes and all reported together, the way `leapp preupgrade` does.
//!
//! Checks are declared in a [`Checks`] table — per release in the index (`[releases.checks]`) and
//! in `upgrade.toml` (`[checks]`) — plus custom check executables in `checks.d/` (vendor and admin
//! directories merged like hooks). [`evaluate`] turns them, with the plan's prerequisite packages,
//! into a [`Report`]: one [`CheckResult`] per stable key, with its status, the measured and the
//! required value and a hint. Any inhibitor stops the upgrade with exit 3; warnings are shown.
//!
//! ```toml
//! [checks]                               # upgrade.toml; [releases.checks] in releases.toml
//! arch = ["x86_64"]                      # key `arch`
//! os_id = ["rhel", "rocky"]              # key `os-id` (ID, or a word of ID_LIKE)
//! os_version = ">= 8, < 10"              # key `os-version` (VERSION_ID, rpm ordering)
//! free_space = { "/var" = "2GiB", "/opt/demo" = "500MiB" }   # keys `free-space:PATH`
//! memory = "2GiB"                        # key `memory`
//! swap_ratio = 0.5                       # key `swap`, a warning by default
//! packages_required = ["openssl"]        # keys `package-required:NAME`
//! packages_forbidden = ["demo-legacy"]   # keys `package-forbidden:NAME`
//! ports_free = ["127.0.0.1:8080"]        # keys `port-free:ADDR`
//! ports_reachable = ["127.0.0.1:5432"]   # keys `port-reachable:ADDR`
//! warnings = ["free-space:/tmp", "custom:"]   # re-grade keys (or `prefix:`) as warnings…
//! inhibitors = ["swap"]                  # …or as inhibitors
//! ```
//!
//! Custom checks (`/usr/share/upgrade/checks.d/`, `/etc/upgrade/checks.d/`) print one line and
//! exit 0 (pass), 1 (warning) or 2 (inhibitor); key `custom:NAME`. Prerequisites (key
//! `prerequisite:NAME`, and `prerequisite-arch:NAME` for a 32-bit build) are declared per release:
//! `prerequisites = [{ name = "libfoo", version = ">= 1.1, < 3", package = "packages/….rpm" }]`.
//!
//! `real-upgrade check --json` prints `{ product, from, to, inhibited, inhibitors, warnings,
//! results }`; each result is `{ key, status: passed|warning|inhibitor, severity:
//! warning|inhibitor, measured, required, hint (null when passed), source: config|release
//! VERSION|checks.d, note? }`, inhibitors first, then warnings, then passed, each by key. An
//! inhibited upgrade with `--json` prints the failure document with the same `results`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::context::Paths;
use crate::error::UpgradeError;
use crate::plan::{PackageOp, Plan};
use crate::steps::hooks::{self, HookEnv, HookOutcome, Phase};
use crate::steps::packages::RpmDb;
use crate::version::compare_evr;

/// The checks a release or the configuration declares; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Allowed machine architectures (`x86_64`, `aarch64`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arch: Vec<String>,
    /// Allowed `ID`s of the root's `/etc/os-release` (an `ID_LIKE` entry matches too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub os_id: Vec<String>,
    /// The range `VERSION_ID` must be in, e.g. `">= 8, < 10"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<VersionRange>,
    /// Minimum free space per path, resolved under the root (`{ "/var" = "2GiB" }`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub free_space: BTreeMap<String, Size>,
    /// Minimum memory of the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
    /// Swap must be at least this fraction of memory (a warning unless listed in `inhibitors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_ratio: Option<f64>,
    /// Packages the root's rpm database must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages_required: Vec<String>,
    /// Packages the root's rpm database must not hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages_forbidden: Vec<String>,
    /// `HOST:PORT`s nothing may listen on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports_free: Vec<String>,
    /// `HOST:PORT`s that must accept a TCP connection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports_reachable: Vec<String>,
    /// Keys (or key prefixes ending in `:`) whose failure is only a warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Keys (or key prefixes ending in `:`) whose failure inhibits although it would warn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inhibitors: Vec<String>,
}

impl Checks {
    pub fn is_empty(&self) -> bool {
        *self == Checks::default()
    }
}

/// A prerequisite package a release needs from the operating system, with its supported range;
/// `package` is the repository's build of it, when the vendor publishes one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    pub name: String,
    pub version: VersionRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<crate::repo::index::Artifact>,
}

/// A byte count written `"512MiB"`, `"2G"`, `"1048576"` (binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size(pub u64);

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(text: String) -> Result<Size, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid size `{text}`; write e.g. \"512MiB\" or \"2GiB\""))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => {
                return Err(format!(
                    "invalid size unit in `{text}`; use B, KiB, MiB, GiB or TiB"
                ));
            }
        };
        Ok(Size((number * (1u64 << shift) as f64) as u64))
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < units.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if value.fract() == 0.0 {
            write!(f, "{value}{}", units[unit])
        } else {
            write!(f, "{value:.1}{}", units[unit])
        }
    }
}

/// Comma-separated constraints compared the way rpm compares versions: `">= 1.1, < 3"`.
/// A bare version means `>=`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionRange {
    text: String,
    constraints: Vec<(Op, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl TryFrom<String> for VersionRange {
    type Error = String;
    fn try_from(text: String) -> Result<VersionRange, String> {
        let mut constraints = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(p, op)| part.strip_prefix(p).map(|r| (*op, r)))
            .unwrap_or((Op::Ge, part));
            let version = rest.trim();
            if version.is_empty() || version.contains(char::is_whitespace) {
                return Err(format!(
                    "invalid version range `{text}`; write e.g. \">= 1.1, < 3\""
                ));
            }
            constraints.push((op, version.to_string()));
        }
        Ok(VersionRange { text, constraints })
    }
}

impl From<VersionRange> for String {
    fn from(r: VersionRange) -> String {
        r.text
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl VersionRange {
    /// `evr` is below a lower bound.
    pub fn below(&self, evr: &str) -> bool {
        self.constraints.iter().any(|(op, v)| {
            let c = compare_evr(evr, v);
            match op {
                Op::Ge => c.is_lt(),
                Op::Gt | Op::Eq => c.is_le() && !(*op == Op::Eq && c.is_eq()),
                Op::Le | Op::Lt => false,
            }
        })
    }

    /// `evr` is above an upper bound.
    pub fn above(&self, evr: &str) -> bool {
        self.constraints.iter().any(|(op, v)| {
            let c = compare_evr(evr, v);
            match op {
                Op::Le | Op::Eq => c.is_gt(),
                Op::Lt => c.is_ge(),
                Op::Ge | Op::Gt => false,
            }
        })
    }

    pub fn contains(&self, evr: &str) -> bool {
        !self.below(evr) && !self.above(evr)
    }

    /// The constraint as dnf reads it on its command line (`name >= 1.1`): dnf takes one.
    pub fn dnf_spec(&self, name: &str) -> String {
        let lower = self.constraints.iter().find_map(|(op, v)| match op {
            Op::Ge => Some(format!("{name} >= {v}")),
            Op::Gt => Some(format!("{name} > {v}")),
            Op::Eq => Some(format!("{name} = {v}")),
            _ => None,
        });
        lower.unwrap_or_else(|| name.to_string())
    }
}

/// What a check declares when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Inhibitor,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Warning,
    Inhibitor,
}

/// One check's result; `key` is stable across versions of this tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub key: String,
    pub status: Status,
    /// What a failure of this check means, whether or not it failed.
    pub severity: Severity,
    pub measured: String,
    pub required: String,
    /// What to do about a failure; `None` when it passed.
    pub hint: Option<String>,
    /// Where it was declared: `config`, `release 2.0.0` or `checks.d`.
    pub source: String,
    /// Something worth knowing although the check passed (a newer prerequisite kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every check of a run, worst first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn inhibitors(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| r.status == Status::Inhibitor)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| r.status == Status::Warning)
    }

    pub fn is_inhibited(&self) -> bool {
        self.inhibitors().next().is_some()
    }

    /// The error that stops the run, when any check inhibits it.
    pub fn ensure_passed(&self) -> Result<(), UpgradeError> {
        if !self.is_inhibited() {
            return Ok(());
        }
        Err(UpgradeError::Inhibited {
            report: Box::new(self.clone()),
        })
    }

    /// Keeps the worst result of each key, then sorts worst first and by key.
    fn finish(mut self) -> Report {
        let mut by_key: BTreeMap<String, CheckResult> = BTreeMap::new();
        for r in self.results.drain(..) {
            match by_key.get(&r.key) {
                Some(old) if old.status >= r.status => {}
                _ => {
                    by_key.insert(r.key.clone(), r);
                }
            }
        }
        let mut results: Vec<CheckResult> = by_key.into_values().collect();
        results.sort_by(|a, b| b.status.cmp(&a.status).then_with(|| a.key.cmp(&b.key)));
        Report { results }
    }
}

/// What [`evaluate`] reads.
pub struct PreflightInput<'a> {
    pub root: &'a Path,
    pub paths: &'a Paths,
    pub superuser: bool,
    /// The configuration's `[checks]`.
    pub config: &'a Checks,
    pub plan: &'a Plan,
    /// Prerequisites without a repository build can come from the system's repositories.
    pub system_repositories: bool,
    pub timeout: Duration,
}

/// Runs every check of the configuration, of each release the plan passes through, the custom
/// checks and the prerequisite policy; changes nothing.
pub fn evaluate(input: &PreflightInput<'_>) -> Result<Report> {
    let host = Host::read(input.root)?;
    let mut results = Vec::new();
    let mut declared: Vec<(&Checks, String)> = vec![(input.config, "config".to_string())];
    for hop in &input.plan.hops {
        declared.push((&hop.checks, format!("release {}", hop.to)));
    }
    for (checks, source) in &declared {
        results.extend(evaluate_checks(checks, source, &host));
    }
    results.extend(prerequisites(input));
    results.extend(custom_checks(input)?);
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
struct Host {
    root: PathBuf,
    arch: String,
    os_release: Result<BTreeMap<String, String>, String>,
    meminfo: Result<(u64, u64), String>,
    rpmdb: Result<RpmDb, String>,
}

impl Host {
    fn read(root: &Path) -> Result<Host> {
        let os_path = root.join("etc/os-release");
        let os_release = std::fs::read_to_string(&os_path)
            .map(|t| parse_os_release(&t))
            .map_err(|e| format!("cannot read `{}`: {e}", os_path.display()));
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| format!("cannot read `/proc/meminfo`: {e}"))
            .and_then(|t| parse_meminfo(&t));
        Ok(Host {
            root: root.to_path_buf(),
            arch: std::env::consts::ARCH.to_string(),
            os_release,
            meminfo,
            rpmdb: RpmDb::load(root).map_err(|e| format!("{e:#}")),
        })
    }
}

/// The root's `/etc/os-release` as a map; a missing file is empty.
pub fn os_release(root: &Path) -> Result<BTreeMap<String, String>> {
    let path = root.join("etc/os-release");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_os_release(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("failed to read `{}`", path.display())))
        }
    }
}

fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
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

fn evaluate_checks(c: &Checks, source: &str, host: &Host) -> Vec<CheckResult> {
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
        let r = match &host.rpmdb {
            Ok(db) => {
                let installed = db.newest(name);
                inhibitor(&key)
                    .measured(
                        installed
                            .map_or("not installed".into(), |p| format!("{}.{}", p.evr, p.arch)),
                        expected,
                    )
                    .fail_if(installed.is_some() != required, || match required {
                        true => format!("install `{name}` (dnf install {name}), then run again"),
                        false => format!(
                            "remove `{name}`, which conflicts with this release (dnf remove {name})"
                        ),
                    })
            }
            Err(e) => inhibitor(&key)
                .measured(e.clone(), expected)
                .fail_if(true, || "repair the root's rpm database".into()),
        };
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

/// The 32-bit x86 architectures rpm knows; a build of one cannot stand in for x86_64.
pub const BITS32: [&str; 4] = ["i386", "i486", "i586", "i686"];

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
        let mut lines = Vec::new();
        let outcome = hooks::run(check, &env, input.timeout, &mut |l| {
            lines.push(l.to_string())
        });
        let code = match &outcome {
            Ok(HookOutcome::Succeeded) => Some(0),
            Ok(HookOutcome::RebootRequested) => Some(hooks::REBOOT_EXIT_CODE),
            Err(e) => match crate::error::find(e) {
                Some(UpgradeError::HookFailed {
                    status: crate::error::HookStatus::Exited(code),
                    ..
                }) => Some(*code),
                _ => None,
            },
        };
        let line = lines.last().cloned().unwrap_or_default();
        let (status, measured) = match (code, &outcome) {
            (Some(0), _) => (Status::Passed, line.clone()),
            (Some(1), _) => (Status::Warning, line.clone()),
            (Some(2), _) => (Status::Inhibitor, line.clone()),
            (Some(c), _) => (Status::Inhibitor, format!("exited with {c}: {line}")),
            (None, Err(e)) => (Status::Inhibitor, format!("{e:#}")),
            (None, Ok(_)) => unreachable!("a finished check has an exit code"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn range(t: &str) -> VersionRange {
        VersionRange::try_from(t.to_string()).unwrap()
    }

    #[test]
    fn ranges() {
        let r = range(">= 1.1, < 3");
        assert!(r.below("1.0-1"));
        assert!(r.contains("1.1"));
        assert!(r.contains("2.9-4"));
        assert!(r.above("3.0-1"));
        assert!(range("8").contains("9.3"));
        assert!(range("= 2.0").contains("2.0"));
        assert!(range("= 2.0").below("1.9"));
        assert_eq!(r.dnf_spec("libfoo"), "libfoo >= 1.1");
        assert!(VersionRange::try_from(">= ".to_string()).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::try_from("2GiB".to_string()).unwrap().0, 2 << 30);
        assert_eq!(Size::try_from("512M".to_string()).unwrap().0, 512 << 20);
        assert_eq!(Size::try_from("10".to_string()).unwrap().0, 10);
        assert!(Size::try_from("lots".to_string()).is_err());
        assert_eq!(Size(3 << 29).to_string(), "1.5GiB");
    }

    #[test]
    fn os_release_and_meminfo() {
        let os = parse_os_release("ID=\"rocky\"\nVERSION_ID='9.3'\nID_LIKE=rhel centos\n");
        assert_eq!(os["ID"], "rocky");
        assert_eq!(os["VERSION_ID"], "9.3");
        let (mem, swap) = parse_meminfo("MemTotal:  1024 kB\nSwapTotal: 0 kB\n").unwrap();
        assert_eq!((mem, swap), (1 << 20, 0));
    }
}
