//! Integration tests: the real `real-upgrade` and `upgrade` binaries, real rpm, sandbox roots.

mod lab;
mod support;

mod ansible;
mod badinput;
mod contract;
#[cfg(feature = "fault-injection")]
mod crash;
mod demo;
mod docs;
mod dropped;
mod fleet;
mod fleet_hosts;
mod fuzz;
mod health;
mod hooks;
mod hosts;
mod input;
mod interrupts;
mod journal;
mod layers;
mod migration_rules;
mod migrations;
mod openruns;
mod package;
mod preflight;
mod reboot;
mod restore;
mod rollback;
mod run;
mod services;
mod snapshots;
mod trust;
mod uninstall;
