//! One module per kind of step the run executes. Steps act; they never plan.
//!
//! - [`hooks`]: discovering and running `pre-upgrade.d` / `post-upgrade.d` executables.
//! - [`packages`]: the root's rpm database and the one transaction per hop (`rpm -U` or
//!   `dnf install`).
//! - [`preflight`]: the checks that run before anything changes, and the prerequisite policy.
//! - [`services`]: the service graph, stopped and started in dependency order, in parallel.

pub mod hooks;
pub mod migrations;
pub mod packages;
pub mod preflight;
pub mod services;
