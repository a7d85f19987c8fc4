//! `index.toml`: the raw serde format ([`Index`]) and the validated, typed view of it ([`Catalog`]),
//! releases sorted by the product's version scheme; and [`Summary`], the lean view `status` reads.
//!
//! A 10,000-package index is about 3 MB of TOML, nearly all of it `[[releases.packages]]` tables.
//! `status` only needs the newest release's version, so [`Catalog::parse_summary`] drops those
//! tables line by line and parses the rest with the same code and the same checks as a real run
//! (an error is reported from the whole index, so it names the right line). Runs and plans always
//! parse and validate the whole index, one `[[releases]]` table at a time (`parse_by_release`),
//! which keeps the parser's memory to one release's worth.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::UpgradeError;
use crate::model::checks::{Checks, VersionRange};
use crate::model::health::HealthCheck;
use crate::model::version::{Version, VersionScheme};

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    pub product: String,
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<toml::value::Datetime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrader: Option<UpgraderEntry>,
    #[serde(default)]
    pub releases: Vec<ReleaseEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpgraderEntry {
    pub version: Spanned<String>,
    #[serde(default)]
    pub packages: Vec<Artifact>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseEntry {
    pub version: Spanned<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_upgrader: Option<String>,
    #[serde(default)]
    pub packages: Vec<Artifact>,
    /// Packages of the operating system this release needs, with their supported range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// What this release requires of the host (SPEC §9).
    #[serde(default, skip_serializing_if = "Checks::is_empty")]
    pub checks: Checks,
    /// The health checks a host running this release must pass (SPEC §13).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthCheck>,
}

/// One file of the repository, as the index declares it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub name: String,
    pub evr: String,
    pub arch: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A validated index: releases in ascending version order.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub product: String,
    pub sequence: u64,
    pub expires: Option<toml::value::Datetime>,
    pub upgrader: Option<Upgrader>,
    pub releases: Vec<Release>,
}

/// The upgrader release the index offers: the shim refreshes to it.
#[derive(Debug, Clone)]
pub struct Upgrader {
    /// Compared with the installed upgrader package's version the way rpm compares versions.
    pub version: String,
    pub packages: Vec<Artifact>,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub version: Version,
    pub stop: bool,
    /// The oldest upgrader that may perform an upgrade to this release.
    pub requires_upgrader: Option<String>,
    pub packages: Vec<Artifact>,
    pub prerequisites: Vec<Prerequisite>,
    pub checks: Checks,
    pub health: Vec<HealthCheck>,
}

impl Catalog {
    pub fn parse(
        text: &str,
        path: &Path,
        product: &str,
        scheme: VersionScheme,
    ) -> Result<Catalog, UpgradeError> {
        let index = match parse_by_release(text) {
            Some(index) => index,
            None => crate::tomlfile::parse(text, path, "repository index")?,
        };
        let at = |span: std::ops::Range<usize>| {
            let before = &text[..span.start.min(text.len())];
            format!("{}:{}", path.display(), before.matches('\n').count() + 1)
        };
        if index.format != FORMAT {
            return Err(UpgradeError::input(format!(
                "repository index `{}` has format {}, this upgrader reads format {FORMAT}",
                path.display(),
                index.format
            )));
        }
        if index.product != product {
            return Err(UpgradeError::input_hint(
                format!(
                    "repository index `{}` is for product `{}`, not `{product}`",
                    path.display(),
                    index.product
                ),
                "check `product` and `[repository] url` in the configuration",
            ));
        }
        let mut releases = Vec::with_capacity(index.releases.len());
        for entry in index.releases {
            let version = scheme
                .parse(entry.version.get_ref())
                .map_err(|e| UpgradeError::input(format!("`{}`: {e}", at(entry.version.span()))))?;
            for artifact in &entry.packages {
                artifact.validate().map_err(|e| {
                    UpgradeError::input(format!("`{}`: {e}", at(entry.version.span())))
                })?;
            }
            let release = format!("release `{}`", entry.version.get_ref());
            if let Some((_, e)) = listed_twice(&release, &entry.packages) {
                return Err(UpgradeError::input(format!(
                    "`{}`: {e}",
                    at(entry.version.span())
                )));
            }
            for p in &entry.prerequisites {
                if let Some(a) = &p.package {
                    a.validate()
                        .and_then(|()| match a.name == p.name {
                            true => Ok(()),
                            false => Err(format!(
                                "prerequisite `{}` names the package `{}`",
                                p.name, a.name
                            )),
                        })
                        .map_err(|e| {
                            UpgradeError::input(format!("`{}`: {e}", at(entry.version.span())))
                        })?;
                }
            }
            let mut keys = std::collections::HashSet::new();
            if let Some(dup) = entry.health.iter().find(|c| !keys.insert(c.key())) {
                return Err(UpgradeError::input(format!(
                    "`{}`: {release} has two health checks named `{}`",
                    at(entry.version.span()),
                    dup.key()
                )));
            }
            releases.push(Release {
                version,
                stop: entry.stop,
                requires_upgrader: entry.requires_upgrader,
                packages: entry.packages,
                prerequisites: entry.prerequisites,
                checks: entry.checks,
                health: entry.health,
            });
        }
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        if let Some(pair) = releases.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(UpgradeError::input(format!(
                "repository index `{}` lists release `{}` twice",
                path.display(),
                pair[0].version
            )));
        }
        let upgrader = match index.upgrader {
            Some(u) => {
                for artifact in &u.packages {
                    artifact.validate().map_err(|e| {
                        UpgradeError::input(format!("`{}`: {e}", at(u.version.span())))
                    })?;
                }
                if let Some((_, e)) = listed_twice("the upgrader", &u.packages) {
                    return Err(UpgradeError::input(format!(
                        "`{}`: {e}",
                        at(u.version.span())
                    )));
                }
                Some(Upgrader {
                    version: u.version.into_inner(),
                    packages: u.packages,
                })
            }
            None => None,
        };
        Ok(Catalog {
            product: index.product,
            sequence: index.sequence,
            expires: index.expires,
            upgrader,
            releases,
        })
    }

    /// Parses only what `status` needs: the index without its releases' package tables. The
    /// format, product, versions and duplicate releases are checked as [`Catalog::parse`] checks
    /// them; the package entries are not read at all.
    pub fn parse_summary(
        text: &str,
        path: &Path,
        product: &str,
        scheme: VersionScheme,
    ) -> Result<Summary, UpgradeError> {
        // NB: a package table that is not plainly `key = "string"` / `key = integer` lines
        // could hide TOML that changes the meaning of what follows it: parse the whole index. So
        // does an error, whose line numbers must be those of the whole index.
        let lean = without_package_tables(text)
            .and_then(|lean| Catalog::parse(&lean, path, product, scheme).ok());
        let catalog = match lean {
            Some(catalog) => catalog,
            None => Catalog::parse(text, path, product, scheme)?,
        };
        Ok(Summary {
            newest: catalog.newest().map(|r| r.version.clone()),
            product: catalog.product,
            sequence: catalog.sequence,
            expires: catalog.expires,
        })
    }

    pub fn newest(&self) -> Option<&Release> {
        self.releases.last()
    }

    pub fn release(&self, version: &Version) -> Option<&Release> {
        self.releases.iter().find(|r| &r.version == version)
    }
}

