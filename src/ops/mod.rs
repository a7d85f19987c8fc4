//! One module per command, like cargo's `ops`: each takes its options and returns a typed,
//! serialisable result for [`crate::cli`] to render as text or JSON.

pub mod abandon;
pub mod adopt;
pub mod check;
pub mod history;
pub mod hooks;
pub mod migrations;
pub mod plan;
pub mod repo;
pub mod self_update;
pub mod services;
pub mod status;
pub mod upgrade;
