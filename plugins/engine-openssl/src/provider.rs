//! Loading OpenSSL 3's `legacy` provider (RC2, single DES) next to `default`, once per process.
//!
//! Loading a provider explicitly switches off OpenSSL's automatic fallback to `default`, so
//! both are loaded (and `try_load` keeps the fallbacks). The providers stay loaded for the life
//! of the process. This does not touch any library context other than the default one.

use std::sync::OnceLock;

use openssl::provider::Provider;
use smimekit_core::EngineError;

use crate::describe;

/// The loaded providers, kept alive for the process; or why loading failed.
static PROVIDERS: OnceLock<Result<(Provider, Provider), String>> = OnceLock::new();

/// Loads the `default` and `legacy` providers into the default library context. Idempotent
/// and thread-safe; a failure is remembered and reported on every call.
pub fn load_legacy_provider() -> Result<(), EngineError> {
    let loaded = PROVIDERS.get_or_init(|| {
        let default = Provider::try_load(None, "default", true)
            .map_err(|e| format!("default: {}", describe(&e)))?;
        let legacy = Provider::try_load(None, "legacy", true)
            .map_err(|e| format!("legacy: {}", describe(&e)))?;
        Ok((default, legacy))
    });
    match loaded {
        Ok(_) => Ok(()),
        Err(e) => Err(EngineError::Unsupported(format!(
            "OpenSSL legacy provider unavailable ({e}); RC2 and DES need it"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_twice() {
        load_legacy_provider().unwrap();
        load_legacy_provider().unwrap();
    }
}
