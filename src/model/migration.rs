//! A schema migration file (SPEC §7) as a value, and which of them a hop applies. Finding them on
//! disk and applying them is [`crate::steps::migrations`]'s.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::version::Version;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: Version,
    pub sequence: u32,
    /// The file name, e.g. `001-create-users.sql`.
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sql,
    /// An executable data migration; gets `UPGRADE_DATABASE_URL` and the hook environment.
    Executable,
}

impl Migration {
    /// `2.0.0/001-create-users.sql`: how messages and the plan name a migration.
    pub fn label(&self) -> String {
        format!("{}/{}", self.version, self.name)
    }

    pub fn key(&self) -> (String, u32) {
        (self.version.to_string(), self.sequence)
    }
}

/// The migrations a hop from `from` to `to` applies: version in (from, to].
pub fn in_hop<'a>(
    all: &'a [Migration],
    from: Option<&Version>,
    to: &Version,
) -> Vec<&'a Migration> {
    all.iter()
        .filter(|m| from.is_none_or(|f| m.version > *f) && m.version <= *to)
        .collect()
}
