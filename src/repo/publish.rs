//! The vendor side: `real-upgrade repo index DIR` turns `DIR/releases.toml` and the RPM files it
//! names into `DIR/index.toml`, reading each package's name, EVR and arch with the `rpm` crate.
//!
//! What every host would refuse is refused here first, naming the entry of `releases.toml`: a
//! release version listed twice or not a version, a package path that leaves the repository
//! (`../`, absolute), and a package listed twice in one release (or in the upgrader).

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Deserialize;
use toml::Spanned;

use super::fetch::digest_file;
use crate::error::UpgradeError;
use crate::host::PackageIdentity;
use crate::model::catalog::Prerequisite;
use crate::model::catalog::{Artifact, FORMAT, Index, ReleaseEntry, UpgraderEntry, listed_twice};
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
    packages: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseSpec {
    version: toml::Spanned<String>,
    #[serde(default)]
    stop: bool,
    requires_upgrader: Option<String>,
    packages: Vec<Spanned<String>>,
    #[serde(default)]
    prerequisites: Vec<PrerequisiteSpec>,
    #[serde(default)]
    checks: Checks,
    #[serde(default)]
    health: Vec<crate::model::health::HealthCheck>,
}

/// A prerequisite: `{ name = "openssl-libs", version = ">= 3.0", package = "packages/…rpm" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrerequisiteSpec {
    name: String,
    version: VersionRange,
    /// The repository's build of it, when the vendor ships one.
    package: Option<Spanned<String>>,
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
    let at =
        |path: &Spanned<String>| crate::tomlfile::location(&text, &spec_path, path.span().start);
    let mut packages = 0;
    let mut artifacts = |what: &str, paths: &[Spanned<String>]| -> Result<Vec<Artifact>> {
        packages += paths.len();
        let list = paths
            .iter()
            .map(|p| artifact(dir, p, what, &at))
            .collect::<Result<Vec<_>>>()?;
        match listed_twice(what, &list) {
            Some((i, e)) => Err(UpgradeError::input(format!("`{}`: {e}", at(&paths[i]))).into()),
            None => Ok(list),
        }
    };
    let upgrader = match &spec.upgrader {
        Some(u) => Some(UpgraderEntry {
            version: toml::Spanned::new(0..0, u.version.clone()),
            packages: artifacts("the upgrader", &u.packages)?,
        }),
        None => None,
    };
    let mut releases = Vec::with_capacity(spec.releases.len());
    for r in &spec.releases {
        let release = format!("release `{}`", r.version.get_ref().trim());
        let mut prerequisites = Vec::with_capacity(r.prerequisites.len());
        for p in &r.prerequisites {
            let package = match &p.package {
                Some(path) => Some(artifact(dir, path, &release, &at)?),
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
            packages: artifacts(&release, &r.packages)?,
            prerequisites,
            checks: r.checks.clone(),
            health: r.health.clone(),
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

/// The index entry of the package file `relative` names, which `what` lists at `at(relative)`.
fn artifact(
    dir: &Path,
    relative: &Spanned<String>,
    what: &str,
    at: &dyn Fn(&Spanned<String>) -> String,
) -> Result<Artifact> {
    if !Artifact::path_stays_inside(relative.get_ref()) {
        return Err(UpgradeError::input_hint(
            format!(
                "`{}`: {what} names `{}`: a package path must be relative and stay inside the \
                 repository",
                at(relative),
                relative.get_ref()
            ),
            format!(
                "move the file under `{}` and name it from there",
                dir.display()
            ),
        )
        .into());
    }
    let relative = relative.get_ref();
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
