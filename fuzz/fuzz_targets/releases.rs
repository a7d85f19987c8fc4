//! `releases.toml` → `index.toml` through `repo index` (package files mostly missing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("upgrade-fuzz-releases-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("releases.toml"), data).is_ok() {
        let _ = upgrade::repo::publish::write_index(&dir);
    }
});
