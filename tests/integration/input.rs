//! Bad input: malformed configuration and index, each with exit 2 and file:line in the message.

use crate::support::*;

#[test]
fn malformed_config_names_file_line_and_key() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let config = sb.config_path();
    std::fs::write(
        &config,
        "product = \"demo\"\n[hooks]\ntimeout = \"1m\"\ncolour = true\n",
    )
    .unwrap();
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr(&format!("{}:4:1", config.display()))
        .assert_stderr("unknown field `colour`");
    std::fs::write(&config, "product = \"demo\"\n[repository\n").unwrap();
    sb.run(&["status"])
        .assert_code(2)
        .assert_stderr(&format!("{}:2:", config.display()));
    let other = sb.base.join("other.toml");
    std::fs::write(&other, "version_scheme = \"calendar\"\n").unwrap();
    sb.run(&["--config", other.to_str().unwrap(), "plan"])
        .assert_code(2)
        .assert_stderr(&format!("{}:1:", other.display()));
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn malformed_index_names_file_and_line() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let index = sb.repo.join("index.toml");
    let good = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        good.replace("version = \"1.0.0\"", "version = \"one\""),
    )
    .unwrap();
    let line = good
        .lines()
        .position(|l| l == "version = \"1.0.0\"")
        .unwrap()
        + 1;
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr(&format!("{}:{line}", index.display()))
        .assert_stderr("invalid version `one`");
    std::fs::write(&index, good.replace("sha256 =", "sha265 =")).unwrap();
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr("unknown field `sha265`");
    std::fs::write(
        &index,
        good.replace("product = \"demo\"", "product = \"other\""),
    )
    .unwrap();
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr("is for product `other`");
    std::fs::write(&index, "format = 1\nproduct = \"demo\"\n[[releases]\n").unwrap();
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr(&format!("{}:3:", index.display()));
    std::fs::remove_file(&index).unwrap();
    sb.run(&["plan"])
        .assert_code(2)
        .assert_stderr("failed to read repository index");
    assert!(sb.rpm_qa().is_empty());
    assert!(!sb.root.join("var/lib/upgrade/state.db").exists());
}

#[test]
fn repo_index_rejects_missing_and_invalid_packages() {
    let sb = Sandbox::new();
    std::fs::write(sb.repo.join("releases.toml"), "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"packages/missing.rpm\"]\n").unwrap();
    repo_index(&sb.repo)
        .assert_code(2)
        .assert_stderr("missing.rpm");
    std::fs::write(sb.repo.join("junk.rpm"), "not an rpm").unwrap();
    std::fs::write(
        sb.repo.join("releases.toml"),
        "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"junk.rpm\"]\n",
    )
    .unwrap();
    repo_index(&sb.repo)
        .assert_code(2)
        .assert_stderr("is not a readable RPM package");
    assert!(!sb.repo.join("index.toml").exists());
}

#[test]
fn bad_usage_is_exit_2() {
    let sb = Sandbox::new();
    sb.run(&["--frobnicate"]).assert_code(2);
    sb.run(&["history", "not-a-number"]).assert_code(2);
    sb.run(&["history", "7"])
        .assert_code(0)
        .assert_stderr("no runs yet");
    sb.run(&["--yes"])
        .assert_code(2)
        .assert_stderr("failed to read repository index");
}

#[test]
fn a_relative_root_is_made_absolute_and_a_missing_root_or_config_is_refused() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    // relative to the current directory, and journaled as the absolute path
    let run = std::process::Command::new(REAL_UPGRADE)
        .current_dir(&sb.base)
        .args(["--root", "root", "--yes", "--json"])
        .output()
        .unwrap();
    Run::from(run).assert_code(0);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    let history = sb.run(&["history", "1", "--json"]).json();
    assert_eq!(history["run"]["status"], "succeeded");
    let missing = sb.base.join("no-such-root");
    let out = std::process::Command::new(REAL_UPGRADE)
        .arg("--root")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!missing.exists(), "a missing root is not created");
    sb.run(&["--config", "/no/such/upgrade.toml", "status"])
        .assert_code(2)
        .assert_stderr("`/no/such/upgrade.toml` does not exist");
}

