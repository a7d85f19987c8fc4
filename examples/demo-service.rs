//! A tiny TCP service for the demo, the tests and `bench/services`: it takes `--delay` to start
//! listening on `127.0.0.1:PORT`, answers every connection with its name and version (one line,
//! `NAME VERSION`), and exits on SIGTERM. With `--log FILE` it appends `start NAME T`,
//! `ready NAME T` and `stop NAME T` lines, T being CLOCK_MONOTONIC in seconds, so that several
//! services' logs can be ordered.
//!
//! With `--http` it speaks HTTP/1.0 instead, for the demo's health checks: it reads the request up
//! to its blank line (giving up after a 1 s read timeout, so that a client that sends nothing, such
//! as a TCP ready check, does not hold it for long) and answers with status `--status CODE`
//! (default 200) and the same line as its body, whatever the method and path.
//!
//! Usage: `demo-service --name NAME --port PORT [--delay 300ms] [--log FILE] [--version V]
//! [--http [--status CODE]]`

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
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
    let mut http = false;
    let mut status: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--name" => name = value(),
            "--port" => port = value().parse().expect("--port takes a number"),
            "--delay" => delay = humantime::parse_duration(&value()).expect("--delay: e.g. 300ms"),
            "--log" => log = Some(value()),
            "--version" => version = value(),
            "--http" => http = true,
            "--status" => {
                status = Some(
                    value()
                        .parse()
                        .ok()
                        .filter(|code| (100..=599).contains(code))
                        .expect("--status takes an HTTP status code, e.g. 500"),
                )
            }
            other => panic!("unknown argument `{other}`"),
        }
    }
    assert!(http || status.is_none(), "--status needs --http");
    let status = status.unwrap_or(200);
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
            Ok((mut stream, _)) if http => {
                answer_http(&mut stream, status, &format!("{name} {version}\n"));
            }
            Ok((mut stream, _)) => {
                let _ = writeln!(stream, "{name} {version}");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    note("stop");
}

/// Reads one HTTP request up to its blank line (or end of stream, 8 KiB, or a 1 s silence) and
/// answers it with `status` and `body`; errors are the client's business and ignored.
fn answer_http(stream: &mut TcpStream, status: u16, body: &str) {
    // NB: the listener is non-blocking; the accepted stream must block, with a bounded wait
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while request.len() < 8192 && !request.ends_with(b"\r\n\r\n") && !request.ends_with(b"\n\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.0 {status} {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
        reason(status)
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
