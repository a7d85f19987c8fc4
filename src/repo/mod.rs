//! The repository (SPEC §4): where it is, its signed index, and getting verified artifacts out of
//! it, from a directory (a plain path or `file://`) or over HTTP(S).
//!
//! - the `index.toml` format and its typed [`crate::model::catalog::Catalog`] are the model's.
//! - [`trust`] decides whether an index may be used at all: signature, expiry, rollback; and
//!   `repo keygen` / `repo sign` on the vendor side.
//! - [`fetch`] gets artifacts into the cache in parallel, resuming cut downloads, stopping at the
//!   declared size and checking sha256.
//! - [`publish`] is the vendor side: `real-upgrade repo index DIR`.
//!
//! Failures and their exit codes (SPEC §10, §11), one rule: what the repository *serves* and we
//! refuse to trust is bad input (exit 2), what keeps us from *reaching* it is a failed step
//! (exit 1), and so is an artifact that fails verification during the download step (the run is
//! open by then and resumes after the repository is fixed):
//!
//! | failure | exit |
//! |---|---|
//! | `http://` without `allow_insecure`, unsupported scheme, remote repository without `public_key` | 2 |
//! | missing or bad signature, wrong key, expired index, older `sequence` (rollback), malformed index | 2 |
//! | unreachable host, timeouts, HTTP errors (named with URL and status) after the retries | 1 |
//! | artifact longer than declared, shorter, or with another sha256 | 1 |
//!
//! Transient failures (connect errors, timeouts, cut connections, HTTP 5xx, 408, 429) are retried
//! [`RETRIES`] times with exponential backoff from [`BACKOFF`]; other HTTP statuses fail at once.

pub mod fetch;
pub mod publish;
pub mod trust;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::UpgradeError;

/// How many times a transient failure is retried (so `RETRIES + 1` attempts in all).
pub const RETRIES: u32 = 4;
/// The first retry waits this long; each next one twice as long (0.1 s … 0.8 s).
pub const BACKOFF: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Each request may take this long, plus one second per [`SLOW_LINK`] bytes it asks for.
/// NB: the blocking client has no read timeout, only a whole-request one; an attempt that runs
/// out of time on a slow link is retried with a Range request from where it stopped, so the
/// bound costs a reconnection, never the bytes already fetched.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SLOW_LINK: u64 = 256 * 1024;

/// A repository reachable from this host.
#[derive(Debug, Clone)]
pub struct Repository {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Local(PathBuf),
    Remote {
        /// The base URL, without a trailing slash.
        base: String,
        client: reqwest::blocking::Client,
    },
}

/// One attempt's failure: retried when transient.
pub(crate) enum Attempt {
    Transient(String),
    Fatal(anyhow::Error),
}

