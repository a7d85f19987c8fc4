//! Building real RPM packages with the `rpm` crate, for the demo repository and the tests.
//! Each user (the demo, the benchmarks, the tests) uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A package to build.
#[derive(Debug, Clone)]
pub struct RpmSpec {
    pub name: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub files: Vec<FileSpec>,
    /// A `%post` scriptlet in rpm's embedded Lua (runs without a shell inside the root).
    pub post_lua: Option<String>,
    /// A `%preun` scriptlet in rpm's embedded Lua (`arg[2]` is the shell's `$1`: 0 on an erase,
    /// 1 when an upgrade replaces the package).
    pub preun_lua: Option<String>,
    /// `Requires:` of other packages by name (any version).
    pub requires: Vec<String>,
    /// `Provides:` of capabilities by name (any version).
    pub provides: Vec<String>,
    /// The package's description; by default it says it is a demo product's.
    pub summary: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
    /// `%config(noreplace)`: an edited copy is kept and the new one written as `.rpmnew`.
    pub config: bool,
}

impl RpmSpec {
    pub fn new(name: &str, version: &str) -> RpmSpec {
        RpmSpec {
            name: name.into(),
            version: version.into(),
            release: "1".into(),
            arch: "x86_64".into(),
            files: Vec::new(),
            post_lua: None,
            preun_lua: None,
            requires: Vec::new(),
            provides: Vec::new(),
            summary: None,
        }
    }

    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files.push(FileSpec {
            path: path.into(),
            contents: contents.into(),
            mode,
            config: false,
        });
        self
    }

    pub fn config_file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push(FileSpec {
            path: path.into(),
            contents: contents.into(),
            mode: 0o644,
            config: true,
        });
        self
    }

    pub fn requires(mut self, name: &str) -> Self {
        self.requires.push(name.into());
        self
    }

    pub fn provides(mut self, name: &str) -> Self {
        self.provides.push(name.into());
        self
    }

    pub fn post_lua(mut self, script: &str) -> Self {
        self.post_lua = Some(script.into());
        self
    }

    pub fn preun_lua(mut self, script: &str) -> Self {
        self.preun_lua = Some(script.into());
        self
    }

    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }

    /// Writes the package into `dir` and returns its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let summary = (self.summary.clone())
            .unwrap_or_else(|| format!("{} (demo product package)", self.name));
        let mut builder =
            rpm::PackageBuilder::new(&self.name, &self.version, "MIT", &self.arch, &summary);
        builder.release(self.release.as_str());
        builder.using_config(
            rpm::BuildConfig::default()
                .compression(rpm::CompressionType::Gzip)
                .source_date(1_700_000_000u32),
        );
        for f in &self.files {
            let mut options = rpm::FileOptions::new(f.path.as_str()).permissions(f.mode as u16);
            if f.config {
                options = options.config().noreplace();
            }
            builder
                .with_file_contents(f.contents.clone(), options)
                .expect("valid file entry");
        }
        let lua = |script: &String| rpm::Scriptlet::new(script.as_str()).prog(vec!["<lua>"]);
        if let Some(script) = &self.post_lua {
            builder.post_install_script(lua(script));
        }
        if let Some(script) = &self.preun_lua {
            builder.pre_uninstall_script(lua(script));
        }
        if self.post_lua.is_some() || self.preun_lua.is_some() {
            // NB: the rpm crate turns the `<lua>` interpreter into a `Requires: <lua>` that
            // rpmbuild never writes and nothing provides; the package provides it itself.
            builder.provides(rpm::Dependency::any("<lua>"));
        }
        for name in &self.requires {
            builder.requires(rpm::Dependency::any(name.as_str()));
        }
        for name in &self.provides {
            builder.provides(rpm::Dependency::any(name.as_str()));
        }
        let package = builder.build().expect("package builds");
        std::fs::create_dir_all(dir).expect("create package directory");
        let path = dir.join(self.file_name());
        package.write_file(&path).expect("write package");
        path
    }
}
