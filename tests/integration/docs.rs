//! The man pages are generated from the clap definitions and must not go stale; completions and
//! `--help` answer the operator's questions.

use crate::support::*;

#[test]
fn man_pages_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = upgrade::cli::man_pages();
    // one page per subcommand, and no page of a subcommand that is gone
    let mut names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    for needle in ["real-upgrade-status.8", "real-upgrade-migrations-repair.8"] {
        assert!(names.contains(&needle), "no `{needle}` among {names:?}");
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if std::env::var_os("UPDATE_MAN").is_some() && !names.contains(&file.as_str()) {
            std::fs::remove_file(dir.join(&file)).unwrap();
            continue;
        }
        assert!(
            names.contains(&file.as_str()),
            "`man/{file}` documents no command: remove it"
        );
    }
    for (name, page) in &pages {
        let path = dir.join(name);
        if std::env::var_os("UPDATE_MAN").is_some() {
            std::fs::write(&path, page).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == *page,
            "`man/{name}` is stale: run `UPDATE_MAN=1 cargo test --test integration man_pages` and commit it"
        );
        // the pages of the binaries document the exit codes
        if name != "real-upgrade.8" && name != "upgrade.8" {
            continue;
        }
        let text = String::from_utf8_lossy(page);
        for code in [
            "another run holds the lock",
            "a hook requested a reboot",
            "declined at the prompt",
        ] {
            assert!(text.contains(code), "`{name}` does not document `{code}`");
        }
    }
}

#[test]
fn help_and_completions() {
    let help = std::process::Command::new(REAL_UPGRADE)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for needle in ["--yes", "--dry-run", "--root", "Exit status:", "hooks"] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
    let shim = std::process::Command::new(UPGRADE)
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shim.stdout).contains("--no-self-update"));
    let bash = std::process::Command::new(REAL_UPGRADE)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("real-upgrade"));
}
