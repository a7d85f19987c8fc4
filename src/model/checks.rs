//! The checks a release or the configuration declares (SPEC §9), the values they are written
//! in (sizes, version ranges), and the report their evaluation produces. Plain values: the
//! evaluation itself is [`crate::check`]'s.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::UpgradeError;
use crate::model::version::compare_evr;

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
            inhibitors: self.inhibitors().map(|r| r.key.clone()).collect(),
        })
    }

    /// Keeps the worst result of each key, then sorts worst first and by key.
    pub fn finish(mut self) -> Report {
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

/// The 32-bit x86 architectures rpm knows; a build of one cannot stand in for x86_64.
pub const BITS32: [&str; 4] = ["i386", "i486", "i586", "i686"];

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
}
