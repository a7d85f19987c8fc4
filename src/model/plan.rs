//! Installed state + index → [`Plan`]: the hops from the installed version to the target through
//! every required stop, and per hop the package operations and the hooks that will run.
//!
//! Pure: it reads only its inputs. The plan is a value that is printed, stored in the journal and
//! resumed from; the run never re-plans.

use serde::{Deserialize, Serialize};

use crate::error::UpgradeError;
use crate::model::catalog::{Artifact, Catalog, Release};
use crate::model::checks::{BITS32, Checks, VersionRange};
use crate::model::health::HealthCheck;
use crate::model::journal::JournalKey;
use crate::model::migration::{self, Migration};
use crate::model::rpm::{InstalledPackage, RpmDb};
use crate::model::services::ServiceGraph;
use crate::model::version::{Version, compare_evr};
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub product: String,
    /// The installed version; `None` on a bare host (a fresh install).
    pub from: Option<String>,
    pub to: String,
    pub hops: Vec<Hop>,
    /// What the run does: an upgrade (a fresh install included) or a rollback.
    #[serde(default)]
    pub action: Action,
    /// What the run saves after the first hop's services stop and before its packages change
    /// (SPEC §12); `None` with `--no-restore-point`, and in plans stored before restore points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<RestorePointPlan>,
    /// The health checks that decide whether the release stays, after the last hop's services
    /// start (SPEC §13); `None` when there are none, and in plans stored before health gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPlan>,
    /// A rollback the health gate of run `.0` started by itself (SPEC §13): it ends in exit 6,
    /// resumed or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_for: Option<i64>,
    /// Whether this host applies the hops' migrations or waits for another node's (SPEC §15).
    #[serde(default, skip_serializing_if = "MigrationRole::is_apply")]
    pub migration_role: MigrationRole,
}

/// What a host does with the migrations of its hops (SPEC §15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationRole {
    /// Applies them: a single host, or a fleet's migration node.
    #[default]
    Apply,
    /// Waits until another node applied them (`[database] migrate = false`): a fleet's
    /// application node, whose restore points hold no database.
    Wait,
}

impl MigrationRole {
    pub fn is_apply(&self) -> bool {
        *self == MigrationRole::Apply
    }
}

/// The health checks of a plan: `health.d` programs fixed like hooks, and declarative checks
/// with where each was declared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPlan {
    pub programs: Vec<PlannedHook>,
    pub checks: Vec<SourcedCheck>,
}

/// The source of a health check of the configuration (a release's is `release VERSION`).
pub const CONFIG_SOURCE: &str = "config";

/// A declarative health check and where it was declared (`config`, `release 2.0.0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcedCheck {
    pub source: String,
    pub check: HealthCheck,
}

impl HealthPlan {
    /// The plan of `programs`, the configuration's checks and the release's (the
    /// configuration's replaces a release's of the same key); `None` when there is no check.
    pub fn new(
        programs: Vec<PlannedHook>,
        config: &[HealthCheck],
        release: Option<(&str, &[HealthCheck])>,
    ) -> Option<HealthPlan> {
        let mut checks: Vec<SourcedCheck> = config
            .iter()
            .map(|c| SourcedCheck {
                source: CONFIG_SOURCE.into(),
                check: c.clone(),
            })
            .collect();
        if let Some((version, declared)) = release {
            for c in declared {
                if !checks.iter().any(|s| s.check.key() == c.key()) {
                    checks.push(SourcedCheck {
                        source: format!("release {version}"),
                        check: c.clone(),
                    });
                }
            }
        }
        let plan = HealthPlan { programs, checks };
        (!plan.is_empty()).then_some(plan)
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty() && self.checks.is_empty()
    }

    /// How many checks it runs.
    pub fn len(&self) -> usize {
        self.programs.len() + self.checks.len()
    }
}

/// What a run does to the host (`UPGRADE_ACTION` of its hooks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Upgrade,
    /// Back to a restore point (SPEC §12).
    Rollback,
    /// From the installed version to nothing (SPEC §14).
    Uninstall,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upgrade => "upgrade",
            Action::Rollback => "rollback",
            Action::Uninstall => "uninstall",
        }
    }
}

/// The restore point a rollback's hop puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSource {
    /// The run whose restore point it is.
    pub run: i64,
    /// When it was taken: what the product wrote since is lost.
    pub taken_at: String,
    /// Whether it holds the database.
    pub database: bool,
    /// How many configuration files it puts back (or removes).
    pub files: usize,
}

