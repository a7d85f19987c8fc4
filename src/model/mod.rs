//! Plain values, parsed once and importing nothing above [`crate::tomlfile`] and
//! [`crate::error`]: product versions and EVRs, the checks and their report, health checks, the repository's
//! catalog, what the rpm database holds, migration files, the service graph, and the plan.

pub mod catalog;
pub mod checks;
pub mod health;
pub mod hooks;
pub mod journal;
pub mod migration;
pub mod plan;
pub mod rpm;
pub mod services;
pub mod version;
