//! A sandbox root with its own repository, and helpers to drive the real binaries against it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "../../examples/common/rpmbuild.rs"]
mod rpmbuild;
pub use rpmbuild::RpmSpec;

#[path = "../../examples/common/httpserve.rs"]
pub mod httpserve;

pub const REAL_UPGRADE: &str = env!("CARGO_BIN_EXE_real-upgrade");
pub const UPGRADE: &str = env!("CARGO_BIN_EXE_upgrade");

pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub repo: PathBuf,
}

/// A release to publish: version, required stop, packages.
pub struct Rel {
    pub version: &'static str,
    pub stop: bool,
    pub requires_upgrader: Option<&'static str>,
    pub packages: Vec<RpmSpec>,
    /// More lines of this release's table in `releases.toml` (prerequisites, `[releases.checks]`).
    pub toml: String,
}

impl Rel {
    /// This release with `toml` added to its table in `releases.toml`.
    pub fn with_toml(mut self, toml: &str) -> Rel {
        self.toml += toml;
        self
    }
}

pub fn rel(version: &'static str, packages: Vec<RpmSpec>) -> Rel {
    Rel {
        version,
        stop: false,
        requires_upgrader: None,
        packages,
        toml: String::new(),
    }
}

pub fn stop(version: &'static str, packages: Vec<RpmSpec>) -> Rel {
    Rel {
        version,
        stop: true,
        requires_upgrader: None,
        packages,
        toml: String::new(),
    }
}

/// Publishes releases 1.0.0 (`demo-server`, `demo-cli`), 2.0.0, a required stop that adds
/// `demo-web`, and 3.0.0; `demo-cli` stays at 1.0.0 throughout.
pub fn three_releases(sb: &Sandbox) {
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![pkg("demo-server", "1.0.0"), pkg("demo-cli", "1.0.0")],
        ),
        stop(
            "2.0.0",
            vec![
                pkg("demo-server", "2.0.0"),
                pkg("demo-cli", "1.0.0"),
                pkg("demo-web", "2.0.0"),
            ],
        ),
        rel(
            "3.0.0",
            vec![
                pkg("demo-server", "3.0.0"),
                pkg("demo-cli", "1.0.0"),
                pkg("demo-web", "3.0.0"),
            ],
        ),
    ]);
}

/// Everything `releases.toml` can say, for [`Sandbox::publish_full`].
#[derive(Default)]
pub struct Publication {
    pub sequence: Option<u64>,
    pub expires: Option<&'static str>,
    /// The upgrader release: its version and packages.
    pub upgrader: Option<(&'static str, Vec<RpmSpec>)>,
    pub releases: Vec<Rel>,
    /// Sign the index with the sandbox's key ([`Sandbox::public_key`]).
    pub sign: bool,
}

/// The upgrader package `demo-upgrade` at `version`, carrying a vendor pre-upgrade hook that
/// appends `upgrader VERSION` to `log`.
pub fn upgrader_pkg(version: &str, log: &Path) -> RpmSpec {
    let mut spec = RpmSpec::new("demo-upgrade", version).file(
        "/usr/share/upgrade/pre-upgrade.d/10-upgrader",
        format!(
            "#!/bin/sh\necho \"upgrader {version}\" >> {}\n",
            log.display()
        ),
        0o755,
    );
    spec.arch = "noarch".into();
    spec
}

/// A package of the test product with one versioned file.
pub fn pkg(name: &str, version: &str) -> RpmSpec {
    RpmSpec::new(name, version).file(
        &format!("/usr/lib/{name}/version"),
        format!("{version}\n"),
        0o644,
    )
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("upgrade-test-")
            .tempdir()
            .expect("tempdir");
        let base = dir.path().to_path_buf();
        let root = base.join("root");
        let repo = base.join("repo");
        std::fs::create_dir_all(root.join("etc/upgrade")).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        let sandbox = Sandbox {
            _dir: dir,
            base,
            root,
            repo,
        };
        sandbox.write_config("");
        sandbox
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("etc/upgrade/upgrade.toml")
    }

