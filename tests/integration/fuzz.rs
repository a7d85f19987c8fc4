//! Bounded fuzzing on stable (issue 7): the config, index, service-order and releases parsers and
//! the plan builder, fed inputs mutated from the seed corpus in `fuzz/corpus/`. Any panic is a
//! failure; the offending input is written to `target/fuzz-failures/`. `UPGRADE_FUZZ_ITERS` sets
//! the executions per target (CI uses the default; RELIABILITY.md reports longer runs), and
//! `UPGRADE_FUZZ_SEED` replays a run.
//!
//! NB: `cargo fuzz` needs `cargo-fuzz` and a sanitizer build of every dependency; this hand-rolled
//! mutator runs the same parsers in-process in the ordinary test binary, in seconds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use upgrade::config::ServiceBackend;
use upgrade::model::catalog::Catalog;
use upgrade::model::plan::{Plan, PlanInput, PlannedHooks};
use upgrade::model::rpm::RpmDb;
use upgrade::model::services::ServiceGraph;
use upgrade::model::version::VersionScheme;

/// Tokens that make the parsers take their rarer paths.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\n",
    ",",
    "{",
    "}",
    ".",
    "-",
    "#",
    "\\",
    "\u{e9}",
    "\u{feff}",
    "\u{1F600}",
    "[[releases]]\n",
    "[[releases.packages]]\n",
    "[service.x]\n",
    "after = [\"x\"]\n",
    "version = \"",
    "stop = true\n",
    "sequence = ",
    "-1",
    "18446744073709551616",
    "0",
    "1.0.0",
    "1:2.0-1",
    "~",
    "^",
    "+",
    "nan",
    "inf",
    "true",
    "1979-05-27T07:32:00Z",
    "\"\"\"",
    "''' ",
    "packages = [",
    "requires_upgrader = \"",
    "format = 1\n",
    "product = \"demo\"\n",
    "ready = { tcp = \"",
    "timeout = \"",
    "restart = \"always\"",
    "url = \"",
    "evr = \"",
    "sha256 = \"",
    "path = \"",
];

/// xorshift64*: reproducible, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(32) + 1);
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                let chunk = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            4 | 5 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                input.splice(at..at, t.iter().copied());
            }
            _ => {
                // splice a line of another seed
                let other = &seeds[rng.below(seeds.len())];
                let lines: Vec<&[u8]> = other.split_inclusive(|b| *b == b'\n').collect();
                if let Some(line) = lines.get(rng.below(lines.len())) {
                    let at = rng.below(len + 1);
                    input.splice(at..at, line.iter().copied());
                }
            }
        }
    }
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Runs `target` on `iters` mutated inputs; returns the number of executions.
fn fuzz(name: &str, default_iters: u64, target: impl Fn(&[u8])) -> u64 {
    let iters = std::env::var("UPGRADE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iters);
    let seed = std::env::var("UPGRADE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_0000_0000_0001 ^ name.len() as u64);
    let seeds = corpus(name);
    let mut rng = Rng(seed | 1);
    // NB: the default hook prints every caught panic; failures are reported below instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    for i in 0..iters {
        let mut input = seeds[(i as usize) % seeds.len()].clone();
        if i >= seeds.len() as u64 {
            mutate(&mut rng, &seeds, &mut input);
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failure = Some((input, msg));
            break;
        }
    }
    std::panic::set_hook(hook);
    if let Some((input, msg)) = failure {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}-{seed}.toml"));
        std::fs::write(&file, &input).unwrap();
        panic!(
            "{name}: panicked ({msg}) on the input saved in {}",
            file.display()
        );
    }
    eprintln!("fuzz {name}: {iters} executions, seed {seed}, no panic");
    iters
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

#[test]
fn fuzz_config_parser() {
    fuzz("config", 20_000, |data| {
        if let Some(t) = text(data) {
            let _ = upgrade::tomlfile::parse::<upgrade::config::Config>(
                t,
                Path::new("upgrade.toml"),
                "configuration",
            );
        }
    });
}

#[test]
fn fuzz_service_order_parser() {
    fuzz("service-order", 20_000, |data| {
        if let Some(t) = text(data) {
            let _ =
                ServiceGraph::parse(t, Path::new("service-order.toml"), ServiceBackend::Systemd);
        }
    });
}

/// The index parser, and the plan builder on every index it accepts: from nothing, from each
/// release, to the newest and to each release.
#[test]
fn fuzz_index_parser_and_plan_builder() {
    let graph = ServiceGraph::parse(
        &String::from_utf8(corpus("service-order")[0].clone()).unwrap(),
        Path::new("service-order.toml"),
        ServiceBackend::Systemd,
    )
    .unwrap();
    let rpmdb = RpmDb::default();
    fuzz("index", 20_000, |data| {
        let Some(t) = text(data) else { return };
        for scheme in [VersionScheme::Semver, VersionScheme::Rpm] {
            let Ok(catalog) = Catalog::parse(t, Path::new("index.toml"), "demo", scheme) else {
                continue;
            };
            let versions: Vec<_> = catalog.releases.iter().map(|r| r.version.clone()).collect();
            let mut froms: Vec<Option<&upgrade::model::version::Version>> = vec![None];
            froms.extend(versions.iter().map(Some));
            for from in &froms {
                for to in std::iter::once(None).chain(versions.iter().map(Some)) {
                    let _ = Plan::build(PlanInput {
                        installed: *from,
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
}

#[test]
fn fuzz_releases_parser() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("releases", 3_000, |data| {
        std::fs::write(dir.path().join("releases.toml"), data).unwrap();
        let _ = upgrade::repo::publish::write_index(dir.path());
    });
}
