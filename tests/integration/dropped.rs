//! Packages a release no longer lists (SPEC §5, issue 12 #10): removed in that hop and shown as
//! `remove` in the plan; a package renamed without `Obsoletes` (the new one ships the old one's
//! files) replaces it; a genuine file conflict with another package is refused before anything
//! changes; a kill between the erase and the install resumes to the clean state.

use crate::support::*;

fn read(sb: &Sandbox, path: &str) -> String {
    std::fs::read_to_string(sb.root.join(path.trim_start_matches('/'))).unwrap_or_default()
}

const CLEAN: [&str; 3] = [
    "demo-new-2.0.0-1.x86_64",
    "demo-server-2.0.0-1.x86_64",
    "os-tool-1.0-1.x86_64",
];

#[test]
fn a_package_the_release_no_longer_lists_is_removed_and_shown_as_remove() {
    let sb = Sandbox::new();
    renaming_releases(&sb, Vec::new());
    os_package(&sb, "/usr/lib/os-tool/data");
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.run(&["plan"])
        .assert_code(0)
        .assert_stderr("remove   demo-legacy 1.0.0-1  (no longer in the release)")
        .assert_stderr("remove   demo-old 1.0.0-1  (no longer in the release)")
        .assert_stderr("install  demo-new 2.0.0-1");
    let plan = sb.run(&["plan", "--json"]);
    plan.assert_code(0);
    let packages = plan.json()["hops"][0]["packages"].clone();
    let removed: Vec<&serde_json::Value> = packages
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["op"] == "remove")
        .collect();
    assert_eq!(
        removed,
        [
            &serde_json::json!({ "op": "remove", "name": "demo-legacy", "installed": "1.0.0-1" }),
            &serde_json::json!({ "op": "remove", "name": "demo-old", "installed": "1.0.0-1" }),
        ]
    );
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("erasing demo-legacy, demo-old (no longer in the release)");
    assert_eq!(sb.rpm_qa(), CLEAN, "the OS's package stays");
    assert!(!sb.root.join("usr/lib/demo-legacy/version").exists());
    assert_eq!(read(&sb, "/usr/lib/os-tool/data"), "the OS's\n");
    assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
    sb.run(&["plan"]).assert_code(0).assert_stderr("up to date");
}

#[test]
fn a_package_renamed_without_obsoletes_replaces_the_old_one() {
    let sb = Sandbox::new();
    renaming_releases(&sb, Vec::new());
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    std::fs::write(
        sb.root.join(CONF.trim_start_matches('/')),
        "setting = mine\n",
    )
    .unwrap();
    // the files the two packages share are no conflict: demo-old is erased first
    sb.run(&["--download-only"]).assert_code(0);
    sb.run(&["check"]).assert_code(0);
    sb.run(&["--yes"]).assert_code(0).assert_stderr(&format!(
        "wrote `{CONF}.rpmsave` beside it; compare and merge it"
    ));
    assert_eq!(sb.rpm_qa(), CLEAN[..2]);
    assert_eq!(read(&sb, SHARED), "new\n");
    assert_eq!(read(&sb, CONF), "setting = new\n");
    assert_eq!(
        read(&sb, &format!("{CONF}.rpmsave")),
        "setting = mine\n",
        "the operator's edit is kept aside, and said so"
    );
    let owner = sb.rpm().args(["-qf", SHARED]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout),
        "demo-new-2.0.0-1.x86_64\n"
    );
}

/// Writes a service `api` of `demo-server` through the `command` backend, logging its starts and
/// stops to `BASE/services.log`, and starts it.
fn running_service(sb: &Sandbox) -> std::path::PathBuf {
    let log = sb.base.join("services.log");
    let state = sb.base.join("api.state");
    sb.service_order(&format!(
        "[service.api]\npackages = [\"demo-server\"]\nbackend = \"command\"\n\
         start = {:?}\nstop = {:?}\nstatus = {:?}\n",
        format!(
            "echo start >> {}; echo up > {}",
            log.display(),
            state.display()
        ),
        format!(
            "echo stop >> {}; echo down > {}",
            log.display(),
            state.display()
        ),
        format!("grep -q up {}", state.display()),
    ));
    std::fs::write(&state, "up\n").unwrap();
    log
}

#[test]
fn a_file_conflict_with_another_package_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    let tool = pkg("demo-tool", "2.0.0").file("/usr/lib/demo/tool", "ours\n", 0o644);
    renaming_releases(&sb, vec![tool]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    os_package(&sb, "/usr/lib/demo/tool");
    let services = running_service(&sb);
    sb.logging_hook("pre", false, "10-pre");
    let before = sb.rpm_qa();
    sb.run(&["--yes"])
        .assert_code(3)
        .assert_stderr("inhibitor file-conflict:demo-tool: measured `/usr/lib/demo/tool owned by os-tool-1.0-1.x86_64`")
        .assert_stderr("`demo-tool` of release 2.0.0 and the installed `os-tool` hold the same files")
        .assert_stderr("preflight check(s) inhibit the upgrade: file-conflict:demo-tool");
    let json = sb.run(&["--yes", "--json"]);
    json.assert_code(3);
    let doc = json.json();
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["results"][0]["key"], "file-conflict:demo-tool");
    assert_eq!(doc["results"][0]["status"], "inhibitor");
    sb.run(&["--download-only"])
        .assert_code(3)
        .assert_stderr("file-conflict:demo-tool");
    // with the packages in the cache, `check` tests the transaction too
    sb.run(&["check"])
        .assert_code(3)
        .assert_stderr("inhibitor file-conflict:demo-tool");
    assert_eq!(sb.rpm_qa(), before, "no package changed");
    assert!(sb.hook_log().is_empty(), "no hook ran");
    assert!(!services.exists(), "no service was stopped");
    assert_eq!(read(&sb, "/usr/lib/demo/tool"), "the OS's\n");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    // resolved by the operator: the open run (it changed nothing) goes on
    assert!(sb.rpm().args(["-e", "os-tool"]).status().unwrap().success());
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(
        sb.rpm_qa(),
        [
            "demo-new-2.0.0-1.x86_64",
            "demo-server-2.0.0-1.x86_64",
            "demo-tool-2.0.0-1.x86_64"
        ]
    );
    assert_eq!(std::fs::read_to_string(&services).unwrap(), "stop\nstart\n");
}

