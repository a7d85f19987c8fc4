//! The journal (journald's native protocol): a run's events carry `UPGRADE_RUN`,
//! `UPGRADE_STEP`, `UPGRADE_HOP` and `UPGRADE_HOOK` with their `MESSAGE`, when journald listens
//! on `/run/systemd/journal/socket`; without it (this machine) the journal is silently absent,
//! which every other test runs with.
//!
//! NB: the socket's path is fixed (it is journald's), so the test gives the run a mount namespace
//! of its own (`unshare --mount`, as root) in which a tmpfs on `/run` holds, at that path, a
//! datagram socket the test bound: the real code path, no override. The real journal of a
//! systemd host is the container test hosts' business.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::*;

/// The fields of one datagram of the native protocol: `NAME=value\n`, or `NAME\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn fields(mut data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let end = data.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
        let name = String::from_utf8_lossy(&data[..end]).into_owned();
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let nl = rest.iter().position(|&b| b == b'\n').unwrap();
            out.push((name, String::from_utf8_lossy(&rest[..nl]).into_owned()));
            data = &rest[nl + 1..];
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            out.push((
                name,
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            ));
            assert_eq!(
                rest[8 + len],
                b'\n',
                "a length-encoded value ends with a newline"
            );
            data = &rest[8 + len + 1..];
        }
    }
    out
}

/// Runs `real-upgrade ARGS…` on `sb` with a journald at `dir/socket`; returns its outcome and
/// the entries it sent.
fn run_with_journal(sb: &Sandbox, args: &[&str]) -> (Run, Vec<Vec<(String, String)>>) {
    let dir = sb.base.join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = UnixDatagram::bind(dir.join("socket")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    // NB: read while the run writes: a full queue would block its sends
    let reader = std::thread::spawn(move || {
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match socket.recv(&mut buf) {
                Ok(0) => {} // the layer's probe: an empty datagram
                Ok(n) => entries.push(fields(&buf[..n])),
                Err(_) if done.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        entries
    });
    let script = format!(
        "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && \
         mount --bind '{}' /run/systemd/journal && exec \"$@\"",
        dir.display()
    );
    let real = sb.cmd(args);
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script, "sh"])
        .arg(real.get_program())
        .args(real.get_args())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare (util-linux) runs");
    std::thread::sleep(Duration::from_millis(200));
    finished.store(true, Ordering::SeqCst);
    let entries = reader.join().unwrap();
    (Run::from(out), entries)
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_run_sends_its_events_to_the_journal_with_their_fields() {
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    sb.hook("pre", false, "10-hello", "echo hello from the hook");
    let (run, entries) = run_with_journal(&sb, &["--yes"]);
    assert_eq!(
        run.code, 0,
        "the run under unshare failed (it needs root): {}",
        run.stderr
    );
    assert_eq!(sb.installed().as_deref(), Some("1.0.0"));
    let find = |message: &str, step: Option<&str>| {
        entries
            .iter()
            .find(|e| {
                field(e, "MESSAGE") == Some(message)
                    && step.is_none_or(|s| field(e, "UPGRADE_STEP") == Some(s))
            })
            .unwrap_or_else(|| panic!("no entry `{message}` ({step:?}) in {entries:#?}"))
    };
    let started = find("step started", Some("hop0:pre-hooks"));
    assert_eq!(field(started, "UPGRADE_RUN"), Some("1"));
    assert_eq!(field(started, "UPGRADE_HOP"), Some("nothing->1.0.0"));
    assert_eq!(field(started, "SYSLOG_IDENTIFIER"), Some("real-upgrade"));
    assert!(field(started, "PRIORITY").is_some());
    let line = find("hello from the hook", None);
    assert_eq!(field(line, "UPGRADE_HOOK"), Some("10-hello"));
    assert_eq!(field(line, "UPGRADE_RUN"), Some("1"));
    assert_eq!(field(line, "UPGRADE_STEP"), Some("hop0:pre-hooks"));
    let download = find("step started", Some("download"));
    assert_eq!(
        field(download, "UPGRADE_HOP"),
        None,
        "the download is no hop's"
    );
    let succeeded = find("run succeeded", None);
    assert_eq!(field(succeeded, "UPGRADE_RUN"), Some("1"));
    assert_eq!(field(succeeded, "UPGRADE_TO"), Some("1.0.0"));
    // each field once: events inside the run's span do not repeat its id
    for entry in &entries {
        let runs = entry.iter().filter(|(n, _)| n == "UPGRADE_RUN").count();
        assert!(runs <= 1, "UPGRADE_RUN {runs} times in {entry:?}");
    }
    // and the log file has them all the same
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    assert!(
        log.contains("hook{hook=10-hello}: hello from the hook"),
        "{log}"
    );
}

#[test]
fn without_journald_the_journal_is_silently_absent() {
    // NB: this machine has no journald; a host that has one is the case above
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        return;
    }
    let sb = Sandbox::new();
    sb.publish(vec![rel("1.0.0", vec![pkg("demo-server", "1.0.0")])]);
    let run = sb.run(&["--yes"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("journal"), "{}", run.stderr);
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    assert!(log.contains("run succeeded"), "{log}");
}