/// What a restore point holds, fixed at planning like the rest of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePointPlan {
    /// The version installed when it is taken; `None` on a fresh install (an empty restore
    /// point: rolling it back removes what the run installed).
    pub version: Option<String>,
    /// The product's packages installed when it is taken, each with the index's artifact of
    /// that very build (kept in the restore point); `artifact` is `None` for a build no release
    /// of the index lists any more, which makes the restore point partial.
    pub packages: Vec<SavedPackage>,
    /// Whether the product's database is saved.
    pub database: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPackage {
    pub name: String,
    pub evr: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
}

impl SavedPackage {
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

impl RestorePointPlan {
    /// The restore point of a host whose rpm database is `rpmdb`, with `installed` recorded:
    /// every installed build of one of the product's packages (those any release of `catalog`
    /// lists, less the upgrader's and the prerequisites), kept from the artifact of that build.
    pub fn new(
        catalog: &Catalog,
        rpmdb: &RpmDb,
        installed: Option<&Version>,
        upgrader_package: &str,
        database: bool,
    ) -> RestorePointPlan {
        let not_product: HashSet<&str> = catalog
            .upgrader
            .iter()
            .flat_map(|u| &u.packages)
            .map(|a| a.name.as_str())
            .chain(
                catalog
                    .releases
                    .iter()
                    .flat_map(|r| &r.prerequisites)
                    .map(|p| p.name.as_str()),
            )
            .chain([upgrader_package])
            .collect();
        let artifacts: Vec<&Artifact> = catalog.releases.iter().flat_map(|r| &r.packages).collect();
        let names: std::collections::BTreeSet<&str> = artifacts
            .iter()
            .map(|a| a.name.as_str())
            .filter(|n| !not_product.contains(n))
            .collect();
        RestorePointPlan::of(&names, &artifacts, rpmdb, installed, database)
    }

    /// The restore point of a host whose rpm database is `rpmdb`: every installed build of one
    /// of `names` (the product's packages), kept from the artifact of `artifacts` of that very
    /// build.
    pub fn of(
        names: &std::collections::BTreeSet<&str>,
        artifacts: &[&Artifact],
        rpmdb: &RpmDb,
        installed: Option<&Version>,
        database: bool,
    ) -> RestorePointPlan {
        let packages = names
            .iter()
            .flat_map(|name| {
                let builds = rpmdb.packages.get(*name).into_iter().flatten();
                builds.map(move |p| (*name, p))
            })
            .map(|(name, p)| SavedPackage {
                name: name.to_string(),
                evr: p.evr.clone(),
                arch: p.arch.clone(),
                artifact: artifacts
                    .iter()
                    .find(|a| a.name == name && a.evr == p.evr && a.arch == p.arch)
                    .map(|a| (*a).clone()),
            })
            .collect();
        RestorePointPlan {
            version: installed.map(|v| v.to_string()),
            packages,
            database,
        }
    }

    /// Whether it holds nothing: nothing installed, no database to save. Such a restore point
    /// (a fresh install's, without a database) is implicit: the plan says it all, and the run
    /// takes no restore-point step (a rollback to it removes what the run installed).
    pub fn is_empty(&self) -> bool {
        self.version.is_none() && self.packages.is_empty() && !self.database
    }

