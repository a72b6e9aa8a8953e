//! Dependency edges that keep the architecture honest (ARCHITECTURE.md): the apps call only
//! the service, the core has no I/O crates, only the engine plugin links OpenSSL directly
//! besides the file key store.

use crate::common::workspace;

/// The `[dependencies]` table's crate names of a member.
fn dependencies(member: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join(member).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{member}/Cargo.toml: {e}"));
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                out.push(name.split('.').next().unwrap_or(name).to_string());
            }
        }
    }
    out
}

#[test]
fn apps_talk_only_to_the_service() {
    let deps = dependencies("apps/cli");
    let ours: Vec<&String> = deps.iter().filter(|d| d.starts_with("smimekit-")).collect();
    assert_eq!(ours, ["smimekit-service"], "apps/cli depends on {deps:?}");
}

#[test]
fn core_has_no_io_runtime_or_openssl() {
    let deps = dependencies("crates/core");
    for banned in ["openssl", "tokio", "reqwest", "clap", "axum", "ratatui"] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "crates/core depends on {banned}"
        );
    }
}

#[test]
fn service_knows_no_front_end() {
    let deps = dependencies("crates/service");
    for banned in ["clap", "axum", "ratatui", "openssl"] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "crates/service depends on {banned}"
        );
    }
}

#[test]
fn message_layer_uses_ports_not_openssl() {
    let deps = dependencies("crates/message");
    for banned in [
        "openssl",
        "tokio",
        "smimekit-engine-openssl",
        "smimekit-keystore-file",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "crates/message depends on {banned}"
        );
    }
}
