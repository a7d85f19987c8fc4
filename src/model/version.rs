//! Product versions (semver, or rpm ordering with `version_scheme = "rpm"`) and package EVRs,
//! which always compare the way rpm does.
//!
//! A [`Version`] is parsed once, keeps the text it came from for display and storage, and orders
//! by its scheme. Versions of different schemes never meet: one config chooses one scheme.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::UpgradeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionScheme {
    #[default]
    Semver,
    Rpm,
}

#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    Semver(semver::Version),
    Rpm,
}

impl VersionScheme {
    /// Parses `text` as a product version of this scheme.
    pub fn parse(self, text: &str) -> Result<Version, UpgradeError> {
        let text = text.trim();
        match self {
            VersionScheme::Semver => semver::Version::parse(text)
                .map(|v| Version { text: text.to_string(), key: Key::Semver(v) })
                .map_err(|e| {
                    UpgradeError::input_hint(
                        format!("invalid version `{text}`: {e}"),
                        "versions are semver (`1.2.3`); set `version_scheme = \"rpm\"` for rpm ordering",
                    )
                }),
            VersionScheme::Rpm => {
                let ok = !text.is_empty()
                    && text.chars().all(|c| c.is_ascii_alphanumeric() || "._+~^-:".contains(c));
                if ok {
                    Ok(Version { text: text.to_string(), key: Key::Rpm })
                } else {
                    Err(UpgradeError::input(format!(
                        "invalid version `{text}`: use letters, digits and `._+~^-:`"
                    )))
                }
            }
        }
    }
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.key, &other.key) {
            (Key::Semver(a), Key::Semver(b)) => a.cmp(b),
            _ => compare_evr(&self.text, &other.text),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Compares two `[epoch:]version[-release]` strings exactly as rpm's `rpmvercmp` does.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    rpm_version::Evr::parse(a).cmp(&rpm_version::Evr::parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_scheme_orders_tilde_before_release() {
        let p = |s| VersionScheme::Rpm.parse(s).unwrap();
        assert!(p("1.6~beta+dfsg-1") < p("1.6.1"));
        assert!(p("1.6~beta") < p("1.6"));
        assert!(p("1.10") > p("1.9"));
        assert!(p("1:1.0") > p("2.0"));
    }

    #[test]
    fn semver_scheme_orders_prereleases_first() {
        let p = |s| VersionScheme::Semver.parse(s).unwrap();
        assert!(p("2.0.0-rc.1") < p("2.0.0"));
        assert!(p("1.10.0") > p("1.9.0"));
        assert!(VersionScheme::Semver.parse("1.0").is_err());
    }

    #[test]
    fn evr_compare_matches_rpm() {
        assert_eq!(compare_evr("1.0-1", "1.0-2"), Ordering::Less);
        assert_eq!(compare_evr("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(compare_evr("1.0a-1", "1.0-1"), Ordering::Greater);
    }
}
