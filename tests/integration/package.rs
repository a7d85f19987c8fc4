//! The upgrader's own package (`examples/upgrader-rpm.rs`): built from this repository, it holds
//! exactly the files of SPEC §2 with their modes, installs with the real rpm into a sandbox root,
//! and the installed binaries run.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// `MODE PATH` of every file the package must hold, sorted.
fn expected() -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        "-rwxr-xr-x /usr/sbin/upgrade".to_string(),
        "-rwxr-xr-x /usr/sbin/real-upgrade".into(),
        "-rw-r--r-- /usr/lib/systemd/system/upgrade-resume.service".into(),
        "-rw-r--r-- /usr/share/bash-completion/completions/real-upgrade".into(),
        "-rw-r--r-- /usr/share/zsh/site-functions/_real-upgrade".into(),
        "-rw-r--r-- /usr/share/fish/vendor_completions.d/real-upgrade.fish".into(),
        "-rw-r--r-- /usr/share/upgrade/service-order.toml".into(),
        "-rwxr-xr-x /usr/share/upgrade/pre-upgrade.d/10-check-product".into(),
        "-rwxr-xr-x /usr/share/upgrade/pre-upgrade.d/20-backup-config".into(),
        "-rwxr-xr-x /usr/share/upgrade/post-upgrade.d/50-report".into(),
        "-rwxr-xr-x /usr/share/upgrade/health.d/50-demo-services".into(),
    ];
    for (name, _) in upgrade::cli::man_pages() {
        files.push(format!("-rw-r--r-- /usr/share/man/man8/{name}"));
    }
    for version in std::fs::read_dir(repo.join("migrations")).unwrap() {
        let version = version.unwrap();
        for file in std::fs::read_dir(version.path()).unwrap() {
            files.push(format!(
                "-rw-r--r-- /usr/share/upgrade/migrations/{}/{}",
                version.file_name().to_string_lossy(),
                file.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    files
}

#[test]
fn the_upgrader_package_holds_its_files_and_installs_into_a_root() {
    let bin = crate::demo::demo_binaries();
    let sb = Sandbox::new();
    let out = sb.base.join("packages");
    let built = Command::new(bin.join("examples/upgrader-rpm"))
        .arg(&out)
        .arg("--bin")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let path = String::from_utf8(built.stdout).unwrap().trim().to_string();
    let file = format!(
        "upgrade-{}-1.{}.rpm",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    assert_eq!(path, out.join(&file).display().to_string());

    let listed = Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\\n]"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let mut files: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    files.sort();
    assert_eq!(files, expected());

    sb.rpm_install(&[path.into()]);
    let verify = sb.rpm().args(["-V", "upgrade"]).output().unwrap();
    assert!(
        verify.status.success(),
        "rpm -V: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let installed = sb.root.join("usr/sbin/real-upgrade");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("real-upgrade {}", env!("CARGO_PKG_VERSION"))
    );
    let shim = Command::new(sb.root.join("usr/sbin/upgrade"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shim.stdout).starts_with("upgrade "));
    // the installed real-upgrade, aimed at the sandbox, finds the vendor hooks it shipped
    let hooks = Command::new(&installed)
        .arg("--root")
        .arg(&sb.root)
        .args(["hooks", "list", "--json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&hooks.stdout);
    assert!(
        hooks.status.success(),
        "{}",
        String::from_utf8_lossy(&hooks.stderr)
    );
    for hook in [
        "10-check-product",
        "20-backup-config",
        "50-report",
        "50-demo-services",
    ] {
        assert!(listing.contains(hook), "`{hook}` not in {listing}");
    }
    // and the installed unit resumes through it
    let unit = std::fs::read_to_string(
        sb.root
            .join("usr/lib/systemd/system/upgrade-resume.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/real-upgrade --yes --after-reboot"));
}

#[test]
fn the_package_builder_says_what_is_missing() {
    let bin = crate::demo::demo_binaries();
    let sb = Sandbox::new();
    let out = Command::new(bin.join("examples/upgrader-rpm"))
        .arg(sb.base.join("packages"))
        .arg("--bin")
        .arg(sb.base.join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere/upgrade` is missing"), "{stderr}");
    assert!(!sb.base.join("packages").exists());
}
