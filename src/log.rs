//! The run log, `/var/log/upgrade/upgrade.log` under the root, written through `tracing`.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

/// Sends `tracing` events to the log file (appending).
pub fn init(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}
