//! Preflight checks and prerequisites (SPEC §9): crafted `os-release`, rpm databases holding
//! older, newer, missing and 32-bit prerequisites, a nearly full tmpfs, custom checks per exit
//! code; inhibitors stop before any change; the dnf backend against a createrepo_c repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// A small tmpfs mounted inside the sandbox, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts `size` (e.g. `4m`) at `dir` and fills it but for about `free_kib` KiB.
    fn nearly_full(dir: PathBuf, size_kib: u64, free_kib: u64) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (CAP_SYS_ADMIN): mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fs = Tmpfs { dir };
        let fill = vec![0x5a_u8; ((size_kib - free_kib) * 1024) as usize];
        std::fs::write(fs.dir.join("filler"), fill).unwrap();
        fs
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Installs packages straight into the root's rpm database (the host's state before the run).
fn rpm_install(sb: &Sandbox, specs: &[RpmSpec]) {
    let dir = sb.base.join("preinstalled");
    let files: Vec<PathBuf> = specs.iter().map(|s| s.build(&dir)).collect();
    let mut cmd = sb.rpm();
    let out = cmd
        .args(["-i", "--nodeps", "--ignorearch"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpm -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes one release `2.0.0` of `demo-server` with `extra` TOML (prerequisites, checks).
fn publish(sb: &Sandbox, server: RpmSpec, prerequisite_builds: &[RpmSpec], extra: &str) {
    let dir = sb.repo.join("packages");
    let server = server.build(&dir);
    for p in prerequisite_builds {
        p.build(&dir);
    }
    let toml = format!(
        "product = \"demo\"\n[[releases]]\nversion = \"2.0.0\"\npackages = [\"packages/{}\"]\n{extra}",
        server.file_name().unwrap().to_string_lossy()
    );
    write(&sb.repo.join("releases.toml"), &toml);
    let run = Run::from(
        Command::new(REAL_UPGRADE)
            .args(["repo", "index"])
            .arg(&sb.repo)
            .output()
            .unwrap(),
    );
    run.assert_code(0);
}

fn results(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn result<'a>(doc: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no result `{key}` in {doc:#}"))
}

#[test]
fn every_problem_is_reported_at_once_and_inhibitors_change_nothing() {
    let sb = Sandbox::new();
    sb.os_release(
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"centos fedora\"\nVERSION_ID=\"7.9\"\n",
    );
    rpm_install(
        &sb,
        &[
            pkg("demo-legacy", "0.9"),
            pkg("libold", "1.0"),
            pkg("libnew", "5.0"),
            {
                let mut p = pkg("lib32", "1.0");
                p.arch = "i686".into();
                p
            },
        ],
    );
    let before = sb.rpm_qa();
    let _small = Tmpfs::nearly_full(sb.root.join("var/lib/demo-data"), 1024, 128);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    let closed = free_port();
    sb.check_script("10-ok", "echo all good; exit 0");
    sb.check_script("20-slow-disk", "echo disk is slow; exit 1");
    sb.check_script("30-licence", "echo licence expired; exit 2");
    sb.write_config(&format!(
        "[checks]\narch = [\"s390x\"]\nmemory = \"64TiB\"\nswap_ratio = 1000.0\n\
         free_space = {{ \"/var/lib/demo-data\" = \"512KiB\", \"/\" = \"1KiB\" }}\n\
         ports_free = [\"127.0.0.1:{busy}\"]\nports_reachable = [\"127.0.0.1:{closed}\"]\n\
         packages_required = [\"demo-base\"]\n"
    ));
    publish(
        &sb,
        pkg("demo-server", "2.0.0"),
        &[pkg("libold", "2.0"), pkg("libabsent", "1.5")],
        r#"prerequisites = [
  { name = "libold", version = ">= 2.0, < 3", package = "packages/libold-2.0-1.x86_64.rpm" },
  { name = "libnew", version = ">= 1.0, < 3" },
  { name = "lib32", version = ">= 1.0" },
  { name = "libabsent", version = ">= 1.5", package = "packages/libabsent-1.5-1.x86_64.rpm" },
  { name = "libmissing", version = ">= 4.2" },
]
[releases.checks]
os_id = ["rhel"]
os_version = ">= 8, < 10"
packages_forbidden = ["demo-legacy"]
"#,
    );

    let run = sb.run(&["check", "--json"]);
    run.assert_code(3);
    let doc = run.json();
    let mut got = results(&doc);
    got.sort();
    let want = [
        ("arch", "inhibitor"),
        ("custom:10-ok", "passed"),
        ("custom:20-slow-disk", "warning"),
        ("custom:30-licence", "inhibitor"),
        ("free-space:/", "passed"),
        ("free-space:/var/lib/demo-data", "inhibitor"),
        ("memory", "inhibitor"),
        ("os-id", "inhibitor"),
        ("os-version", "inhibitor"),
        ("package-forbidden:demo-legacy", "inhibitor"),
        ("package-required:demo-base", "inhibitor"),
        (&format!("port-free:127.0.0.1:{busy}"), "inhibitor"),
        (&format!("port-reachable:127.0.0.1:{closed}"), "inhibitor"),
        ("prerequisite-arch:lib32", "inhibitor"),
        ("prerequisite:libabsent", "passed"),
        ("prerequisite:libmissing", "inhibitor"),
        ("prerequisite:libnew", "passed"),
        ("prerequisite:libold", "passed"),
        ("restore-point:packages", "passed"),
        ("restore-point:space", "passed"),
        ("swap", "warning"),
    ];
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{doc:#}");
    // the documented shape: stable top-level keys, and every result with the same fields
    let top: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "from",
            "inhibited",
            "inhibitors",
            "product",
            "results",
            "to",
            "warnings"
        ]
    );
    assert_eq!(doc["inhibited"], true);
    assert_eq!(doc["inhibitors"], 12);
    assert_eq!(doc["warnings"], 2);
    for r in doc["results"].as_array().unwrap() {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.retain(|k| *k != "note");
        assert_eq!(
            keys,
            [
                "hint", "key", "measured", "required", "severity", "source", "status"
            ],
            "{r:#}"
        );
        assert_eq!(r["hint"].is_null(), r["status"] == "passed", "{r:#}");
    }
    // worst first
    assert_eq!(doc["results"][0]["status"], "inhibitor");
    let os = result(&doc, "os-version");
    assert_eq!(os["measured"], "7.9");
    assert_eq!(os["required"], ">= 8, < 10");
    assert_eq!(os["source"], "release 2.0.0");
    assert_eq!(result(&doc, "os-id")["measured"], "rocky");
    assert_eq!(result(&doc, "arch")["required"], "s390x");
    let space = result(&doc, "free-space:/var/lib/demo-data");
    assert_eq!(space["required"], ">= 512KiB");
    assert!(space["hint"].as_str().unwrap().contains("free at least"));
    assert_eq!(
        result(&doc, "custom:30-licence")["measured"],
        "licence expired"
    );
    assert_eq!(result(&doc, "custom:20-slow-disk")["severity"], "warning");
    let arch = result(&doc, "prerequisite-arch:lib32");
    assert_eq!(arch["measured"], "1.0-1.i686");
    assert!(
        arch["hint"].as_str().unwrap().contains("x86_64"),
        "{arch:#}"
    );
    let missing = result(&doc, "prerequisite:libmissing");
    assert_eq!(missing["measured"], "not installed");
    assert_eq!(missing["required"], "libmissing >= 4.2");
    assert!(
        result(&doc, "prerequisite:libnew")["note"]
            .as_str()
            .unwrap()
            .contains("newer than the supported")
    );

    // the human report lists every problem with its values and hint
    let human = sb.run(&["check"]);
    human
        .assert_code(3)
        .assert_stderr("inhibitor os-version: measured `7.9`, required `>= 8, < 10`")
        .assert_stderr("warning   swap:")
        .assert_stderr("hint: upgrade the operating system")
        .assert_stderr("12 preflight check(s) inhibit the upgrade");

    // an upgrade stops before any change: exit 3, nothing installed, no run recorded
    let run = sb.run(&["--yes"]);
    run.assert_code(3)
        .assert_stderr("inhibitor prerequisite:libmissing")
        .assert_stderr("real-upgrade check");
    assert_eq!(sb.rpm_qa(), before);
    assert!(!sb.root.join("var/lib/upgrade/state.db").exists());
    let run = sb.run(&["--yes", "--json"]);
    run.assert_code(3);
    let doc = run.json();
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["results"].as_array().unwrap().len(), want.len());
    assert_eq!(sb.rpm_qa(), before);
    assert!(!sb.root.join("var/lib/upgrade/state.db").exists());
    drop(listener);
}

