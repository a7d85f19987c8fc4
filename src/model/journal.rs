//! The journal's values: the status of a run and the keys of the steps it has done. Both are
//! stored in `state.db` as text, through the conversions in [`crate::state`]; a key or status
//! written by this tool is read back by every later version of it, so their spelling is stable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a run stands. `Running`, `Failed`, `Reboot` and `Unhealthy` are open: the next invocation resumes
/// the run; the others are closed. New states (such as a run whose health checks failed) are new
/// variants here, and [`RunStatus::is_open`] says whether they block a new run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Being executed, or the process died executing it (no invocation closed it).
    Running,
    /// A step failed; the run resumes at that step.
    Failed,
    /// A hook asked for a reboot; the run resumes at the next hook after it.
    Reboot,
    Succeeded,
    /// An installation that predates this tool, recorded by `adopt`.
    Adopted,
    /// Closed by `abandon` (or replanned with another `--to`) before it changed anything.
    Abandoned,
    /// Its required health checks failed or could not tell, and the release stays running:
    /// open until a person runs `rollback` or `commit` (or `upgrade` checks again).
    Unhealthy,
    /// Taken back to its restore point by a `rollback` run (whatever it was before).
    #[serde(rename = "rolled-back")]
    RolledBack,
}

impl RunStatus {
    pub const OPEN: [RunStatus; 4] = [
        RunStatus::Running,
        RunStatus::Failed,
        RunStatus::Reboot,
        RunStatus::Unhealthy,
    ];

    pub fn is_open(self) -> bool {
        RunStatus::OPEN.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Failed => "failed",
            RunStatus::Reboot => "reboot",
            RunStatus::Unhealthy => "unhealthy",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Adopted => "adopted",
            RunStatus::Abandoned => "abandoned",
            RunStatus::RolledBack => "rolled-back",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [
            RunStatus::Succeeded,
            RunStatus::Adopted,
            RunStatus::Abandoned,
            RunStatus::RolledBack,
        ]
        .into_iter()
        .chain(RunStatus::OPEN)
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the journal records as done: a step (`hop0:packages`), a hook of a phase
/// (`hop0:pre:10-backup`), or that a step began (`hop0:packages:begun`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalKey(String);

impl JournalKey {
    /// The key of a journal entry read back from `state.db`.
    pub fn stored(text: String) -> JournalKey {
        JournalKey(text)
    }

    pub(crate) fn new(text: String) -> JournalKey {
        JournalKey(text)
    }

    /// Hook `name` of hop `hop`'s `phase` (`pre`, `post`).
    pub fn hook(hop: usize, phase: &str, name: &str) -> JournalKey {
        JournalKey(format!("hop{hop}:{phase}:{name}"))
    }

    /// Marks that this step began: its effect may be partly there.
    pub fn begun(&self) -> JournalKey {
        JournalKey(format!("{}:begun", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JournalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for s in [
            RunStatus::Succeeded,
            RunStatus::Adopted,
            RunStatus::Abandoned,
        ]
        .into_iter()
        .chain(RunStatus::OPEN)
        {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(RunStatus::parse("bogus"), None);
        assert!(RunStatus::Reboot.is_open() && !RunStatus::Succeeded.is_open());
    }

    #[test]
    fn keys_keep_their_spelling() {
        // NB: open runs journaled by earlier versions are resumed by these exact strings.
        assert_eq!(JournalKey::hook(1, "pre", "10-a").as_str(), "hop1:pre:10-a");
        assert_eq!(
            JournalKey::new("hop0:packages".into()).begun().as_str(),
            "hop0:packages:begun"
        );
    }
}