#[test]
fn a_huge_duration_is_refused_where_it_is_written() {
    for (table, key) in [
        ("hooks", "timeout"),
        ("services", "timeout"),
        ("database", "lock_timeout"),
    ] {
        let sb = Sandbox::new();
        sb.write_config(&format!("[{table}]\n{key} = \"100000000y\"\n"));
        sb.run(&["status"])
            .assert_code(2)
            .assert_stderr("upgrade.toml:")
            .assert_stderr("duration `100000000y` is longer than the longest allowed, 7 days");
    }
}

#[test]
fn state_files_are_never_opened_through_a_symlink() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let state = sb.root.join("var/lib/upgrade");
    std::fs::create_dir_all(&state).unwrap();
    let precious = sb.base.join("precious");
    std::fs::write(&precious, "keep me\n").unwrap();
    // the lock: the run refuses rather than truncate the file the link points at
    std::os::unix::fs::symlink(&precious, state.join("lock")).unwrap();
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("failed to open lock file");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
    std::fs::remove_file(state.join("lock")).unwrap();
    // the log: a warning, and the run goes on without it
    let log = sb.root.join("var/log/upgrade");
    std::fs::create_dir_all(&log).unwrap();
    let _ = std::fs::remove_file(log.join("upgrade.log"));
    std::os::unix::fs::symlink(&precious, log.join("upgrade.log")).unwrap();
    sb.run(&["--yes"])
        .assert_code(0)
        .assert_stderr("warning: cannot write the log");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
    // state.db: refused with a hint
    std::fs::rename(state.join("state.db"), sb.base.join("state.db")).unwrap();
    std::os::unix::fs::symlink(sb.base.join("state.db"), state.join("state.db")).unwrap();
    sb.run(&["status"])
        .assert_code(1)
        .assert_stderr("error: the state database `")
        .assert_stderr("hint: check the disk and the file's permissions");
}

#[test]
fn a_corrupt_state_db_is_a_clear_error_with_a_hint() {
    let sb = Sandbox::new();
    let state = sb.root.join("var/lib/upgrade");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("state.db"), vec![0x5a; 8192]).unwrap();
    sb.run(&["status"])
        .assert_code(1)
        .assert_stderr("cannot be used: file is not a database")
        .assert_stderr("real-upgrade adopt VERSION");
}