#[test]
fn warnings_pass_and_prerequisites_follow_the_policy() {
    let sb = Sandbox::new();
    sb.os_release("ID=rocky\nVERSION_ID=\"9.3\"\n");
    rpm_install(&sb, &[pkg("libold", "1.0"), pkg("libnew", "5.0")]);
    sb.check_script("20-slow-disk", "echo disk is slow; exit 1");
    sb.write_config("[checks]\nswap_ratio = 1000.0\nwarnings = [\"os-version\"]\n");
    publish(
        &sb,
        pkg("demo-server", "2.0.0"),
        &[
            pkg("libold", "2.0"),
            pkg("libnew", "2.0"),
            pkg("libabsent", "1.5"),
        ],
        r#"prerequisites = [
  { name = "libold", version = ">= 2.0, < 3", package = "packages/libold-2.0-1.x86_64.rpm" },
  { name = "libnew", version = ">= 1.0, < 3", package = "packages/libnew-2.0-1.x86_64.rpm" },
  { name = "libabsent", version = ">= 1.5", package = "packages/libabsent-1.5-1.x86_64.rpm" },
]
[releases.checks]
os_version = ">= 10"
"#,
    );
    let run = sb.run(&["--yes"]);
    run.assert_code(0)
        .assert_stderr("warning   custom:20-slow-disk: measured `disk is slow`")
        .assert_stderr("warning   swap:")
        .assert_stderr("warning   os-version: measured `9.3`")
        .assert_stderr("upgrade  libold 1.0-1.x86_64 → 2.0-1")
        .assert_stderr("install  libabsent 1.5-1")
        .assert_stderr("note      `libnew` 5.0-1 is newer than the supported `>= 1.0, < 3`")
        .assert_stderr("3 package(s) in one transaction");
    assert_eq!(
        sb.rpm_qa(),
        [
            "demo-server-2.0.0-1.x86_64",
            "libabsent-1.5-1.x86_64",
            "libnew-5.0-1.x86_64",
            "libold-2.0-1.x86_64"
        ]
    );
    assert_eq!(sb.installed().as_deref(), Some("2.0.0"));
}

