//! The phases whose executables run like hooks (SPEC §6): where they live and what they are called.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pre,
    Post,
    /// Executable data migrations run with the hook environment too.
    Migrate,
    /// Custom preflight checks (`checks.d`) are discovered and run like hooks.
    Check,
    /// Health checks (`health.d`, SPEC §13) are discovered and run like hooks.
    Health,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
            Phase::Migrate => "migrate",
            Phase::Check => "check",
            Phase::Health => "health",
        }
    }

    pub fn dir_name(self) -> &'static str {
        match self {
            Phase::Pre => "pre-upgrade.d",
            Phase::Post => "post-upgrade.d",
            Phase::Migrate => "migrations",
            Phase::Check => "checks.d",
            Phase::Health => "health.d",
        }
    }
}
