//! Loading OpenSSL 3's `legacy` provider (RC2, single DES) next to `default`, once per process.
//!
//! Loading a provider explicitly switches off OpenSSL's automatic fallback to `default`, so
//! both are loaded explicitly, and without keeping the fallbacks: OpenSSL 3.0 activates its
//! fallback providers on the first algorithm fetch without looking for a `default` that was
//! loaded by name, so keeping them (`try_load(…, true)` before any fetch) left two `default`
//! providers in the context, and every decoder and fetch afterwards searched both (a PKCS#8
//! key took about four times as long to decode). The providers stay loaded for the life of the
//! process. This does not touch any library context other than the default one.

use std::sync::OnceLock;

use openssl::provider::Provider;
use smimekit_core::EngineError;

use crate::{describe, ffi};

/// The loaded providers, kept alive for the process; or why loading failed.
static PROVIDERS: OnceLock<Result<(Provider, Provider), String>> = OnceLock::new();

/// Loads the `default` and `legacy` providers into the default library context. Idempotent
/// and thread-safe; a failure is remembered and reported on every call. Callers load it only
/// when they meet a legacy algorithm: each active provider makes every later algorithm lookup
/// a little slower.
pub fn load_legacy_provider() -> Result<(), EngineError> {
    let loaded = PROVIDERS.get_or_init(|| {
        // An already active `default` (the fallback, once anything was fetched) is found and
        // reused rather than loaded again.
        let default = Provider::try_load(None, "default", false)
            .map_err(|e| format!("default: {}", describe(&e)))?;
        let legacy = Provider::try_load(None, "legacy", false)
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

/// The names of the providers active in the default library context, one entry per provider
/// instance, for diagnostics (activates OpenSSL's fallback provider if none is active yet).
pub fn active_providers() -> Vec<String> {
    ffi::active_providers()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_twice() {
        load_legacy_provider().unwrap();
        load_legacy_provider().unwrap();
        let names = active_providers();
        assert!(names.iter().any(|n| n == "legacy"), "{names:?}");
    }
}
