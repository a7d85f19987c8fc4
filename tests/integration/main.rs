//! Integration tests: the real `real-upgrade` and `upgrade` binaries, real rpm, sandbox roots.

mod support;

mod ansible;
mod badinput;
mod contract;
#[cfg(feature = "fault-injection")]
mod crash;
mod demo;
mod docs;
mod dropped;
mod fuzz;
mod health;
mod hooks;
mod input;
mod interrupts;
mod layers;
mod migration_rules;
mod migrations;
mod openruns;
mod preflight;
mod restore;
mod rollback;
mod run;
mod services;
mod snapshots;
mod trust;
mod uninstall;
