//! Whether an index may be used at all (SPEC §4, after The Update Framework's threat list), and
//! the vendor's keys and signatures.
//!
//! An index is used only when, in this order: its detached minisign signature
//! (`index.toml.minisig`) verifies with the configured `[repository] public_key` — checked on the
//! raw bytes, *before* the TOML is parsed; it parses; it is not past its `expires`; and its
//! `sequence` is not lower than the highest this root has accepted (kept in `state.db`, so a
//! replayed older index is a rollback and refused).
//!
//! The signature rule: a configured `public_key` is always enforced, for every kind of
//! repository. A remote repository (`https://`, `http://`) without `public_key` is refused. A
//! local one (a path or `file://`: offline media, a mirror the administrator controls) without
//! `public_key` is read unsigned, with a warning in the log — the filesystem is its trust
//! anchor; expiry and rollback are checked all the same.
//!
//! **Offline.** `--download-only` keeps the verified index and its signature in the download
//! cache ([`Trusted::keep`], after every artifact of the plan is there). When a later run cannot
//! reach a remote repository at all (exit 1 in the `repo` module's table: unreachable, timeouts,
//! HTTP errors), [`load`] uses that kept index instead, and says so ([`Trusted::kept`]) — but only
//! if it passes the same checks again: its signature with the configured key, its expiry, and
//! its sequence against the highest accepted. An index the repository *serves* and we refuse is
//! never replaced by the kept one. A successful run prunes the cache and, with it, the kept
//! index (`fetch::prune`): it serves the one run that was downloaded for.
//!
//! Keys are ordinary minisign keys (`minisign` crate for keygen and signing, `minisign-verify`
//! for verification), so the stock tool checks our signatures: `minisign -Vm index.toml -P KEY`.
//! The secret key is written unencrypted unless `UPGRADE_SIGNING_PASSWORD` is set: then it is
//! encrypted with that password (minisign's scrypt), and `repo sign` needs the same variable.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::Repository;
use crate::config::Config;
use crate::context::Context;
use crate::error::{UpgradeError, exit};
use crate::model::catalog::{Catalog, Summary};

pub const INDEX: &str = "index.toml";
pub const SIGNATURE: &str = "index.toml.minisig";
/// The environment variable that holds the secret key's password, if it has one.
pub const PASSWORD_ENV: &str = "UPGRADE_SIGNING_PASSWORD";
pub const PUBLIC_KEY_FILE: &str = "upgrade.pub";
pub const SECRET_KEY_FILE: &str = "upgrade.key";
/// No index is larger than this (a 10,000-package index is about 3 MB).
const INDEX_LIMIT: u64 = 64 * 1024 * 1024;
const SIGNATURE_LIMIT: u64 = 4096;

/// A verified, current index and where it came from.
pub struct Trusted {
    pub repo: Repository,
    pub catalog: Catalog,
    /// The repository was unreachable and this is the index `--download-only` kept: its path.
    pub kept: Option<PathBuf>,
    /// The signed index as the remote repository served it, for [`Trusted::keep`].
    signed: Option<Verified>,
}

/// An index's text, verified against its signature when a key is configured.
struct Verified {
    location: String,
    text: String,
    signature: Option<Vec<u8>>,
}

/// Fetches, verifies and parses the configured repository's index; when a remote repository
/// cannot be reached, the index kept by `--download-only` in the root's cache, if it still
/// passes every check. `accepted` is the highest sequence this root has accepted so far.
pub fn load(config: &Config, ctx: &Context, accepted: Option<u64>) -> Result<Trusted> {
    let (config_path, cache) = (ctx.config_path.as_path(), &ctx.paths().cache);
    let repo = Repository::configured(config, config_path)?;
    let verified = match verified_text(&repo, config, config_path) {
        Ok(verified) => verified,
        // NB: exit 1 is "could not get it" (the `repo` module's table); an index that was
        // served and refused (exit 2) is never replaced by the kept one.
        Err(e) if repo.is_remote() && crate::error::exit_code(&e) == exit::FAILED => {
            let Some((catalog, path)) = load_kept(config, config_path, accepted, cache) else {
                return Err(e);
            };
            tracing::warn!(index = %path.display(), "repository unreachable ({e:#}): using the index kept by --download-only");
            return Ok(Trusted {
                repo,
                catalog,
                kept: Some(path),
                signed: None,
            });
        }
        Err(e) => return Err(e),
    };
    let catalog = current_catalog(&verified, config, accepted)?;
    let signed = (repo.is_remote() && verified.signature.is_some()).then_some(verified);
    Ok(Trusted {
        repo,
        catalog,
        kept: None,
        signed,
    })
}

