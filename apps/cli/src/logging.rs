//! Logging: the service and the plugins emit `tracing` spans and events (a span per job and
//! per directory request; addresses, thumbprints and outcomes, never a secret); the CLI shows
//! them on standard error only when asked, so that scripts reading standard error see only
//! what they saw before.
//!
//! `-v` logs smimekit's own crates at info, `-vv` at debug, `-vvv` at trace, and others (HTTP,
//! LDAP and TLS libraries, which may log request details at debug) at warn. `SMIMEKIT_LOG`,
//! else `RUST_LOG`, is an `EnvFilter` (`debug`, `smimekit_directory_exchange=trace`) that turns
//! logging on by itself and refines the `-v` levels when both are given.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber when asked; does nothing otherwise.
pub fn init(verbose: u8) {
    let (var, env) = ["SMIMEKIT_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (*v, s))
        })
        .unzip();
    let level = match verbose {
        0 => None,
        1 => Some("info"),
        2 => Some("debug"),
        _ => Some("trace"),
    };
    let directives = match (level, &env) {
        (None, None) => return,
        (Some(l), None) => format!("warn,smimekit={l}"),
        (None, Some(e)) => e.clone(),
        (Some(l), Some(e)) => format!("warn,smimekit={l},{e}"),
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!(
            "smimekit: {}: not a log filter ({e}); logging warnings only",
            var.unwrap_or("-v")
        );
        EnvFilter::new("warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
