//! Process state that the library reads: the root it works on, the configuration file, whether a
//! person is at a terminal, and who we run as. Everything comes in through [`Context`], so a test
//! runs a whole upgrade inside a temporary root without touching the machine (STYLE 8).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Context {
    /// The root every managed path lives under (`--root`, default `/`).
    pub root: PathBuf,
    /// The configuration file (`--config`, default `<root>/etc/upgrade/upgrade.toml`).
    pub config_path: PathBuf,
    /// Standard input and standard error are both terminals: a person can be asked.
    pub interactive: bool,
    /// Running as uid 0: hooks must then be owned by root and not writable by others.
    pub superuser: bool,
}

impl Context {
    pub fn new(root: Option<PathBuf>, config: Option<PathBuf>) -> Self {
        let root = root.unwrap_or_else(|| PathBuf::from("/"));
        let paths = Paths::new(&root);
        Context {
            config_path: config.unwrap_or(paths.config),
            root,
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            superuser: nix::unistd::geteuid().is_root(),
        }
    }

    pub fn paths(&self) -> Paths {
        Paths::new(&self.root)
    }
}

/// Every file of SPEC §2, resolved under a root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub config: PathBuf,
    pub vendor_share: PathBuf,
    pub admin_etc: PathBuf,
    pub state_db: PathBuf,
    pub lock: PathBuf,
    pub cache: PathBuf,
    /// The restore points, one directory per run (SPEC §12).
    pub restore: PathBuf,
    pub log: PathBuf,
    pub migrations: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Self {
        let under = |p: &str| root.join(p);
        Paths {
            root: root.to_path_buf(),
            config: under("etc/upgrade/upgrade.toml"),
            vendor_share: under("usr/share/upgrade"),
            admin_etc: under("etc/upgrade"),
            state_db: under("var/lib/upgrade/state.db"),
            lock: under("var/lib/upgrade/lock"),
            cache: under("var/lib/upgrade/cache"),
            restore: under("var/lib/upgrade/restore"),
            log: under("var/log/upgrade/upgrade.log"),
            migrations: under("usr/share/upgrade/migrations"),
        }
    }
}
