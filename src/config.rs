//! `upgrade.toml` (SPEC §3) → a typed [`Config`], parsed and validated once.
//!
//! Every key has a default, so a missing file is a valid configuration; an unknown key or malformed
//! TOML is an error naming the file, line and key (exit 2).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::UpgradeError;
use crate::model::plan::MigrationRole;
pub use crate::model::services::ServiceBackend;
use crate::model::version::VersionScheme;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub product: String,
    pub version_scheme: VersionScheme,
    pub repository: Repository,
    pub upgrader: Upgrader,
    pub packages: Packages,
    pub database: Database,
    pub services: Services,
    pub hooks: Hooks,
    /// Preflight checks the administrator adds to the releases' own (SPEC §9).
    pub checks: crate::model::checks::Checks,
    pub restore: Restore,
    pub health: Health,
    pub uninstall: Uninstall,
    pub reboot: Reboot,
}

/// What a hook's reboot request (exit 100, SPEC §6) does once the run has stopped for it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reboot {
    /// Reboot the host itself, once the journal says where the run stopped; the shipped
    /// `upgrade-resume.service` finishes the run after the boot (`real-upgrade --yes
    /// --after-reboot`). Off by default: the run stops with exit 10 and a person reboots.
    pub automatic: bool,
    /// The command that reboots (`sh -c`, on this machine, not in the root). Default:
    /// `systemctl reboot` when the root is `/`; under any other root (a sandbox) nothing is
    /// rebooted unless this is set.
    pub command: Option<String>,
}

/// The reboot command of the real root.
pub const REBOOT_COMMAND: &str = "systemctl reboot";

/// What `uninstall` deletes with `--purge` and what it never removes (SPEC §14).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Uninstall {
    /// The product's data paths (files or directories, absolute inside the root) that
    /// `--purge` deletes, whole; saved in the uninstall's restore point, so that `rollback`
    /// brings them back.
    pub purge_paths: Vec<std::path::PathBuf>,
    /// Paths never removed: `--purge` leaves them (and what is under them) and an uninstall
    /// puts back any that its package removal or a hook took.
    pub keep: Vec<std::path::PathBuf>,
    /// Users the product shares with others: never removed (this tool removes none; the
    /// uninstall reports them as left behind, and its hooks get them in `UPGRADE_KEEP_USERS`,
    /// the `keep` paths in `UPGRADE_KEEP_PATHS`).
    pub keep_users: Vec<String>,
    /// Groups, as `keep_users`, in `UPGRADE_KEEP_GROUPS`.
    pub keep_groups: Vec<String>,
}

/// Health checks after the services start (SPEC §13).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// How long failing checks are tried again before the verdict.
    #[serde(deserialize_with = "crate::tomlfile::duration")]
    pub timeout: Duration,
    /// The wait between two attempts of a failing check (at most a minute).
    #[serde(deserialize_with = "interval")]
    pub interval: Duration,
    /// The bound on one attempt of a check that sets none.
    #[serde(deserialize_with = "crate::tomlfile::duration")]
    pub check_timeout: Duration,
    /// What a required check that fails does: `rollback` (default) or `stop`.
    pub on_failure: crate::model::health::OnFailure,
    /// The administrator's declarative checks (`[[health.check]]`).
    pub check: Vec<crate::model::health::HealthCheck>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            timeout: Duration::from_secs(120),
            interval: Duration::from_secs(2),
            check_timeout: Duration::from_secs(10),
            on_failure: Default::default(),
            check: Vec::new(),
        }
    }
}

/// The longest wait between two attempts of a health check.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

fn interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = crate::tomlfile::duration(d)?;
    if value.is_zero() || value > MAX_INTERVAL {
        return Err(serde::de::Error::custom(format!(
            "`interval` must be above zero and at most {}",
            humantime::format_duration(MAX_INTERVAL)
        )));
    }
    Ok(value)
}

/// Restore points (SPEC §12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restore {
    /// How many restore points are kept; older ones are removed after a successful run.
    pub keep: usize,
}

