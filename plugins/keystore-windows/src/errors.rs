//! Windows error codes (`GetLastError`, HRESULT/NTE_*, SECURITY_STATUS) to [`KeyStoreError`]:
//! what the caller can do next. Pure Rust so that the mapping is unit-tested on every host.

use smimekit_core::KeyStoreError;

pub const CRYPT_E_NOT_FOUND: u32 = 0x8009_2004;
pub const CRYPT_E_NO_KEY_PROPERTY: u32 = 0x8009_200B;
pub const NTE_BAD_DATA: u32 = 0x8009_0005;
pub const NTE_BAD_KEY: u32 = 0x8009_0003;
pub const NTE_BAD_ALGID: u32 = 0x8009_0008;
pub const NTE_PERM: u32 = 0x8009_0010;
pub const NTE_BAD_KEYSET: u32 = 0x8009_0016;
pub const NTE_NO_KEY: u32 = 0x8009_000D;
pub const NTE_BAD_FLAGS: u32 = 0x8009_0009;
pub const NTE_NOT_SUPPORTED: u32 = 0x8009_0029;
pub const NTE_INVALID_PARAMETER: u32 = 0x8009_0027;
pub const NTE_SILENT_CONTEXT: u32 = 0x8009_0022;
pub const NTE_USER_CANCELLED: u32 = 0x8009_0036;
pub const SCARD_W_CANCELLED_BY_USER: u32 = 0x8010_006E;
pub const SCARD_W_WRONG_CHV: u32 = 0x8010_006B;
pub const SCARD_W_CHV_BLOCKED: u32 = 0x8010_006C;
pub const ERROR_CANCELLED: u32 = 1223;
pub const ERROR_FILE_NOT_FOUND: u32 = 2;
pub const ERROR_ACCESS_DENIED: u32 = 5;
pub const ERROR_INVALID_PASSWORD: u32 = 86;

/// Maps a failed call (`what`, e.g. "CryptSignHash") with its code to a key-store error.
pub fn map(key: &str, what: &str, code: u32) -> KeyStoreError {
    let key = key.to_string();
    let detail = format!("{what} failed: {} ({code:#010x})", describe(code));
    match code {
        CRYPT_E_NO_KEY_PROPERTY | NTE_BAD_KEYSET | NTE_NO_KEY | CRYPT_E_NOT_FOUND => {
            KeyStoreError::NotFound { key, detail }
        }
        NTE_BAD_ALGID
        | NTE_BAD_FLAGS
        | NTE_NOT_SUPPORTED
        | NTE_PERM
        | NTE_BAD_KEY
        | NTE_INVALID_PARAMETER => KeyStoreError::Unsupported { key, detail },
        // Not `Locked`: Windows owns the PIN dialog, so there is no secret to ask for and
        // retry with; the person cancelled (exit 4, key problem).
        NTE_USER_CANCELLED | SCARD_W_CANCELLED_BY_USER | ERROR_CANCELLED | NTE_SILENT_CONTEXT => {
            KeyStoreError::Failed {
                key,
                detail: format!("the PIN or consent prompt was cancelled ({what}, {code:#010x})"),
            }
        }
        SCARD_W_WRONG_CHV | ERROR_INVALID_PASSWORD => KeyStoreError::BadSecret {
            key,
            tries_left: None,
        },
        ERROR_FILE_NOT_FOUND | ERROR_ACCESS_DENIED => KeyStoreError::Io { key, detail },
        _ => KeyStoreError::Failed { key, detail },
    }
}

fn describe(code: u32) -> &'static str {
    match code {
        CRYPT_E_NOT_FOUND => "not found",
        CRYPT_E_NO_KEY_PROPERTY => "the certificate has no private key attached",
        NTE_BAD_DATA => "bad data (wrong key or corrupt input)",
        NTE_BAD_KEY => "bad key (key spec)",
        NTE_BAD_ALGID => "the provider does not support this algorithm",
        NTE_PERM => "the provider refuses this operation for this key",
        NTE_BAD_KEYSET => "key container not found",
        NTE_NO_KEY => "no such key in the container",
        NTE_BAD_FLAGS => "flags not supported by the provider",
        NTE_NOT_SUPPORTED => "not supported by the provider",
        NTE_INVALID_PARAMETER => "invalid parameter",
        NTE_SILENT_CONTEXT => "the provider needs UI but was told to be silent",
        NTE_USER_CANCELLED | SCARD_W_CANCELLED_BY_USER | ERROR_CANCELLED => {
            "the user cancelled the prompt"
        }
        SCARD_W_WRONG_CHV => "wrong PIN",
        SCARD_W_CHV_BLOCKED => "the PIN is blocked",
        ERROR_FILE_NOT_FOUND => "the store or file does not exist",
        ERROR_ACCESS_DENIED => "access denied",
        ERROR_INVALID_PASSWORD => "wrong password",
        u32::MAX => "failed without an error code (Wine leaves GetLastError at 0)",
        _ => "Windows error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_what_the_caller_can_do() {
        assert!(matches!(
            map("k", "x", CRYPT_E_NO_KEY_PROPERTY),
            KeyStoreError::NotFound { .. }
        ));
        assert!(matches!(
            map("k", "x", NTE_BAD_ALGID),
            KeyStoreError::Unsupported { .. }
        ));
        let e = map("k", "x", SCARD_W_CANCELLED_BY_USER);
        assert!(matches!(e, KeyStoreError::Failed { .. }) && e.to_string().contains("cancelled"));
        assert!(matches!(
            map("k", "x", SCARD_W_WRONG_CHV),
            KeyStoreError::BadSecret { .. }
        ));
        assert!(matches!(
            map("k", "x", NTE_BAD_DATA),
            KeyStoreError::Failed { .. }
        ));
    }
}
