//! `upgrade.toml` → `Config`: any input is a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = upgrade::tomlfile::parse::<upgrade::config::Config>(
            text,
            std::path::Path::new("upgrade.toml"),
            "configuration",
        );
    }
});