/// The index parsed one `[[releases]]` table at a time: its head (everything before the first
/// `[[releases]]` line), then each release from its header line to the next one, with the spans
/// of the release versions moved to where they are in `text`. `None` when the index has fewer
/// than two such lines or any part does not parse on its own: then the whole index is parsed,
/// which also reports any error with the right line.
// NB: the TOML parser keeps every token of what it parses at once; parsing a 50,000-package
// index (11 MB) whole peaked at 171 MB. Each part is valid TOML on its own exactly when the
// whole is (a `[[releases]]` line inside a multi-line string breaks both halves of it, and a
// top-level table after the releases is an unknown field of a part).
fn parse_by_release(text: &str) -> Option<Index> {
    const HEADER: &str = "[[releases]]";
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == HEADER {
            starts.push(offset);
        }
        offset += line.len();
    }
    if starts.len() < 2 {
        return None;
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Part {
        releases: Vec<ReleaseEntry>,
    }
    let mut index: Index = toml::from_str(&text[..starts[0]]).ok()?;
    if !index.releases.is_empty() {
        return None;
    }
    index.releases.reserve(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let part: Part = toml::from_str(&text[start..end]).ok()?;
        for mut release in part.releases {
            let span = release.version.span();
            let version = std::mem::take(release.version.get_mut());
            release.version = Spanned::new(span.start + start..span.end + start, version);
            index.releases.push(release);
        }
    }
    Some(index)
}

/// What `status` reads of an index: [`Catalog::parse_summary`].
#[derive(Debug, Clone)]
pub struct Summary {
    pub product: String,
    pub sequence: u64,
    pub expires: Option<toml::value::Datetime>,
    pub newest: Option<Version>,
}

const PACKAGE_TABLE: &str = "[[releases.packages]]";

/// `text` without its `[[releases.packages]]` tables; `None` when a line of such a table is
/// anything but blank, a comment, or `key = "plain string"` / `key = integer`.
// NB: the tables are dropped, not blanked: the TOML parser keeps a token per blank line, which
// for a 50,000-package index was 30 MB.
fn without_package_tables(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() / 8);
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == PACKAGE_TABLE
                || (trimmed.starts_with(PACKAGE_TABLE)
                    && trimmed[PACKAGE_TABLE.len()..].trim_start().starts_with('#'));
        } else if skipping && !plain_line(trimmed) {
            return None;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    Some(out)
}