impl Repository {
    /// Resolves a configured `[repository] url`: a plain path, `file://`, `https://`, or
    /// `http://` when `allow_insecure` is set.
    pub fn open(url: &str, allow_insecure: bool) -> Result<Repository, UpgradeError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Repository {
                source: Source::Local(PathBuf::from(path)),
            });
        }
        let insecure = url.starts_with("http://");
        if insecure && !allow_insecure {
            return Err(UpgradeError::input_hint(
                format!("repository `{url}`: plain HTTP is refused"),
                "use an `https://` URL, or set `allow_insecure = true` under `[repository]` \
                 (the index signature still protects what is installed)",
            ));
        }
        if insecure || url.starts_with("https://") {
            let client = reqwest::blocking::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("upgrade/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    UpgradeError::step(
                        format!("failed to set up an HTTP client for `{url}`: {e}"),
                        "check the system's TLS configuration",
                    )
                })?;
            return Ok(Repository {
                source: Source::Remote {
                    base: url.trim_end_matches('/').to_string(),
                    client,
                },
            });
        }
        if url.contains("://") {
            return Err(UpgradeError::input(format!(
                "repository `{url}`: unsupported URL scheme (use https://, http://, file:// or a path)"
            )));
        }
        Ok(Repository {
            source: Source::Local(PathBuf::from(url)),
        })
    }

    /// The repository of a configuration, with `[repository] allow_insecure` applied.
    pub fn configured(
        config: &crate::config::Config,
        config_path: &Path,
    ) -> Result<Repository, UpgradeError> {
        let mut repo = Repository::open(
            config.repository_url(config_path)?,
            config.repository.allow_insecure,
        )?;
        // NB: a relative path is relative to the configuration file, not to the directory the
        // command happens to run in (cron's is `/`, a shell's anything).
        if let Source::Local(path) = &mut repo.source
            && path.is_relative()
            && let Some(dir) = config_path.parent()
        {
            *path = dir.join(&*path);
        }
        Ok(repo)
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote { .. })
    }

    /// The path or URL of a file of the repository, for messages.
    pub fn location(&self, relative: &str) -> String {
        match &self.source {
            Source::Local(base) => base.join(relative).display().to_string(),
            Source::Remote { base, .. } => format!("{base}/{relative}"),
        }
    }

    /// The file's path when the repository is a directory.
    pub fn local_path(&self, relative: &str) -> Option<PathBuf> {
        match &self.source {
            Source::Local(base) => Some(base.join(relative)),
            Source::Remote { .. } => None,
        }
    }

    /// Reads a small file of the repository (the index, its signature) whole, refusing one
    /// longer than `limit` bytes. `Ok(None)`: the file does not exist (404 or no such file).
    pub fn read(&self, relative: &str, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let location = self.location(relative);
        let too_long = || {
            UpgradeError::input(format!(
                "`{location}` is longer than {limit} bytes; refusing to read more"
            ))
        };
        match &self.source {
            Source::Local(base) => {
                let path = base.join(relative);
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => {
                        return Err(UpgradeError::input_hint(
                            format!("failed to read `{location}`: {e}"),
                            "check `[repository] url` in the configuration",
                        )
                        .into());
                    }
                };
                // NB: sized from the file's length, so a big index is read into one allocation;
                // a growing Vec held up to three times the file at once while it doubled.
                let len = file.metadata().map_or(0, |m| m.len()).min(limit);
                let mut bytes = Vec::with_capacity(len as usize + 1);
                file.take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("failed to read `{location}`: {e}"))?;
                if bytes.len() as u64 > limit {
                    return Err(too_long().into());
                }
                Ok(Some(bytes))
            }
            Source::Remote { .. } => self.with_retries(&location, |_| {
                let response = self.get(relative, 0, limit)?;
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let mut bytes = Vec::new();
                response
                    .take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Attempt::Transient(format!("reading the body failed: {e}")))?;
                if bytes.len() as u64 > limit {
                    return Err(Attempt::Fatal(too_long().into()));
                }
                Ok(Some(bytes))
            }),
        }
    }

    /// One GET of a remote file, from byte `from` on (a Range request when `from > 0`), of at
    /// most `expected` bytes (it sets the time allowed). Success, 404 and 416 are returned;
    /// transient statuses and errors are [`Attempt::Transient`].
    pub(crate) fn get(
        &self,
        relative: &str,
        from: u64,
        expected: u64,
    ) -> Result<reqwest::blocking::Response, Attempt> {
        let Source::Remote { base, client } = &self.source else {
            unreachable!("get() is only called on remote repositories");
        };
        let url = format!("{base}/{relative}");
        let allowed =
            REQUEST_TIMEOUT + Duration::from_secs(expected.saturating_sub(from) / SLOW_LINK);
        let mut request = client.get(&url).timeout(allowed);
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let response = request.send().map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            Attempt::Transient(text)
        })?;
        let status = response.status();
        if status.is_success()
            || status == reqwest::StatusCode::NOT_FOUND
            || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Ok(response);
        }
        let text = format!("HTTP {status}");
        if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            return Err(Attempt::Transient(text));
        }
        Err(Attempt::Fatal(
            UpgradeError::step(
                format!("`{url}` answered {text}"),
                "check `[repository] url` in the configuration and that the repository is complete",
            )
            .into(),
        ))
    }

    /// Runs `attempt` until it succeeds, fails fatally, or transient failures exhaust
    /// [`RETRIES`]; the final error names `what` (a URL) and the last failure.
    pub(crate) fn with_retries<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut(u32) -> Result<T, Attempt>,
    ) -> anyhow::Result<T> {
        let mut n = 0;
        loop {
            crate::interrupt::check()?;
            match attempt(n) {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(reason)) if n >= RETRIES => {
                    return Err(UpgradeError::step(
                        format!(
                            "failed to fetch `{what}` ({} attempts): {reason}",
                            RETRIES + 1
                        ),
                        "check the network and `[repository] url` in the configuration, \
                         then run `upgrade` again",
                    )
                    .into());
                }
                Err(Attempt::Transient(reason)) => {
                    let wait = BACKOFF * 2u32.pow(n);
                    tracing::warn!(
                        url = what,
                        attempt = n + 1,
                        "{reason}; retrying in {wait:?}"
                    );
                    std::thread::sleep(wait);
                    n += 1;
                }
            }
        }
    }
}
