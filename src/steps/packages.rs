//! The package backends: what the root's rpm database holds, and one transaction per hop —
//! `rpm -U` of our verified artifacts, or `dnf install` of them and the prerequisites into the
//! root (`--installroot`), so dependencies come from the system's own repositories.
//!
//! NB: rpm exits 0 when a `%post` scriptlet fails, so its output is read for `scriptlet failed`;
//! it also reports the config files it did not overwrite (`.rpmnew`) or moved aside
//! (`.rpmsave`), which the run passes on to the operator.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::error::UpgradeError;

/// The rpm database lives here inside the root (`rpm --root R --dbpath /var/lib/rpm`).
pub const DBPATH: &str = "/var/lib/rpm";

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
    /// Queries the rpm database of `root`; a root without one has nothing installed.
    pub fn load(root: &Path) -> Result<RpmDb> {
        let db = root.join(DBPATH.trim_start_matches('/'));
        let empty = std::fs::read_dir(&db).map_or(true, |mut d| d.next().is_none());
        if empty {
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
            && Command::new("rpm")
                .arg("--root")
                .arg(root)
                .args(["--dbpath", DBPATH, "--initdb"])
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

    /// The newest installed EVR of `name`.
    pub fn newest(&self, name: &str) -> Option<&InstalledPackage> {
        self.packages
            .get(name)?
            .iter()
            .max_by(|a, b| crate::version::compare_evr(&a.evr, &b.evr))
    }
}

/// Erases the older copies of the hop's packages that an interrupted `rpm -U` left installed
/// beside the new ones (rpm adds the new header before it erases the old one), as the
/// transaction would have; returns them as `name-evr.arch`.
///
/// NB: a kill of rpm between the two leaves both versions in the database; the resumed run sees
/// the new one and skips the transaction, so without this the old header stayed for good.
pub fn erase_interrupted<'a>(
    root: &Path,
    db: &RpmDb,
    artifacts: impl Iterator<Item = &'a crate::repo::index::Artifact>,
) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for a in artifacts {
        let Some(installed) = db.packages.get(&a.name) else {
            continue;
        };
        let same_arch: Vec<&InstalledPackage> =
            installed.iter().filter(|p| p.arch == a.arch).collect();
        let newest = same_arch
            .iter()
            .max_by(|x, y| crate::version::compare_evr(&x.evr, &y.evr));
        let Some(newest) = newest.filter(|n| crate::version::compare_evr(&n.evr, &a.evr).is_ge())
        else {
            continue;
        };
        stale.extend(
            same_arch
                .iter()
                .filter(|p| crate::version::compare_evr(&p.evr, &newest.evr).is_lt())
                .map(|p| format!("{}-{}.{}", a.name, p.evr, p.arch)),
        );
    }
    if stale.is_empty() {
        return Ok(stale);
    }
    tracing::warn!(packages = ?stale, "erasing what an interrupted rpm transaction left behind");
    let output = rpm(root)
        .arg("-e")
        .arg("--nodeps")
        .args(&stale)
        .output()
        .context("failed to run `rpm -e`; is rpm installed?")?;
    transaction("rpm -e", output, &[])?;
    Ok(stale)
}

