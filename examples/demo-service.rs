//! A tiny TCP service for the demo, the tests and `bench/services`: it takes `--delay` to start
//! listening on `127.0.0.1:PORT`, answers every connection with its name and version, and exits on
//! SIGTERM. With `--log FILE` it appends `start NAME T`, `ready NAME T` and `stop NAME T` lines,
//! T being CLOCK_MONOTONIC in seconds, so that several services' logs can be ordered.
//!
//! Usage: `demo-service --name NAME --port PORT [--delay 300ms] [--log FILE] [--version V]`

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut name = "demo".to_string();
    let mut port: u16 = 8080;
    let mut delay = Duration::ZERO;
    let mut log: Option<String> = None;
    let mut version = String::from("?");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--name" => name = value(),
            "--port" => port = value().parse().expect("--port takes a number"),
            "--delay" => delay = humantime::parse_duration(&value()).expect("--delay: e.g. 300ms"),
            "--log" => log = Some(value()),
            "--version" => version = value(),
            other => panic!("unknown argument `{other}`"),
        }
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let note = |what: &str| {
        let line = format!("{what} {name} {:.6}\n", monotonic());
        eprint!("{line}");
        if let Some(path) = &log {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open log `{path}`: {e}"));
            f.write_all(line.as_bytes()).expect("write log");
        }
    };
    note("start");
    let begun = Instant::now();
    while begun.elapsed() < delay {
        if TERM.load(Ordering::SeqCst) {
            note("stop");
            return;
        }
        std::thread::sleep(Duration::from_millis(5).min(delay.saturating_sub(begun.elapsed())));
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    listener.set_nonblocking(true).expect("nonblocking");
    note("ready");
    while !TERM.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = writeln!(stream, "{name} {version}");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    note("stop");
}
