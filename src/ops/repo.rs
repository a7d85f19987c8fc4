//! The vendor's side: `real-upgrade repo index|keygen|sign`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

pub use crate::repo::publish::Published;
pub use crate::repo::trust::KeyFiles;

pub fn index(dir: &Path) -> Result<Published> {
    crate::repo::publish::write_index(dir)
}

pub fn keygen(dir: &Path) -> Result<KeyFiles> {
    crate::repo::trust::keygen(dir)
}

/// `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    pub file: PathBuf,
    pub signature: PathBuf,
}

pub fn sign(file: &Path, key: &Path) -> Result<Signed> {
    let signature = crate::repo::trust::sign(file, key)?;
    Ok(Signed {
        file: file.to_path_buf(),
        signature,
    })
}
