//! Generates the inputs of `bench/run`: a root with N trivial hooks, a repository with one
//! N-package release, a repository with two releases of the same N packages (the rollback's), an
//! index with N packages, N migrations, and a graph of N services.
//!
//! Usage: `bench-inputs hooks|packages|releases|index|migrations|services DIR N`

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::rpmbuild::RpmSpec;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, dir, n] = args.as_slice() else {
        eprintln!("usage: bench-inputs hooks|packages|releases|index|migrations|services DIR N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).unwrap();
    match kind.as_str() {
        "hooks" => hooks(dir, n),
        "packages" => packages(dir, n),
        "releases" => releases(dir, n),
        "index" => index(dir, n),
        "migrations" => migrations(dir, n),
        "services" => services(dir, n),
        other => panic!("unknown input kind `{other}`"),
    }
}

/// `DIR/hooks/` with N trivial hooks, and `DIR/repo` with one release without packages.
fn hooks(dir: &Path, n: usize) {
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for i in 0..n {
        let path = hooks.join(format!("{i:05}-hook"));
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("index.toml"),
        "format = 1\nproduct = \"bench\"\nsequence = 1\n\n[[releases]]\nversion = \"1.0.0\"\npackages = []\n",
    )
    .unwrap();
}

/// `DIR/repo` with `releases.toml` naming N small packages in release 1.0.0.
fn packages(dir: &Path, n: usize) {
    let repo = dir.join("repo");
    let files = package_files(&repo, n, "1.0.0");
    let toml =
        format!("product = \"bench\"\n\n[[releases]]\nversion = \"1.0.0\"\npackages = {files:?}\n");
    std::fs::write(repo.join("releases.toml"), toml).unwrap();
}

/// `DIR/repo` with `releases.toml` naming releases 1.0.0 and 2.0.0 of the same N small packages
/// (the rollback's: 2.0.0 upgrades each package, the rollback takes each back).
fn releases(dir: &Path, n: usize) {
    let repo = dir.join("repo");
    let mut toml = String::from("product = \"bench\"\n");
    for version in ["1.0.0", "2.0.0"] {
        let files = package_files(&repo, n, version);
        toml += &format!("\n[[releases]]\nversion = \"{version}\"\npackages = {files:?}\n");
    }
    std::fs::write(repo.join("releases.toml"), toml).unwrap();
}

/// Builds N small packages of `version` into `REPO/packages`: their paths under `repo`.
fn package_files(repo: &Path, n: usize, version: &str) -> Vec<String> {
    let mut files = Vec::new();
    for i in 0..n {
        let name = format!("bench-pkg-{i:04}");
        let spec = RpmSpec::new(&name, version)
            .file(
                &format!("/usr/lib/bench/{name}/data"),
                format!("package {i} {version}\n").repeat(64),
                0o644,
            )
            .file(
                &format!("/usr/lib/bench/{name}/README"),
                "a benchmark package\n",
                0o644,
            );
        let path = spec.build(&repo.join("packages"));
        files.push(path.strip_prefix(repo).unwrap().display().to_string());
    }
    files
}

/// `DIR/repo/index.toml` with 10 releases sharing N package entries (not backed by files: the
/// index is all `status` reads).
fn index(dir: &Path, n: usize) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let mut text = String::from("format = 1\nproduct = \"bench\"\nsequence = 1\n");
    let releases = 10;
    for r in 0..releases {
        text += &format!("\n[[releases]]\nversion = \"1.{r}.0\"\n");
        for i in 0..n / releases {
            text += &format!(
                "\n[[releases.packages]]\nname = \"bench-pkg-{i:05}\"\nevr = \"1.{r}.0-1\"\narch = \"x86_64\"\npath = \"packages/bench-pkg-{i:05}-1.{r}.0-1.x86_64.rpm\"\nsha256 = \"{:064x}\"\nsize = 4096\n",
                i
            );
        }
    }
    std::fs::write(repo.join("index.toml"), text).unwrap();
}

/// N small migrations three ways: `DIR/root/usr/share/upgrade/migrations/1.0.0/` for us,
/// `DIR/sqlx/` in sqlx's layout, and `DIR/all.sql` concatenated; plus `DIR/repo` with a release
/// 1.0.0 without packages.
fn migrations(dir: &Path, n: usize) {
    let ours = dir.join("root/usr/share/upgrade/migrations/1.0.0");
    let sqlx = dir.join("sqlx");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&sqlx).unwrap();
    let mut all = String::new();
    for i in 1..=n {
        let sql = format!(
            "CREATE TABLE t{i:05} (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t{i:05} (id, v) VALUES (1, 'm{i}');\n"
        );
        std::fs::write(ours.join(format!("{i:05}-m{i}.sql")), &sql).unwrap();
        std::fs::write(sqlx.join(format!("{i:05}_m{i}.sql")), &sql).unwrap();
        all += &sql;
    }
    std::fs::write(dir.join("all.sql"), all).unwrap();
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("index.toml"),
        "format = 1\nproduct = \"bench\"\nsequence = 1\n\n[[releases]]\nversion = \"1.0.0\"\npackages = []\n",
    )
    .unwrap();
}

/// `DIR/root/usr/share/upgrade/service-order.toml` with N services in levels of 10, each after two
/// services of the level before and restarted when its own package changes; plus `DIR/repo`
/// with a release 1.0.0 without packages.
fn services(dir: &Path, n: usize) {
    let share = dir.join("root/usr/share/upgrade");
    std::fs::create_dir_all(&share).unwrap();
    let width = 10;
    let mut text = String::new();
    for i in 0..n {
        text += &format!("[service.svc-{i:05}]\npackages = [\"pkg-{i:05}\"]\n");
        if i >= width {
            let level = i / width - 1;
            let a = level * width + i % width;
            let b = level * width + (i + 1) % width;
            text += &format!("after = [\"svc-{a:05}\", \"svc-{b:05}\"]\n");
        }
    }
    std::fs::write(share.join("service-order.toml"), text).unwrap();
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("index.toml"),
        "format = 1\nproduct = \"bench\"\nsequence = 1\n\n[[releases]]\nversion = \"1.0.0\"\npackages = []\n",
    )
    .unwrap();
}