    /// Writes the configuration: the product `demo` on this sandbox's repository, plus `extra`.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "product = \"demo\"\n{extra}\n[repository]\nurl = \"{}\"\n",
            self.repo.display()
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Builds the packages, writes `releases.toml` and runs `real-upgrade repo index`.
    pub fn publish(&self, releases: Vec<Rel>) {
        self.publish_full(Publication {
            releases,
            ..Default::default()
        });
    }

    /// [`Sandbox::publish`] with a sequence, an expiry, an upgrader, and a signature.
    pub fn publish_full(&self, p: Publication) {
        let build = |specs: &[RpmSpec]| -> Vec<String> {
            specs
                .iter()
                .map(|spec| {
                    let path = spec.build(&self.repo.join("packages"));
                    path.strip_prefix(&self.repo).unwrap().display().to_string()
                })
                .collect()
        };
        let mut toml = String::from("product = \"demo\"\n");
        if let Some(seq) = p.sequence {
            toml += &format!("sequence = {seq}\n");
        }
        if let Some(expires) = p.expires {
            toml += &format!("expires = {expires}\n");
        }
        if let Some((version, specs)) = &p.upgrader {
            toml += &format!(
                "[upgrader]\nversion = {version:?}\npackages = {:?}\n",
                build(specs)
            );
        }
        for r in &p.releases {
            let files = build(&r.packages);
            toml += &format!(
                "\n[[releases]]\nversion = {:?}\nstop = {}\npackages = {files:?}\n",
                r.version, r.stop
            );
            if let Some(req) = r.requires_upgrader {
                toml += &format!("requires_upgrader = {req:?}\n");
            }
            toml += &r.toml;
        }
        std::fs::write(self.repo.join("releases.toml"), toml).unwrap();
        vendor(&["index".as_ref(), self.repo.as_os_str()]);
        if p.sign {
            self.sign_index();
        }
    }

    /// The sandbox's signing key pair (made on first use by `repo keygen` in `BASE/keys`): the
    /// public key for `[repository] public_key`.
    pub fn public_key(&self) -> String {
        let dir = self.base.join("keys");
        if !dir.join("upgrade.pub").exists() {
            vendor(&["keygen".as_ref(), "--dir".as_ref(), dir.as_os_str()]);
        }
        let text = std::fs::read_to_string(dir.join("upgrade.pub")).unwrap();
        text.lines().nth(1).unwrap().trim().to_string()
    }

    /// Signs the repository's index with the sandbox's key.
    pub fn sign_index(&self) {
        self.public_key();
        let (index, key) = (
            self.repo.join("index.toml"),
            self.base.join("keys/upgrade.key"),
        );
        vendor(&[
            "sign".as_ref(),
            index.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ]);
    }