/// Removes the staged files (`PATH;XXXXXXXX`) an rpm killed while unpacking `files` left beside
/// their paths under `root`; returns how many. rpm opens them exclusively, so without this the
/// transaction redone after the kill fails with `cpio: open failed - File exists`.
pub fn remove_staged(root: &Path, files: &[PathBuf]) -> Result<usize> {
    let mut removed = 0;
    for file in files {
        let meta = rpm::PackageMetadata::open(file)
            .map_err(|e| anyhow::anyhow!("failed to read RPM package `{}`: {e}", file.display()))?;
        let paths = meta.get_file_paths().map_err(|e| {
            anyhow::anyhow!("failed to list the files of `{}`: {e}", file.display())
        })?;
        for path in paths {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let dir = root.join(dir.strip_prefix("/").unwrap_or(dir));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let prefix = format!("{};", name.to_string_lossy());
            for entry in entries.flatten() {
                let entry_name = entry.file_name();
                let entry_name = entry_name.to_string_lossy();
                let staged = entry_name.strip_prefix(&prefix).is_some_and(|suffix| {
                    suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if staged {
                    let path = entry.path();
                    std::fs::remove_file(&path)
                        .with_context(|| format!("failed to remove `{}`", path.display()))?;
                    tracing::warn!(path = %path.display(), "removed a file an interrupted rpm left");
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// A `rpm` command aimed at `root`.
fn rpm(root: &Path) -> Command {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root).args(["--dbpath", DBPATH]);
    // NB: Debian's rpm refuses to touch a database unless told it knows what it is doing.
    if Path::new("/etc/debian_version").exists() {
        cmd.arg("--force-debian");
    }
    cmd
}

/// What one transaction did besides installing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransactionReport {
    /// Config files rpm left beside the operator's edited ones (`.rpmnew`) or moved aside
    /// (`.rpmsave`), as the paths rpm printed.
    pub config_files: Vec<String>,
    pub output: Vec<String>,
}

/// Installs or upgrades `files` into `root` in one `rpm -U` transaction.
pub fn install(root: &Path, files: &[PathBuf]) -> Result<TransactionReport> {
    install_again(root, files, false)
}

/// [`install`]; with `again`, files whose package is installed already are installed again
/// (`--replacepkgs`), running their scriptlets again.
pub fn install_again(root: &Path, files: &[PathBuf], again: bool) -> Result<TransactionReport> {
    let mut cmd = rpm(root);
    cmd.arg("-U");
    if again {
        cmd.arg("--replacepkgs");
    }
    cmd.args(files.iter().map(|f| OsString::from(f.as_os_str())));
    crate::fault::point!("rpm:before");
    let output = cmd
        .output()
        .context("failed to run `rpm -U`; is rpm installed?")?;
    crate::fault::point!("rpm:after");
    transaction("rpm", output, &[])
}

/// How dnf reaches the system's repositories (`[packages]` in `upgrade.toml`).
#[derive(Debug, Clone, Default)]
pub struct DnfOptions {
    /// Base URLs of the system's repositories (`file:///srv/os-repo`, `https://…`).
    pub repos: Vec<String>,
    pub gpgcheck: bool,
    pub releasever: Option<String>,
}

/// Installs `files` (verified artifacts) and `specs` (`name >= version` of prerequisites the
/// repository does not ship) into `root` in one `dnf install` transaction; dependencies are
/// resolved from the configured system repositories only.
pub fn dnf_install(
    root: &Path,
    files: &[PathBuf],
    specs: &[String],
    opts: &DnfOptions,
) -> Result<TransactionReport> {
    let mut cmd = Command::new("dnf");
    cmd.arg("install")
        .args(["-y", "--noplugins", "--setopt=install_weak_deps=False"])
        .arg("--installroot")
        .arg(root)
        // NB: only the configured repositories: none from the host's or the root's reposdir.
        .arg("--setopt=reposdir=/nonexistent/upgrade-no-reposdir")
        .arg("--setopt=skip_if_unavailable=False");
    for (i, url) in opts.repos.iter().enumerate() {
        cmd.arg(format!("--repofrompath=upgrade-system-{i},{url}"));
    }
    if let Some(releasever) = &opts.releasever {
        cmd.arg("--releasever").arg(releasever);
    }
    if !opts.gpgcheck {
        cmd.arg("--nogpgcheck");
    }
    if Path::new("/etc/debian_version").exists() {
        // NB: Debian's librpm keeps its database in `~/.rpmdb`; inside the root that would be
        // `/root/.rpmdb`, invisible to `rpm --dbpath /var/lib/rpm`. A HOME whose `.rpmmacros`
        // sets the standard path makes dnf's transaction use the root's real database.
        let home = root.join("var/lib/upgrade/dnf-home");
        std::fs::create_dir_all(&home)
            .with_context(|| format!("failed to create `{}`", home.display()))?;
        let macros = home.join(".rpmmacros");
        std::fs::write(&macros, format!("%_dbpath {DBPATH}\n"))
            .with_context(|| format!("failed to write `{}`", macros.display()))?;
        cmd.env("HOME", &home);
    }
    cmd.arg("--")
        .args(files.iter().map(|f| OsString::from(f.as_os_str())))
        .args(specs);
    let output = cmd
        .output()
        .context("failed to run `dnf install`; is dnf installed?")?;
    transaction("dnf", output, specs)
}

/// Reads a finished transaction's output; `specs` are the prerequisites asked of dnf by name.
fn transaction(
    tool: &str,
    output: std::process::Output,
    specs: &[String],
) -> Result<TransactionReport> {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let report = TransactionReport {
        config_files: lines.iter().filter_map(|l| config_file(l)).collect(),
        output: lines.clone(),
    };
    let tail = || {
        lines
            .iter()
            .rev()
            .take(8)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    if !output.status.success() {
        let missing: Vec<&String> = specs
            .iter()
            .filter(|s| {
                let name = s.split_whitespace().next().unwrap_or(s);
                lines
                    .iter()
                    .any(|l| l.contains("No match for argument") && l.contains(name))
                    || lines
                        .iter()
                        .any(|l| l.contains("nothing provides") && l.contains(name))
            })
            .collect();
        let hint = if missing.is_empty() {
            format!("fix the cause {tool} names, then run `upgrade` again to resume at this step")
        } else {
            let needed: Vec<String> = missing.iter().map(|s| format!("`{s}`")).collect();
            format!(
                "no configured source has {}; add a repository that does to `repos` under \
                 `[packages]`, then run `upgrade` again to resume at this step",
                needed.join(", ")
            )
        };
        return Err(UpgradeError::step(
            format!(
                "the {tool} transaction failed ({}):\n  {}",
                output.status,
                tail()
            ),
            hint,
        )
        .into());
    }
    if let Some(line) = lines.iter().find(|l| scriptlet_failed(l)) {
        return Err(UpgradeError::step(
            format!("a package scriptlet failed although rpm exited 0: {line}"),
            "the packages are installed but their scriptlet did not finish; repair what it \
             reports, then run `upgrade` again",
        )
        .into());
    }
    Ok(report)
}

/// `warning: %post(p-1-1.x86_64) scriptlet failed, exit status 1` (shell scriptlets) or
/// `error: lua script failed: …` (rpm's embedded Lua).
fn scriptlet_failed(line: &str) -> bool {
    line.contains("scriptlet failed")
        || line.starts_with("error: lua script failed")
        || line.contains("scriptlet failure in rpm package") // dnf: `Non-fatal POSTIN scriptlet failure…`
}

/// `warning: /etc/x created as /etc/x.rpmnew` / `warning: /etc/x saved as /etc/x.rpmsave`.
fn config_file(line: &str) -> Option<String> {
    let rest = line.strip_prefix("warning: ")?;
    let (_, new) = rest
        .split_once(" created as ")
        .or_else(|| rest.split_once(" saved as "))?;
    Some(new.trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_file_lines() {
        assert_eq!(
            super::config_file("warning: /etc/demo/a.conf created as /etc/demo/a.conf.rpmnew"),
            Some("/etc/demo/a.conf.rpmnew".into())
        );
        assert_eq!(
            super::config_file("warning: /etc/b saved as /etc/b.rpmsave"),
            Some("/etc/b.rpmsave".into())
        );
        assert_eq!(super::config_file("Preparing..."), None);
    }

    #[test]
    fn scriptlet_failure_lines() {
        assert!(super::scriptlet_failed(
            "warning: %post(demo-1-1.x86_64) scriptlet failed, exit status 1"
        ));
        assert!(super::scriptlet_failed(
            "error: %prein(demo-1-1.x86_64) scriptlet failed, exit status 2"
        ));
        assert!(super::scriptlet_failed(
            "error: lua script failed: [string \"%post(x)\"]:1: boom"
        ));
        assert!(!super::scriptlet_failed(
            "warning: /etc/a created as /etc/a.rpmnew"
        ));
    }
}