    /// The builds it cannot keep: rolling back to it is refused.
    pub fn missing(&self) -> impl Iterator<Item = &SavedPackage> {
        self.packages.iter().filter(|p| p.artifact.is_none())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hop {
    pub from: Option<String>,
    pub to: String,
    /// This hop ends on a release that upgrades must pass through.
    pub stop: bool,
    pub packages: Vec<PackageChange>,
    /// Schema migrations in (from, to], in the order they apply.
    #[serde(default)]
    pub migrations: Vec<PlannedMigration>,
    pub hooks: PlannedHooks,
    /// The services this hop stops and starts (SPEC §8), in start order; on a fresh install
    /// every service, which is only started.
    #[serde(default)]
    pub services: Vec<String>,
    /// The operating system packages this release needs (SPEC §9), installed in the same
    /// transaction as `packages`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<PrerequisiteChange>,
    /// The preflight checks the release declares.
    #[serde(default, skip_serializing_if = "Checks::is_empty")]
    pub checks: Checks,
    /// A rollback's hop: the restore point whose configuration files and database it puts back
    /// after the packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSource>,
    /// An uninstall's hop: what its purge step deletes and what the run leaves behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstall: Option<UninstallPlan>,
    /// The services of `services` it stops and leaves stopped: all of them on a hop to nothing
    /// installed, else those whose packages it removes every one of (see [`Hop::leaves_stopped`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stays_stopped: Vec<String>,
}

/// What an uninstall deletes after its packages are gone (with `--purge`), and what it leaves
/// behind, each with why (SPEC §14). Fixed at planning like the rest of the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UninstallPlan {
    /// `--purge`: the product's database objects (or SQLite file) are dropped.
    pub database: bool,
    /// `--purge`: the `[uninstall] purge_paths` deleted, less what `keep` protects.
    pub paths: Vec<PathBuf>,
    /// `[uninstall] keep` paths: saved by the restore point and put back by the purge step if
    /// the package removal, a hook or the purge took them.
    pub keep: Vec<PathBuf>,
    /// Everything the run leaves on the host on purpose, and why.
    pub left_behind: Vec<LeftBehind>,
}

impl UninstallPlan {
    /// Whether it deletes anything (an extra confirmation names it).
    pub fn purges(&self) -> bool {
        self.database || !self.paths.is_empty()
    }
}

/// Something an uninstall leaves on the host, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBehind {
    /// What kind of thing: `path`, `user`, `group`, `database`, `package`.
    pub kind: String,
    pub name: String,
    pub why: String,
}

/// A prerequisite under the policy of SPEC §9: absent → install, older → upgrade, in range or
/// newer → keep (newer with a `note`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrerequisiteChange {
    pub name: String,
    pub version: VersionRange,
    pub op: PackageOp,
    /// The build installed before this hop; a 32-bit one when only that is installed.
    pub installed: Option<InstalledPackage>,
    /// The repository's build; `None` when it must come from the system's repositories.
    pub artifact: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PrerequisiteChange {
    /// What dnf is asked to install when the repository has no build of it.
    pub fn dnf_spec(&self) -> String {
        self.version.dnf_spec(&self.name)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlannedHooks {
    pub pre: Vec<PlannedHook>,
    pub post: Vec<PlannedHook>,
}

/// A hook the plan runs, and the file it resolved to when the plan was made (vendor's or
/// admin's); the run refuses to run another file under that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredHook")]
pub struct PlannedHook {
    pub name: String,
    /// `None` in plans stored by versions that recorded names alone.
    pub path: Option<PathBuf>,
}

/// A migration the plan applies, with the sha256 its file had when the plan was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredMigration")]
pub struct PlannedMigration {
    /// `VERSION/FILE`, as the ledger and messages name it.
    pub label: String,
    /// `None` in plans stored by versions that recorded labels alone.
    pub sha256: Option<String>,
}

/// NB: open runs are resumed from their stored plan, possibly by a newer version of this tool:
/// plans that list hooks and migrations by name alone still read.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredHook {
    Name(String),
    Full { name: String, path: Option<PathBuf> },
}

impl From<StoredHook> for PlannedHook {
    fn from(stored: StoredHook) -> PlannedHook {
        match stored {
            StoredHook::Name(name) => PlannedHook { name, path: None },
            StoredHook::Full { name, path } => PlannedHook { name, path },
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredMigration {
    Label(String),
    Full {
        label: String,
        sha256: Option<String>,
    },
}

impl From<StoredMigration> for PlannedMigration {
    fn from(stored: StoredMigration) -> PlannedMigration {
        match stored {
            StoredMigration::Label(label) => PlannedMigration {
                label,
                sha256: None,
            },
            StoredMigration::Full { label, sha256 } => PlannedMigration { label, sha256 },
        }
    }
}

/// What a hop does with one of the product's packages: the release's build of it (install,
/// upgrade, keep), or, for a package the release no longer lists, its removal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StoredPackageChange")]
pub struct PackageChange {
    pub op: PackageOp,
    pub name: String,
    /// The EVR installed before this hop, if any.
    pub installed: Option<String>,
    /// The release's build; `None` exactly when `op` is [`PackageOp::Remove`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
}

/// NB: plans stored before removals existed name the package by its artifact alone; a stored
/// change is checked once here, so that the rest of the code can rely on `artifact` being there
/// for every op but `Remove`.
#[derive(Deserialize)]
struct StoredPackageChange {
    op: PackageOp,
    name: Option<String>,
    installed: Option<String>,
    artifact: Option<Artifact>,
}

impl TryFrom<StoredPackageChange> for PackageChange {
    type Error = String;

    fn try_from(stored: StoredPackageChange) -> Result<PackageChange, String> {
        let name = match (stored.name, &stored.artifact) {
            (Some(name), _) => name,
            (None, Some(a)) => a.name.clone(),
            (None, None) => return Err("a package change names no package".into()),
        };
        if (stored.op == PackageOp::Remove) != stored.artifact.is_none() {
            return Err(format!(
                "package change `{name}`: a removal carries no artifact, every other change one"
            ));
        }
        Ok(PackageChange {
            op: stored.op,
            name,
            installed: stored.installed,
            artifact: stored.artifact,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageOp {
    Install,
    Upgrade,
    /// Already at this EVR, or newer (then it is kept and noted).
    Keep,
    /// One of the product's packages that the release no longer lists: erased in the hop (SPEC
    /// §5). Never a prerequisite's op.
    Remove,
    /// Back to an older build (a rollback: `rpm -U --oldpackage`).
    Downgrade,
}

/// One journaled step of a plan, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Download,
    /// A step of hop `.0`.
    Hop(usize, HopStep),
    /// The health gate after the last hop (SPEC §13).
    Health,
}

/// The steps of one hop, in execution order (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopStep {
    PreHooks,
    StopServices,
    /// The run's restore point (SPEC §12): in the first hop only, when the plan has one.
    RestorePoint,
    Packages,
    Migrate,
    /// A rollback's hop: the restore point's configuration files and database put back.
    RestoreData,
    PostHooks,
    StartServices,
    /// An uninstall's hop: `--purge`'s deletions, then the `[uninstall] keep` paths put back.
    Purge,
    Record,
}

impl HopStep {
    pub const ALL: [HopStep; 10] = [
        HopStep::PreHooks,
        HopStep::StopServices,
        HopStep::RestorePoint,
        HopStep::Packages,
        HopStep::Migrate,
        HopStep::RestoreData,
        HopStep::PostHooks,
        HopStep::StartServices,
        HopStep::Purge,
        HopStep::Record,
    ];

    fn name(self) -> &'static str {
        match self {
            HopStep::PreHooks => "pre-hooks",
            HopStep::StopServices => "stop-services",
            HopStep::RestorePoint => "restore-point",
            HopStep::Packages => "packages",
            HopStep::Migrate => "migrate",
            HopStep::RestoreData => "restore-data",
            HopStep::PostHooks => "post-hooks",
            HopStep::StartServices => "start-services",
            HopStep::Purge => "purge",
            HopStep::Record => "record",
        }
    }
}

impl Step {
    /// The journal key; stable across versions of this tool, since open runs are resumed by it.
    pub fn key(self) -> JournalKey {
        JournalKey::new(match self {
            Step::Download => "download".into(),
            Step::Hop(h, step) => format!("hop{h}:{}", step.name()),
            Step::Health => "health".into(),
        })
    }
}

pub struct PlanInput<'a> {
    pub installed: Option<&'a Version>,
    pub target: Option<&'a Version>,
    pub catalog: &'a Catalog,
    pub rpmdb: &'a RpmDb,
    pub hooks: PlannedHooks,
    pub migrations: &'a [Migration],
    pub services: &'a ServiceGraph,
    /// The configured upgrader package (`[upgrader] package`): never removed.
    pub upgrader_package: &'a str,
}

impl Plan {
    pub fn build(input: PlanInput<'_>) -> Result<Plan, UpgradeError> {
        let catalog = input.catalog;
        let newest = catalog.newest().ok_or_else(|| {
            UpgradeError::input(format!(
                "the repository index for `{}` lists no releases",
                catalog.product
            ))
        })?;
        let target = match input.target {
            Some(v) => catalog
                .release(v)
                .ok_or_else(|| UpgradeError::UnknownRelease {
                    version: v.to_string(),
                    available: catalog
                        .releases
                        .iter()
                        .map(|r| r.version.to_string())
                        .collect(),
                })?,
            None => newest,
        };
        if let Some(installed) = input.installed
            && target.version < *installed
        {
            // NB: the newest release was withdrawn: nothing newer is up to date, not a downgrade
            if input.target.is_none() {
                return Ok(Plan {
                    product: catalog.product.clone(),
                    from: Some(installed.to_string()),
                    to: installed.to_string(),
                    hops: Vec::new(),
                    action: Action::Upgrade,
                    restore_point: None,
                    health: None,
                    automatic_for: None,
                    migration_role: MigrationRole::Apply,
                });
            }
            return Err(UpgradeError::Downgrade {
                target: target.version.to_string(),
                installed: installed.to_string(),
            });
        }
        let mut hops = Vec::new();
        let mut from = input.installed.cloned();
        // What the rpm database will hold after each hop, starting from what it holds now.
        let mut evrs: std::collections::HashMap<String, String> = input
            .rpmdb
            .packages
            .keys()
            .filter_map(|n| input.rpmdb.newest(n).map(|p| (n.clone(), p.evr.clone())))
            .collect();
        let below_target = |v: &Version| *v < target.version;
        let after_from = |v: &Version, from: &Option<Version>| from.as_ref().is_none_or(|f| v > f);
        let stops: Vec<_> = catalog
            .releases
            .iter()
            .filter(|r| r.stop && below_target(&r.version) && after_from(&r.version, &from))
            .collect();
        let is_current = from.as_ref().is_some_and(|f| *f == target.version);
        for release in stops.into_iter().chain((!is_current).then_some(target)) {
            let mut packages: Vec<PackageChange> = release
                .packages
                .iter()
                .map(|a| {
                    let installed = evrs.get(&a.name).cloned();
                    let op = match &installed {
                        None => PackageOp::Install,
                        Some(evr) if compare_evr(evr, &a.evr).is_lt() => PackageOp::Upgrade,
                        Some(_) => PackageOp::Keep,
                    };
                    if op != PackageOp::Keep {
                        evrs.insert(a.name.clone(), a.evr.clone());
                    }
                    PackageChange {
                        op,
                        name: a.name.clone(),
                        installed,
                        artifact: Some(a.clone()),
                    }
                })
                .collect();
            packages.extend(removals(&input, from.as_ref(), release, &mut evrs));
            let migrations = migration::in_hop(input.migrations, from.as_ref(), &release.version)
                .into_iter()
                .map(|m| PlannedMigration {
                    label: m.label(),
                    sha256: Some(m.sha256.clone()),
                })
                .collect();
            let prerequisites = release
                .prerequisites
                .iter()
                .map(|p| prerequisite(p, input.rpmdb, &mut evrs))
                .collect();
            let services = affected_services(input.services, from.is_none(), &packages);
            let mut hop = Hop {
                from: from.as_ref().map(|v| v.to_string()),
                to: release.version.to_string(),
                stop: release.stop,
                packages,
                migrations,
                hooks: input.hooks.clone(),
                services,
                prerequisites,
                checks: release.checks.clone(),
                restore: None,
                uninstall: None,
                stays_stopped: Vec::new(),
            };
            hop.note_stays_stopped(input.services);
            hops.push(hop);
            from = Some(release.version.clone());
        }
        Ok(Plan {
            product: catalog.product.clone(),
            from: input.installed.map(|v| v.to_string()),
            to: target.version.to_string(),
            hops,
            action: Action::Upgrade,
            restore_point: None,
            health: None,
            automatic_for: None,
            migration_role: MigrationRole::Apply,
        })
    }

    pub fn is_up_to_date(&self) -> bool {
        self.hops.is_empty()
    }

    pub fn steps(&self) -> Vec<Step> {
        let restore_point = self.restore_point.as_ref().is_some_and(|r| !r.is_empty());
        let hops = self.hops.iter().enumerate().flat_map(move |(h, hop)| {
            HopStep::ALL
                .into_iter()
                .filter(move |s| match s {
                    HopStep::RestorePoint => h == 0 && restore_point,
                    HopStep::RestoreData => hop.restore.is_some(),
                    HopStep::Purge => hop.uninstall.is_some(),
                    // NB: an uninstall stops the product for good
                    HopStep::StartServices => hop.uninstall.is_none(),
                    // an uninstall applies none
                    HopStep::Migrate => hop.uninstall.is_none(),
                    _ => true,
                })
                .map(move |s| Step::Hop(h, s))
        });
        // NB: a run that leaves nothing installed has nothing to check
        let health = self.health.is_some() && !self.to.is_empty() && !self.hops.is_empty();
        std::iter::once(Step::Download)
            .chain(hops)
            .chain(health.then_some(Step::Health))
            .collect()
    }

    /// Every artifact the plan installs or upgrades, prerequisites included, and those its
    /// restore point keeps.
    pub fn artifacts(&self) -> impl Iterator<Item = &Artifact> {
        let kept = self
            .restore_point
            .iter()
            .flat_map(|r| &r.packages)
            .filter_map(|p| p.artifact.as_ref());
        self.hops.iter().flat_map(|h| h.artifacts()).chain(kept)
    }
}

impl Hop {
    /// The artifacts this hop installs or upgrades: its packages, then its prerequisites.
    pub fn artifacts(&self) -> impl Iterator<Item = &Artifact> {
        let packages = self
            .packages
            .iter()
            .filter(|p| p.op != PackageOp::Keep)
            .filter_map(|p| p.artifact.as_ref());
        let prerequisites = self
            .prerequisites
            .iter()
            .filter(|p| p.op != PackageOp::Keep)
            .filter_map(|p| p.artifact.as_ref());
        packages.chain(prerequisites)
    }

    /// The names of the product's packages this hop removes.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.packages
            .iter()
            .filter(|p| p.op == PackageOp::Remove)
            .map(|p| p.name.as_str())
    }

    /// Whether service `i` of `graph` stays stopped after this hop: a hop to nothing installed
    /// (the rollback of a fresh install) removed every package of the product, and a hop that
    /// removes every package of a service (a rollback of the run that added it, a release that
    /// drops it) left it nothing to run, as before those packages were installed.
    pub fn leaves_stopped(&self, graph: &ServiceGraph, i: usize) -> bool {
        if self.to.is_empty() {
            return true;
        }
        let packages = &graph.service(i).packages;
        !packages.is_empty()
            && packages
                .iter()
                .all(|p| self.removals().any(|r| r == p.as_str()))
    }

    /// Fills [`Hop::stays_stopped`] from `graph`.
    pub fn note_stays_stopped(&mut self, graph: &ServiceGraph) {
        self.stays_stopped = self
            .services
            .iter()
            .filter(|name| {
                graph
                    .index(name)
                    .is_some_and(|i| self.leaves_stopped(graph, i))
            })
            .cloned()
            .collect();
    }
}

/// The product's packages that `release` no longer lists and that are installed (or installed
/// by an earlier hop): each a [`PackageOp::Remove`], by name.
///
/// NB: the product's packages are those any release up to `from` listed, not only `from`'s: a
/// package an older release dropped while this tool still kept such packages is removed at the
/// next hop. Never removed: what `release` lists, any release's prerequisites (SPEC §5: they
/// and the OS's packages stay), and the upgrader's packages. A fresh install removes nothing.
fn removals(
    input: &PlanInput<'_>,
    from: Option<&Version>,
    release: &Release,
    evrs: &mut std::collections::HashMap<String, String>,
) -> Vec<PackageChange> {
    let Some(from) = from else {
        return Vec::new();
    };
    let catalog = input.catalog;
    let upgrader = catalog.upgrader.iter().flat_map(|u| &u.packages);
    let prerequisites = catalog.releases.iter().flat_map(|r| &r.prerequisites);
    let kept: HashSet<&str> = release
        .packages
        .iter()
        .chain(upgrader)
        .map(|a| a.name.as_str())
        .chain(prerequisites.map(|p| p.name.as_str()))
        .chain([input.upgrader_package])
        .collect();
    let dropped: std::collections::BTreeSet<&str> = catalog
        .releases
        .iter()
        .filter(|r| r.version <= *from)
        .flat_map(|r| &r.packages)
        .map(|a| a.name.as_str())
        .filter(|n| !kept.contains(n))
        .collect();
    dropped
        .into_iter()
        .filter_map(|name| {
            let installed = evrs.remove(name)?;
            Some(PackageChange {
                op: PackageOp::Remove,
                name: name.to_string(),
                installed: Some(installed),
                artifact: None,
            })
        })
        .collect()
}

/// Applies the prerequisite policy to what is installed (or installed by an earlier hop).
fn prerequisite(
    p: &crate::model::catalog::Prerequisite,
    rpmdb: &RpmDb,
    evrs: &mut std::collections::HashMap<String, String>,
) -> PrerequisiteChange {
    let wanted_arch = p
        .package
        .as_ref()
        .map_or(std::env::consts::ARCH, |a| a.arch.as_str());
    let builds = rpmdb.packages.get(&p.name).map_or(&[][..], Vec::as_slice);
    let fits = |arch: &str| arch == wanted_arch || arch == "noarch" || wanted_arch == "noarch";
    let compatible = builds
        .iter()
        .filter(|b| fits(&b.arch))
        .max_by(|a, b| compare_evr(&a.evr, &b.evr));
    // NB: a 32-bit build alone is reported (the preflight inhibits), never silently replaced.
    let installed = compatible
        .cloned()
        .or_else(|| {
            builds
                .iter()
                .find(|b| BITS32.contains(&b.arch.as_str()))
                .cloned()
        })
        .map(|mut i| {
            if let Some(evr) = evrs.get(&p.name) {
                i.evr = evr.clone();
            }
            i
        });
    let usable = installed.as_ref().filter(|i| fits(&i.arch));
    let (op, note) = match usable {
        None => (PackageOp::Install, None),
        Some(i) if p.version.below(&i.evr) => (PackageOp::Upgrade, None),
        Some(i) if p.version.above(&i.evr) => (
            PackageOp::Keep,
            Some(format!(
                "`{}` {} is newer than the supported `{}`; it is kept",
                p.name, i.evr, p.version
            )),
        ),
        Some(_) => (PackageOp::Keep, None),
    };
    if op != PackageOp::Keep
        && let Some(a) = &p.package
    {
        evrs.insert(p.name.clone(), a.evr.clone());
    }
    PrerequisiteChange {
        name: p.name.clone(),
        version: p.version.clone(),
        op,
        installed,
        artifact: p.package.clone(),
        note,
    }
}

/// The services a hop restarts: every one on a fresh install, else those its package changes
/// and `restart = "always"` affect (SPEC §8).
fn affected_services(graph: &ServiceGraph, fresh: bool, packages: &[PackageChange]) -> Vec<String> {
    if fresh {
        return graph.names(0..graph.services().len());
    }
    let changed: HashSet<&str> = packages
        .iter()
        .filter(|p| p.op != PackageOp::Keep)
        .map(|p| p.name.as_str())
        .collect();
    graph.names(graph.affected(&changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::version::VersionScheme;
    use std::path::Path;

    const INDEX: &str = r#"
format = 1
product = "demo"
sequence = 1
[[releases]]
version = "1.0.0"
[[releases.packages]]
name = "demo-server"
evr = "1.0.0-1"
arch = "x86_64"
path = "a.rpm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1
[[releases]]
version = "2.0.0"
stop = true
[[releases.packages]]
name = "demo-server"
evr = "2.0.0-1"
arch = "x86_64"
path = "b.rpm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1
[[releases]]
version = "3.0.0"
[[releases.packages]]
name = "demo-server"
evr = "3.0.0-1"
arch = "x86_64"
path = "c.rpm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1
"#;

    fn plan(installed: Option<&str>, target: Option<&str>) -> Result<Plan, UpgradeError> {
        let s = VersionScheme::Semver;
        let catalog = Catalog::parse(INDEX, Path::new("index.toml"), "demo", s).unwrap();
        let installed = installed.map(|v| s.parse(v).unwrap());
        let target = target.map(|v| s.parse(v).unwrap());
        Plan::build(PlanInput {
            installed: installed.as_ref(),
            target: target.as_ref(),
            catalog: &catalog,
            rpmdb: &RpmDb::default(),
            hooks: PlannedHooks::default(),
            migrations: &[],
            services: &ServiceGraph::default(),
            upgrader_package: "demo-upgrade",
        })
    }

    fn hops(p: &Plan) -> Vec<(Option<&str>, &str)> {
        p.hops
            .iter()
            .map(|h| (h.from.as_deref(), h.to.as_str()))
            .collect()
    }

    #[test]
    fn passes_through_required_stops() {
        let p = plan(Some("1.0.0"), None).unwrap();
        assert_eq!(
            hops(&p),
            [(Some("1.0.0"), "2.0.0"), (Some("2.0.0"), "3.0.0")]
        );
        assert_eq!(p.hops[0].packages[0].op, PackageOp::Install); // the rpm db is empty here
        assert_eq!(p.hops[1].packages[0].op, PackageOp::Upgrade);
        let fresh = plan(None, Some("1.0.0")).unwrap();
        assert_eq!(hops(&fresh), [(None, "1.0.0")]);
        let fresh_all = plan(None, None).unwrap();
        assert_eq!(
            hops(&fresh_all),
            [(None, "2.0.0"), (Some("2.0.0"), "3.0.0")]
        );
        assert_eq!(fresh_all.hops[1].packages[0].op, PackageOp::Upgrade);
    }

    /// An index of `releases` (version, stop, package names, prerequisite names), each package
    /// at the release's version.
    fn index(releases: &[(&str, bool, &[&str], &[&str])]) -> String {
        let mut text = "format = 1\nproduct = \"demo\"\nsequence = 1\n".to_string();
        for (version, stop, packages, prerequisites) in releases {
            text += &format!("[[releases]]\nversion = \"{version}\"\nstop = {stop}\n");
            let prerequisites: Vec<String> = prerequisites
                .iter()
                .map(|n| format!("{{ name = \"{n}\", version = \">= 1\" }}"))
                .collect();
            text += &format!("prerequisites = [{}]\n", prerequisites.join(", "));
            for name in *packages {
                text += &format!(
                    "[[releases.packages]]\nname = \"{name}\"\nevr = \"{version}-1\"\n\
                     arch = \"x86_64\"\npath = \"{name}-{version}.rpm\"\nsha256 = \"{}\"\n\
                     size = 1\n",
                    "0".repeat(64)
                );
            }
        }
        text
    }

    /// Each hop's package changes as `op name`.
    fn changes(index: &str, installed: Option<&str>, rpmdb: &[(&str, &str)]) -> Vec<Vec<String>> {
        let s = VersionScheme::Semver;
        let catalog = Catalog::parse(index, Path::new("index.toml"), "demo", s).unwrap();
        let installed = installed.map(|v| s.parse(v).unwrap());
        let mut db = RpmDb::default();
        for (name, evr) in rpmdb {
            db.packages
                .entry(name.to_string())
                .or_default()
                .push(InstalledPackage {
                    evr: evr.to_string(),
                    arch: "x86_64".into(),
                });
        }
        let plan = Plan::build(PlanInput {
            installed: installed.as_ref(),
            target: None,
            catalog: &catalog,
            rpmdb: &db,
            hooks: PlannedHooks::default(),
            migrations: &[],
            services: &ServiceGraph::default(),
            upgrader_package: "demo-upgrade",
        })
        .unwrap();
        plan.hops
            .iter()
            .map(|h| {
                h.packages
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            serde_json::to_value(p.op).unwrap().as_str().unwrap(),
                            p.name
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn packages_the_release_no_longer_lists_are_removed_in_that_hop() {
        let index = index(&[
            ("0.9.0", false, &["demo-server", "demo-ancient"], &[]),
            (
                "1.0.0",
                false,
                &["demo-server", "demo-legacy", "libfoo", "demo-upgrade"],
                &[],
            ),
            ("2.0.0", true, &["demo-server"], &["libfoo"]),
            ("3.0.0", false, &["demo-server", "demo-legacy"], &[]),
        ]);
        let installed = [
            ("demo-server", "1.0.0-1"),
            ("demo-legacy", "1.0.0-1"),
            ("demo-ancient", "0.9.0-1"),
            ("libfoo", "1.0.0-1"),
            ("demo-upgrade", "1.0.0-1"),
            ("bash", "5.2-1"),
        ];
        // an older release's package left behind is the product's too; a prerequisite, the
        // upgrader and an OS package stay; a package listed again later is installed again
        assert_eq!(
            changes(&index, Some("1.0.0"), &installed),
            [
                vec![
                    "upgrade demo-server",
                    "remove demo-ancient",
                    "remove demo-legacy"
                ],
                vec!["upgrade demo-server", "install demo-legacy"],
            ]
        );
        // what is not installed is not removed; a fresh install removes nothing
        assert_eq!(
            changes(&index, Some("1.0.0"), &[("demo-server", "1.0.0-1")]),
            [
                vec!["upgrade demo-server"],
                vec!["upgrade demo-server", "install demo-legacy"]
            ]
        );
        assert_eq!(
            changes(&index, None, &[("bash", "5.2-1")])[0],
            ["install demo-server"]
        );
    }

    #[test]
    fn stored_package_changes_read_old_plans_and_refuse_inconsistent_ones() {
        let artifact = format!(
            r#"{{"name":"demo-server","evr":"1-1","arch":"x86_64","path":"a.rpm","sha256":"{}","size":1}}"#,
            "0".repeat(64)
        );
        let old = format!(r#"{{"op":"upgrade","installed":"0.9-1","artifact":{artifact}}}"#);
        let change: PackageChange = serde_json::from_str(&old).unwrap();
        assert_eq!(
            (change.op, change.name.as_str()),
            (PackageOp::Upgrade, "demo-server")
        );
        let removal = r#"{"op":"remove","name":"demo-legacy","installed":"1-1"}"#;
        let change: PackageChange = serde_json::from_str(removal).unwrap();
        assert_eq!(serde_json::to_string(&change).unwrap(), removal);
        let bad = format!(r#"{{"op":"remove","installed":"1-1","artifact":{artifact}}}"#);
        assert!(serde_json::from_str::<PackageChange>(&bad).is_err());
        let bad = r#"{"op":"install","name":"demo-x","installed":null}"#;
        assert!(serde_json::from_str::<PackageChange>(bad).is_err());
    }

    #[test]
    fn an_uninstall_stops_removes_purges_and_records_and_starts_nothing() {
        let mut plan = plan(Some("1.0.0"), Some("1.0.0")).unwrap();
        plan.to = String::new();
        plan.action = Action::Uninstall;
        plan.hops = vec![Hop {
            from: Some("1.0.0".into()),
            to: String::new(),
            stop: false,
            packages: Vec::new(),
            migrations: Vec::new(),
            hooks: PlannedHooks::default(),
            services: vec!["demo".into()],
            prerequisites: Vec::new(),
            checks: Checks::default(),
            restore: None,
            uninstall: Some(UninstallPlan::default()),
            stays_stopped: Vec::new(),
        }];
        plan.health = Some(HealthPlan::default());
        let keys: Vec<String> = plan
            .steps()
            .into_iter()
            .map(|s| s.key().as_str().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "download",
                "hop0:pre-hooks",
                "hop0:stop-services",
                "hop0:packages",
                "hop0:post-hooks",
                "hop0:purge",
                "hop0:record"
            ]
        );
        let stored: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(stored.action, Action::Uninstall);
        assert!(stored.hops[0].uninstall.is_some());
    }

    #[test]
    fn up_to_date_downgrade_and_unknown_target() {
        assert!(plan(Some("3.0.0"), None).unwrap().is_up_to_date());
        assert!(
            plan(Some("3.0.0"), Some("1.0.0"))
                .unwrap_err()
                .to_string()
                .contains("older")
        );
        assert!(
            plan(None, Some("9.0.0"))
                .unwrap_err()
                .to_string()
                .contains("not in the repository")
        );
    }
}
