//! Snapshots of whole outputs where output is the contract (STYLE 11): the plan shown before
//! confirmation, errors with their hints, the preflight report, `status`, `history`, a whole run's
//! progress, and their `--json` documents. Each snapshot holds one command line, its exit code and
//! what it printed, redacted by [`redact`] so that it is the same on every run and every machine.
//! They live in `snapshots/` beside this file; a restructuring of the code that changes what an
//! operator sees fails here.
//!
//! A difference fails the test. Outside CI it also writes the new output as `*.snap.new` beside the
//! snapshot: read the diff, then accept it with `cargo insta review`, or by running the tests
//! again with `INSTA_UPDATE=always`, and commit the `.snap` files. With `CI` set (`.ci/run`)
//! nothing is written: a missing or different snapshot only fails.

use std::sync::LazyLock;

use regex::Regex;

use crate::support::*;

/// What varies between runs of the same test, replaced by placeholders: the sandbox's paths,
/// times, measured durations and process ids. Lines that report parallel work in the order it
/// finishes (verified downloads) are sorted. A new snapshot that shows something else that varies
/// gets its pattern here, so that every snapshot is redacted alike.
fn redact(sb: &Sandbox, text: &str) -> String {
    static PATTERNS: LazyLock<Vec<(Regex, &str)>> = LazyLock::new(|| {
        [
            // RFC 3339, as `started_at`, `done_at` and the ledger's `applied_at`
            (
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                "[TIME]",
            ),
            // measured, as `(12 ms)` and `ready after 305 ms`; configured ones (`5s`) stay
            (r"\b\d+ ms\b", "[DURATION]"),
            // the holder of the lock
            (r"\bpid \d+", "pid [PID]"),
            // free space measured on this machine's disk, as the restore point's check reports it
            (
                r#""measured": "[\d.]+[KMGT]?i?B",(\s*)"required": ">= "#,
                r#""measured": "[FREE]",$1"required": ">= "#,
            ),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).unwrap(), to))
        .collect()
    });
    // NB: the root lies inside the base, so it goes first.
    let mut text = text
        .replace(&sb.root.display().to_string(), "[ROOT]")
        .replace(&sb.base.display().to_string(), "[SANDBOX]");
    for (re, to) in PATTERNS.iter() {
        text = re.replace_all(&text, *to).into_owned();
    }
    let mut lines: Vec<&str> = text.lines().collect();
    for run in lines.chunk_by_mut(|a, b| is_download(a) && is_download(b)) {
        run.sort_unstable();
    }
    lines.join("\n") + "\n"
}

fn is_download(line: &str) -> bool {
    line.starts_with("    verified ")
}

/// Runs `real-upgrade ARGS…` and snapshots, as `name`: the command line, its exit code, then its
/// stderr and stdout (a stream that printed nothing is left out), through [`redact`]. With
/// `--json`, stdout must be one JSON document.
fn snapshot(sb: &Sandbox, name: &str, args: &[&str]) -> Run {
    let run = sb.run(args);
    let line = [&["real-upgrade"], args].concat().join(" ");
    let mut text = format!("$ {line}\nexit code: {}\n", run.code);
    for (stream, output) in [("stderr", &run.stderr), ("stdout", &run.stdout)] {
        if !output.is_empty() {
            text += &format!("--- {stream}\n{output}");
        }
    }
    if args.contains(&"--json") {
        run.json();
    }
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(name, redact(sb, &text));
    });
    run
}

