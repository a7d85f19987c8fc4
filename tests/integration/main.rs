//! Integration tests: the real `real-upgrade` and `upgrade` binaries, real rpm, sandbox roots.

mod support;

mod docs;
mod hooks;
mod input;
mod migrations;
mod preflight;
mod run;
mod services;
mod trust;
