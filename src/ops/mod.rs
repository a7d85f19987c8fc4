//! One module per command, like cargo's `ops`: each takes its options and returns a typed,
//! serialisable result for [`crate::cli`] to render as text or JSON.

pub mod abandon;
pub mod adopt;
pub mod check;
pub mod commit;
pub mod health;
pub mod history;
pub mod hooks;
pub mod migrations;
pub mod plan;
pub mod repo;
pub mod rollback;
pub mod run;
pub mod self_update;
pub mod services;
pub mod status;
pub mod uninstall;
pub mod upgrade;

/// The lock and the existing state database of a run that changes the host; for a dry run, no
/// lock and the state database opened to read only.
fn lock_and_state(
    paths: &crate::context::Paths,
    dry_run: bool,
) -> anyhow::Result<(
    Option<crate::exec::lock::RunLock>,
    Option<crate::state::State>,
)> {
    use crate::state::State;
    Ok(match dry_run {
        true => (None, State::open_existing_read(&paths.state_db)?),
        false => (
            Some(crate::exec::lock::RunLock::acquire(&paths.lock)?),
            State::open_existing(&paths.state_db)?,
        ),
    })
}