/// [`three_releases`], whose hops install, upgrade and keep packages; a migration for each
/// release (SQLite, the default database); vendor and admin hooks that print; a custom check that
/// warns; and three services in a chain through the `command` backend, whose commands succeed at
/// once. NB: a chain, so that no two services start at the same time and print in a race.
fn product(sb: &Sandbox) {
    sb.write_config("[services]\nbackend = \"command\"\n");
    three_releases(sb);
    sb.migration(
        "1.0.0",
        "001-create-accounts.sql",
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\n",
    );
    sb.migration(
        "2.0.0",
        "001-add-email.sql",
        "ALTER TABLE accounts ADD COLUMN email TEXT;\n",
    );
    sb.migration(
        "3.0.0",
        "001-create-sessions.sql",
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY);\n",
    );
    sb.hook("pre", false, "10-backup", "echo backing up the database");
    sb.hook(
        "pre",
        true,
        "20-notify",
        "echo \"telling the team: ${UPGRADE_FROM_VERSION:-nothing} to $UPGRADE_TO_VERSION\" >&2",
    );
    sb.hook(
        "post",
        false,
        "90-report",
        "echo now at $UPGRADE_TO_VERSION",
    );
    sb.check_script("50-disk-speed", "echo disk is slow; exit 1");
    let service = |name: &str, after: &[&str], packages: &[&str]| {
        format!(
            "[service.{name}]\nafter = {after:?}\npackages = {packages:?}\nstart = \"true\"\nstop = \"true\"\n\
             ready = {{ command = \"true\", timeout = \"5s\" }}\n"
        )
    };
    sb.service_order(
        &[
            service("db", &[], &[]),
            service("api", &["db"], &["demo-server"]),
            service("web", &["api"], &["demo-web"]),
        ]
        .concat(),
    );
}

#[test]
fn a_fresh_host_and_its_plan() {
    let sb = Sandbox::new();
    product(&sb);
    snapshot(&sb, "status_fresh_host", &["status"]);
    snapshot(&sb, "status_fresh_host_json", &["status", "--json"]);
    snapshot(&sb, "check_warning", &["check"]);
    snapshot(&sb, "dry_run_fresh_install", &["--dry-run"]);
    snapshot(&sb, "plan_fresh_install_json", &["plan", "--json"]);
    snapshot(&sb, "error_unknown_release", &["--yes", "--to", "9.9.9"]);
    snapshot(
        &sb,
        "error_unknown_release_json",
        &["--yes", "--to", "9.9.9", "--json"],
    );
    snapshot(&sb, "error_no_terminal", &[]);
    assert!(sb.rpm_qa().is_empty());
}