/// Killed at each point of the packages step around the erase, the run resumes to the state a
/// clean run reaches: the dropped packages gone, the new ones installed.
#[cfg(feature = "fault-injection")]
#[test]
fn a_kill_between_the_erase_and_the_install_resumes_to_the_clean_state() {
    use std::os::unix::process::ExitStatusExt;
    let repo = Sandbox::new();
    renaming_releases(&repo, Vec::new());
    for fault in [
        "marked:hop0:packages:begun",
        "rpm-erase:before",
        "rpm-erase:after",
        "rpm:before",
        "rpm:after",
        "mark:hop0:packages",
    ] {
        let sb = Sandbox::new();
        std::fs::write(
            sb.config_path(),
            format!(
                "product = \"demo\"\n[repository]\nurl = \"{}\"\n",
                repo.repo.display()
            ),
        )
        .unwrap();
        sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
        os_package(&sb, "/usr/lib/os-tool/data");
        let out = sb
            .cmd(&["--yes"])
            .env("UPGRADE_FAULT", fault)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{fault}: not killed there");
        if fault == "rpm-erase:after" {
            // between the two: the old packages are gone, the new ones not there yet
            assert_eq!(
                sb.rpm_qa(),
                ["demo-server-1.0.0-1.x86_64", "os-tool-1.0-1.x86_64"],
                "{fault}"
            );
        }
        let run = sb.run(&["--yes"]);
        assert_eq!(run.code, 0, "{fault}: {}", run.stderr);
        assert_eq!(sb.rpm_qa(), CLEAN, "{fault}");
        assert_eq!(read(&sb, SHARED), "new\n", "{fault}");
        assert_eq!(sb.installed().as_deref(), Some("2.0.0"), "{fault}");
    }
}

#[test]
fn the_dnf_backend_removes_and_renames_alike() {
    let sb = Sandbox::new();
    sb.os_release("ID=rocky\nVERSION_ID=\"9.3\"\n");
    let os_repo = sb.base.join("os-repo");
    std::fs::create_dir_all(&os_repo).unwrap();
    let out = std::process::Command::new("createrepo_c")
        .arg("-q")
        .arg(&os_repo)
        .output()
        .expect("createrepo_c (scripts/test installs it)");
    assert!(out.status.success());
    sb.write_config(&format!(
        "[packages]\nbackend = \"dnf\"\nrepos = [\"file://{}\"]\ngpgcheck = false\n",
        os_repo.display()
    ));
    renaming_releases(&sb, Vec::new());
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("erasing demo-legacy, demo-old (no longer in the release)");
    assert_eq!(sb.rpm_qa(), CLEAN[..2]);
    assert_eq!(read(&sb, SHARED), "new\n");
}

/// What needs a package the release removes — a package of the OS, or one of the release's
/// own — is refused with the rest, before anything changes; a package the release still ships
/// may need what it removes when another package provides it.
#[test]
fn removing_what_another_package_needs_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![
                pkg("demo-server", "1.0.0"),
                pkg("demo-legacy", "1.0.0"),
                pkg("demo-extra", "1.0.0"),
            ],
        ),
        rel(
            "2.0.0",
            vec![
                pkg("demo-server", "2.0.0").requires("demo-legacy"),
                pkg("demo-web", "2.0.0").requires("demo-extra"),
            ],
        ),
    ]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let host = sb.base.join("os");
    sb.rpm_install(&[
        RpmSpec::new("os-plugin", "1.0")
            .requires("demo-legacy")
            .build(&host),
        // another package provides `demo-extra`: demo-web's requirement stays met
        RpmSpec::new("os-extra", "1.0")
            .provides("demo-extra")
            .build(&host),
    ]);
    let before = sb.rpm_qa();
    sb.run(&["--yes"])
        .assert_code(3)
        .assert_stderr(
            "inhibitor removal-breaks:demo-server: measured `demo-server-2.0.0-1.x86_64 needs \
             `demo-legacy``",
        )
        .assert_stderr("`demo-server` of release 2.0.0 requires `demo-legacy`, which the release no longer ships")
        .assert_stderr(
            "inhibitor removal-breaks:os-plugin: measured `os-plugin-1.0-1.x86_64 needs `demo-legacy``",
        )
        .assert_stderr("release 2.0.0 removes what the installed `os-plugin` needs (`demo-legacy`)")
        .assert_stderr("2 preflight check(s) inhibit the upgrade");
    assert_eq!(sb.rpm_qa(), before, "nothing changed");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}
