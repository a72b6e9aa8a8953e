//! The `smimekit` command line's definitions as a library, for what reads them besides the
//! binary: `cargo xtask man` renders the manual pages and completions from [`cli::Cli`], and
//! [`version`] is the text `--version` prints. The commands themselves stay in the binary.

pub mod cli;

use std::sync::LazyLock;

/// The git revision the binary was built from (`unknown` when built without one).
pub const GIT_REVISION: &str = env!("SMIMEKIT_GIT_REV");

static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}\nrevision: {GIT_REVISION}\nOpenSSL: {}",
        env!("CARGO_PKG_VERSION"),
        openssl::version::version()
    )
});

/// What `smimekit --version` and `-V` print after the program's name: the version, the git
/// revision, and the OpenSSL library it runs with (found at run time, so an upgraded libssl3
/// shows).
pub fn version() -> &'static str {
    VERSION.as_str()
}