    /// Writes the configuration for a repository at `url` with these `[repository]` lines.
    pub fn write_config_repo(&self, url: &str, repository: &str) {
        let text = format!("product = \"demo\"\n[repository]\nurl = \"{url}\"\n{repository}\n");
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// `rpm -i` of package files into the root, outside any run (as an installer would).
    /// `rpm` aimed at the sandbox root, as the tool aims it (`src/host.rs`).
    pub fn rpm(&self) -> Command {
        let mut cmd = Command::new("rpm");
        cmd.arg("--root")
            .arg(&self.root)
            .args(["--dbpath", "/var/lib/rpm"]);
        if Path::new("/etc/debian_version").exists() {
            cmd.arg("--force-debian");
        }
        cmd
    }

    pub fn rpm_install(&self, files: &[PathBuf]) {
        let mut cmd = self.rpm();
        let out = cmd.arg("-i").args(files).output().unwrap();
        assert!(
            out.status.success(),
            "rpm -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes an executable hook; `admin` puts it in /etc/upgrade, else in /usr/share/upgrade.
    pub fn hook(&self, phase: &str, admin: bool, name: &str, body: &str) -> PathBuf {
        let dir = if admin {
            "etc/upgrade"
        } else {
            "usr/share/upgrade"
        };
        let dir = self.root.join(dir).join(format!("{phase}-upgrade.d"));
        write_script(&dir, name, body)
    }

    /// Writes an executable custom check into the root's `/etc/upgrade/checks.d`.
    pub fn check_script(&self, name: &str, body: &str) -> PathBuf {
        write_script(&self.root.join("etc/upgrade/checks.d"), name, body)
    }

    /// Writes the root's `/etc/os-release`.
    pub fn os_release(&self, text: &str) {
        std::fs::write(self.root.join("etc/os-release"), text).unwrap();
    }

    /// Writes the vendor's service graph, `/usr/share/upgrade/service-order.toml`.
    pub fn service_order(&self, toml: &str) {
        let dir = self.root.join("usr/share/upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("service-order.toml"), toml).unwrap();
    }

    /// A hook that appends `phase name FROM TO FRESH RESUMED` to the sandbox's hook log.
    pub fn logging_hook(&self, phase: &str, admin: bool, name: &str) -> PathBuf {
        let log = self.hook_log_path();
        self.hook(
            phase,
            admin,
            name,
            &format!(
                "echo \"$UPGRADE_PHASE {name} from=$UPGRADE_FROM_VERSION to=$UPGRADE_TO_VERSION fresh=$UPGRADE_FRESH_INSTALL resumed=$UPGRADE_RESUMED\" >> {}",
                log.display()
            ),
        )
    }

    pub fn hook_log_path(&self) -> PathBuf {
        self.base.join("hooks.log")
    }

    pub fn hook_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.hook_log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `real-upgrade --root ROOT ARGS…`, with no terminal.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(REAL_UPGRADE);
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// Starts `real-upgrade ARGS…` in the background and waits (at most a minute) until `marker`
    /// exists, e.g. a hook or migration that touches it and then hangs.
    pub fn spawn_until(&self, args: &[&str], marker: &Path) -> std::process::Child {
        let mut child = self.cmd(args).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !marker.exists() {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                panic!("`{}` never appeared", marker.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run real-upgrade"))
    }

    /// `NAME-EVR.ARCH` of every package in the root's rpm database, sorted.
    pub fn rpm_qa(&self) -> Vec<String> {
        if !self.root.join("var/lib/rpm").exists() {
            return Vec::new();
        }
        let mut cmd = self.rpm();
        let out = cmd
            .args(["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n"])
            .output()
            .unwrap();
        let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        list.sort();
        list
    }

    /// The installed version `status --json` reports.
    pub fn installed(&self) -> Option<String> {
        let run = self.run(&["status", "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["installed"].as_str().map(str::to_string)
    }
}

/// Writes `#!/bin/sh` and `body` to the executable `dir/name`, in a directory of mode 0755 (as
/// hooks and checks must be).
fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `real-upgrade repo ARGS…` (the vendor side), which must succeed.
fn vendor(args: &[&std::ffi::OsStr]) {
    let out = Command::new(REAL_UPGRADE)
        .arg("repo")
        .args(args)
        .env_remove("UPGRADE_SIGNING_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "repo {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` on a pseudo-terminal, waits for `prompt`, answers `n`, and returns the exit code.
pub fn decline_at_prompt(cmd: Command, prompt: &str) -> i32 {
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn on a pty");
    p.exp_string(prompt).expect("the prompt");
    p.send("n").unwrap();
    p.flush().unwrap();
    p.exp_eof().expect("exit after declining");
    match p.process.wait().unwrap() {
        rexpect::process::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stderr:\n{}\n--- stdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

impl Sandbox {
    /// Writes a vendor migration `usr/share/upgrade/migrations/VERSION/FILE`.
    pub fn migration(&self, version: &str, file: &str, body: &str) -> PathBuf {
        let dir = self.root.join("usr/share/upgrade/migrations").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, body).unwrap();
        if !file.ends_with(".sql") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }
}

/// A database of its own for one test, on one of the three backends; dropped afterwards.
pub enum TestDb {
    Sqlite { url: String, path: PathBuf },
    Postgres { url: String, name: String },
    Mariadb { url: String, name: String },
}

pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "upgrade_t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    pub fn sqlite(sb: &Sandbox) -> TestDb {
        TestDb::Sqlite {
            url: "sqlite:///var/lib/demo/test.db".into(),
            path: sb.root.join("var/lib/demo/test.db"),
        }
    }

    pub fn postgres() -> TestDb {
        let name = unique_name();
        let mut admin = postgres::Client::connect(POSTGRES_ADMIN, postgres::NoTls)
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test starts it)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb::Postgres {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }

    pub fn mariadb() -> TestDb {
        use mysql::prelude::Queryable;
        let name = unique_name();
        let mut admin = mysql::Conn::new(mysql::Opts::from_url(MARIADB_ADMIN).unwrap())
            .expect("MariaDB on 127.0.0.1:3306 (scripts/test starts it)");
        admin.query_drop(format!("CREATE DATABASE {name}")).unwrap();
        TestDb::Mariadb {
            url: format!("mysql://root@127.0.0.1:3306/{name}"),
            name,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. }
            | TestDb::Postgres { url, .. }
            | TestDb::Mariadb { url, .. } => url,
        }
    }

    /// `[database] url = …` for the sandbox configuration.
    pub fn config(&self) -> String {
        format!("[database]\nurl = \"{}\"\n", self.url())
    }

    /// The first column of the first row of `sql`, as an integer.
    pub fn scalar(&self, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.query_one(sql, &[]).unwrap().get(0)
            }
            TestDb::Mariadb { url, .. } => {
                use mysql::prelude::Queryable;
                let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
                c.query_first::<i64, _>(sql).unwrap().unwrap()
            }
        }
    }

    /// Whether a table of that name exists.
    pub fn has_table(&self, table: &str) -> bool {
        if let TestDb::Sqlite { path, .. } = self
            && !path.exists()
        {
            // a run that applied nothing has not created it (and reading must not)
            return false;
        }
        let sql = match self {
            TestDb::Sqlite { .. } => format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
            TestDb::Postgres { .. } => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = '{table}'"
            ),
            TestDb::Mariadb { name, .. } => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{name}' AND table_name = '{table}'"
            ),
        };
        self.scalar(&sql) == 1
    }

    /// Ledger rows as `VERSION/NAME:success`, in the order they were applied.
    pub fn ledger(&self) -> Vec<String> {
        let sql = "SELECT version, name, success FROM upgrade_migrations";
        let mut rows: Vec<(String, String, bool)> = match self {
            TestDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(&format!("{sql} ORDER BY rowid")).unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.query(
                    &format!("{sql} ORDER BY applied_at, version, sequence"),
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
            }
            TestDb::Mariadb { url, .. } => {
                use mysql::prelude::Queryable;
                let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
                c.query(format!("{sql} ORDER BY applied_at, version, sequence"))
                    .unwrap()
            }
        };
        rows.iter_mut()
            .map(|(v, n, ok)| format!("{v}/{n}:{}", if *ok { "ok" } else { "failed" }))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self {
            TestDb::Sqlite { .. } => {}
            TestDb::Postgres { name, .. } => {
                if let Ok(mut admin) = postgres::Client::connect(POSTGRES_ADMIN, postgres::NoTls) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
            TestDb::Mariadb { name, .. } => {
                use mysql::prelude::Queryable;
                if let Ok(mut admin) =
                    mysql::Conn::new(mysql::Opts::from_url(MARIADB_ADMIN).unwrap())
                {
                    let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {name}"));
                }
            }
        }
    }
}

/// The database's schema and rows as text: two equal dumps are the same database.
pub fn full_dump(db: &TestDb) -> String {
    let (program, args) = match db {
        TestDb::Sqlite { path, .. } => return sqlite_dump(path),
        TestDb::Postgres { url, .. } => ("pg_dump", vec!["--no-sync", "--dbname", url]),
        TestDb::Mariadb { name, .. } => (
            "mariadb-dump",
            vec![
                "--protocol=TCP",
                "--host=127.0.0.1",
                "--port=3306",
                "--user=root",
                "--skip-dump-date",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                name,
            ],
        ),
    };
    let out = Command::new(program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program}: {stderr}");
    // NB: pg_dump's `\restrict` and `\unrestrict` carry a random key, new in every dump
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sqlite_master` and every table's rows in rowid order, and `user_version`.
pub fn sqlite_dump(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = String::new();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out += &format!("user_version {version}\n");
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, table, sql) in &objects {
        out += &format!("{kind} {name} on {table}: {sql:?}\n");
        if kind == "table" {
            let mut rows = conn
                .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
                .unwrap();
            let columns = rows.column_count();
            let values: Vec<Vec<rusqlite::types::Value>> = rows
                .query_map([], |r| {
                    (0..columns)
                        .map(|i| r.get(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for row in values {
                out += &format!("  {row:?}\n");
            }
        }
    }
    out
}

/// Panics with the first lines where `got` and `want` differ.
pub fn assert_same(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let diff: Vec<String> = got
        .lines()
        .zip(want.lines())
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .take(10)
        .map(|(i, (g, w))| format!("line {}:\n  got  {g}\n  want {w}", i + 1))
        .collect();
    panic!(
        "{what}: the dumps differ ({} lines vs {}):\n{}",
        got.lines().count(),
        want.lines().count(),
        diff.join("\n")
    );
}

/// A free TCP port on 127.0.0.1 (bound and released; tests run in parallel threads).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `demo-service` example binary, built on first use when `cargo test` did not build it.
pub fn demo_service() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = Path::new(REAL_UPGRADE)
                .parent()
                .unwrap()
                .join("examples/demo-service");
            if !path.exists() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "--example", "demo-service"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .unwrap();
                assert!(
                    status.success(),
                    "cargo build --example demo-service failed"
                );
            }
            path
        })
        .clone()
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; false on timeout.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A real runit supervisor (`runsvdir`) on a service directory; dropping it kills `runsvdir`,
/// every `runsv` and every service they started (one process group).
pub struct Runit {
    pub dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Runit {
    /// Prepares `dir` (e.g. the root's `/etc/service`); add services, then [`Runit::start`].
    pub fn new(dir: PathBuf) -> Runit {
        std::fs::create_dir_all(&dir).unwrap();
        Runit { dir, child: None }
    }

    /// Adds a service whose `run` script is `body`; it stays down until something starts it.
    pub fn service(&self, name: &str, body: &str) {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("down"), "").unwrap();
        let run = dir.join("run");
        std::fs::write(&run, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Starts `runsvdir` and waits (bounded) until every service's `runsv` is up.
    pub fn start(&mut self) {
        use std::os::unix::process::CommandExt;
        // NB: no `-P`: runsv and the services stay in runsvdir's process group, which Drop kills.
        let child = Command::new("runsvdir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("runsvdir (install runit)");
        self.child = Some(child);
        let names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let ok = wait_until(std::time::Duration::from_secs(10), || {
            names.iter().all(|d| d.join("supervise/ok").exists())
        });
        assert!(ok, "runsv did not come up for every service in 10s");
    }

    /// runsv's state of a service: `run`, `down`, `finish`…
    pub fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name).join("supervise/stat"))
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }
}

impl Drop for Runit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// A file `demo-old` of release 1.0.0 holds and its renamed successor `demo-new` of 2.0.0 too.
pub const SHARED: &str = "/usr/lib/demo/shared";
/// A config file (`%config(noreplace)`) of `demo-old` and `demo-new` alike.
pub const CONF: &str = "/etc/demo/demo.conf";

/// Publishes 1.0.0: `demo-server`, `demo-legacy`, and `demo-old`, which holds [`SHARED`] and
/// [`CONF`]; 2.0.0: `demo-server`, `demo-new`, which holds the same two paths with other contents
/// and does not obsolete `demo-old` (a rename without `Obsoletes`), and `added`. 2.0.0 drops
/// `demo-legacy` and `demo-old`.
pub fn renaming_releases(sb: &Sandbox, added: Vec<RpmSpec>) {
    let mut new = vec![
        pkg("demo-server", "2.0.0"),
        pkg("demo-new", "2.0.0")
            .file(SHARED, "new\n", 0o644)
            .config_file(CONF, "setting = new\n"),
    ];
    new.extend(added);
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![
                pkg("demo-server", "1.0.0"),
                pkg("demo-legacy", "1.0.0"),
                pkg("demo-old", "1.0.0")
                    .file(SHARED, "old\n", 0o644)
                    .config_file(CONF, "setting = old\n"),
            ],
        ),
        rel("2.0.0", new),
    ]);
}

/// Installs `os-tool` 1.0, a package of the operating system holding `path`, outside any run.
pub fn os_package(sb: &Sandbox, path: &str) {
    let spec = RpmSpec::new("os-tool", "1.0").file(path, "the OS's\n", 0o644);
    sb.rpm_install(&[spec.build(&sb.base.join("os"))]);
}