impl Trusted {
    /// Keeps this index and its signature in `cache`, for a run while the repository is
    /// unreachable (`--download-only`, once the plan's artifacts are there). Nothing to keep
    /// for a local repository or an index that was read from the cache.
    pub fn keep(&self, cache: &Path) -> Result<()> {
        let Some(Verified {
            text,
            signature: Some(signature),
            ..
        }) = &self.signed
        else {
            return Ok(());
        };
        crate::fsutil::write_atomic(&cache.join(SIGNATURE), signature)?;
        crate::fsutil::write_atomic(&cache.join(INDEX), text.as_bytes())
    }
}

/// The index kept in `cache` and its path, when it is there and passes every check of a
/// served one; otherwise `None`, and why in the log.
fn load_kept(
    config: &Config,
    config_path: &Path,
    accepted: Option<u64>,
    cache: &Path,
) -> Option<(Catalog, PathBuf)> {
    let path = cache.join(INDEX);
    if !path.exists() {
        return None;
    }
    let kept = || -> Result<Catalog> {
        let location = path.display().to_string();
        let read = |p: &Path| {
            std::fs::read(p).with_context(|| format!("failed to read `{}`", p.display()))
        };
        let bytes = read(&path)?;
        let signature = read(&cache.join(SIGNATURE))?;
        let key = config.repository.public_key.as_deref().unwrap_or_default();
        verify(key, &bytes, &signature, &location, config_path)?;
        let verified = Verified {
            text: into_text(bytes, &location)?,
            location,
            signature: Some(signature),
        };
        current_catalog(&verified, config, accepted)
    };
    match kept() {
        Ok(catalog) => Some((catalog, path)),
        Err(e) => {
            tracing::warn!(index = %path.display(), "not using the index kept by --download-only: {e:#}");
            None
        }
    }
}

/// Parses a verified index and refuses it when it is expired or older than `accepted`.
fn current_catalog(v: &Verified, config: &Config, accepted: Option<u64>) -> Result<Catalog> {
    let catalog = Catalog::parse(
        &v.text,
        Path::new(&v.location),
        &config.product,
        config.version_scheme,
    )?;
    check_current(
        catalog.expires.as_ref(),
        catalog.sequence,
        accepted,
        &v.location,
    )?;
    Ok(catalog)
}

/// [`load`] for `status`: the same signature, expiry and rollback checks, but only the
/// releases' versions are parsed ([`Catalog::parse_summary`]).
pub fn load_summary(config: &Config, config_path: &Path, accepted: Option<u64>) -> Result<Summary> {
    let repo = Repository::configured(config, config_path)?;
    let Verified { location, text, .. } = verified_text(&repo, config, config_path)?;
    let summary = Catalog::parse_summary(
        &text,
        Path::new(&location),
        &config.product,
        config.version_scheme,
    )?;
    check_current(
        summary.expires.as_ref(),
        summary.sequence,
        accepted,
        &location,
    )?;
    Ok(summary)
}

/// The repository's index, read and (when a key is configured) verified against its signature.
fn verified_text(repo: &Repository, config: &Config, config_path: &Path) -> Result<Verified> {
    let location = repo.location(INDEX);
    let bytes = repo.read(INDEX, INDEX_LIMIT)?.ok_or_else(|| {
        UpgradeError::input_hint(
            format!("failed to read repository index `{location}`: it does not exist"),
            format!(
                "check `url` under `[repository]` in `{}`",
                config_path.display()
            ),
        )
    })?;
    let signature = match config.repository.public_key.as_deref() {
        Some(key) => {
            let signature = repo.read(SIGNATURE, SIGNATURE_LIMIT)?.ok_or_else(|| {
                UpgradeError::input_hint(
                    format!(
                        "repository index `{location}` is not signed: `{}` does not exist",
                        repo.location(SIGNATURE)
                    ),
                    "the vendor signs the index with `real-upgrade repo sign index.toml`; \
                     ask for a signed repository",
                )
            })?;
            verify(key, &bytes, &signature, &location, config_path)?;
            Some(signature)
        }
        None if repo.is_remote() => {
            return Err(UpgradeError::input_hint(
                format!("repository `{location}` is remote and no `public_key` is configured"),
                format!(
                    "set `public_key` under `[repository]` in `{}` to the vendor's minisign public key",
                    config_path.display()
                ),
            )
            .into());
        }
        None => {
            tracing::warn!(index = %location, "no public_key configured: using the local index unsigned");
            None
        }
    };
    Ok(Verified {
        text: into_text(bytes, &location)?,
        location,
        signature,
    })
}

