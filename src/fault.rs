//! Fault points: named places where a test can stop the process dead, as a `kill -9` or a power
//! cut would, to prove that every interruption resumes to the same end state (issue 7).
//!
//! Built only with the `fault-injection` cargo feature (tests turn it on through the crate's
//! dev-dependency on itself; `cargo build` and release builds never have it): without it,
//! [`point!`] expands to nothing. With it, the environment decides:
//!
//! - `UPGRADE_FAULT=NAME` kills the process with SIGKILL at the first hit of the point `NAME`;
//!   `UPGRADE_FAULT=NAME@N` at its `N`th hit.
//! - `UPGRADE_FAULT_TRACE=FILE` appends the name of every point hit to `FILE`, so a test learns
//!   the points of a clean run and can then kill a run at each of them.
//!
//! Point names: `step:KEY` before a journal step starts, `mark:KEY` after its effect and before
//! the journal records it, `marked:KEY` just after, `rpm:before` / `rpm:after` around the rpm
//! transaction, `rpm-erase:before` / `rpm-erase:after` around the erase of the packages a hop
//! removes, `migration:LABEL` between two migrations, `service:Stop:NAME` /
//! `service:Start:NAME` after each service, `download:PATH` mid-copy of an artifact,
//! `restore:mariadb:emptied` between emptying a MariaDB database and loading its snapshot,
//! `restore:file:PATH` after each configuration file put back, `restore-point:packages`,
//! `restore-point:database` and `restore-point:taken` while a run takes its restore point,
//! `restore-data:files` and `restore-data:database` while a rollback puts one back.

/// Hits the fault point named by the `format!` arguments; nothing without `fault-injection`.
macro_rules! point {
    ($($arg:tt)*) => {{
        #[cfg(feature = "fault-injection")]
        $crate::fault::hit(&format!($($arg)*));
        #[cfg(not(feature = "fault-injection"))]
        if false {
            let _ = format_args!($($arg)*);
        }
    }};
}
pub(crate) use point;

/// Records `name` in the trace and dies there when the environment asks for it.
#[cfg(feature = "fault-injection")]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::Mutex;

    static HITS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    if let Some(trace) = std::env::var_os("UPGRADE_FAULT_TRACE")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
    {
        // NB: one write per line: download threads hit points at once (O_APPEND keeps it whole)
        let _ = file.write_all(format!("{name}\n").as_bytes());
    }
    let Ok(wanted) = std::env::var("UPGRADE_FAULT") else {
        return;
    };
    let (wanted, nth) = match wanted.rsplit_once('@') {
        Some((n, count)) => (n.to_string(), count.parse().unwrap_or(1)),
        None => (wanted, 1),
    };
    if wanted != name {
        return;
    }
    let mut hits = HITS.lock().unwrap_or_else(|e| e.into_inner());
    let count = hits
        .get_or_insert_with(HashMap::new)
        .entry(wanted)
        .or_insert(0);
    *count += 1;
    if *count == nth {
        // NB: SIGKILL, not abort(): no handler, no unwinding, no flush — a `kill -9`.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::abort();
    }
}
