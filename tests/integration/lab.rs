//! Test hosts: Debian roots booted with systemd as PID 1 by `tests/hosts/hosts.sh`, in a lab
//! network namespace of their own. A [`Lab`] ends its hosts when dropped, and checks that the
//! machine's own namespace holds nothing of the lab before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const HOSTS_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hosts/hosts.sh");

static LABS: AtomicUsize = AtomicUsize::new(0);

/// A lab: its hosts, by number (address 10.231.0.N in the lab).
pub struct Lab {
    pub id: String,
    hosts: Vec<u32>,
}

/// `hosts.sh ARGS…`, its output captured.
fn hosts_sh(args: &[&str]) -> Output {
    Command::new(HOSTS_SH)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/hosts/hosts.sh")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this machine can boot test hosts. Only a kernel that refuses containers skips the
/// host tests, and it says so loudly; anything else missing (the test command installs it) fails.
pub fn available() -> bool {
    let out = hosts_sh(&["check"]);
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        out.status.code() == Some(3) && !why.starts_with("missing:"),
        "the test hosts cannot run here: {why} (scripts/test installs what they need)"
    );
    eprintln!(
        "\n**********\nSKIPPED: the kernel refuses containers here, so the tests on real hosts \
         do not run: {why}\n**********\n"
    );
    false
}

impl Lab {
    /// A new lab owned by this test process, or `None` (loudly) where containers cannot run.
    pub fn new() -> Option<Lab> {
        if !available() {
            return None;
        }
        assert_confined("before the lab");
        let id = format!(
            "{}-{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::SeqCst)
        );
        assert_ok(
            &hosts_sh(&["lab", &id, &std::process::id().to_string()]),
            "hosts.sh lab",
        );
        Some(Lab {
            id,
            hosts: Vec::new(),
        })
    }

    /// Boots host `n` with `binds` (`SOURCE:DEST`, read-only), and installs the upgrader's own
    /// package in it with the real `rpm` ([`upgrader_rpm`]); returns its root, as seen from
    /// outside.
    pub fn up(&mut self, n: u32, binds: &[(&Path, &str)]) -> PathBuf {
        let package = upgrader_rpm();
        let mut args: Vec<String> = vec!["up".into(), self.id.clone(), n.to_string()];
        args.push(format!(
            "--bind-ro={}:/srv/upgrader",
            package.parent().unwrap().display()
        ));
        for (source, dest) in binds {
            args.push(format!("--bind-ro={}:{dest}", source.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = hosts_sh(&args);
        assert_ok(&out, "hosts.sh up");
        self.hosts.push(n);
        let file = format!(
            "/srv/upgrader/{}",
            package.file_name().unwrap().to_string_lossy()
        );
        // NB: Debian's rpm keeps its database in the home directory unless told, and refuses
        // to install on a Debian system without --force-debian
        let installed = self.exec(
            n,
            &[
                "rpm",
                "--dbpath",
                "/var/lib/rpm",
                "--force-debian",
                "-i",
                &file,
            ],
        );
        assert_ok(&installed, &format!("rpm -i of the upgrader in host {n}"));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    /// Runs `args` in host `n`.
    pub fn exec(&self, n: u32, args: &[&str]) -> Output {
        let mut all = vec!["exec", &self.id, ""];
        let n = n.to_string();
        all[2] = &n;
        all.extend_from_slice(args);
        hosts_sh(&all)
    }

    /// Runs the shell script `script` in host `n` and returns its standard output; fails the
    /// test when it fails.
    pub fn sh(&self, n: u32, script: &str) -> String {
        let out = self.exec(n, &["sh", "-c", script]);
        assert_ok(&out, &format!("`{script}` in host {n}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The lab's ssh key (its public half is in every host booted after this).
    pub fn key(&self) -> PathBuf {
        let out = hosts_sh(&["key", &self.id]);
        assert_ok(&out, "hosts.sh key");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    /// Starts the lab's PostgreSQL server (10.231.0.1:5432, user postgres, trust).
    pub fn postgres(&self) {
        assert_ok(&hosts_sh(&["postgres", &self.id]), "hosts.sh postgres");
    }

    /// Runs `args` in the lab namespace (where what talks to the hosts runs).
    pub fn in_lab(&self, args: &[&str]) -> Output {
        let mut all = vec!["in", self.id.as_str()];
        all.extend_from_slice(args);
        hosts_sh(&all)
    }

    /// Waits until host `n` is up again after a reboot.
    pub fn booted(&self, n: u32) {
        assert_ok(
            &hosts_sh(&["booted", &self.id, &n.to_string()]),
            "hosts.sh booted",
        );
    }

    /// How many times host `n` rebooted.
    pub fn reboots(&self, n: u32) -> usize {
        let out = hosts_sh(&["reboots", &self.id, &n.to_string()]);
        assert_ok(&out, "hosts.sh reboots");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = hosts_sh(&["down", &self.id]);
        if !out.status.success() {
            eprintln!(
                "hosts.sh down {} failed: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !std::thread::panicking() {
            assert_ok(&out, "hosts.sh down");
            assert_confined("after the lab");
        }
    }
}

/// The upgrader's own package (`examples/upgrader-rpm.rs`), built once per test process from
/// the binaries under test: `/usr/sbin/upgrade`, `/usr/sbin/real-upgrade`, the resume unit
/// (enabled by its scriptlet), the man pages and completions. Its vendor assets are none (the
/// tests give each host its own): the demo's hooks and checks are not the test product's.
pub fn upgrader_rpm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bin = super::demo::demo_binaries();
        let target = bin.parent().unwrap();
        let dir = target.join("hosts/upgrader");
        let assets = dir.join("assets");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&assets).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for linked in ["systemd", "man"] {
            std::os::unix::fs::symlink(repo.join(linked), assets.join(linked)).unwrap();
        }
        // NB: run in the assets, where it looks for the service order first
        let out = Command::new(bin.join("examples/upgrader-rpm"))
            .arg(&dir)
            .arg("--bin")
            .arg(&bin)
            .arg("--assets")
            .arg(&assets)
            .current_dir(&assets)
            .output()
            .unwrap();
        assert_ok(&out, "examples/upgrader-rpm");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// The machine's own network namespace has no address, route or link of a lab.
pub fn assert_confined(when: &str) {
    let out = hosts_sh(&["confined"]);
    assert_ok(&out, &format!("the confinement check {when}"));
}

/// The journal of host `n` as JSON entries (`journalctl -o json`), from systemd itself (PID 1),
/// since `since_us` (microseconds of the realtime clock).
pub fn pid1_journal(lab: &Lab, n: u32, since_us: u64) -> Vec<serde_json::Value> {
    let out = lab.sh(n, "journalctl -o json --no-pager _PID=1");
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["__REALTIME_TIMESTAMP"]
                .as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t >= since_us)
        })
        .collect()
}

/// The realtime clock in host `n`, in microseconds.
pub fn now_us(lab: &Lab, n: u32) -> u64 {
    lab.sh(n, "date +%s%6N").trim().parse().unwrap()
}
