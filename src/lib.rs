//! `upgrade` takes a vendor's product from any installed release — or from nothing — to a newer
//! one, safely, in one command. See `SPEC.md` for the design and `ARCHITECTURE.md` for how data
//! flows; this is the map of the code.
//!
//! Imports flow one way, from the top of this map to the bottom, never back; a module may use
//! its own layer's modules as long as no two reach each other (`tests/integration/layers.rs`
//! keeps both rules, from the same table).
//!
//! ```text
//! cli        clap definitions, prompts, human and JSON rendering of ops' results — nothing else
//! ops        one module per command (upgrade, rollback, uninstall, health, commit, plan, check,
//!            status, history, hooks, migrations, adopt, services, repo, self_update; `run`: what
//!            the commands that execute a plan share), each returning a typed, serialisable result
//! exec       runs a Plan step by step under the lock and the journal; restores services
//! planner    installed state + index + host → Plan
//! steps      hooks, packages, migrations, services, restore (points), purge (an uninstall's
//!            data): each kind of step and its rules
//! check      preflight evaluation (SPEC §9)
//! ui         the Ui trait and the Events the library reports through (it never prints)
//! host repo state process
//!            reading the host (rpm database, os-release); the repository, its trust and
//!            downloads; state.db (installed version, runs, journal); running a child process
//! config     upgrade.toml → Config
//! model      plain values parsed once: versions, EVRs, sizes, ranges, checks and their report,
//!            the catalog, the rpm database's contents, migrations, the service graph, the plan
//! fault fsutil tomlfile log context interrupt
//!            fault points for tests, atomic writes, TOML with located errors, the log file,
//!            the process state (root, config path, terminal), SIGINT/SIGTERM/SIGHUP noted
//! error      the named failures, their hints and exit codes
//! ```
//!
//! Data flows one way: `config + state + index + host → Plan → exec (journal) → steps → result`.

pub mod check;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod exec;
pub mod fault;
pub mod fsutil;
pub mod host;
pub mod interrupt;
pub mod log;
pub mod model;
pub mod ops;
pub mod planner;
pub mod process;
pub mod repo;
pub mod state;
pub mod steps;
pub mod tomlfile;
pub mod ui;
