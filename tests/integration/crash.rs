//! Crash safety (issue 7): a run killed at every fault point (`src/fault.rs`), and at random
//! instants, resumes to exactly the state a clean run reaches — rpm database, migration ledger
//! and schema, installed version and history, hook invocations, scriptlet log, services.

use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

/// Publishes the product once: 1.0.0 (a required stop) and 2.0.0, with %post scriptlets that log.
fn product_repo(sb: &Sandbox) {
    let post = |tag: &str| {
        format!(
            "local f = io.open('/var/lib/scriptlets.log', 'a'); f:write('post {tag}\\n'); f:close()"
        )
    };
    sb.publish(vec![
        stop(
            "1.0.0",
            vec![
                pkg("demo-server", "1.0.0").post_lua(&post("demo-server 1.0.0")),
                pkg("demo-cli", "1.0.0"),
            ],
        ),
        rel(
            "2.0.0",
            vec![
                pkg("demo-server", "2.0.0").post_lua(&post("demo-server 2.0.0")),
                pkg("demo-cli", "1.0.0"),
                pkg("demo-web", "2.0.0").post_lua(&post("demo-web 2.0.0")),
            ],
        ),
    ]);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Db {
    Sqlite,
    Postgres,
    Mariadb,
}

/// One trial's sandbox: the shared repository, hooks, migrations, services and a database.
struct Trial {
    sb: Sandbox,
    db: TestDb,
}

impl Trial {
    fn new(repo: &Path, db: Db) -> Trial {
        let sb = Sandbox::new();
        let db = match db {
            Db::Sqlite => TestDb::sqlite(&sb),
            Db::Postgres => TestDb::postgres(),
            Db::Mariadb => TestDb::mariadb(),
        };
        std::fs::write(
            sb.config_path(),
            format!(
                "product = \"demo\"\n{}\n[repository]\nurl = \"{}\"\n",
                db.config(),
                repo.display()
            ),
        )
        .unwrap();
        sb.logging_hook("pre", false, "10-first");
        sb.logging_hook("pre", true, "20-second");
        sb.logging_hook("post", false, "80-third");
        sb.logging_hook("post", true, "90-fourth");
        // a health check that passes: the health gate's step and marks are in the matrix too
        let health = sb.root.join("usr/share/upgrade/health.d");
        std::fs::create_dir_all(&health).unwrap();
        std::fs::write(
            health.join("50-installed"),
            "#!/bin/sh
test -n \"$UPGRADE_TO_VERSION\"\n",
        )
        .unwrap();
        std::fs::set_permissions(
            health.join("50-installed"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        sb.migration(
            "1.0.0",
            "001-accounts.sql",
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        );
        sb.migration(
            "1.0.0",
            "002-seed.sql",
            "INSERT INTO accounts (id, name) VALUES (1, 'admin');",
        );
        sb.migration(
            "2.0.0",
            "001-email.sql",
            "ALTER TABLE accounts ADD COLUMN email TEXT;",
        );
        sb.migration(
            "2.0.0",
            "002-calls.sql",
            "CREATE TABLE calls (id INTEGER PRIMARY KEY, account INTEGER NOT NULL);",
        );
        let mut order = String::new();
        for (name, after, package) in [("api", "", "demo-server"), ("web", "api", "demo-web")] {
            let state = sb.base.join(format!("{name}.state"));
            let log = sb.base.join("services.log");
            let after = match after {
                "" => String::new(),
                a => format!("after = [{a:?}]\n"),
            };
            order += &format!(
                "[service.{name}]\n{after}packages = [{package:?}]\nbackend = \"command\"\n\
                 start = {:?}\nstop = {:?}\nstatus = {:?}\n\n",
                format!(
                    "echo start {name} >> {}; echo up > {}",
                    log.display(),
                    state.display()
                ),
                format!(
                    "echo stop {name} >> {}; echo down > {}",
                    log.display(),
                    state.display()
                ),
                format!("grep -q up {}", state.display()),
            );
        }
        let dir = sb.root.join("usr/share/upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("service-order.toml"), order).unwrap();
        Trial { sb, db }
    }

    /// The upgrade to 2.0.0 with `env`, in its own process group.
    fn upgrade(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = self.sb.cmd(&["--yes"]);
        cmd.envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    /// Everything a clean run and a resumed one must agree on.
    fn snapshot(&self) -> Snapshot {
        let history = self.sb.run(&["history", "--json"]);
        history.assert_code(0);
        let schema = match &self.db {
            TestDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn
                    .prepare(
                        "SELECT name || ':' || sql FROM sqlite_master WHERE type = 'table' \
                         AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    )
                    .unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.query(
                    "SELECT table_name || '.' || column_name || ':' || data_type FROM \
                     information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
            }
            TestDb::Mariadb { url, name } => {
                use mysql::prelude::Queryable;
                let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
                c.query(format!(
                    "SELECT CONCAT(table_name, '.', column_name, ':', data_type) FROM \
                     information_schema.columns WHERE table_schema = '{name}' ORDER BY 1"
                ))
                .unwrap()
            }
        };
        let read = |p: PathBuf| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        Snapshot {
            rpm: self.sb.rpm_qa(),
            ledger: self.db.ledger(),
            schema,
            installed: self.sb.installed(),
            history: history
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].to_string())
                .collect(),
            hooks: read(self.sb.hook_log_path()),
            scriptlets: read(self.sb.root.join("var/lib/scriptlets.log")),
            services: ["api", "web"]
                .map(|s| read(self.sb.base.join(format!("{s}.state"))).join(""))
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    rpm: Vec<String>,
    ledger: Vec<String>,
    schema: Vec<String>,
    installed: Option<String>,
    history: Vec<String>,
    hooks: Vec<String>,
    scriptlets: Vec<String>,
    services: Vec<String>,
}

/// Hook log lines without their `resumed=` flag; a line repeated right after itself (the hook
/// cut off, or done but not yet journaled, runs again) counts once, and only if it says resumed.
fn hooks_once(lines: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let (bare, resumed) = match line.rsplit_once(" resumed=") {
            Some((bare, flag)) => (bare.to_string(), flag == "1"),
            None => (line.clone(), false),
        };
        if out.last() == Some(&bare) {
            if !resumed {
                return Err(format!("`{bare}` ran twice without UPGRADE_RESUMED=1"));
            }
            continue;
        }
        out.push(bare);
    }
    Ok(out)
}

/// Compares a resumed run's end state with the clean one; `rerun_ok` allows the rpm transaction
/// (its scriptlets) to run again, as it may when the kill cut it.
fn compare(clean: &Snapshot, got: &Snapshot, rerun_ok: bool) -> Result<(), String> {
    let mut diffs = Vec::new();
    macro_rules! same {
        ($field:ident) => {
            if clean.$field != got.$field {
                diffs.push(format!(
                    "{}: clean {:?}, resumed {:?}",
                    stringify!($field),
                    clean.$field,
                    got.$field
                ));
            }
        };
    }
    same!(rpm);
    same!(ledger);
    same!(schema);
    same!(installed);
    same!(history);
    same!(services);
    match hooks_once(&got.hooks) {
        Ok(h) if h == hooks_once(&clean.hooks).unwrap() => {}
        Ok(h) => diffs.push(format!("hooks: clean {:?}, resumed {h:?}", clean.hooks)),
        Err(e) => diffs.push(format!("hooks: {e}")),
    }
    let mut scriptlets = got.scriptlets.clone();
    if rerun_ok {
        // at least once: a transaction that began and did not finish is done again
        let mut seen = std::collections::HashSet::new();
        scriptlets.retain(|l| seen.insert(l.clone()));
    }
    if scriptlets != clean.scriptlets {
        diffs.push(format!(
            "scriptlets: clean {:?}, resumed {:?}",
            clean.scriptlets, got.scriptlets
        ));
    }
    match diffs.is_empty() {
        true => Ok(()),
        false => Err(diffs.join("\n")),
    }
}

/// Runs `f` over `items` on `threads` threads; returns the failures.
pub(crate) fn parallel<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<(), String> + Sync,
) -> Vec<String> {
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = f(item) {
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

/// Resumes a killed trial to the end, then compares with the clean run.
fn resume_and_compare(
    t: &Trial,
    clean: &Snapshot,
    what: &str,
    rerun_ok: bool,
    abandoned: bool,
) -> Result<(), String> {
    let out = once_unlocked(|| t.upgrade(&[]).output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) || stderr.contains("panicked") {
        return Err(format!(
            "{what}: the resumed run exited {:?}:\n{stderr}",
            out.status
        ));
    }
    // every fault point lies inside a begun run: the next one must call it abandoned
    if abandoned && !stderr.contains("was abandoned: it was killed") {
        return Err(format!(
            "{what}: the resumed run does not report the abandoned one:\n{stderr}"
        ));
    }
    let got = t.snapshot();
    compare(clean, &got, rerun_ok).map_err(|e| format!("{what}:\n{e}"))
}

/// `run()`, again while it exits 5 (for at most a minute): an rpm transaction outlives the
/// killed run (it is never cut) and holds the run lock until it ends, so the resumed run waits
/// for it, as an operator would.
pub(crate) fn once_unlocked(mut run: impl FnMut() -> std::process::Output) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = run();
    while out.status.code() == Some(5) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        out = run();
    }
    out
}

/// The clean run of a fresh trial: its end state and every fault point it passed, in order.
fn clean_run(repo: &Path, db: Db) -> (Snapshot, Vec<String>, Duration) {
    let t = Trial::new(repo, db);
    let (points, took) = traced(&t, |env| t.upgrade(env));
    (t.snapshot(), points, took)
}

/// Runs the command `command` makes of the environment it is given, which traces the fault
/// points; asserts it succeeds; returns the points it passed, in order, and how long it took.
fn traced(t: &Trial, command: impl Fn(&[(&str, &str)]) -> Command) -> (Vec<String>, Duration) {
    let trace = t.sb.base.join("faults.trace");
    let started = Instant::now();
    let out = command(&[("UPGRADE_FAULT_TRACE", trace.to_str().unwrap())])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let points = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (points, took)
}

/// Each point as `NAME@N`: its `N`th hit in the clean run.
pub(crate) fn occurrences(points: &[String]) -> Vec<String> {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    points
        .iter()
        .map(|p| {
            let n = seen.entry(p).or_insert(0);
            *n += 1;
            format!("{p}@{n}")
        })
        .collect()
}

fn kill_at_points(db: Db, keep: impl Fn(&str) -> bool) {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let (clean, points, _) = clean_run(&repo_sb.repo, db);
    assert_eq!(clean.installed.as_deref(), Some("2.0.0"));
    if std::env::var_os("UPGRADE_FAULT_LIST").is_some() {
        eprintln!("{}", points.join("\n"));
    }
    let faults: Vec<String> = occurrences(&points)
        .into_iter()
        .filter(|f| keep(f))
        .collect();
    let failures = parallel(&faults, 3, |fault| {
        let t = Trial::new(&repo_sb.repo, db);
        let out = t.upgrade(&[("UPGRADE_FAULT", fault)]).output().unwrap();
        if out.status.signal() != Some(9) {
            return Err(format!(
                "{fault}: not killed there ({:?}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // a kill after rpm returned and before the journal knows looks like one inside rpm
        let rerun = fault.starts_with("rpm:after")
            || (fault.starts_with("mark:") && fault.ends_with(":packages@1"));
        resume_and_compare(&t, &clean, fault, rerun, true)
    });
    report_matrix("kill matrix", db, &points, faults.len(), &failures);
}

/// Prints a kill matrix's counts and fails with every failed trial's account.
fn report_matrix(label: &str, db: Db, points: &[String], trials: usize, failures: &[String]) {
    let distinct = points
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!(
        "{label} ({db:?}): {distinct} fault points, {trials} kill trials, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_kill_at_every_fault_point_resumes_to_the_clean_state() {
    kill_at_points(Db::Sqlite, |_| true);
}

#[test]
fn a_kill_between_migrations_on_postgresql_resumes_to_the_clean_state() {
    kill_at_points(Db::Postgres, |f| {
        f.starts_with("migration:") || f.contains(":migrate") || f.starts_with("rpm:")
    });
}

#[test]
fn kills_at_random_instants_resume_to_the_clean_state() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let (clean, _, took) = clean_run(&repo_sb.repo, Db::Sqlite);
    let delays = random_delays("random kills", took);
    let failures = parallel(&delays, 3, |delay| {
        let t = Trial::new(&repo_sb.repo, Db::Sqlite);
        let mut child = t.upgrade(&[]).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(*delay);
        // the whole process group: rpm and the service commands die with the run
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        resume_and_compare(&t, &clean, &format!("kill after {delay:?}"), true, false)
    });
    eprintln!(
        "random kills: {} trials, {} failed",
        delays.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `UPGRADE_RANDOM_KILLS` (default 10; more for longer runs, RELIABILITY.md) instants within
/// `took`, from a seed that is printed.
fn random_delays(what: &str, took: Duration) -> Vec<Duration> {
    let kills: u64 = std::env::var("UPGRADE_RANDOM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("{what}: seed {seed}, clean run {took:?}");
    (0..kills)
        .map(|i| {
            // splitmix64: enough randomness for spreading kills over a run
            let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            took.mul_f64((z % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// A small tmpfs mounted over a directory of a sandbox, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `128k`) on `dir`; `None` when this host does not let the
    /// test mount (not root, no mount namespace).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A package with an incompressible 512 KiB file.
fn big_pkg(name: &str) -> RpmSpec {
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let data: Vec<u8> = (0..512 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    RpmSpec::new(name, "1.0.0").file(&format!("/usr/lib/{name}/blob"), data, 0o644)
}

/// The steps the open run of the sandbox has journaled as done.
fn journaled(sb: &Sandbox) -> Vec<String> {
    journaled_of(sb, 1)
}

#[test]
fn a_full_disk_during_the_download_fails_clearly_and_resumes_once_freed() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![big_pkg("demo-big")])]);
    let cache = sb.root.join("var/lib/upgrade/cache");
    let Some(full) = Tmpfs::mount(&cache, "128k") else {
        return;
    };
    sb.run(&["--yes"])
        .assert_code(1)
        .assert_stderr(&format!(
            "error: no space left in the cache `{}`",
            cache.display()
        ))
        .assert_stderr("No space left on device")
        .assert_stderr("hint: free at least");
    assert!(journaled(&sb).is_empty(), "{:?}", journaled(&sb));
    assert!(sb.rpm_qa().is_empty());
    drop(full);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-big-1.0.0-1.x86_64"]);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn a_full_disk_during_the_rpm_transaction_fails_clearly_and_resumes_once_freed() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![big_pkg("demo-big")])]);
    let usr = sb.root.join("usr/lib");
    let Some(full) = Tmpfs::mount(&usr, "128k") else {
        return;
    };
    let run = sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr("installing package demo-big-1.0.0-1.x86_64 needs")
        .assert_stderr("more space")
        .assert_stderr("hint:");
    let done = journaled(&sb);
    // `hop0:packages:begun` only says the transaction was attempted
    assert!(
        done.iter()
            .all(|s| s != "hop0:packages" && !s.contains("record")),
        "{done:?}\n{}",
        run.stderr
    );
    assert!(sb.rpm_qa().is_empty());
    drop(full);
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(sb.rpm_qa(), ["demo-big-1.0.0-1.x86_64"]);
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
}

/// The disk that holds the restore points fills up while the restore point is written (a pre
/// hook fills it after preflight measured enough room): the run fails clearly before any
/// package changes, with the services it stopped running again; once room is made, the run
/// resumes, takes its restore point and the upgrade can be rolled back.
#[test]
fn a_full_disk_while_the_restore_point_is_written_fails_before_the_packages_and_resumes() {
    use crate::rollback::{HostState, host_state, migrations, releases, served, version_service};
    let sb = Sandbox::new();
    let db = TestDb::sqlite(&sb);
    sb.write_config(&format!(
        "{}\n[services]\nbackend = \"runit\"\n",
        db.config()
    ));
    releases(&sb);
    migrations(&sb);
    let restore = sb.root.join("var/lib/upgrade/restore");
    let Some(full) = Tmpfs::mount(&restore, "512k") else {
        return;
    };
    let (_runit, port) = version_service(&sb);
    sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let before: HostState = host_state(&sb, &db);
    let filler = restore.join("filler");
    sb.hook(
        "pre",
        false,
        "10-fill",
        &format!(
            "dd if=/dev/zero of={} bs=4k count=1000 2>/dev/null; true",
            filler.display()
        ),
    );
    let up = sb.run(&["--yes"]);
    up.assert_code(1)
        .assert_stderr("No space left on device")
        .assert_stderr("restore point");
    let done = journaled_of(&sb, 2);
    assert!(
        done.iter()
            .all(|s| !s.contains("packages") && !s.contains("restore-point")),
        "{done:?}"
    );
    assert_eq!(
        host_state(&sb, &db),
        before,
        "the packages or the database changed"
    );
    assert_eq!(
        served(port).as_deref(),
        Some("demo 1.0.0"),
        "the stopped service is down"
    );
    drop(full);
    std::fs::remove_file(sb.root.join("usr/share/upgrade/pre-upgrade.d/10-fill")).unwrap();
    sb.run(&["--yes"]).assert_code(0);
    assert_eq!(served(port).as_deref(), Some("demo 2.0.0"));
    sb.run(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(host_state(&sb, &db), before);
}

/// The steps run `id` of the sandbox has journaled as done.
fn journaled_of(sb: &Sandbox, id: u32) -> Vec<String> {
    let run = sb.run(&["history", &id.to_string(), "--json"]);
    run.assert_code(0);
    run.json()["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect()
}

/// Found by the random kills: rpm killed between adding the new header and erasing the old one
/// leaves both installed; the resumed run erases the old one, as the transaction would have.
#[test]
fn a_resumed_run_erases_what_an_interrupted_rpm_upgrade_left_behind() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let t = Trial::new(&repo_sb.repo, Db::Sqlite);
    let out = t
        .upgrade(&[("UPGRADE_FAULT", "rpm:after@2")])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    // what the kill inside rpm leaves: the old header back beside the new one
    let old = std::fs::read_dir(repo_sb.repo.join("packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("demo-server-1.0.0"))
        .unwrap();
    let mut cmd = t.sb.rpm();
    cmd.args(["-i", "--justdb", "--oldpackage", "--replacefiles"]);
    assert!(cmd.arg(&old).status().unwrap().success());
    assert!(
        t.sb.rpm_qa()
            .contains(&"demo-server-1.0.0-1.x86_64".to_string())
    );
    let out = t.upgrade(&[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        t.sb.rpm_qa(),
        [
            "demo-cli-1.0.0-1.x86_64",
            "demo-server-2.0.0-1.x86_64",
            "demo-web-2.0.0-1.x86_64"
        ]
    );
}

/// Found by the random kills: rpm killed while it created the database of a bare root leaves
/// one without its tables, which `rpm -qa` cannot open; the resumed run completes it.
#[test]
fn a_resumed_run_completes_an_rpm_database_cut_while_created() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let t = Trial::new(&repo_sb.repo, Db::Sqlite);
    let out = t
        .upgrade(&[("UPGRADE_FAULT", "rpm:before")])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    let db = t.sb.root.join("var/lib/rpm/rpmdb.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0; CREATE TABLE half (x);")
        .unwrap();
    let out = t.upgrade(&[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.sb.installed().as_deref(), Some("2.0.0"));
}

/// Found by the random kills: rpm cut after a package entered its database but before its %post
/// ran; the resumed run saw the package and skipped the transaction, so %post never ran. A
/// transaction that began and did not finish is now done again (`--replacepkgs`).
#[test]
fn a_resumed_run_redoes_a_transaction_cut_before_its_scriptlets() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let t = Trial::new(&repo_sb.repo, Db::Sqlite);
    let out = t
        .upgrade(&[("UPGRADE_FAULT", "rpm:before")])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    // what the cut leaves: the packages installed, their %post not run
    let files: Vec<PathBuf> = std::fs::read_dir(repo_sb.repo.join("packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("-1.0.0-"))
        .collect();
    let mut cmd = t.sb.rpm();
    cmd.args(["-i", "--noscripts"]);
    assert!(cmd.args(&files).status().unwrap().success());
    let out = t.upgrade(&[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(t.sb.root.join("var/lib/scriptlets.log")).unwrap();
    assert!(log.starts_with("post demo-server 1.0.0\n"), "{log}");
}

/// Found by the random kills: rpm killed while unpacking leaves `PATH;TID` staging files (TID is
/// the transaction's start in seconds, hex); a redo within the same second collided with them
/// (`cpio: open failed - File exists`) and failed again and again. They are removed first.
#[test]
fn a_redone_transaction_removes_the_files_rpm_staged_before_the_kill() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let t = Trial::new(&repo_sb.repo, Db::Sqlite);
    let out = t
        .upgrade(&[("UPGRADE_FAULT", "marked:hop0:packages:begun")])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    let dir = t.sb.root.join("usr/lib/demo-server");
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // whichever second the redo starts in, its staging name is taken
    for tid in now - 1..now + 30 {
        std::fs::write(dir.join(format!("version;{tid:08x}")), "cut").unwrap();
    }
    let out = t.upgrade(&[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(';'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------------------------
// rollback (SPEC §12): a rollback killed anywhere resumes as a rollback, to the clean one's state

impl Trial {
    /// A trial at 2.0.0, upgraded from 1.0.0 (so the upgrade's restore point holds 1.0.0), and
    /// the database's full dump at 1.0.0, which its rollback must give back.
    fn upgraded(repo: &Path, db: Db) -> (Trial, String) {
        let t = Trial::new(repo, db);
        let mut dump = String::new();
        for args in [&["--yes", "--to", "1.0.0"][..], &["--yes"][..]] {
            if dump.is_empty() && args.len() == 1 {
                dump = full_dump(&t.db);
            }
            let out = t.sb.cmd(args).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (t, dump)
    }

    /// `real-upgrade ARGS… --yes` with `env`, in its own process group.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut args = args.to_vec();
        args.push("--yes");
        let mut cmd = self.sb.cmd(&args);
        cmd.envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    /// [`Trial::snapshot`], where the scriptlets of a transaction done again right after itself
    /// count once.
    fn rollback_snapshot(&self) -> Snapshot {
        let mut snapshot = self.snapshot();
        snapshot.scriptlets.dedup();
        snapshot
    }
}

/// How a killed rollback is resumed: `rollback` again, or the plain command, which finishes the
/// open run whatever it is (never as the upgrade the rollback undoes).
const RESUMES: [&[&str]; 2] = [&["rollback"], &[]];

/// Resumes a killed rollback with `resume`, then compares with the clean rollback; the
/// database with `dump`, the trial's own before its upgrade (the ledger's times are its own).
fn resume_rollback_and_compare(
    trial: &(Trial, String),
    clean: &Snapshot,
    what: &str,
    resume: &[&str],
) -> Result<(), String> {
    let t = &trial.0;
    let out = once_unlocked(|| t.command(resume, &[]).output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // a kill after the rollback closed its run (before the process ended): a second `rollback`
    // is refused, as it should be, and the host is already the clean rollback's
    let finished = out.status.code() == Some(2)
        && resume.first() == Some(&"rollback")
        && stderr.contains("nothing to roll back: the latest run");
    if finished {
        return rolled_back_as_clean(trial, clean)
            .map_err(|e| format!("{what} (finished before the kill):\n{e}"));
    }
    if out.status.code() != Some(0) || stderr.contains("panicked") {
        return Err(format!(
            "{what}: the resumed rollback (`{}`) exited {:?}:\n{stderr}",
            resume.join(" "),
            out.status
        ));
    }
    if !stderr.contains("is rolled back: 1.0.0 is installed") {
        return Err(format!(
            "{what}: `{}` did not finish the rollback:\n{stderr}",
            resume.join(" ")
        ));
    }
    rolled_back_as_clean(trial, clean)
        .map_err(|e| format!("{what} (resumed with `{}`):\n{e}", resume.join(" ")))
}

/// Whether the trial's end state is the clean rollback's, its database the one before its
/// upgrade (`dump`: the ledger's times are the trial's own).
fn rolled_back_as_clean((t, dump): &(Trial, String), clean: &Snapshot) -> Result<(), String> {
    let mut diffs: Vec<String> = compare(clean, &t.rollback_snapshot(), false)
        .err()
        .into_iter()
        .collect();
    let got = full_dump(&t.db);
    if got != *dump {
        diffs.push(format!(
            "database: before the upgrade\n{dump}\nafter\n{got}"
        ));
    }
    match diffs.is_empty() {
        true => Ok(()),
        false => Err(diffs.join("\n")),
    }
}

/// The clean rollback of a fresh upgraded trial: its end state and the fault points it passed.
fn clean_rollback(repo: &Path, db: Db) -> (Snapshot, Vec<String>, Duration) {
    let (t, dump) = Trial::upgraded(repo, db);
    let (points, took) = traced(&t, |env| t.command(&["rollback"], env));
    assert_same(&full_dump(&t.db), &dump, "after the clean rollback");
    let clean = t.rollback_snapshot();
    assert_eq!(clean.installed.as_deref(), Some("1.0.0"));
    // api runs again; web's package, which the upgrade added, is gone, and web stays stopped
    assert_eq!(clean.services, ["up", "down"]);
    assert_eq!(
        clean.rpm,
        ["demo-cli-1.0.0-1.x86_64", "demo-server-1.0.0-1.x86_64"]
    );
    (clean, points, took)
}

fn kill_rollback_at_points(db: Db, keep: impl Fn(&str) -> bool) {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let (clean, points, took) = clean_rollback(&repo_sb.repo, db);
    eprintln!("rollback kill matrix ({db:?}): clean rollback {took:?}");
    if std::env::var_os("UPGRADE_FAULT_LIST").is_some() {
        eprintln!("{}", points.join("\n"));
    }
    for needed in [
        "restore-data:files",
        "restore-data:database",
        "rpm:before",
        "rpm:after",
    ] {
        assert!(
            points.iter().any(|p| p == needed),
            "no {needed} in {points:?}"
        );
    }
    if db == Db::Mariadb {
        assert!(
            points.iter().any(|p| p == "restore:mariadb:emptied"),
            "{points:?}"
        );
    }
    let faults: Vec<(usize, String)> = occurrences(&points)
        .into_iter()
        .filter(|f| keep(f))
        .enumerate()
        .collect();
    let failures = parallel(&faults, 3, |(i, fault)| {
        let trial = Trial::upgraded(&repo_sb.repo, db);
        let out = trial
            .0
            .command(&["rollback"], &[("UPGRADE_FAULT", fault)])
            .output()
            .unwrap();
        if out.status.signal() != Some(9) {
            return Err(format!(
                "{fault}: not killed there ({:?}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        resume_rollback_and_compare(&trial, &clean, fault, RESUMES[i % 2])
    });
    report_matrix("rollback kill matrix", db, &points, faults.len(), &failures);
}

#[test]
fn a_rollback_killed_at_every_fault_point_resumes_to_the_clean_rollback() {
    kill_rollback_at_points(Db::Sqlite, |_| true);
}

#[test]
fn a_rollback_on_postgresql_killed_at_every_fault_point_resumes_to_the_clean_rollback() {
    kill_rollback_at_points(Db::Postgres, |_| true);
}

/// MariaDB's restore empties the database, then loads the dump: killed between the two, and at
/// every other fault point, the resumed rollback gives back the whole database.
#[test]
fn a_rollback_on_mariadb_killed_at_every_fault_point_resumes_to_the_clean_rollback() {
    kill_rollback_at_points(Db::Mariadb, |_| true);
}

#[test]
fn rollbacks_killed_at_random_instants_resume_to_the_clean_rollback() {
    let repo_sb = Sandbox::new();
    product_repo(&repo_sb);
    let (clean, _, took) = clean_rollback(&repo_sb.repo, Db::Sqlite);
    let delays: Vec<(usize, Duration)> = random_delays("random rollback kills", took)
        .into_iter()
        .enumerate()
        .collect();
    let failures = parallel(&delays, 3, |(i, delay)| {
        let trial = Trial::upgraded(&repo_sb.repo, Db::Sqlite);
        let t = &trial.0;
        let mut child = t
            .command(&["rollback"], &[])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(*delay);
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let status = child.wait().unwrap();
        let what = format!("kill after {delay:?}");
        if status.success() {
            // it finished before the kill: nothing to resume
            return rolled_back_as_clean(&trial, &clean).map_err(|e| format!("{what}:\n{e}"));
        }
        // NB: killed before it began its run, the rollback left nothing open: `rollback` starts
        // it afresh, where the plain command would (rightly) upgrade
        let open = t.sb.run(&["status", "--json"]).json()["open_run"].is_object();
        let resume = if open { RESUMES[i % 2] } else { RESUMES[0] };
        resume_rollback_and_compare(&trial, &clean, &what, resume)
    });
    eprintln!(
        "random rollback kills: {} trials, {} failed",
        delays.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
