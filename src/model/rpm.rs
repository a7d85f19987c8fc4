//! What a root's rpm database holds, as a value: read once per run by [`crate::host`], then
//! consulted by the planner, the checks and the package step.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Installed packages by name; several entries when multilib builds are installed side by side.
#[derive(Debug, Clone, Default)]
pub struct RpmDb {
    pub packages: HashMap<String, Vec<InstalledPackage>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub evr: String,
    pub arch: String,
}

impl RpmDb {
    /// The newest installed EVR of `name`.
    pub fn newest(&self, name: &str) -> Option<&InstalledPackage> {
        self.packages
            .get(name)?
            .iter()
            .max_by(|a, b| crate::model::version::compare_evr(&a.evr, &b.evr))
    }
}
