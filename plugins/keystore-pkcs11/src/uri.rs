//! RFC 7512 `pkcs11:` URIs: `pkcs11:token=Smart%20Card;object=alice;type=private;id=%01%02?module-path=/usr/lib/x.so&pin-source=file:/run/pin`.
//!
//! Path attributes select a token and objects; query attributes say how to reach the module
//! and where the PIN comes from. Values are percent-decoded; unknown path attributes are an
//! error (a typo would otherwise match every object), unknown query attributes are ignored
//! as the RFC asks.

use std::fmt::Write as _;

use smimekit_core::Secret;

/// A parsed `pkcs11:` URI. The PIN, when the URI carries one, is a [`Secret`].
#[derive(Debug, Clone, Default)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    /// `private`, `public`, `cert`, `secret-key`, `data`.
    pub object_type: Option<String>,
    pub module_path: Option<String>,
    pub module_name: Option<String>,
    pub pin_source: Option<String>,
    pub pin_value: Option<Secret>,
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError(pub String);

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` into bytes.
pub fn percent_decode(s: &str) -> Result<Vec<u8>, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(UriError(format!("bad percent-encoding in {s:?}")));
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(name: &str, value: &str) -> Result<String, UriError> {
    String::from_utf8(percent_decode(value)?)
        .map_err(|_| UriError(format!("{name}: the value is not UTF-8")))
}

/// Percent-encodes everything outside RFC 7512's unreserved set (and `:`, `/`, `@`, `&` in
/// values where they are allowed).
pub fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            s.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// Whether `reference` is a `pkcs11:` URI (the scheme is case-insensitive).
pub fn is_pkcs11(reference: &str) -> bool {
    reference
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        if !is_pkcs11(uri) {
            return Err(UriError("not a pkcs11: URI".into()));
        }
        let rest = &uri[7..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| UriError(format!("path attribute {part:?} has no '='")))?;
            match k.to_ascii_lowercase().as_str() {
                "token" => u.token = Some(text(k, v)?),
                "manufacturer" => u.manufacturer = Some(text(k, v)?),
                "model" => u.model = Some(text(k, v)?),
                "serial" => u.serial = Some(text(k, v)?),
                "object" => u.object = Some(text(k, v)?),
                "id" => u.id = Some(percent_decode(v)?),
                "type" => {
                    let t = text(k, v)?;
                    if !["private", "public", "cert", "secret-key", "data"].contains(&t.as_str()) {
                        return Err(UriError(format!(
                            "type={t}: use private, public, cert, secret-key or data"
                        )));
                    }
                    u.object_type = Some(t);
                }
                "slot-id" => {
                    u.slot_id = Some(
                        text(k, v)?
                            .parse()
                            .map_err(|_| UriError(format!("slot-id={v}: not a number")))?,
                    )
                }
                // Library attributes identify the module; they do not narrow anything we use.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-manufacturer"
                | "slot-description" => {}
                "pin-value" | "pin-source" | "module-path" | "module-name" => {
                    return Err(UriError(format!(
                        "{k} is a query attribute: write it after '?' (pkcs11:token=…?{k}=…)"
                    )));
                }
                other => {
                    return Err(UriError(format!(
                        "unknown path attribute {other:?} (known: token, object, id, type, serial, manufacturer, model, slot-id)"
                    )));
                }
            }
        }
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k.to_ascii_lowercase().as_str() {
                "module-path" => u.module_path = Some(text(k, v)?),
                "module-name" => u.module_name = Some(text(k, v)?),
                "pin-source" => u.pin_source = Some(text(k, v)?),
                "pin-value" => u.pin_value = Some(Secret::new(percent_decode(v)?)),
                _ => {}
            }
        }
        Ok(u)
    }

    /// The URI of one object on a token: token attributes from `self`, the object's own
    /// label/id/type, and `module-path` (never the PIN).
    pub fn object_uri(&self, label: Option<&str>, id: &[u8], object_type: &str) -> String {
        let mut s = String::from("pkcs11:");
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", percent_encode(t.as_bytes(), b"")));
        }
        if let Some(t) = &self.serial {
            parts.push(format!("serial={}", percent_encode(t.as_bytes(), b"")));
        }
        if let Some(l) = label {
            parts.push(format!("object={}", percent_encode(l.as_bytes(), b"")));
        }
        if !id.is_empty() {
            let mut hex = String::new();
            for b in id {
                let _ = write!(hex, "%{b:02X}");
            }
            parts.push(format!("id={hex}"));
        }
        parts.push(format!("type={object_type}"));
        s.push_str(&parts.join(";"));
        if let Some(m) = &self.module_path {
            s.push_str("?module-path=");
            s.push_str(&percent_encode(m.as_bytes(), b"/"));
        }
        s
    }

    /// The token part only (for messages and lane keys).
    pub fn token_uri(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", percent_encode(t.as_bytes(), b"")));
        }
        if let Some(t) = &self.serial {
            parts.push(format!("serial={}", percent_encode(t.as_bytes(), b"")));
        }
        format!("pkcs11:{}", parts.join(";"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_examples() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3e%5c%f4%bd%ec%91;serial=?pin-source=file:/etc/token_pin&module-path=/usr/lib/p11.so",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.object.as_deref(), Some("my-certificate"));
        assert_eq!(u.object_type.as_deref(), Some("cert"));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/p11.so"));
        let u = Pkcs11Uri::parse("PKCS11:object=a?pin-value=12%334&x-unknown=1").unwrap();
        assert_eq!(u.pin_value.unwrap().expose(), b"1234");
        assert!(
            format!("{:?}", Pkcs11Uri::parse("pkcs11:?pin-value=1234").unwrap())
                .contains("redacted")
        );
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "pkcs11:tokn=x",
            "pkcs11:token=%zz",
            "pkcs11:type=key",
            "pkcs11:objectalice",
            "pkcs11:pin-value=1234",
            "file:x",
        ] {
            assert!(Pkcs11Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_uri_round_trips() {
        let u =
            Pkcs11Uri::parse("pkcs11:token=my%20token?module-path=/m/x.so&pin-value=1").unwrap();
        let s = u.object_uri(Some("a b"), &[1, 0xab], "private");
        assert_eq!(
            s,
            "pkcs11:token=my%20token;object=a%20b;id=%01%AB;type=private?module-path=/m/x.so"
        );
        let v = Pkcs11Uri::parse(&s).unwrap();
        assert_eq!(v.id.unwrap(), vec![1, 0xab]);
        assert!(v.pin_value.is_none());
    }
}