#[test]
fn read_only_commands_work_on_a_read_only_state_directory() {
    let sb = Sandbox::new();
    sb.publish(vec![
        rel("1.0.0", vec![pkg("demo-server", "1.0.0")]),
        rel("2.0.0", vec![pkg("demo-server", "2.0.0")]),
    ]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let state = sb.root.join("var/lib/upgrade");
    // NB: the tests run as root, whom file modes do not stop: a read-only bind mount in a mount
    // namespace of the command's own does, and ends with it.
    let read_only = |args: &str| {
        let script = format!(
            "mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec {bin} --root {root} {args}",
            d = state.display(),
            bin = REAL_UPGRADE,
            root = sb.root.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for args in [
        "status",
        "history",
        "history 1",
        "plan",
        "--dry-run",
        "check",
    ] {
        let (code, stderr) = read_only(args);
        assert_eq!(
            code,
            Some(0),
            "`{args}` on a read-only state directory: {stderr}"
        );
    }
    let (_, stderr) = read_only("status");
    assert!(stderr.contains("installed: 1.0.0"), "{stderr}");
    let (code, stderr) = read_only("--yes");
    assert_ne!(code, Some(0), "an upgrade cannot run there: {stderr}");
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

/// `real-upgrade repo index DIR` (the vendor side), whatever its outcome.
pub(crate) fn repo_index(dir: &std::path::Path) -> Run {
    Run::from(
        std::process::Command::new(REAL_UPGRADE)
            .args(["repo", "index"])
            .arg(dir)
            .output()
            .unwrap(),
    )
}

/// Writes `releases.toml` for one release `1.0.0` made of `packages`, one path a line.
pub(crate) fn one_release_of(sb: &Sandbox, head: &str, packages: &[&str]) {
    let lines: String = packages.iter().map(|p| format!("  {p:?},\n")).collect();
    let text = format!(
        "product = \"demo\"\n{head}[[releases]]\nversion = \"1.0.0\"\npackages = [\n{lines}]\n"
    );
    std::fs::write(sb.repo.join("releases.toml"), text).unwrap();
}

#[test]
fn repo_index_refuses_a_package_listed_twice_in_a_release() {
    let sb = Sandbox::new();
    let dir = sb.repo.join("packages");
    pkg("demo-server", "1.0.0").build(&dir);
    pkg("demo-server", "1.0.1").build(&dir);
    let (a, b) = (
        "packages/demo-server-1.0.0-1.x86_64.rpm",
        "packages/demo-server-1.0.1-1.x86_64.rpm",
    );
    one_release_of(&sb, "", &[a, b]);
    let releases = sb.repo.join("releases.toml");
    repo_index(&sb.repo)
        .assert_code(2)
        .assert_stderr(&format!("{}:6", releases.display()))
        .assert_stderr("release `1.0.0` lists package `demo-server` twice")
        .assert_stderr(&format!("`{a}` and `{b}`"));
    assert!(!sb.repo.join("index.toml").exists());
}

#[test]
fn index_with_a_package_listed_twice_in_a_release_is_refused() {
    let sb = Sandbox::new();
    sb.publish(vec![rel(
        "1.0.0",
        vec![pkg("demo-server", "1.0.0"), pkg("demo-cli", "1.0.0")],
    )]);
    let index = sb.repo.join("index.toml");
    let good = std::fs::read_to_string(&index).unwrap();
    let twice = good.replace("name = \"demo-cli\"", "name = \"demo-server\"");
    assert_ne!(good, twice);
    std::fs::write(&index, twice).unwrap();
    let line = good
        .lines()
        .position(|l| l == "version = \"1.0.0\"")
        .unwrap()
        + 1;
    for args in [&["plan"][..], &["--yes"]] {
        sb.run(args)
            .assert_code(2)
            .assert_stderr(&format!("{}:{line}", index.display()))
            .assert_stderr("release `1.0.0` lists package `demo-server` twice")
            .assert_stderr("packages/demo-cli-1.0.0-1.x86_64.rpm");
    }
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn repo_index_refuses_paths_outside_the_repository() {
    let sb = Sandbox::new();
    let outside = pkg("demo-server", "1.0.0").build(&sb.base.join("elsewhere"));
    let up = "../elsewhere/demo-server-1.0.0-1.x86_64.rpm";
    let releases = sb.repo.join("releases.toml");
    for path in [up, outside.to_str().unwrap()] {
        one_release_of(&sb, "", &[path]);
        repo_index(&sb.repo)
            .assert_code(2)
            .assert_stderr(&format!("{}:5", releases.display()))
            .assert_stderr(&format!("release `1.0.0` names `{path}`"))
            .assert_stderr("relative and stay inside the repository");
        assert!(!sb.repo.join("index.toml").exists(), "{path}");
    }
    one_release_of(
        &sb,
        &format!("[upgrader]\nversion = \"1.0.0\"\npackages = [{up:?}]\n"),
        &[],
    );
    repo_index(&sb.repo)
        .assert_code(2)
        .assert_stderr(&format!("{}:4", releases.display()))
        .assert_stderr(&format!("the upgrader names `{up}`"));
    assert!(!sb.repo.join("index.toml").exists());
}

#[test]
fn a_relative_repository_path_is_relative_to_the_configuration_file() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    // ROOT/etc/upgrade/upgrade.toml → BASE/repo, and the command runs from `/`, like cron
    sb.write_config_repo("../../../repo", "");
    let run = sb.cmd(&["--yes"]).current_dir("/").output().unwrap();
    Run::from(run).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-server-1.0.0-1.x86_64"]);
}