/// A blank line, a comment, or `key = "a string without escapes"` / `key = 123`.
fn plain_line(line: &str) -> bool {
    if line.is_empty() || line.starts_with('#') {
        return true;
    }
    let Some((key, value)) = line.split_once('=') else {
        return false;
    };
    let key_ok = {
        let key = key.trim();
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let value = value.trim();
    let value_ok = match value.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .is_some_and(|s| !s.contains(['"', '\\'])),
        None => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'_'),
    };
    key_ok && value_ok
}

/// A prerequisite package a release needs from the operating system, with its supported range;
/// `package` is the repository's build of it, when the vendor publishes one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    pub name: String,
    pub version: VersionRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Artifact>,
}

/// The first package that `packages` (of `what`: "release `2.0.0`", "the upgrader") lists a
/// second time by name: its position, and the error naming both files.
// NB: a release installs one EVR of each package in one transaction, and the plan keys its
// changes by name: a second entry would be silently dropped by one side or the other.
pub fn listed_twice(what: &str, packages: &[Artifact]) -> Option<(usize, String)> {
    let mut seen = std::collections::HashMap::with_capacity(packages.len());
    for (i, a) in packages.iter().enumerate() {
        if let Some(first) = seen.insert(a.name.as_str(), a) {
            return Some((
                i,
                format!(
                    "{what} lists package `{}` twice: `{}` and `{}`",
                    a.name, first.path, a.path
                ),
            ));
        }
    }
    None
}

impl Artifact {
    /// Whether `path` can name a file of the repository: relative, and with no empty or `..`
    /// component, so that it stays inside the repository.
    pub fn path_stays_inside(path: &str) -> bool {
        !path.is_empty()
            && !path.starts_with('/')
            && path.split('/').all(|c| !c.is_empty() && c != "..")
    }

    fn validate(&self) -> Result<(), String> {
        if !Artifact::path_stays_inside(&self.path) {
            return Err(format!(
                "package `{}` has path `{}`: it must be relative and stay inside the repository",
                self.name, self.path
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "package `{}` has sha256 `{}`: expected 64 hex digits",
                self.name, self.sha256
            ));
        }
        Ok(())
    }

    /// `name-evr.arch`, the way rpm names a package.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"format = 1
product = "demo"
sequence = 3
[[releases]]
version = "2.0.0"
[[releases.packages]]  # the server
name = "demo-server"
evr = "2.0.0-1"
arch = "x86_64"
path = "a.rpm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1_000

[[releases]]
version = "1.0.0"
stop = true
"#;

    fn summary(text: &str) -> Result<Summary, UpgradeError> {
        Catalog::parse_summary(text, Path::new("index.toml"), "demo", VersionScheme::Semver)
    }

    #[test]
    fn summary_skips_package_tables_and_errors_name_the_right_line() {
        let lean = without_package_tables(INDEX).unwrap();
        assert!(!lean.contains("demo-server") && lean.contains("version = \"1.0.0\""));
        let s = summary(INDEX).unwrap();
        assert_eq!(s.newest.unwrap().to_string(), "2.0.0");
        assert_eq!(s.sequence, 3);
        // a bad version is still an error, on its line
        let bad = INDEX.replace("\"1.0.0\"", "\"one\"");
        assert!(
            summary(&bad)
                .unwrap_err()
                .to_string()
                .contains("index.toml:15")
        );
    }

    #[test]
    fn parsing_by_release_is_parsing_whole() {
        let s = VersionScheme::Semver;
        let by_release = parse_by_release(INDEX).unwrap();
        let whole: Index = toml::from_str(INDEX).unwrap();
        assert_eq!(format!("{by_release:?}"), format!("{whole:?}"));
        // errors come from the whole index, with its line numbers
        let bad = INDEX.replace("\"1.0.0\"", "\"one\"");
        let e = Catalog::parse(&bad, Path::new("index.toml"), "demo", s).unwrap_err();
        assert!(e.to_string().contains("index.toml:15"), "{e}");
        let late = format!("{INDEX}[upgrader]\nversion = \"1.0.0\"\n");
        assert!(parse_by_release(&late).is_none());
        let c = Catalog::parse(&late, Path::new("index.toml"), "demo", s).unwrap();
        assert_eq!(c.upgrader.unwrap().version, "1.0.0");
        let twice = INDEX.replace("\"1.0.0\"", "\"2.0.0\"");
        let e = Catalog::parse(&twice, Path::new("index.toml"), "demo", s).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn summary_parses_whole_index_when_a_package_table_is_not_plain() {
        assert!(without_package_tables(&INDEX.replace("size = 1_000", "size = 1e3")).is_none());
        let odd = INDEX.replace("arch = \"x86_64\"", "arch = 'x86_64'");
        assert!(without_package_tables(&odd).is_none());
        assert_eq!(summary(&odd).unwrap().newest.unwrap().to_string(), "2.0.0");
        // an unknown key in a package table is still refused by the whole parse
        let unknown = INDEX.replace("arch = \"x86_64\"", "arch = { a = 1 }");
        assert!(summary(&unknown).is_err());
    }
}
