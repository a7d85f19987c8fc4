//! `index.toml` → `Catalog`, then `Plan::build` on every accepted index: from nothing and from
//! each release, to the newest and to each release, on both version schemes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use upgrade::model::plan::{Plan, PlanInput, PlannedHooks};
use upgrade::model::catalog::Catalog;
use upgrade::model::rpm::RpmDb;
use upgrade::model::services::ServiceGraph;
use upgrade::model::version::VersionScheme;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let graph = ServiceGraph::default();
    let rpmdb = RpmDb::default();
    for scheme in [VersionScheme::Semver, VersionScheme::Rpm] {
        let Ok(catalog) = Catalog::parse(text, Path::new("index.toml"), "demo", scheme) else {
            continue;
        };
        let versions: Vec<_> = catalog.releases.iter().map(|r| r.version.clone()).collect();
        let froms = std::iter::once(None).chain(versions.iter().map(Some));
        for from in froms {
            for to in std::iter::once(None).chain(versions.iter().map(Some)) {
                let _ = Plan::build(PlanInput {
                    installed: from,
                    target: to,
                    catalog: &catalog,
                    rpmdb: &rpmdb,
                    hooks: PlannedHooks::default(),
                    migrations: &[],
                    services: &graph,
                    upgrader_package: "demo-upgrade",
                });
            }
        }
    }
});
