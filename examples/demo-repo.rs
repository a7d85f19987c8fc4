//! Builds the demo product's repository: real RPMs made with the `rpm` crate and the
//! `releases.toml` that says which packages make each release.
//!
//! Usage: `cargo run --example demo-repo -- OUT_DIR [ASSETS_DIR]`, then
//! `real-upgrade repo index OUT_DIR`. ASSETS_DIR (default `.`) holds the top-level
//! `pre-upgrade.d/`, `post-upgrade.d/`, `health.d/`, `migrations/` and `service-order.toml` that
//! the upgrader package ships to `/usr/share/upgrade/`.
//!
//! The newest release, 2.2.0, is broken on purpose: its demo-server package ships
//! `/usr/lib/demo/server-status` with `500`, which the demo's services answer their HTTP requests
//! with (no such file, as in every other release, means 200), so the vendor health check in
//! `health.d/` fails after an upgrade to it and the host is rolled back (SPEC §13).

mod common;

use std::path::{Path, PathBuf};

use common::rpmbuild::RpmSpec;

/// One release of the demo product; its demo-server package has the release's version.
struct Release {
    version: &'static str,
    /// A required stop (it needs upgrader 1.1.0).
    stop: bool,
    /// The version of its demo-web package, if it has one.
    web: Option<&'static str>,
    /// The HTTP status its demo-server package tells the services to answer with: `None` ships no
    /// `/usr/lib/demo/server-status`, which means 200.
    status: Option<u16>,
}

const RELEASES: &[Release] = &[
    Release {
        version: "1.0.0",
        stop: false,
        web: None,
        status: None,
    },
    Release {
        version: "1.1.0",
        stop: false,
        web: None,
        status: None,
    },
    Release {
        version: "2.0.0",
        stop: true,
        web: Some("2.0.0"),
        status: None,
    },
    Release {
        version: "2.1.0",
        stop: false,
        web: Some("2.1.0"),
        status: None,
    },
    // NB: broken on purpose, so that the demo shows the health gate's automatic rollback
    Release {
        version: "2.2.0",
        stop: false,
        web: Some("2.2.0"),
        status: Some(500),
    },
];

fn main() {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(args.next().expect("usage: demo-repo OUT_DIR [ASSETS_DIR]"));
    let assets = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let packages = out.join("packages");

    // 1.0.0 is what the operator installs first; the index offers 1.1.0, which the `upgrade`
    // shim installs before anything else (its extra hook shows that the new one is in use).
    upgrader(&assets, "1.0.0").build(&packages);
    let upgrader_file = upgrader(&assets, "1.1.0")
        .file(
            "/usr/share/upgrade/pre-upgrade.d/05-upgrader-version",
            "#!/bin/sh\necho \"hooks of upgrader 1.1.0 in use\"\n",
            0o755,
        )
        .build(&packages);

    let cli = RpmSpec::new("demo-cli", "1.0.0")
        .file("/usr/bin/demo", "#!/bin/sh\necho demo 1.0.0\n", 0o755)
        .build(&packages);
    let mut toml = String::from("product = \"demo\"\n\n[upgrader]\nversion = \"1.1.0\"\n");
    toml += &format!("packages = [{:?}]\n", rel(&out, &upgrader_file));
    for Release {
        version,
        stop,
        web,
        status,
    } in RELEASES
    {
        let server = version;
        let major = &server[..1];
        let mut spec = RpmSpec::new("demo-server", server)
            .file("/usr/lib/demo/server-version", format!("{server}\n"), 0o644)
            .config_file(
                "/etc/demo/server.conf",
                format!("# demo server {major}.x settings\nlisten = 8080\nworkers = {major}\n"),
            )
            .post_lua(&format!("print(\"demo-server {server}: configured\")"));
        if let Some(status) = status {
            spec = spec.file("/usr/lib/demo/server-status", format!("{status}\n"), 0o644);
        }
        let server = spec.build(&packages);
        let mut files = vec![rel(&out, &server), rel(&out, &cli)];
        if let Some(web) = web {
            let web = RpmSpec::new("demo-web", web)
                .file(
                    "/usr/share/demo/web/index.html",
                    format!("<h1>demo {web}</h1>\n"),
                    0o644,
                )
                .build(&packages);
            files.push(rel(&out, &web));
        }
        toml += &format!("\n[[releases]]\nversion = {version:?}\n");
        if *stop {
            toml += "stop = true\nrequires_upgrader = \"1.1.0\"\n";
        }
        toml += &format!("packages = {files:?}\n");
    }
    std::fs::write(out.join("releases.toml"), toml).expect("write releases.toml");
    eprintln!("demo repository written to `{}`", out.display());
}

/// The upgrader package: the top-level assets under /usr/share/upgrade (the demo runs the
/// binaries it built; `examples/upgrader-rpm.rs` makes the whole package).
fn upgrader(assets: &Path, version: &str) -> RpmSpec {
    common::upgrader::spec("demo-upgrade", version, assets, None).expect("upgrader assets")
}

fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .expect("package under the repository")
        .display()
        .to_string()
}
