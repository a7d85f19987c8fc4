//! `service-order.toml` → `ServiceGraph` (unknown names, cycles, ready checks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = upgrade::model::services::ServiceGraph::parse(
            text,
            std::path::Path::new("service-order.toml"),
            upgrade::config::ServiceBackend::Systemd,
        );
    }
});