/// An application node of a fleet (SPEC §15): its plan waits for the migration node's
/// migrations and its restore point saves no database; as no migration node applies them, the
/// run gives up after `lock_timeout`, naming them.
#[test]
fn an_application_node_waits_for_migrations() {
    let sb = Sandbox::new();
    product(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    sb.write_config(
        "[services]\nbackend = \"command\"\n[database]\nmigrate = false\nnode = \"web-1\"\n\
         lock_timeout = \"1s\"\n",
    );
    snapshot(&sb, "plan_application_node", &["plan", "--to", "2.0.0"]);
    snapshot(
        &sb,
        "error_migrations_not_applied",
        &["--yes", "--to", "2.0.0"],
    );
}

#[test]
fn an_upgrade_through_a_required_stop() {
    let sb = Sandbox::new();
    product(&sb);
    snapshot(
        &sb,
        "run_fresh_install_json",
        &["--yes", "--to", "1.0.0", "--json"],
    )
    .assert_code(0);
    snapshot(&sb, "plan_upgrade_through_stop", &["plan"]);
    snapshot(&sb, "plan_upgrade_through_stop_json", &["plan", "--json"]);
    snapshot(&sb, "run_upgrade_through_stop", &["--yes"]).assert_code(0);
    snapshot(&sb, "status_up_to_date", &["status"]);
    snapshot(&sb, "status_up_to_date_json", &["status", "--json"]);
    snapshot(&sb, "history", &["history"]);
    snapshot(&sb, "history_json", &["history", "--json"]);
    snapshot(&sb, "history_run", &["history", "2"]);
    snapshot(&sb, "history_run_json", &["history", "2", "--json"]);
}

#[test]
fn a_failing_hook_leaves_an_open_run_that_resumes() {
    let sb = Sandbox::new();
    product(&sb);
    let gate = sb.base.join("fixed");
    sb.hook(
        "pre",
        true,
        "30-check-space",
        &format!(
            "echo checking free space\necho '/var/lib/demo is 97% full' >&2\n[ -e {} ] || exit 3",
            gate.display()
        ),
    );
    snapshot(&sb, "error_failing_hook", &["--yes", "--to", "1.0.0"]).assert_code(1);
    snapshot(&sb, "status_open_failed_run", &["status"]);
    snapshot(&sb, "status_open_failed_run_json", &["status", "--json"]);
    snapshot(&sb, "history_failed_run", &["history", "1"]);
    std::fs::write(&gate, "").unwrap();
    snapshot(&sb, "run_resumed", &["--yes", "--to", "1.0.0"]).assert_code(0);
    snapshot(&sb, "history_resumed_run", &["history", "1"]);
    snapshot(&sb, "error_unknown_run", &["history", "7"]);
}

#[test]
fn an_automatic_reboot_says_so_and_the_boot_resumes_the_run() {
    let sb = Sandbox::new();
    product(&sb);
    let rebooted = sb.base.join("rebooted");
    sb.hook(
        "pre",
        true,
        "25-kernel",
        &format!(
            "[ -e {0} ] && exit 0\necho a new kernel needs a reboot\ntouch {0}\nexit 100",
            rebooted.display()
        ),
    );
    let mut config = std::fs::read_to_string(sb.config_path()).unwrap();
    config += "\n[reboot]\nautomatic = true\ncommand = \"true\"\n";
    std::fs::write(sb.config_path(), config).unwrap();
    snapshot(&sb, "error_reboot_automatic", &["--yes", "--to", "1.0.0"]).assert_code(10);
    snapshot(&sb, "after_reboot_resumes", &["--yes", "--after-reboot"]).assert_code(0);
    snapshot(&sb, "after_reboot_nothing", &["--yes", "--after-reboot"]).assert_code(0);
}

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    let sb = Sandbox::new();
    product(&sb);
    let marker = sb.base.join("holding");
    sb.hook(
        "pre",
        false,
        "15-hold",
        &format!("touch {}\nsleep 60", marker.display()),
    );
    let mut first = sb.spawn_until(&["--yes"], &marker);
    snapshot(&sb, "error_locked_root", &["--yes"]).assert_code(5);
    first.kill().unwrap();
    first.wait().unwrap();
}

/// One release whose preflight has every outcome: checks that pass, warn and inhibit, from the
/// release, the configuration and `checks.d`; prerequisites absent, older, newer and missing.
fn preflight_product(sb: &Sandbox) {
    sb.os_release("NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"7.9\"\n");
    let host = sb.base.join("host-packages");
    sb.rpm_install(&[
        pkg("demo-legacy", "0.9").build(&host),
        pkg("libold", "1.0").build(&host),
        pkg("libnew", "5.0").build(&host),
    ]);
    sb.check_script("10-ok", "echo all good");
    sb.check_script("20-slow-disk", "echo disk is slow; exit 1");
    sb.check_script("30-licence", "echo licence expired; exit 2");
    sb.write_config("[checks]\npackages_required = [\"demo-base\"]\n");
    for prerequisite in [pkg("libold", "2.0"), pkg("libabsent", "1.5")] {
        prerequisite.build(&sb.repo.join("packages"));
    }
    sb.publish(vec![
        rel("2.0.0", vec![pkg("demo-server", "2.0.0")]).with_toml(
            r#"prerequisites = [
  { name = "libold", version = ">= 2.0, < 3", package = "packages/libold-2.0-1.x86_64.rpm" },
  { name = "libnew", version = ">= 1.0, < 3" },
  { name = "libabsent", version = ">= 1.5", package = "packages/libabsent-1.5-1.x86_64.rpm" },
  { name = "libmissing", version = ">= 4.2" },
]
[releases.checks]
os_id = ["rhel", "rocky"]
os_version = ">= 8, < 10"
packages_forbidden = ["demo-legacy"]
"#,
        ),
    ]);
}

