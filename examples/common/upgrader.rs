//! The upgrader package (SPEC §1, §2): what this repository ships to a managed host, as one RPM
//! made with the `rpm` crate. `examples/upgrader-rpm.rs` builds the whole package (binaries,
//! resume unit, man pages, completions and the vendor's assets); the demo's `demo-upgrade`
//! packages are the assets alone (the demo runs the binaries it built), laid out the same way.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::rpmbuild::RpmSpec;

/// The asset directories shipped to `/usr/share/upgrade/` from the top of the repository:
/// vendor hooks, health and custom checks, schema migrations.
pub const ASSET_DIRS: [&str; 5] = [
    "pre-upgrade.d",
    "post-upgrade.d",
    "health.d",
    "checks.d",
    "migrations",
];

/// Where the binaries go, and the completion scripts by shell.
pub const BINARIES: [&str; 2] = ["upgrade", "real-upgrade"];
pub const COMPLETIONS: [(&str, &str); 3] = [
    (
        "bash",
        "/usr/share/bash-completion/completions/real-upgrade",
    ),
    ("zsh", "/usr/share/zsh/site-functions/_real-upgrade"),
    (
        "fish",
        "/usr/share/fish/vendor_completions.d/real-upgrade.fish",
    ),
];
pub const RESUME_UNIT: &str = "/usr/lib/systemd/system/upgrade-resume.service";

/// The package `name` at `version` with the assets of the repository at `assets`
/// (`pre-upgrade.d/` …, `service-order.toml`) under `/usr/share/upgrade/`; with `binaries` (a
/// directory holding `upgrade` and `real-upgrade`), the whole upgrader: the binaries in
/// `/usr/sbin`, the resume unit, the man pages of `assets/man` and the shell completions.
pub fn spec(
    name: &str,
    version: &str,
    assets: &Path,
    binaries: Option<&Path>,
) -> Result<RpmSpec, String> {
    let mut spec = RpmSpec::new(name, version);
    spec.arch = "noarch".into();
    for dir in ASSET_DIRS {
        for (rel, contents, mode) in walk(&assets.join(dir))? {
            spec = spec.file(&format!("/usr/share/upgrade/{dir}/{rel}"), contents, mode);
        }
    }
    // NB: the demo runs from the checkout, whose service-order.toml it means
    if let Ok(order) = std::fs::read("service-order.toml")
        .or_else(|_| std::fs::read(assets.join("service-order.toml")))
    {
        spec = spec.file("/usr/share/upgrade/service-order.toml", order, 0o644);
    }
    let Some(bin) = binaries else {
        return Ok(spec);
    };
    spec.arch = std::env::consts::ARCH.into();
    spec.summary = Some(format!(
        "{name}: the upgrader (upgrade, real-upgrade) and the vendor's hooks, migrations and \
         service order"
    ));
    for binary in BINARIES {
        spec = spec.file(
            &format!("/usr/sbin/{binary}"),
            stripped(&bin.join(binary))?,
            0o755,
        );
    }
    let unit = assets.join("systemd/upgrade-resume.service");
    spec = spec.file(RESUME_UNIT, read(&unit)?, 0o644);
    for (rel, contents, _) in walk(&assets.join("man"))? {
        spec = spec.file(&format!("/usr/share/man/man8/{rel}"), contents, 0o644);
    }
    for (shell, path) in COMPLETIONS {
        let real = bin.join("real-upgrade");
        let out = Command::new(&real)
            .args(["completions", shell])
            .output()
            .map_err(|e| format!("failed to run `{}`: {e}", real.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{} completions {shell}` failed: {}",
                real.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        spec = spec.file(path, out.stdout, 0o644);
    }
    // NB: enabled when installed, as a preset would: the unit does nothing unless a run waits
    // for a reboot; and disabled when the package is erased (not when an upgrade replaces it), so
    // that no link to a unit that is gone stays in multi-user.target.wants. In a root without
    // systemctl (a sandbox) the calls fail, harmlessly.
    Ok(spec
        .post_lua(
            "pcall(os.execute, 'systemctl --no-reload enable upgrade-resume.service >/dev/null 2>&1')",
        )
        .preun_lua(
            "if arg[2] == 0 then \
             pcall(os.execute, 'systemctl --no-reload disable upgrade-resume.service >/dev/null 2>&1') \
             end",
        ))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("failed to read `{}`: {e}", path.display()))
}

/// The binary at `path` without its debug symbols (`strip` on a copy, when there is one).
fn stripped(path: &Path) -> Result<Vec<u8>, String> {
    let copy = std::env::temp_dir().join(format!(
        "upgrader-rpm-{}-{}",
        std::process::id(),
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::copy(path, &copy).map_err(|e| format!("failed to copy `{}`: {e}", path.display()))?;
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(&copy)
        .status();
    let contents = read(&copy);
    let _ = std::fs::remove_file(&copy);
    contents
}

/// Regular files under `dir`, as (relative path, contents, mode 0755 or 0644), sorted; none
/// when `dir` does not exist.
pub fn walk(dir: &Path) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("failed to list `{}`: {e}", d.display())),
        };
        for entry in entries {
            let path: PathBuf = entry
                .map_err(|e| format!("failed to list `{}`: {e}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("failed to read `{}`: {e}", path.display()))?;
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            let mode = match meta.permissions().mode() & 0o111 {
                0 => 0o644,
                _ => 0o755,
            };
            out.push((rel, read(&path)?, mode));
        }
    }
    out.sort();
    Ok(out)
}
