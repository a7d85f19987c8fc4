//! The repository (SPEC §4): where it is, its index, and getting verified artifacts out of it.
//!
//! - [`index`] owns the `index.toml` format and turns it into a typed [`index::Catalog`].
//! - [`fetch`] copies artifacts into the cache, stopping at the declared size and checking sha256.
//! - [`publish`] is the vendor side: `real-upgrade repo index DIR`.

pub mod fetch;
pub mod index;
pub mod publish;

use std::path::{Path, PathBuf};

use crate::error::UpgradeError;

/// A repository reachable from this host.
#[derive(Debug, Clone)]
pub struct Repository {
    base: PathBuf,
}

impl Repository {
    /// Resolves a configured `[repository] url`: a plain path or a `file://` URL.
    pub fn open(url: &str) -> Result<Repository, UpgradeError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Repository {
                base: PathBuf::from(path),
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(UpgradeError::input_hint(
                format!("repository `{url}`: remote repositories are not supported yet"),
                "mirror the repository to a directory and set `url` to its path or a file:// URL",
            ));
        }
        if url.contains("://") {
            return Err(UpgradeError::input(format!(
                "repository `{url}`: unsupported URL scheme (use a path or file://)"
            )));
        }
        Ok(Repository {
            base: PathBuf::from(url),
        })
    }

    pub fn index_path(&self) -> PathBuf {
        self.base.join("index.toml")
    }

    /// Where an artifact named by the index lives in the repository.
    pub fn artifact(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}
