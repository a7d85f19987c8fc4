//! The run log, `/var/log/upgrade/upgrade.log` under the root, written through `tracing`; and,
//! when this machine's journald listens, the journal too, with every field of an event and of
//! the spans around it as a structured field: `UPGRADE_RUN`, `UPGRADE_STEP`, `UPGRADE_HOP`,
//! `UPGRADE_HOOK`… (`journalctl UPGRADE_RUN=12`), the text as `MESSAGE`.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// journald's native socket, this machine's (not the root's: a run under `--root` logs to the
/// journal of the machine it runs on).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The prefix of the journal fields of events and spans (`run` → `UPGRADE_RUN`).
const FIELD_PREFIX: &str = "UPGRADE";

/// Sends `tracing` events (info and above) to the log file (appending) and to the journal when
/// there is one. A log file that cannot be opened is an error for the caller to report; the
/// journal is then still written.
pub fn init(path: &Path) -> std::io::Result<()> {
    let (file, failed) = match open(path) {
        Ok(file) => (Some(file), None),
        Err(e) => (None, Some(e)),
    };
    let fmt = file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(Mutex::new(file))
            .with_ansi(false)
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(fmt)
        .with(journal())
        .try_init();
    failed.map_or(Ok(()), Err)
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // NB: never through a symlink: under `--root`, a link could point at any file of the host
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The journal layer when journald listens; silently none otherwise (a container or a host
/// without systemd): the log file has everything.
fn journal() -> Option<tracing_journald::Layer> {
    if !Path::new(JOURNAL_SOCKET).exists() {
        return None;
    }
    // NB: SYSLOG_IDENTIFIER is the program's name (`real-upgrade`), the crate's default
    tracing_journald::layer()
        .ok()
        .map(|layer| layer.with_field_prefix(Some(FIELD_PREFIX.into())))
}
