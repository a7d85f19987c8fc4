//! Integration tests: the real `real-upgrade` and `upgrade` binaries, real rpm, sandbox roots.

mod support;

mod badinput;
#[cfg(feature = "fault-injection")]
mod crash;
mod demo;
mod docs;
mod fuzz;
mod hooks;
mod input;
mod migrations;
mod preflight;
mod run;
mod services;
mod trust;
