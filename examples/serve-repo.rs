//! Serves a repository directory over HTTP on 127.0.0.1, for the demo and the benchmarks.
//!
//! Usage: `cargo run --example serve-repo -- DIR [PORT]`; prints the base URL on stdout, then
//! serves until killed. PORT 0 (the default) picks a free one.

#[path = "common/httpserve.rs"]
mod httpserve;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: serve-repo DIR [PORT]"));
    let port = args
        .next()
        .map(|p| p.to_string_lossy().parse().expect("PORT is a number"))
        .unwrap_or(0);
    if let Err(e) = httpserve::serve_forever(&dir, port) {
        eprintln!("error: cannot serve `{}`: {e}", dir.display());
        std::process::exit(1);
    }
}