impl Default for Restore {
    fn default() -> Self {
        Restore { keep: 2 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Repository {
    /// A directory path (a relative one is relative to this file), a `file://` URL, or
    /// `https://` (`http://` with `allow_insecure`).
    pub url: Option<String>,
    pub public_key: Option<String>,
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upgrader {
    pub package: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Packages {
    pub backend: PackageBackend,
    /// The system's own repositories for the dnf backend (`file:///srv/os-repo`, `https://…`):
    /// dependencies and prerequisites come from them.
    pub repos: Vec<String>,
    /// Whether dnf checks the signatures of the system repositories' packages.
    pub gpgcheck: bool,
    /// dnf's `$releasever`; by default `VERSION_ID` of the root's `/etc/os-release`.
    pub releasever: Option<String>,
}

impl Default for Packages {
    fn default() -> Self {
        Packages {
            backend: PackageBackend::default(),
            repos: Vec::new(),
            gpgcheck: true,
            releasever: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageBackend {
    #[default]
    Rpm,
    Dnf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `sqlite:///PATH` (under the root), `postgres://…` or `mysql://…` / `mariadb://…`.
    pub url: Option<String>,
    /// How long to wait for another host's migrations to finish (for the migration lock, and
    /// on an application node for the migration node's migrations).
    #[serde(deserialize_with = "crate::tomlfile::duration")]
    pub lock_timeout: Duration,
    /// Whether this host applies the migrations (SPEC §15): `false` marks an application node
    /// of a fleet sharing one database, which waits for the migration node's instead and takes
    /// no database snapshot in its restore points.
    pub migrate: bool,
    /// This host's name in the shared database (the ledger's `node`, `upgrade_nodes`); by
    /// default the host name.
    pub node: Option<String>,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: None,
            lock_timeout: Duration::from_secs(60),
            migrate: true,
            node: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    /// How services are stopped and started, unless a service names its own.
    pub backend: ServiceBackend,
    /// How many services are stopped or started at the same time.
    pub jobs: usize,
    /// runit's service directory, under the root.
    pub runit_dir: String,
    /// The bound on one stop or start command of the backend.
    #[serde(deserialize_with = "crate::tomlfile::duration")]
    pub timeout: Duration,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            backend: ServiceBackend::default(),
            jobs: 4,
            runit_dir: "/etc/service".into(),
            timeout: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    #[serde(deserialize_with = "crate::tomlfile::duration")]
    pub timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            timeout: Duration::from_secs(600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            product: "product".into(),
            version_scheme: VersionScheme::default(),
            repository: Repository::default(),
            upgrader: Upgrader::default(),
            packages: Packages::default(),
            database: Database::default(),
            services: Services::default(),
            hooks: Hooks::default(),
            checks: Default::default(),
            restore: Restore::default(),
            health: Health::default(),
            uninstall: Uninstall::default(),
            reboot: Reboot::default(),
        }
    }
}

impl Config {
    /// Loads the configuration at `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Config, UpgradeError> {
        if !path.exists() {
            return Ok(Config::default());
        }
        let config: Config = crate::tomlfile::read(path, "configuration")?;
        let mut keys = std::collections::HashSet::new();
        if let Some(dup) = config.health.check.iter().find(|c| !keys.insert(c.key())) {
            return Err(UpgradeError::input(format!(
                "invalid configuration `{}`: two health checks are named `{}`",
                path.display(),
                dup.key()
            )));
        }
        let paths = config.uninstall.purge_paths.iter();
        if config
            .reboot
            .command
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(UpgradeError::input(format!(
                "invalid configuration `{}`: `[reboot] command` is empty",
                path.display()
            )));
        }
        if let Some(bad) = paths
            .chain(&config.uninstall.keep)
            .find(|p| !p.is_absolute() || p.parent().is_none())
        {
            return Err(UpgradeError::input(format!(
                "invalid configuration `{}`: `[uninstall]` path `{}` must be absolute and not `/`",
                path.display(),
                bad.display()
            )));
        }
        Ok(config)
    }

    /// The repository location, or an error saying where to set it.
    pub fn repository_url(&self, path: &Path) -> Result<&str, UpgradeError> {
        self.repository.url.as_deref().ok_or_else(|| {
            UpgradeError::input_hint(
                "no repository is configured",
                format!("set `url` under `[repository]` in `{}`", path.display()),
            )
        })
    }

    /// The product's database; by default an embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite:///var/lib/{0}/{0}.db", self.product))
    }

    /// What this host does with the migrations: `[database] migrate`.
    pub fn migration_role(&self) -> MigrationRole {
        match self.database.migrate {
            true => MigrationRole::Apply,
            false => MigrationRole::Wait,
        }
    }

    /// The package that carries `real-upgrade` and the vendor's assets.
    pub fn upgrader_package(&self) -> String {
        self.upgrader
            .package
            .clone()
            .unwrap_or_else(|| format!("{}-upgrade", self.product))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(text: &str) -> Result<Config, UpgradeError> {
        crate::tomlfile::parse(
            text,
            &PathBuf::from("/etc/upgrade/upgrade.toml"),
            "configuration",
        )
    }

    #[test]
    fn uninstall_paths_are_absolute() {
        let config = parse(
            "[uninstall]\npurge_paths = [\"/var/lib/demo\"]\nkeep = [\"/etc/demo/key\"]\n\
             keep_users = [\"demo\"]\nkeep_groups = [\"demo\"]\n",
        )
        .unwrap();
        assert_eq!(config.uninstall.keep_groups, ["demo"]);
        let dir = tempfile::tempdir().unwrap();
        for bad in ["purge_paths = [\"var/lib/demo\"]", "keep = [\"/\"]"] {
            let path = dir.path().join("upgrade.toml");
            std::fs::write(&path, format!("[uninstall]\n{bad}\n")).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains("must be absolute and not `/`"), "{err}");
        }
    }

    #[test]
    fn reboot_is_manual_by_default() {
        let c = parse("").unwrap();
        assert!(!c.reboot.automatic && c.reboot.command.is_none());
        let c = parse("[reboot]\nautomatic = true\ncommand = \"/sbin/reboot -f\"\n").unwrap();
        assert!(c.reboot.automatic);
        assert_eq!(c.reboot.command.as_deref(), Some("/sbin/reboot -f"));
        let err = parse("[reboot]\nautomatic = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:"), "{err}");
        let err = parse("[reboot]\nnow = true\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `now`"), "{err}");
    }

    #[test]
    fn an_application_node_waits_for_migrations() {
        let c = parse("[database]\nmigrate = false\nnode = \"web-3\"\n").unwrap();
        assert_eq!(c.migration_role(), MigrationRole::Wait);
        assert_eq!(c.database.node.as_deref(), Some("web-3"));
        assert_eq!(parse("").unwrap().migration_role(), MigrationRole::Apply);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("product = \"demo\"\n[hooks]\ntimeout = \"5m\"\ncolour = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/etc/upgrade/upgrade.toml:4:1"), "{text}");
        assert!(text.contains("unknown field `colour`"), "{text}");
    }

    #[test]
    fn defaults_and_durations() {
        let c = parse("[hooks]\ntimeout = \"90s\"\n").unwrap();
        assert_eq!(c.hooks.timeout, Duration::from_secs(90));
        assert_eq!(c.upgrader_package(), "product-upgrade");
        assert!(
            parse("[hooks]\ntimeout = \"soon\"\n")
                .unwrap_err()
                .to_string()
                .contains(":2:")
        );
    }
}
