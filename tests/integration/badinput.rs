//! The bad-input matrix (issue 7): every input the tool reads, malformed in many ways, each case
//! with its expected exit code and message fragments (file and line where there is one). A panic
//! (exit 101, or `panicked` on stderr) fails the case whatever else it says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

/// One malformed input: `setup` breaks a sandbox whose repository holds a valid release 1.0.0;
/// `args` is the command; `needles` must all be on stderr (`{root}`, `{repo}`, `{config}` and
/// `{base}` are replaced by the sandbox's paths).
struct Case {
    name: &'static str,
    setup: fn(&Sandbox),
    args: &'static [&'static str],
    code: i32,
    needles: &'static [&'static str],
}

fn write(path: impl AsRef<Path>, text: &str) {
    let path = path.as_ref();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(sb: &Sandbox, text: &str) {
    write(sb.config_path(), text);
}

/// The index with `from` replaced by `to`.
fn edit_index(sb: &Sandbox, from: &str, to: &str) {
    let path = sb.repo.join("index.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in the index");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn order(sb: &Sandbox, text: &str) {
    write(sb.root.join("usr/share/upgrade/service-order.toml"), text);
}

fn releases(sb: &Sandbox, text: &str) {
    write(sb.repo.join("releases.toml"), text);
}

fn signed(sb: &Sandbox) {
    sb.sign_index();
    sb.write_config_repo(
        sb.repo.to_str().unwrap(),
        &format!("public_key = {:?}", sb.public_key()),
    );
}

const CASES: &[Case] = &[
    // ---- upgrade.toml
    Case {
        name: "config: toml syntax",
        setup: |sb| config(sb, "product = \"demo\"\n[repository\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:2:"],
    },
    Case {
        name: "config: unknown top-level key",
        setup: |sb| config(sb, "product = \"demo\"\ncolour = true\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:2:", "unknown field `colour`"],
    },
    Case {
        name: "config: unknown key in a table",
        setup: |sb| config(sb, "product = \"demo\"\n[hooks]\ntimeot = \"1m\"\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:3:", "timeot"],
    },
    Case {
        name: "config: wrong type",
        setup: |sb| config(sb, "product = 42\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:1:"],
    },
    Case {
        name: "config: bad version scheme",
        setup: |sb| config(sb, "version_scheme = \"calendar\"\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:1:", "calendar"],
    },
    Case {
        name: "config: bad hook timeout",
        setup: |sb| config(sb, "product = \"demo\"\n[hooks]\ntimeout = \"forever\"\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:3:"],
    },
    Case {
        name: "config: bad package backend",
        setup: |sb| config(sb, "product = \"demo\"\n[packages]\nbackend = \"apt\"\n"),
        args: &["plan"],
        code: 2,
        needles: &["{config}:3:", "apt"],
    },
    Case {
        name: "config: bad service backend",
        setup: |sb| {
            config(
                sb,
                "product = \"demo\"\n[services]\nbackend = \"upstart\"\n",
            )
        },
        args: &["plan"],
        code: 2,
        needles: &["{config}:3:", "upstart"],
    },
    Case {
        name: "config: bad database url",
        setup: |sb| {
            config(
                sb,
                &format!(
                    "product = \"demo\"\n[database]\nurl = \"oracle://db\"\n[repository]\nurl = \"{}\"\n",
                    sb.repo.display()
                ),
            )
        },
        args: &["migrations", "status"],
        code: 2,
        needles: &["oracle://db"],
    },
    Case {
        name: "config: empty file",
        setup: |sb| config(sb, ""),
        args: &["plan"],
        code: 2,
        needles: &[],
    },
    Case {
        name: "config: not utf-8",
        setup: |sb| std::fs::write(sb.config_path(), b"product = \"\xff\xfe\"\n").unwrap(),
        args: &["plan"],
        code: 2,
        needles: &["{config}"],
    },
    Case {
        name: "config: missing file",
        setup: |sb| std::fs::remove_file(sb.config_path()).unwrap(),
        args: &["plan"],
        code: 2,
        needles: &["{config}"],
    },
    Case {
        name: "config: a directory",
        setup: |sb| {
            std::fs::remove_file(sb.config_path()).unwrap();
            std::fs::create_dir(sb.config_path()).unwrap()
        },
        args: &["plan"],
        code: 2,
        needles: &["{config}"],
    },
    Case {
        name: "config: plain http",
        setup: |sb| sb.write_config_repo("http://127.0.0.1:9/demo", ""),
        args: &["plan"],
        code: 2,
        needles: &["http://127.0.0.1:9/demo"],
    },
    Case {
        name: "config: malformed public key",
        setup: |sb| {
            sb.sign_index();
            sb.write_config_repo(sb.repo.to_str().unwrap(), "public_key = \"RWSnotakey\"")
        },
        args: &["plan"],
        code: 2,
        needles: &["public_key"],
    },
    Case {
        name: "config: unsupported url scheme",
        setup: |sb| sb.write_config_repo("ftp://example.com/demo", ""),
        args: &["plan"],
        code: 2,
        needles: &["ftp://example.com/demo"],
    },
    // ---- index.toml
    Case {
        name: "index: toml syntax",
        setup: |sb| {
            write(
                sb.repo.join("index.toml"),
                "format = 1\nproduct = \"demo\"\n[[releases]\n",
            )
        },
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml:3:"],
    },
    Case {
        name: "index: missing",
        setup: |sb| std::fs::remove_file(sb.repo.join("index.toml")).unwrap(),
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml"],
    },
    Case {
        name: "index: empty",
        setup: |sb| write(sb.repo.join("index.toml"), ""),
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml"],
    },
    Case {
        name: "index: future format",
        setup: |sb| edit_index(sb, "format = 1", "format = 99"),
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml", "99"],
    },
    Case {
        name: "index: bad release version",
        setup: |sb| edit_index(sb, "version = \"1.0.0\"", "version = \"one\""),
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml:", "invalid version `one`"],
    },
    Case {
        name: "index: unknown key",
        setup: |sb| edit_index(sb, "sha256 =", "sha265 ="),
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml:", "sha265"],
    },
    Case {
        name: "index: other product",
        setup: |sb| edit_index(sb, "product = \"demo\"", "product = \"other\""),
        args: &["plan"],
        code: 2,
        needles: &["product `other`"],
    },
    Case {
        name: "index: negative sequence",
        setup: |sb| {
            edit_index(
                sb,
                "product = \"demo\"",
                "product = \"demo\"\nsequence = -1",
            )
        },
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml:"],
    },
    Case {
        name: "index: expiry not a date",
        setup: |sb| {
            edit_index(
                sb,
                "product = \"demo\"",
                "product = \"demo\"\nexpires = \"soon\"",
            )
        },
        args: &["plan"],
        code: 2,
        needles: &["{repo}/index.toml:"],
    },
    Case {
        name: "index: sha256 not hex",
        setup: |sb| {
            let t = std::fs::read_to_string(sb.repo.join("index.toml")).unwrap();
            let start = t.find("sha256 = \"").unwrap() + 10;
            let mut t2 = t.clone();
            t2.replace_range(start..start + 64, &"z".repeat(64));
            write(sb.repo.join("index.toml"), &t2)
        },
        args: &["--yes"],
        code: 2,
        needles: &["{repo}/index.toml"],
    },
    Case {
        name: "index: artifact path escapes the repository",
        setup: |sb| edit_index(sb, "path = \"packages/", "path = \"../../../../etc/"),
        args: &["--yes"],
        code: 2,
        needles: &["{repo}/index.toml"],
    },
    Case {
        name: "index: duplicate release",
        setup: |sb| {
            let t = std::fs::read_to_string(sb.repo.join("index.toml")).unwrap();
            let i = t.find("[[releases]]").unwrap();
            let dup = t[i..].to_string();
            write(sb.repo.join("index.toml"), &format!("{t}\n{dup}"))
        },
        args: &["plan"],
        code: 2,
        needles: &["1.0.0"],
    },
    Case {
        name: "index: artifact size is wrong",
        setup: |sb| {
            let t = std::fs::read_to_string(sb.repo.join("index.toml")).unwrap();
            let re = t
                .lines()
                .find(|l| l.starts_with("size = "))
                .unwrap()
                .to_string();
            write(sb.repo.join("index.toml"), &t.replacen(&re, "size = 10", 1))
        },
        args: &["--yes"],
        code: 1,
        needles: &["demo-server"],
    },
    Case {
        name: "index: artifact missing",
        setup: |sb| std::fs::remove_dir_all(sb.repo.join("packages")).unwrap(),
        args: &["--yes"],
        code: 1,
        needles: &["demo-server"],
    },
    Case {
        name: "index: artifact corrupted",
        setup: |sb| {
            let f = std::fs::read_dir(sb.repo.join("packages"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let mut b = std::fs::read(&f).unwrap();
            let n = b.len() / 2;
            b[n] ^= 0xff;
            std::fs::write(&f, b).unwrap()
        },
        args: &["--yes"],
        code: 1,
        needles: &["sha256"],
    },
    // ---- index.toml.minisig
    Case {
        name: "signature: missing",
        setup: |sb| {
            signed(sb);
            std::fs::remove_file(sb.repo.join("index.toml.minisig")).unwrap()
        },
        args: &["plan"],
        code: 2,
        needles: &["index.toml.minisig"],
    },
    Case {
        name: "signature: garbage",
        setup: |sb| {
            signed(sb);
            write(sb.repo.join("index.toml.minisig"), "not a signature\n")
        },
        args: &["plan"],
        code: 2,
        needles: &["the signature of `{repo}/index.toml` is malformed"],
    },
    Case {
        name: "signature: empty",
        setup: |sb| {
            signed(sb);
            write(sb.repo.join("index.toml.minisig"), "")
        },
        args: &["plan"],
        code: 2,
        needles: &["the signature of `{repo}/index.toml` is malformed"],
    },
    Case {
        name: "signature: index tampered after signing",
        setup: |sb| {
            signed(sb);
            edit_index(sb, "version = \"1.0.0\"", "version = \"1.0.1\"")
        },
        args: &["plan"],
        code: 2,
        needles: &["signature"],
    },
    // ---- releases.toml (repo index)
    Case {
        name: "releases: toml syntax",
        setup: |sb| releases(sb, "product = \"demo\"\n[[releases]\n"),
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["{repo}/releases.toml:2:"],
    },
    Case {
        name: "releases: missing",
        setup: |sb| std::fs::remove_file(sb.repo.join("releases.toml")).unwrap(),
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["{repo}/releases.toml"],
    },
    Case {
        name: "releases: unknown key",
        setup: |sb| releases(sb, "product = \"demo\"\nflavour = 1\n"),
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["{repo}/releases.toml:2:", "flavour"],
    },
    Case {
        name: "releases: bad version",
        setup: |sb| {
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0 beta\"\npackages = []\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["{repo}/releases.toml:3:", "invalid version `1.0 beta`"],
    },
    Case {
        name: "releases: missing package file",
        setup: |sb| {
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"packages/none.rpm\"]\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["none.rpm"],
    },
    Case {
        name: "releases: package outside the repository",
        setup: |sb| {
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"/etc/passwd\"]\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["/etc/passwd"],
    },
    Case {
        name: "releases: not an rpm",
        setup: |sb| {
            write(sb.repo.join("junk.rpm"), "junk");
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"junk.rpm\"]\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["junk.rpm", "is not a readable RPM package"],
    },
    Case {
        name: "releases: truncated rpm",
        setup: |sb| {
            let f = std::fs::read_dir(sb.repo.join("packages"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let b = std::fs::read(&f).unwrap();
            std::fs::write(sb.repo.join("cut.rpm"), &b[..b.len().min(200)]).unwrap();
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = [\"cut.rpm\"]\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["cut.rpm"],
    },
    Case {
        name: "releases: duplicate version",
        setup: |sb| {
            releases(
                sb,
                "product = \"demo\"\n[[releases]]\nversion = \"1.0.0\"\npackages = []\n[[releases]]\nversion = \"1.0.0\"\npackages = []\n",
            )
        },
        args: &["repo", "index", "{repo}"],
        code: 2,
        needles: &["{repo}/releases.toml:6:", "release `1.0.0` is listed twice"],
    },
    // ---- service-order.toml
    Case {
        name: "services: toml syntax",
        setup: |sb| order(sb, "[service.api\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["{root}/usr/share/upgrade/service-order.toml:1:"],
    },
    Case {
        name: "services: unknown after",
        setup: |sb| order(sb, "[service.api]\nafter = [\"db\"]\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:", "`db`"],
    },
    Case {
        name: "services: cycle",
        setup: |sb| {
            order(
                sb,
                "[service.a]\nafter = [\"b\"]\n[service.b]\nafter = [\"a\"]\n",
            )
        },
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml", "cycle"],
    },
    Case {
        name: "services: self dependency",
        setup: |sb| order(sb, "[service.a]\nafter = [\"a\"]\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml", "`a`"],
    },
    Case {
        name: "services: unknown key",
        setup: |sb| order(sb, "[service.a]\nrestrat = \"always\"\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:", "restrat"],
    },
    Case {
        name: "services: bad restart",
        setup: |sb| order(sb, "[service.a]\nrestart = \"sometimes\"\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:", "sometimes"],
    },
    Case {
        name: "services: ready with both checks",
        setup: |sb| {
            order(
                sb,
                "[service.a]\nready = { tcp = \"127.0.0.1:1\", command = \"true\" }\n",
            )
        },
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:", "exactly one"],
    },
    Case {
        name: "services: ready tcp without port",
        setup: |sb| order(sb, "[service.a]\nready = { tcp = \"localhost\" }\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:", "localhost"],
    },
    Case {
        name: "services: bad ready timeout",
        setup: |sb| {
            order(
                sb,
                "[service.a]\nready = { tcp = \"127.0.0.1:1\", timeout = \"eventually\" }\n",
            )
        },
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:2:"],
    },
    Case {
        name: "services: command backend without stop",
        setup: |sb| order(sb, "[service.a]\nbackend = \"command\"\nstart = \"true\"\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml", "`stop`"],
    },
    Case {
        name: "services: not a table",
        setup: |sb| order(sb, "service = 3\n"),
        args: &["services", "order"],
        code: 2,
        needles: &["service-order.toml:1:"],
    },
    // ---- migrations
    Case {
        name: "migrations: bad file name",
        setup: |sb| {
            sb.migration("1.0.0", "create.sql", "SELECT 1;");
        },
        args: &["plan"],
        code: 2,
        needles: &["create.sql"],
    },
    Case {
        name: "migrations: bad version directory",
        setup: |sb| {
            sb.migration("latest", "001-a.sql", "SELECT 1;");
        },
        args: &["plan"],
        code: 2,
        needles: &["latest"],
    },
    Case {
        name: "migrations: duplicate sequence",
        setup: |sb| {
            sb.migration("1.0.0", "001-a.sql", "SELECT 1;");
            sb.migration("1.0.0", "001-b.sql", "SELECT 1;");
        },
        args: &["plan"],
        code: 2,
        needles: &["001"],
    },
    Case {
        name: "migrations: sql error",
        setup: |sb| {
            sb.migration("1.0.0", "001-a.sql", "CREAT TABLE x (id INT);");
        },
        args: &["--yes"],
        code: 1,
        needles: &["1.0.0/001-a", "hint:"],
    },
    Case {
        name: "migrations: not utf-8",
        setup: |sb| {
            let p = sb.migration("1.0.0", "001-a.sql", "");
            std::fs::write(p, b"SELECT '\xff';").unwrap();
        },
        args: &["--yes"],
        code: 2,
        needles: &["001-a.sql"],
    },
    Case {
        name: "migrations: a file where the directory should be",
        setup: |sb| write(sb.root.join("usr/share/upgrade/migrations"), "x"),
        args: &["plan"],
        code: 1,
        needles: &["migrations"],
    },
    // ---- hooks
    Case {
        name: "hooks: world-writable hook",
        setup: |sb| {
            let p = sb.hook("pre", false, "10-a", "true");
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
        },
        args: &["plan"],
        code: 1,
        needles: &["10-a", "mode 0777", "hint:"],
    },
    Case {
        name: "hooks: world-writable directory",
        setup: |sb| {
            let p = sb.hook("pre", true, "10-a", "true");
            std::fs::set_permissions(p.parent().unwrap(), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        },
        args: &["plan"],
        code: 1,
        needles: &["pre-upgrade.d` is writable", "hint:"],
    },
    Case {
        name: "hooks: a file where the directory should be",
        setup: |sb| write(sb.root.join("etc/upgrade/post-upgrade.d"), "x"),
        args: &["plan"],
        code: 1,
        needles: &["post-upgrade.d"],
    },
    Case {
        name: "hooks: hook fails",
        setup: |sb| {
            sb.hook("pre", false, "10-a", "echo broken; exit 3");
        },
        args: &["--yes"],
        code: 1,
        needles: &["10-a", "3", "hint:"],
    },
    Case {
        name: "hooks: not an executable format",
        setup: |sb| {
            let p = sb.hook("pre", false, "10-a", "");
            std::fs::write(p, b"\x7fELF garbage").unwrap();
        },
        args: &["--yes"],
        code: 1,
        needles: &["10-a"],
    },
    // ---- state
    Case {
        name: "state: state.db is garbage",
        setup: |sb| {
            write(
                sb.root.join("var/lib/upgrade/state.db"),
                "this is not sqlite",
            )
        },
        args: &["status"],
        code: 1,
        needles: &["state.db"],
    },
    // ---- command line
    Case {
        name: "cli: unknown flag",
        setup: |_| {},
        args: &["--frobnicate"],
        code: 2,
        needles: &["--frobnicate"],
    },
    Case {
        name: "cli: unknown command",
        setup: |_| {},
        args: &["frobnicate"],
        code: 2,
        needles: &["frobnicate"],
    },
    Case {
        name: "cli: --to not a version",
        setup: |_| {},
        args: &["--yes", "--to", "latest"],
        code: 2,
        needles: &["latest"],
    },
    Case {
        name: "cli: --to not in the repository",
        setup: |_| {},
        args: &["--yes", "--to", "9.9.9"],
        code: 2,
        needles: &["9.9.9"],
    },
    Case {
        name: "cli: --to empty",
        setup: |_| {},
        args: &["--yes", "--to", ""],
        code: 2,
        needles: &[],
    },
    Case {
        name: "cli: history id not a number",
        setup: |_| {},
        args: &["history", "x"],
        code: 2,
        needles: &["x"],
    },
    Case {
        name: "cli: history id negative",
        setup: |_| {},
        args: &["history", "-5"],
        code: 2,
        needles: &[],
    },
    Case {
        name: "cli: adopt not a version",
        setup: |_| {},
        args: &["adopt", "v-one"],
        code: 2,
        needles: &["v-one"],
    },
    Case {
        name: "cli: completions for an unknown shell",
        setup: |_| {},
        args: &["completions", "tcsh"],
        code: 2,
        needles: &["tcsh"],
    },
    Case {
        name: "cli: --config missing",
        setup: |_| {},
        args: &["--config", "/nonexistent/upgrade.toml", "plan"],
        code: 2,
        needles: &["/nonexistent/upgrade.toml"],
    },
    Case {
        name: "cli: repo index of a missing directory",
        setup: |_| {},
        args: &["repo", "index", "{base}/nowhere"],
        code: 2,
        needles: &["{base}/nowhere"],
    },
    Case {
        name: "cli: repo sign a missing file",
        setup: |_| {},
        args: &[
            "repo",
            "sign",
            "{base}/nowhere.toml",
            "--key",
            "{base}/nokey",
        ],
        code: 2,
        needles: &["{base}/no"],
    },
    Case {
        name: "cli: conflicting flags",
        setup: |_| {},
        args: &["--quiet", "--verbose"],
        code: 2,
        needles: &[],
    },
];

#[test]
fn every_bad_input_is_a_clear_error_and_never_a_panic() {
    let base = Sandbox::new();
    base.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let next = std::sync::Mutex::new(0usize);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(case) = CASES.get(i) else { break };
                    if let Err(e) = check(case, &base.repo) {
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "bad-input matrix: {} cases, {} failed",
        CASES.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check(case: &Case, repo: &Path) -> Result<(), String> {
    let sb = Sandbox::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", repo.display()))
        .arg(&sb.repo)
        .status()
        .unwrap();
    assert!(status.success());
    (case.setup)(&sb);
    let fill = |s: &str| {
        s.replace("{root}", sb.root.to_str().unwrap())
            .replace("{repo}", sb.repo.to_str().unwrap())
            .replace("{config}", sb.config_path().to_str().unwrap())
            .replace("{base}", sb.base.to_str().unwrap())
    };
    let args: Vec<String> = case.args.iter().map(|a| fill(a)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sb.run(&args);
    let mut problems = Vec::new();
    if run.code == 101 || run.stderr.contains("panicked") {
        problems.push("panicked".to_string());
    }
    if run.code != case.code {
        problems.push(format!("exit {} (expected {})", run.code, case.code));
    }
    for needle in case.needles {
        let needle = fill(needle);
        if !run.stderr.contains(&needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{}: {}\n--- stderr:\n{}",
            case.name,
            problems.join("; "),
            run.stderr
        )),
    }
}