#[test]
fn bad_checks_in_the_configuration_are_input_errors() {
    let sb = Sandbox::new();
    sb.write_config("[checks]\nfree_space = { \"/\" = \"lots\" }\n");
    sb.run(&["check"])
        .assert_code(2)
        .assert_stderr("invalid size `lots`");
    sb.write_config("[checks]\nmemroy = \"1GiB\"\n");
    sb.run(&["check"])
        .assert_code(2)
        .assert_stderr("unknown field `memroy`");
}

#[test]
fn dnf_backend_resolves_dependencies_from_a_createrepo_repository() {
    for tool in ["dnf", "createrepo_c"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(
            found,
            "`{tool}` is missing: install dnf and createrepo-c (scripts/test does)"
        );
    }
    let sb = Sandbox::new();
    sb.os_release("ID=rocky\nVERSION_ID=\"9.3\"\n");
    // the operating system's repository: a dependency of demo-server and a prerequisite
    let os_repo = sb.base.join("os-repo");
    pkg("libdep", "1.0").build(&os_repo);
    pkg("libsys", "3.1").build(&os_repo);
    let out = Command::new("createrepo_c")
        .arg("-q")
        .arg(&os_repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "createrepo_c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.write_config(&format!(
        "[packages]\nbackend = \"dnf\"\nrepos = [\"file://{}\"]\ngpgcheck = false\n",
        os_repo.display()
    ));
    publish(
        &sb,
        pkg("demo-server", "2.0.0").requires("libdep"),
        &[pkg("libown", "1.0")],
        r#"prerequisites = [
  { name = "libsys", version = ">= 3.0" },
  { name = "libown", version = ">= 1.0", package = "packages/libown-1.0-1.x86_64.rpm" },
]
"#,
    );
    sb.run(&["check"]).assert_code(0);
    let run = sb.run(&["--yes"]);
    run.assert_code(0)
        .assert_stderr("3 package(s) in one transaction");
    assert_eq!(
        sb.rpm_qa(),
        [
            "demo-server-2.0.0-1.x86_64",
            "libdep-1.0-1.x86_64",
            "libown-1.0-1.x86_64",
            "libsys-3.1-1.x86_64"
        ]
    );
    // one dnf transaction installed all four
    let history = sb.root.join("var/lib/dnf/history.sqlite");
    let conn = rusqlite::Connection::open(&history).unwrap();
    let transactions: i64 = conn
        .query_row("SELECT count(*) FROM trans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(transactions, 1);
}

#[test]
fn dnf_backend_names_a_prerequisite_no_source_has() {
    let sb = Sandbox::new();
    sb.os_release("ID=rocky\nVERSION_ID=\"9.3\"\n");
    let os_repo = sb.base.join("os-repo");
    pkg("libdep", "1.0").build(&os_repo);
    let out = Command::new("createrepo_c")
        .arg("-q")
        .arg(&os_repo)
        .output()
        .unwrap();
    assert!(out.status.success());
    sb.write_config(&format!(
        "[packages]\nbackend = \"dnf\"\nrepos = [\"file://{}\"]\ngpgcheck = false\n",
        os_repo.display()
    ));
    publish(
        &sb,
        pkg("demo-server", "2.0.0"),
        &[],
        "prerequisites = [{ name = \"libsys\", version = \">= 3.0\" }]\n",
    );
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr("the dnf transaction failed")
        .assert_stderr("`libsys >= 3.0`");
    assert!(sb.rpm_qa().is_empty());
}

#[test]
fn a_package_built_for_another_architecture_inhibits_before_anything_changes() {
    let sb = Sandbox::new();
    let mut foreign = pkg("demo-server", "1.0.0");
    foreign.arch = "aarch64".into();
    let mut any = pkg("demo-docs", "1.0.0");
    any.arch = "noarch".into();
    sb.publish(vec![rel("1.0.0", vec![foreign, any])]);
    sb.logging_hook("pre", false, "10-pre");
    let run = sb.run(&["--yes", "--json"]);
    run.assert_code(3)
        .assert_stderr("package-arch:demo-server: measured `aarch64`, required `x86_64 or noarch`")
        .assert_stderr("ask the vendor for a x86_64 build");
    assert!(
        !run.stderr.contains("package-arch:demo-docs"),
        "{}",
        run.stderr
    );
    assert!(sb.rpm_qa().is_empty());
    assert!(sb.hook_log().is_empty());
}
