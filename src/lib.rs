//! `upgrade` takes a vendor's product from any installed release — or from nothing — to a newer
//! one, safely, in one command. See `SPEC.md` for the design; this is the map of the code.
//!
//! Data flows one way: `config + state + index → Plan → Run (journal) → steps → outcome`.
//!
//! - [`cli`]: clap definitions, prompts, rendering; the binaries call [`cli::real_upgrade`] and
//!   [`selfupdate::exec_real_upgrade`] and nothing else.
//! - [`context`]: the process state (root, config path, terminal) every operation reads.
//! - [`config`]: `upgrade.toml` → [`config::Config`].
//! - [`repo`]: local and HTTP(S) repositories, the signed index and its trust checks, parallel
//!   verified downloads, and the vendor's `repo index` / `keygen` / `sign`.
//! - [`version`]: product versions (semver or rpm order) and rpm EVR comparison.
//! - [`plan`]: installed state + index → [`plan::Plan`] (pure).
//! - [`run`]: executes a plan under the lock and the journal, resuming an open run; also
//!   `services restart`.
//! - [`steps`]: one module per kind of step (hooks, packages, migrations, services), and the
//!   preflight checks that run before any of them.
//! - [`state`]: `state.db`: installed version, journal, history.
//! - [`selfupdate`]: the `upgrade` shim: refresh the upgrader, re-exec once, exec `real-upgrade`.
//! - [`fault`]: named fault points where tests kill the process (feature `fault-injection`).
//! - [`error`]: the failures code matches on, and their exit codes.

pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod log;
pub mod plan;
pub mod process;
pub mod repo;
pub mod run;
pub mod selfupdate;
pub mod state;
pub mod steps;
pub mod tomlfile;
pub mod version;
