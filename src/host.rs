//! Reading the host: the root's rpm database and `/etc/os-release`. Every `rpm` command line
//! aimed at a root is built here, once.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::error::UpgradeError;
use crate::model::rpm::{InstalledPackage, RpmDb};

/// The rpm database lives here inside the root (`rpm --root R --dbpath /var/lib/rpm`).
pub const DBPATH: &str = "/var/lib/rpm";

/// `rpm --root ROOT --dbpath /var/lib/rpm`: the one place that aims rpm at a root.
fn aimed_at(root: &Path) -> Command {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root).args(["--dbpath", DBPATH]);
    // NB: in a process group of its own, which a Ctrl-C at the terminal does not reach: an rpm
    // transaction is never cut; the interrupt waits for it to end (SPEC §5).
    cmd.process_group(0);
    cmd
}

/// A `rpm` command aimed at `root`.
pub fn rpm(root: &Path) -> Command {
    let mut cmd = aimed_at(root);
    // NB: Debian's rpm refuses to touch a database unless told it knows what it is doing.
    if Path::new("/etc/debian_version").exists() {
        cmd.arg("--force-debian");
    }
    cmd
}

/// The machine's host name (the kernel's, not the root's: a fleet node is a machine).
pub fn hostname() -> Result<String> {
    let path = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(path).with_context(|| format!("failed to read `{path}`"))?;
    Ok(name.trim().to_string())
}

/// Whether `root` has an rpm database; a root without one has nothing installed.
pub fn has_rpm_database(root: &Path) -> bool {
    let db = root.join(DBPATH.trim_start_matches('/'));
    std::fs::read_dir(&db).is_ok_and(|mut d| d.next().is_some())
}

/// Queries the rpm database of `root`; a root without one has nothing installed.
pub fn installed_packages(root: &Path) -> Result<RpmDb> {
    if !has_rpm_database(root) {
        return Ok(RpmDb::default());
    }
    let query = || {
        rpm(root)
            .args([
                "-qa",
                "--qf",
                "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n",
            ])
            .output()
            .context("failed to run `rpm -qa`; is rpm installed?")
    };
    let mut output = query()?;
    // NB: an rpm killed while it created the database (the first transaction on a bare
    // root) leaves it without some tables, and a query cannot create them: `--initdb`
    // completes it (it never drops anything), then the query is tried again.
    // (`--initdb` is rpmdb's, which takes no `--force-debian`)
    if !output.status.success()
        && aimed_at(root)
            .arg("--initdb")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        tracing::warn!(root = %root.display(), "rpm database was incomplete; completed it with `rpm --initdb`");
        output = query()?;
    }
    if !output.status.success() {
        return Err(UpgradeError::step(
            format!(
                "`rpm -qa` on root `{}` failed: {}",
                root.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            "check the rpm database with `rpm --root ROOT --dbpath /var/lib/rpm -qa`",
        )
        .into());
    }
    let mut db = RpmDb::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(evr), Some(arch)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let evr = evr.strip_prefix("0:").unwrap_or(evr).to_string();
        db.packages
            .entry(name.to_string())
            .or_default()
            .push(InstalledPackage {
                evr,
                arch: arch.to_string(),
            });
    }
    Ok(db)
}

/// The root's `/etc/os-release` as a map; a missing file is empty.
pub fn os_release(root: &Path) -> Result<BTreeMap<String, String>> {
    let path = root.join("etc/os-release");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_os_release(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("failed to read `{}`", path.display())))
        }
    }
}

pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// What an RPM file's header says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageIdentity {
    pub name: String,
    /// `[E:]V-R`, the epoch only when it is not 0 (as the index writes it).
    pub evr: String,
    pub arch: String,
}

impl PackageIdentity {
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// Reads the header of the RPM file at `path` (bad input, exit 2, when it is not one).
pub fn package_identity(path: &Path) -> Result<PackageIdentity> {
    let meta = rpm::PackageMetadata::open(path).map_err(|e| {
        UpgradeError::input(format!(
            "`{}` is not a readable RPM package: {e}",
            path.display()
        ))
    })?;
    let field = |r: Result<&str, rpm::Error>| -> Result<String> {
        r.map(str::to_string).map_err(|e| {
            UpgradeError::input(format!("RPM package `{}`: {e}", path.display())).into()
        })
    };
    let version = field(meta.get_version())?;
    let release = field(meta.get_release())?;
    let evr = match meta.get_epoch() {
        Ok(epoch) if epoch > 0 => format!("{epoch}:{version}-{release}"),
        _ => format!("{version}-{release}"),
    };
    Ok(PackageIdentity {
        name: field(meta.get_name())?,
        evr,
        arch: field(meta.get_arch())?,
    })
}