fn into_text(bytes: Vec<u8>, location: &str) -> Result<String, UpgradeError> {
    String::from_utf8(bytes).map_err(|_| {
        UpgradeError::input(format!("repository index `{location}` is not UTF-8 text"))
    })
}

/// Refuses an expired index, and one older than the highest sequence this root has accepted.
fn check_current(
    expires: Option<&toml::value::Datetime>,
    sequence: u64,
    accepted: Option<u64>,
    location: &str,
) -> Result<()> {
    if let Some(expires) = expires {
        check_expiry(expires, SystemTime::now(), location)?;
    }
    if let Some(accepted) = accepted
        && sequence < accepted
    {
        return Err(UpgradeError::IndexRollback {
            location: location.to_string(),
            sequence,
            accepted,
        }
        .into());
    }
    Ok(())
}

/// Checks a minisign signature of `data` against the configured public key.
pub fn verify(
    public_key: &str,
    data: &[u8],
    signature: &[u8],
    location: &str,
    config_path: &Path,
) -> Result<(), UpgradeError> {
    let key = minisign_verify::PublicKey::from_base64(public_key.trim()).map_err(|e| {
        UpgradeError::input_hint(
            format!("`public_key` under `[repository]` is not a minisign public key: {e}"),
            format!(
                "set it in `{}` to the second line of the vendor's `{PUBLIC_KEY_FILE}` (it starts with `RW`)",
                config_path.display()
            ),
        )
    })?;
    let text = String::from_utf8_lossy(signature);
    let signature = minisign_verify::Signature::decode(&text).map_err(|e| {
        UpgradeError::input_hint(
            format!("the signature of `{location}` is malformed: {e}"),
            "ask the vendor to sign the index again with `real-upgrade repo sign`",
        )
    })?;
    key.verify(data, &signature, false).map_err(|e| {
        let why = match e {
            minisign_verify::Error::UnexpectedKeyId => {
                "it was signed with another key than the configured `public_key`"
            }
            minisign_verify::Error::InvalidSignature => {
                "the signature does not match: the index was changed after it was signed"
            }
            _ => "the signature does not verify",
        };
        UpgradeError::BadSignature {
            location: location.to_string(),
            why,
            detail: e.to_string(),
        }
    })
}

/// Refuses an index whose `expires` is not after `now`.
pub fn check_expiry(
    expires: &toml::value::Datetime,
    now: SystemTime,
    location: &str,
) -> Result<(), UpgradeError> {
    let Some(at) = unix_seconds(expires) else {
        return Err(UpgradeError::input(format!(
            "repository index `{location}`: `expires = {expires}` is not a date"
        )));
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if at <= now {
        return Err(UpgradeError::IndexExpired {
            location: location.to_string(),
            expires: expires.to_string(),
        });
    }
    Ok(())
}

/// Seconds since the epoch of a TOML date or datetime; a date or local time counts as UTC.
fn unix_seconds(dt: &toml::value::Datetime) -> Option<i64> {
    let date = dt.date?;
    let (y, m, d) = (
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut secs = days * 86400;
    if let Some(t) = dt.time {
        secs += i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second);
    }
    if let Some(toml::value::Offset::Custom { minutes }) = dt.offset {
        secs -= i64::from(minutes) * 60;
    }
    Some(secs)
}

/// What `repo keygen` wrote.
#[derive(Debug, Serialize)]
pub struct KeyFiles {
    pub public_key_file: PathBuf,
    pub secret_key_file: PathBuf,
    /// The value for `public_key` under `[repository]`.
    pub public_key: String,
    pub encrypted: bool,
}

/// Writes a new key pair into `dir` (`upgrade.pub`, `upgrade.key`); never overwrites a key.
pub fn keygen(dir: &Path) -> Result<KeyFiles> {
    let public_key_file = dir.join(PUBLIC_KEY_FILE);
    let secret_key_file = dir.join(SECRET_KEY_FILE);
    for path in [&public_key_file, &secret_key_file] {
        if path.exists() {
            return Err(UpgradeError::input_hint(
                format!(
                    "`{}` already exists; refusing to overwrite a key",
                    path.display()
                ),
                "move it away, or pass another directory with `--dir`",
            )
            .into());
        }
    }
    let password = password();
    let encrypted = !password.is_empty();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some(password))
        .context("failed to generate a key pair")?;
    let public_box = pair
        .pk
        .to_box()
        .context("failed to encode the public key")?;
    let secret_box = pair
        .sk
        .to_box(None)
        .context("failed to encode the secret key")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    write_new(&secret_key_file, &secret_box.to_bytes(), 0o600)?;
    write_new(&public_key_file, &public_box.to_bytes(), 0o644)?;
    Ok(KeyFiles {
        public_key_file,
        secret_key_file,
        public_key: pair.pk.to_base64(),
        encrypted,
    })
}

