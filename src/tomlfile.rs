//! Reading a TOML file into a typed value, with errors that name the file, line, column and key.

use std::path::Path;

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::UpgradeError;

/// Reads and parses `path`; every failure is an [`UpgradeError::Input`] (exit 2).
pub fn read<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, UpgradeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UpgradeError::input(format!("failed to read {what} `{}`: {e}", path.display()))
    })?;
    parse(&text, path, what)
}

/// Parses `text`, which was read from `path`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path, what: &str) -> Result<T, UpgradeError> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => location(text, path, span.start),
            None => path.display().to_string(),
        };
        UpgradeError::input(format!(
            "invalid {what} `{location}`: {}",
            e.message().trim_end()
        ))
    })
}

/// `path:line:column` of byte `offset` in `text`, which was read from `path`.
pub fn location(text: &str, path: &Path, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}", path.display())
}

/// The longest duration a configuration may give (a timeout, a wait): a week.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration written `"90s"`, `"10m"` (humantime), at most [`MAX_DURATION`]. NB: a huge one
/// would overflow a deadline (`Instant + d` panics) or wait for ever.
pub fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let d = humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}` ({e}); write e.g. \"90s\" or \"10m\""
        ))
    })?;
    if d > MAX_DURATION {
        return Err(serde::de::Error::custom(format!(
            "duration `{text}` is longer than the longest allowed, 7 days"
        )));
    }
    Ok(d)
}
