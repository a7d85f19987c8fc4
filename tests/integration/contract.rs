//! The plan is the contract (SPEC §5): what was shown and confirmed is what runs. A hook or
//! migration that appeared since is reported and not run; one that vanished or changed fails its
//! step naming it; a package file whose header says another package fails before anything changes.

use crate::support::*;

/// A run to 1.0.0 that fails in its first pre hook, leaving the run open with its plan stored.
fn open_run(sb: &Sandbox) -> std::path::PathBuf {
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let gate = sb.hook("pre", false, "10-gate", "exit 1");
    sb.logging_hook("post", false, "90-post");
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("hook `10-gate` exited with 1");
    gate
}

#[test]
fn a_hook_added_after_the_plan_is_reported_and_not_run() {
    let sb = Sandbox::new();
    let gate = open_run(&sb);
    sb.hook("pre", false, "10-gate", "exit 0");
    sb.logging_hook("post", true, "50-late");
    sb.run(&["--yes"]).assert_code(0).assert_stderr(
        "post-upgrade hook `50-late` appeared after the plan was made; it is not run",
    );
    assert_eq!(
        sb.hook_log(),
        ["post 90-post from= to=1.0.0 fresh=1 resumed=1"],
        "only the planned post hook runs"
    );
    assert!(gate.exists());
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn a_planned_hook_that_vanished_fails_its_step_naming_it() {
    let sb = Sandbox::new();
    open_run(&sb);
    sb.hook("pre", false, "10-gate", "exit 0");
    let post = sb.root.join("usr/share/upgrade/post-upgrade.d/90-post");
    std::fs::remove_file(&post).unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr(
            "error: post hook `90-post` is no longer in `post-upgrade.d` since the plan was made",
        )
        .assert_stderr("hint: put post hook `90-post` back as it was when the run was planned");
    assert_eq!(sb.installed(), None, "the run stays open");
    sb.logging_hook("post", false, "90-post");
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn an_admin_override_that_replaced_a_planned_hook_fails_its_step() {
    let sb = Sandbox::new();
    open_run(&sb);
    sb.hook("pre", false, "10-gate", "exit 0");
    sb.logging_hook("post", true, "90-post");
    let run = sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr("post hook `90-post` resolves to `");
    assert!(sb.hook_log().is_empty(), "neither file runs");
}

#[test]
fn a_migration_changed_before_its_step_fails_it_and_one_added_is_not_applied() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    sb.write_config(&db.config());
    let first = sb.migration("1.0.0", "001-a.sql", "CREATE TABLE a (id INTEGER);\n");
    open_run(&sb);
    sb.hook("pre", false, "10-gate", "exit 0");
    std::fs::write(&first, "CREATE TABLE other (id INTEGER);\n").unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("error: migration `1.0.0/001-a.sql` has sha256 ")
        .assert_stderr("since the plan was made");
    assert!(
        !db.has_table("other"),
        "the changed migration is not applied"
    );
    std::fs::write(&first, "CREATE TABLE a (id INTEGER);\n").unwrap();
    sb.migration("1.0.0", "002-b.sql", "CREATE TABLE b (id INTEGER);\n");
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("migration `1.0.0/002-b.sql` appeared after the plan was made");
    assert_eq!(db.ledger(), ["1.0.0/001-a.sql:ok"]);
    assert!(db.has_table("a") && !db.has_table("b"));
}

#[test]
fn a_package_whose_header_names_another_fails_the_download() {
    let sb = Sandbox::new();
    sb.publish(vec![rel(
        "1.0.0",
        vec![pkg("demo-server", "1.0.0"), pkg("demo-cli", "1.0.0")],
    )]);
    // the index entry of demo-server points at demo-cli's file, with that file's digest
    let path = sb.repo.join("index.toml");
    let mut index: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let packages = index["releases"].as_array_mut().unwrap()[0]["packages"]
        .as_array_mut()
        .unwrap();
    let cli = packages
        .iter()
        .find(|p| p["name"].as_str() == Some("demo-cli"))
        .unwrap()
        .clone();
    let server = packages
        .iter_mut()
        .find(|p| p["name"].as_str() == Some("demo-server"))
        .unwrap();
    for key in ["path", "sha256", "size"] {
        server[key] = cli[key].clone();
    }
    std::fs::write(&path, toml::to_string(&index).unwrap()).unwrap();
    sb.logging_hook("pre", false, "10-pre");
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr(
            "is demo-cli-1.0.0-1.x86_64, but the plan installs demo-server-1.0.0-1.x86_64 from it",
        )
        .assert_stderr("hint: the repository's index names this file for another package");
    assert!(sb.rpm_qa().is_empty(), "nothing is installed");
    assert!(sb.hook_log().is_empty(), "no hook ran");
}
