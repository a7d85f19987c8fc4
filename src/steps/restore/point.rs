//! The run's restore point (SPEC §12): taken after the first hop's services stop and before its
//! packages change, in `/var/lib/upgrade/restore/<run>/`. It holds the product's packages as
//! they were (the RPM files themselves, from the verified cache), the database (the engine's own
//! tools, [`database`]), the configuration files the run may change ([`files`]) and a manifest
//! naming it all.
//!
//! It is written into `<run>.partial/` and renamed into place once everything in it is durable:
//! a restore point either is whole or is not there. A run killed while taking it takes it again
//! (the partial directory is removed first); one killed after the rename finds the manifest and
//! only journals the step.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::database::{self, DbSnapshot, Tools};
use super::files::{self, FilesSnapshot};
use crate::context::Paths;
use crate::error::UpgradeError;
use crate::model::plan::{HopStep, Plan, RestorePointPlan, RestoreSource, Step};
use crate::repo::fetch;
use crate::steps::StepContext;

/// The manifest's file name in a restore point.
pub const MANIFEST: &str = "manifest.json";
pub const PACKAGES: &str = "packages";
const DATABASE: &str = "database";
const FILES: &str = "files";

/// What a restore point holds, as written in its manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The run it belongs to.
    pub run: i64,
    pub product: String,
    /// The version installed when it was taken; `None`: nothing was installed.
    pub version: Option<String>,
    pub taken_at: String,
    /// The product's packages as they were, each kept as a file in `packages/`.
    pub packages: Vec<KeptPackage>,
    /// Builds that were installed and that no repository had (NEVRA): a rollback to this
    /// restore point is refused.
    pub missing: Vec<String>,
    /// The database, when the product has one and this host saves it.
    pub database: Option<DbSnapshot>,
    pub files: FilesSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPackage {
    pub name: String,
    pub evr: String,
    pub arch: String,
    /// The file's name in `packages/`.
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

impl KeptPackage {
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

impl Manifest {
    /// Whether it lacks packages it would need to put the host back.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// The directory of run `run`'s restore point.
pub fn dir_of(paths: &Paths, run: i64) -> PathBuf {
    paths.restore.join(run.to_string())
}

/// The manifest of run `run`'s restore point, if it has one.
pub fn load(paths: &Paths, run: i64) -> Result<Option<Manifest>> {
    let path = dir_of(paths, run).join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", path.display())),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .with_context(|| format!("restore point manifest `{}` is damaged", path.display()))
}

/// The restore-point step of the first hop.
pub fn take(cx: &mut StepContext<'_, '_>, plan: &Plan, point: &RestorePointPlan) -> Result<()> {
    let key = Step::Hop(0, HopStep::RestorePoint).key();
    let dir = dir_of(cx.paths, cx.run_id());
    if dir.join(MANIFEST).exists() {
        // taken by an attempt killed before it journaled the step
        return cx.journal.mark(&key, None);
    }
    let work = dir.with_extension("partial");
    if work.exists() {
        fs::remove_dir_all(&work)
            .with_context(|| format!("failed to remove `{}`", work.display()))?;
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(work.join(PACKAGES))
        .with_context(|| format!("failed to create `{}`", work.display()))?;
    let mut packages = Vec::new();
    for saved in &point.packages {
        let Some(artifact) = &saved.artifact else {
            continue;
        };
        let cached = fetch::cache_path(&cx.paths.cache, artifact);
        if !cx.verified.contains(&cached) {
            // a resumed run: the download step verified it in an earlier attempt
            fetch::verify(&cached, artifact)?;
        }
        let file = format!("{}.rpm", saved.nevra());
        // NB: a package the cache links from a local repository is copied: the restore point
        // owns its packages, whatever later becomes of the repository's files
        let link = !fetch::shares_repository_file(cx.repo, artifact, &cached);
        keep_file(&cached, &work.join(PACKAGES).join(&file), link)?;
        packages.push(KeptPackage {
            name: saved.name.clone(),
            evr: saved.evr.clone(),
            arch: saved.arch.clone(),
            file,
            sha256: artifact.sha256.clone(),
            size: artifact.size,
        });
    }
    crate::fault::point!("restore-point:packages");
    let database = match point.database {
        true => Some(database::snapshot(
            &cx.config.database_url(),
            &cx.ctx.root,
            &work.join(DATABASE),
            &Tools::from_env(),
        )?),
        false => None,
    };
    crate::fault::point!("restore-point:database");
    let files = files::capture(
        &cx.ctx.root,
        &config_paths(cx, plan, point)?,
        &work.join(FILES),
    )?;
    let manifest = Manifest {
        run: cx.run_id(),
        product: plan.product.clone(),
        version: point.version.clone(),
        taken_at: crate::state::now(),
        packages,
        missing: point.missing().map(|p| p.nevra()).collect(),
        database,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).context("failed to write the manifest")?;
    write_synced(&work.join(MANIFEST), &text)?;
    sync_dir(&work)?;
    fs::rename(&work, &dir)
        .with_context(|| format!("failed to move `{}` to `{}`", work.display(), dir.display()))?;
    sync_dir(&cx.paths.restore)?;
    crate::fault::point!("restore-point:taken");
    tracing::info!(dir = %dir.display(), packages = manifest.packages.len(), "restore point taken");
    cx.journal.mark(&key, None)
}

/// The configuration files the run may change: those of the product's installed packages, those
/// the plan's packages bring (saved as absent when they are new), and `/etc/upgrade`.
fn config_paths(
    cx: &StepContext<'_, '_>,
    plan: &Plan,
    point: &RestorePointPlan,
) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = point.packages.iter().map(|p| p.name.clone()).collect();
    let mut paths = files::product_config_files(&cx.ctx.root, &names)?;
    let incoming: Vec<PathBuf> = plan
        .hops
        .iter()
        .flat_map(|h| h.artifacts())
        .map(|a| fetch::cache_path(&cx.paths.cache, a))
        .collect();
    paths.extend(files::config_files_of_package_files(&incoming)?);
    // NB: what rpm sets beside an edited file (`.rpmnew`) or moves aside (`.rpmsave`) during the
    // run, or during its rollback's downgrade, is saved as it was (absent, mostly), so that the
    // rollback removes it again
    let beside: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !p.starts_with("/etc/upgrade"))
        .flat_map(|p| {
            files::SET_ASIDE.map(|ext| {
                let mut name = p.as_os_str().to_owned();
                name.push(format!(".{ext}"));
                PathBuf::from(name)
            })
        })
        .collect();
    paths.extend(beside);
    // NB: an uninstall also saves what it may delete and what it must put back: the purge
    // paths and the `keep` paths, each with all it holds, so that `rollback` brings them back
    if let Some(uninstall) = plan.hops.first().and_then(|h| h.uninstall.as_ref()) {
        let trees = uninstall.paths.iter().chain(&uninstall.keep).cloned();
        paths.extend(files::tree(&cx.ctx.root, &trees.collect::<Vec<_>>())?);
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Where run `run`'s restore point keeps its files' contents.
pub fn files_dir(paths: &Paths, run: i64) -> PathBuf {
    dir_of(paths, run).join(FILES)
}

/// `from` as `to`, durably: a hard link where `link` allows and both are on one file system,
/// else a copy.
fn keep_file(from: &Path, to: &Path, link: bool) -> Result<()> {
    if !link || fs::hard_link(from, to).is_err() {
        fs::copy(from, to).with_context(|| {
            format!("failed to copy `{}` to `{}`", from.display(), to.display())
        })?;
    }
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("failed to sync `{}`", to.display()))
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("failed to create `{}`", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write `{}`", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to sync `{}`", dir.display()))
}

/// Removes all but the newest `keep` restore points (by run), and what runs killed while
/// taking theirs left; never `current`'s.
pub fn prune(paths: &Paths, keep: usize, current: i64) {
    let Ok(entries) = fs::read_dir(&paths.restore) else {
        return;
    };
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(run) = name
            .strip_suffix(".partial")
            .and_then(|r| r.parse::<i64>().ok())
        {
            if run != current {
                let _ = fs::remove_dir_all(entry.path());
            }
        } else if let Ok(run) = name.parse::<i64>() {
            runs.push(run);
        }
    }
    runs.sort_unstable_by(|a, b| b.cmp(a));
    for run in runs.into_iter().skip(keep).filter(|r| *r != current) {
        let dir = dir_of(paths, run);
        match fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!(run, "restore point pruned"),
            Err(e) => tracing::warn!(run, "failed to prune `{}`: {e}", dir.display()),
        }
    }
}

/// The restore-data step of a rollback's hop: the configuration files and the database of
/// `source`'s restore point, put back as they were when it was taken. Each can be put back
/// again after a kill midway.
pub fn put_back(cx: &mut StepContext<'_, '_>, index: usize, source: &RestoreSource) -> Result<()> {
    let key = Step::Hop(index, HopStep::RestoreData).key();
    if !source.database && source.files == 0 {
        // an implicit, empty restore point: nothing to put back
        return cx.journal.mark(&key, None);
    }
    let manifest = load(cx.paths, source.run)?.ok_or_else(|| {
        UpgradeError::step(
            format!("the restore point of run {} is gone", source.run),
            "it was removed since the rollback began; the host keeps the packages it has now",
        )
    })?;
    let dir = dir_of(cx.paths, source.run);
    files::restore_files(&cx.ctx.root, &manifest.files, &dir.join(FILES))?;
    crate::fault::point!("restore-data:files");
    if let Some(snapshot) = &manifest.database {
        database::restore(
            &cx.config.database_url(),
            &cx.ctx.root,
            snapshot,
            &dir.join(DATABASE),
            &Tools::from_env(),
        )?;
    }
    crate::fault::point!("restore-data:database");
    cx.journal.mark(&key, None)
}