#[test]
fn the_preflight_report() {
    let sb = Sandbox::new();
    preflight_product(&sb);
    snapshot(&sb, "check_inhibited", &["check"]).assert_code(3);
    snapshot(&sb, "check_inhibited_json", &["check", "--json"]).assert_code(3);
    snapshot(&sb, "plan_with_prerequisites", &["plan"]);
    snapshot(&sb, "error_inhibited_run", &["--yes"]).assert_code(3);
}

/// A release that drops a package (`demo-legacy`), renames one without `Obsoletes` (`demo-old`
/// → `demo-new`, the same file), and adds one (`demo-tool`) whose file a package of the OS holds:
/// the plan shows the removals; the run is refused after the download, before anything changes.
#[test]
fn a_release_that_drops_renames_and_conflicts() {
    let sb = Sandbox::new();
    let tool = pkg("demo-tool", "2.0.0").file("/usr/lib/demo/tool", "ours\n", 0o644);
    renaming_releases(&sb, vec![tool]);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    os_package(&sb, "/usr/lib/demo/tool");
    snapshot(&sb, "plan_with_removals", &["plan"]);
    snapshot(&sb, "plan_with_removals_json", &["plan", "--json"]);
    snapshot(&sb, "error_file_conflict", &["--yes"]).assert_code(3);
    snapshot(&sb, "error_file_conflict_json", &["--yes", "--json"]).assert_code(3);
}

/// A release that fails its health checks (SPEC §13): the run's checks, the automatic rollback
/// and its own checks, exit 6; then `health`, and `history` with both runs and their checks. One
/// attempt per check (`interval` = `timeout`), so that the attempts are the same on every run.
#[test]
fn a_release_that_fails_its_health_checks() {
    let sb = Sandbox::new();
    product(&sb);
    sb.write_config(
        "[services]\nbackend = \"command\"\n\
         [health]\ntimeout = \"1s\"\ninterval = \"1s\"\n\
         [[health.check]]\nname = \"cache\"\ncommand = \"echo cache is cold; exit 1\"\nrequired = false\n",
    );
    let dir = sb.root.join("usr/share/upgrade/health.d");
    std::fs::create_dir_all(&dir).unwrap();
    let smoke = dir.join("10-smoke");
    std::fs::write(
        &smoke,
        "#!/bin/sh\ncase $UPGRADE_TO_VERSION in\n3.*) echo \"api answers 500 on $UPGRADE_TO_VERSION\"; exit 1;;\n*) echo \"api answers 200 on $UPGRADE_TO_VERSION\";;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&smoke, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.run(&["--yes", "--to", "2.0.0"]).assert_code(0);
    snapshot(&sb, "run_health_rollback", &["--yes"]).assert_code(6);
    snapshot(&sb, "health", &["health"]).assert_code(0);
    snapshot(&sb, "health_json", &["health", "--json"]);
    snapshot(&sb, "history_health", &["history"]);
    snapshot(&sb, "history_health_json", &["history", "--json"]);
}

#[test]
fn an_uninstall_with_purge_and_its_history() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    let _service = crate::uninstall::installed(&sb, &db);
    snapshot(
        &sb,
        "uninstall_plan",
        &["uninstall", "--purge", "--dry-run"],
    )
    .assert_code(0);
    snapshot(&sb, "uninstall_no_terminal", &["uninstall", "--purge"]).assert_code(2);
    snapshot(&sb, "uninstall_run", &["uninstall", "--purge", "--yes"]).assert_code(0);
    snapshot(&sb, "history_uninstall", &["history"]).assert_code(0);
    snapshot(
        &sb,
        "rollback_of_uninstall_plan",
        &["rollback", "--dry-run"],
    )
    .assert_code(0);
}
