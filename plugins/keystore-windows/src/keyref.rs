//! KEYREF parsing: `windows:STORE?email=ADDR|thumbprint=HEX&store=NAME&location=user|machine&provider=auto|cng|legacy`.
//!
//! Pure Rust (no Windows calls) so that it is unit-tested on every host.

/// Which system-store location the store name is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `CERT_SYSTEM_STORE_CURRENT_USER` (default).
    User,
    /// `CERT_SYSTEM_STORE_LOCAL_MACHINE`.
    Machine,
}

/// Which private-key API a key must go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderPref {
    /// CNG when Windows offers it (also for most CSP keys), else the legacy CryptoAPI handle.
    Auto,
    /// CNG only (`CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG`): a CSP-only key is an error.
    Cng,
    /// Legacy CryptoAPI only (no NCrypt flags).
    Legacy,
}

/// How a certificate is selected in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The SAN rfc822Name or subject emailAddress (case-insensitive).
    Email(String),
    /// The SHA-1 thumbprint, lower-case hex without separators.
    Thumbprint(String),
}

/// A parsed `windows:` key reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinRef {
    /// The system store name as Windows spells it (`MY`, `CA`, `ROOT`, `AddressBook`…).
    pub store: String,
    pub location: Location,
    pub provider: ProviderPref,
    pub selector: Option<Selector>,
}

/// Whether this KEYREF names the Windows certificate store.
pub fn accepts(reference: &str) -> bool {
    reference
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("windows:"))
}

/// Parses a selector string (`email=…`, `thumbprint=…`, or a bare address / 40-hex thumbprint)
/// as `KeyStore::open` receives it.
pub fn parse_selector(s: &str) -> Result<Selector, String> {
    if let Some((k, v)) = s.split_once('=') {
        return selector_param(k, v)?.ok_or_else(|| format!("unknown selector {k}="));
    }
    if s.contains('@') {
        return Ok(Selector::Email(s.to_string()));
    }
    Ok(Selector::Thumbprint(normalize_thumbprint(s)?))
}

fn selector_param(k: &str, v: &str) -> Result<Option<Selector>, String> {
    Ok(match k.to_ascii_lowercase().as_str() {
        "email" | "mail" => {
            if v.is_empty() {
                return Err("email= is empty".into());
            }
            Some(Selector::Email(percent_decode(v)?))
        }
        "thumbprint" | "sha1" => Some(Selector::Thumbprint(normalize_thumbprint(v)?)),
        _ => None,
    })
}

/// Lower-case hex without spaces or colons; 40 digits (SHA-1).
pub fn normalize_thumbprint(v: &str) -> Result<String, String> {
    let t: String = v
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("thumbprint {v:?} is not 40 hex digits (SHA-1)"));
    }
    Ok(t)
}

fn percent_decode(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {v:?}"))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{v:?} is not UTF-8"))
}

/// Canonical Windows spelling of common store names; others pass through unchanged.
fn store_name(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "" | "my" | "personal" => "MY".into(),
        "ca" | "intermediate" => "CA".into(),
        "root" => "ROOT".into(),
        "addressbook" | "other" | "other-people" => "AddressBook".into(),
        "trustedpeople" => "TrustedPeople".into(),
        _ => s.to_string(),
    }
}

/// Parses `windows:…`.
pub fn parse(reference: &str) -> Result<WinRef, String> {
    if !accepts(reference) {
        return Err("not a windows: key reference".into());
    }
    let rest = &reference[8..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut r = WinRef {
        store: store_name(path.trim_matches('/')),
        location: Location::User,
        provider: ProviderPref::Auto,
        selector: None,
    };
    for p in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if let Some(sel) = selector_param(k, v)? {
            if r.selector.is_some() {
                return Err("give one of email= and thumbprint=".into());
            }
            r.selector = Some(sel);
            continue;
        }
        match k.to_ascii_lowercase().as_str() {
            "store" => r.store = store_name(v),
            "location" => {
                r.location = match v.to_ascii_lowercase().as_str() {
                    "user" | "currentuser" => Location::User,
                    "machine" | "localmachine" => Location::Machine,
                    _ => return Err(format!("location={v}: use user or machine")),
                }
            }
            "provider" => {
                r.provider = match v.to_ascii_lowercase().as_str() {
                    "auto" => ProviderPref::Auto,
                    "cng" => ProviderPref::Cng,
                    "legacy" | "capi" | "csp" => ProviderPref::Legacy,
                    _ => return Err(format!("provider={v}: use auto, cng or legacy")),
                }
            }
            _ => return Err(format!("unknown parameter {k}= in {reference}")),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_email_and_defaults() {
        let r = parse("windows:my?email=alice%40example.org").unwrap();
        assert_eq!(r.store, "MY");
        assert_eq!(r.location, Location::User);
        assert_eq!(r.provider, ProviderPref::Auto);
        assert_eq!(
            r.selector,
            Some(Selector::Email("alice@example.org".into()))
        );
        assert!(accepts("WINDOWS:my"));
        assert!(!accepts("win:my"));
    }

    #[test]
    fn parses_thumbprint_store_location() {
        let r = parse(
            "windows:?store=ca&location=machine&provider=legacy&thumbprint=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01",
        )
        .unwrap();
        assert_eq!(r.store, "CA");
        assert_eq!(r.location, Location::Machine);
        assert_eq!(r.provider, ProviderPref::Legacy);
        assert_eq!(
            r.selector,
            Some(Selector::Thumbprint(
                "abcdef0123456789abcdef0123456789abcdef01".into()
            ))
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("windows:my?thumbprint=abc").is_err());
        assert!(parse("windows:my?location=galaxy").is_err());
        assert!(
            parse("windows:my?email=a@b&thumbprint=abcdef0123456789abcdef0123456789abcdef01")
                .is_err()
        );
        assert!(parse("windows:my?colour=blue").is_err());
        assert!(parse("pkcs11:token=x").is_err());
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector("bob@example.org").unwrap(),
            Selector::Email("bob@example.org".into())
        );
        assert!(matches!(
            parse_selector("ABCDEF0123456789ABCDEF0123456789ABCDEF01").unwrap(),
            Selector::Thumbprint(_)
        ));
        assert!(parse_selector("nonsense").is_err());
    }
}
