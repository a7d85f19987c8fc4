//! The vendor side: `real-upgrade repo index DIR` turns `DIR/releases.toml` and the RPM files it
//! names into `DIR/index.toml`, reading each package's name, EVR and arch with the `rpm` crate.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::fetch::digest_file;
use crate::error::UpgradeError;
use crate::host::PackageIdentity;
use crate::model::catalog::Prerequisite;
use crate::model::catalog::{Artifact, FORMAT, Index, ReleaseEntry, UpgraderEntry};
use crate::model::checks::{Checks, VersionRange};

/// `releases.toml`: which package files make each release.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Releases {
    product: String,
    sequence: Option<u64>,
    expires: Option<toml::value::Datetime>,
    upgrader: Option<UpgraderSpec>,
    #[serde(default)]
    releases: Vec<ReleaseSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgraderSpec {
    version: String,
    packages: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseSpec {
    version: toml::Spanned<String>,
    #[serde(default)]
    stop: bool,
    requires_upgrader: Option<String>,
    packages: Vec<String>,
    #[serde(default)]
    prerequisites: Vec<PrerequisiteSpec>,
    #[serde(default)]
    checks: Checks,
}

/// A prerequisite: `{ name = "openssl-libs", version = ">= 3.0", package = "packages/…rpm" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrerequisiteSpec {
    name: String,
    version: VersionRange,
    /// The repository's build of it, when the vendor ships one.
    package: Option<String>,
}

/// What `repo index` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Published {
    pub index: String,
    pub sequence: u64,
    pub releases: usize,
    pub packages: usize,
}

/// Writes `dir/index.toml` from `dir/releases.toml`.
pub fn write_index(dir: &Path) -> Result<Published> {
    let spec_path = dir.join("releases.toml");
    let text = std::fs::read_to_string(&spec_path).map_err(|e| {
        UpgradeError::input(format!(
            "failed to read release list `{}`: {e}",
            spec_path.display()
        ))
    })?;
    let spec: Releases = crate::tomlfile::parse(&text, &spec_path, "release list")?;
    check_versions(&spec, &text, &spec_path)?;
    let index_path = dir.join("index.toml");
    let sequence = match spec.sequence {
        Some(s) => s,
        None => previous_sequence(&index_path).map_or(1, |s| s + 1),
    };
    let mut packages = 0;
    let mut artifacts = |paths: &[String]| -> Result<Vec<Artifact>> {
        packages += paths.len();
        paths.iter().map(|p| artifact(dir, p)).collect()
    };
    let upgrader = match &spec.upgrader {
        Some(u) => Some(UpgraderEntry {
            version: toml::Spanned::new(0..0, u.version.clone()),
            packages: artifacts(&u.packages)?,
        }),
        None => None,
    };
    let mut releases = Vec::with_capacity(spec.releases.len());
    for r in &spec.releases {
        let mut prerequisites = Vec::with_capacity(r.prerequisites.len());
        for p in &r.prerequisites {
            let package = match &p.package {
                Some(path) => Some(artifact(dir, path)?),
                None => None,
            };
            if let Some(a) = &package
                && a.name != p.name
            {
                return Err(UpgradeError::input(format!(
                    "`{}`: prerequisite `{}` names the file `{}` of package `{}`",
                    spec_path.display(),
                    p.name,
                    a.path,
                    a.name
                ))
                .into());
            }
            prerequisites.push(Prerequisite {
                name: p.name.clone(),
                version: p.version.clone(),
                package,
            });
        }
        releases.push(ReleaseEntry {
            version: toml::Spanned::new(0..0, r.version.get_ref().clone()),
            stop: r.stop,
            requires_upgrader: r.requires_upgrader.clone(),
            packages: artifacts(&r.packages)?,
            prerequisites,
            checks: r.checks.clone(),
        });
    }
    let index = Index {
        format: FORMAT,
        product: spec.product,
        sequence,
        expires: spec.expires,
        upgrader,
        releases,
    };
    let text = toml::to_string(&index).context("failed to serialise the index")?;
    crate::fsutil::write_atomic(&index_path, text.as_bytes())?;
    Ok(Published {
        index: index_path.display().to_string(),
        sequence,
        releases: index.releases.len(),
        packages,
    })
}

/// Every release version is one the upgrader can read (semver, or at least rpm order), and no
/// version is listed twice; an index that breaks either would only fail on the hosts.
fn check_versions(spec: &Releases, text: &str, path: &Path) -> Result<(), UpgradeError> {
    let mut seen = std::collections::HashSet::new();
    for r in &spec.releases {
        let at = crate::tomlfile::location(text, path, r.version.span().start);
        let version = r.version.get_ref();
        if let Err(e) = crate::model::version::VersionScheme::Rpm.parse(version) {
            return Err(UpgradeError::input(format!("`{at}`: {e}")));
        }
        if !seen.insert(version.trim()) {
            return Err(UpgradeError::input(format!(
                "`{at}`: release `{}` is listed twice",
                version.trim()
            )));
        }
    }
    Ok(())
}

fn previous_sequence(index_path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(index_path).ok()?;
    let value: toml::Table = toml::from_str(&text).ok()?;
    value
        .get("sequence")?
        .as_integer()
        .and_then(|s| u64::try_from(s).ok())
}

fn artifact(dir: &Path, relative: &str) -> Result<Artifact> {
    let path = dir.join(relative);
    let PackageIdentity { name, evr, arch } = crate::host::package_identity(&path)?;
    let (sha256, size) = digest_file(&path)?;
    Ok(Artifact {
        name,
        evr,
        arch,
        path: relative.to_string(),
        sha256,
        size,
    })
}
