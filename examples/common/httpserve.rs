//! A small static-file HTTP/1.1 server on 127.0.0.1 for the demo, the benchmarks and the tests:
//! GET with `Range: bytes=N-`, one thread per connection, `Connection: close`, and fault
//! injection for the tests (fail with a status N times, cut or stall a response half-way, serve
//! other bytes than the file) plus a log of every request and its Range offset.
//!
//! Only std: the tests need control over the socket that a full server library would hide
//! (a response cut half-way is a `Content-Length` promise broken by closing the connection).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    /// The path without the leading slash, e.g. `packages/a.rpm`.
    pub path: String,
    /// The offset of a `Range: bytes=N-` header.
    pub range: Option<u64>,
}

/// What the server does wrong, on purpose.
#[derive(Debug, Default)]
pub struct Faults {
    /// (path, remaining, status): answer `status` while `remaining` > 0.
    pub fail: Vec<(String, usize, u16)>,
    /// (path, remaining): send half the body, then close, while `remaining` > 0.
    pub cut: Vec<(String, usize)>,
    /// Serve these bytes instead of the file.
    pub replace: HashMap<String, Vec<u8>>,
    /// (path, remaining): send half the body, then nothing more for 20 s (a stalled link),
    /// while `remaining` > 0.
    pub stall: Vec<(String, usize)>,
}

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub faults: Arc<Mutex<Faults>>,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Serves `dir` on 127.0.0.1 at `port` (0: a free one).
    pub fn start(dir: &Path, port: u16) -> std::io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let dir = dir.to_path_buf();
        let thread = {
            let (stop, faults, log) = (stop.clone(), faults.clone(), log.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (dir, faults, log) = (dir.clone(), faults.clone(), log.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, &dir, &faults, &log);
                    });
                }
            })
        };
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
            faults,
            log,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    dir: &Path,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = value
                .trim()
                .strip_prefix("bytes=")
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    let path = target.trim_start_matches('/').to_string();
    log.lock().unwrap().push(Request {
        path: path.clone(),
        range,
    });
    let mut out = stream;
    let (status, cut, stall, replaced) = {
        let mut f = faults.lock().unwrap();
        let mut status = None;
        for (p, remaining, code) in f.fail.iter_mut() {
            if *p == path && *remaining > 0 {
                *remaining -= 1;
                status = Some(*code);
            }
        }
        let mut cut = false;
        for (p, remaining) in f.cut.iter_mut() {
            if *p == path && *remaining > 0 {
                *remaining -= 1;
                cut = true;
            }
        }
        let mut stall = false;
        for (p, remaining) in f.stall.iter_mut() {
            if *p == path && *remaining > 0 {
                *remaining -= 1;
                stall = true;
            }
        }
        (status, cut || stall, stall, f.replace.get(&path).cloned())
    };
    if let Some(code) = status {
        return write!(
            out,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    if path.split('/').any(|c| c == "..") {
        return write!(
            out,
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let (len, mut body): (u64, Box<dyn Read>) = match replaced {
        Some(bytes) => (bytes.len() as u64, Box::new(std::io::Cursor::new(bytes))),
        None => match std::fs::File::open(dir.join(&path)) {
            Ok(file) if file.metadata()?.is_file() => (file.metadata()?.len(), Box::new(file)),
            _ => {
                return write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        },
    };
    let from = range.unwrap_or(0);
    if range.is_some() && from >= len {
        return write!(
            out,
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let count = len - from;
    if range.is_some() {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{len}\r\nContent-Length: {count}\r\nConnection: close\r\n\r\n",
            len - 1
        )?;
        std::io::copy(&mut (&mut body).take(from), &mut std::io::sink())?;
    } else {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {count}\r\nConnection: close\r\n\r\n"
        )?;
    }
    let send = if cut { count / 2 } else { count };
    std::io::copy(&mut body.take(send), &mut out)?;
    out.flush()?;
    if stall {
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
    if cut {
        let _ = out.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}

/// Serves `dir` until the process is killed; prints the URL on stdout.
pub fn serve_forever(dir: &Path, port: u16) -> std::io::Result<()> {
    let server = Server::start(dir, port)?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