/// Signs `file` with the secret key `key`, writing `FILE.minisig`; returns its path.
pub fn sign(file: &Path, key: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(key).map_err(|e| {
        UpgradeError::input_hint(
            format!("failed to read secret key `{}`: {e}", key.display()),
            "create one with `real-upgrade repo keygen`, or name it with `--key`",
        )
    })?;
    let secret = minisign::SecretKey::from_box(
        minisign::SecretKeyBox::from_string(&text).map_err(|e| {
            anyhow::anyhow!("`{}` is not a minisign secret key: {e}", key.display())
        })?,
        Some(password()),
    )
    .map_err(|e| {
        UpgradeError::input_hint(
            format!("failed to open secret key `{}`: {e}", key.display()),
            format!("if the key has a password, set `{PASSWORD_ENV}`"),
        )
    })?;
    let data = std::fs::File::open(file)
        .with_context(|| format!("failed to open `{}`", file.display()))?;
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let trusted = format!("timestamp:{now}\tfile:{name}\thashed");
    let signature = minisign::sign(None, &secret, data, Some(&trusted), None)
        .with_context(|| format!("failed to sign `{}`", file.display()))?;
    let mut out = file.as_os_str().to_owned();
    out.push(".minisig");
    let out = PathBuf::from(out);
    crate::fsutil::write_atomic(&out, &signature.to_bytes())?;
    Ok(out)
}

fn password() -> String {
    std::env::var(PASSWORD_ENV).unwrap_or_default()
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> toml::value::Datetime {
        s.parse().unwrap()
    }

    #[test]
    fn unix_seconds_of_dates() {
        assert_eq!(unix_seconds(&dt("1970-01-01T00:00:00Z")), Some(0));
        assert_eq!(unix_seconds(&dt("2000-03-01T00:00:00Z")), Some(951868800));
        assert_eq!(
            unix_seconds(&dt("2000-03-01T02:00:00+02:00")),
            Some(951868800)
        );
        assert_eq!(unix_seconds(&dt("2000-03-01")), Some(951868800));
    }

    #[test]
    fn expiry() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(951868800);
        assert!(check_expiry(&dt("2000-03-01T00:00:01Z"), now, "i").is_ok());
        let err = check_expiry(&dt("2000-03-01T00:00:00Z"), now, "i").unwrap_err();
        assert!(
            err.to_string().contains("expired at 2000-03-01T00:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn sign_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keygen(dir.path()).unwrap();
        let file = dir.path().join("index.toml");
        std::fs::write(&file, "sequence = 1\n").unwrap();
        let sig = sign(&file, &keys.secret_key_file).unwrap();
        let sig = std::fs::read(sig).unwrap();
        let cfg = Path::new("upgrade.toml");
        verify(&keys.public_key, b"sequence = 1\n", &sig, "i", cfg).unwrap();
        let err = verify(&keys.public_key, b"sequence = 2\n", &sig, "i", cfg).unwrap_err();
        assert!(
            err.to_string().contains("changed after it was signed"),
            "{err}"
        );
        assert!(keygen(dir.path()).is_err(), "keygen must not overwrite");
    }
}
