//! A minimal BER/DER reader: just enough to walk a PFX (PKCS#12) structure, find its MAC
//! algorithm and its unencrypted safe bags. It never decrypts anything; OpenSSL does that.
//!
//! Indefinite lengths and constructed OCTET STRINGs (BER, as some PKCS#12 writers emit) are
//! accepted.

use std::borrow::Cow;

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_BMP_STRING: u8 = 0x1e;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;
pub(crate) const TAG_CONTEXT_0: u8 = 0xa0;

/// Nesting deeper than this is treated as malformed (no legitimate PKCS#12 gets close).
const MAX_DEPTH: usize = 32;

/// One TLV element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet (only low-tag-number form is supported).
    pub tag: u8,
    /// The contents octets (for indefinite length: up to, not including, the end-of-contents).
    pub value: &'a [u8],
    /// The whole element, header included.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The children of a constructed element.
    pub fn children(&self) -> Result<Vec<Tlv<'a>>, String> {
        if !self.is_constructed() {
            return Err(format!("tag {:#04x} is not constructed", self.tag));
        }
        read_all(self.value, 0)
    }

    /// The bytes of an OCTET STRING, primitive or (BER) constructed.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, String> {
        if self.tag == TAG_OCTET_STRING {
            return Ok(Cow::Borrowed(self.value));
        }
        if self.tag == TAG_OCTET_STRING | 0x20 {
            let mut out = Vec::new();
            for c in self.children()? {
                out.extend_from_slice(&c.octets()?);
            }
            return Ok(Cow::Owned(out));
        }
        Err(format!(
            "expected OCTET STRING, found tag {:#04x}",
            self.tag
        ))
    }

    /// A non-negative INTEGER that fits in a u64.
    pub fn uint(&self) -> Result<u64, String> {
        if self.tag != TAG_INTEGER {
            return Err(format!("expected INTEGER, found tag {:#04x}", self.tag));
        }
        let v = self.value;
        if v.is_empty() || v[0] & 0x80 != 0 {
            return Err("negative or empty INTEGER".into());
        }
        let v = if v.len() > 1 && v[0] == 0 { &v[1..] } else { v };
        if v.len() > 8 {
            return Err("INTEGER too large".into());
        }
        Ok(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    pub fn expect(self, tag: u8, what: &str) -> Result<Self, String> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(format!(
                "{what}: expected tag {tag:#04x}, found {:#04x}",
                self.tag
            ))
        }
    }
}

/// Reads one element from the start of `input`; returns it and the rest.
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    read_at(input, 0)
}

fn read_at(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    let truncated = || "truncated element".to_string();
    let &tag = input.first().ok_or_else(truncated)?;
    if tag & 0x1f == 0x1f {
        return Err("high tag numbers are not supported".into());
    }
    let &first = input.get(1).ok_or_else(truncated)?;
    let mut pos = 2;
    if first == 0x80 {
        // Indefinite length: constructed only; children up to an end-of-contents.
        if tag & 0x20 == 0 {
            return Err("indefinite length on a primitive element".into());
        }
        let start = pos;
        let mut rest = &input[pos..];
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let end = input.len() - rest.len();
                let raw_end = end + 2;
                return Ok((
                    Tlv {
                        tag,
                        value: &input[start..end],
                        raw: &input[..raw_end],
                    },
                    &input[raw_end..],
                ));
            }
            if rest.is_empty() {
                return Err("missing end-of-contents".into());
            }
            let (_, r) = read_at(rest, depth + 1)?;
            rest = r;
        }
    }
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return Err("length too large".into());
        }
        let bytes = input.get(pos..pos + n).ok_or_else(truncated)?;
        pos += n;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let end = pos.checked_add(len).ok_or_else(truncated)?;
    let value = input.get(pos..end).ok_or_else(truncated)?;
    Ok((
        Tlv {
            tag,
            value,
            raw: &input[..end],
        },
        &input[end..],
    ))
}

fn read_all(mut input: &[u8], depth: usize) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (t, rest) = read_at(input, depth + 1)?;
        out.push(t);
        input = rest;
    }
    Ok(out)
}

/// Encodes a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes `tag` around `content` with a definite length.
pub(crate) fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Decodes a BMPString (UTF-16BE) or UTF8String attribute value; trailing NULs (which
/// some writers include) are dropped.
pub(crate) fn text(t: &Tlv<'_>) -> Option<String> {
    let s = match t.tag {
        TAG_BMP_STRING => {
            if !t.value.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = t
                .value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        TAG_UTF8_STRING => String::from_utf8(t.value.to_vec()).ok(),
        _ => None,
    }?;
    Some(s.trim_end_matches('\0').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite() {
        // SEQUENCE { INTEGER 3, OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x03, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        let (seq, rest) = read(&ber).unwrap();
        assert!(rest.is_empty());
        let kids = seq.children().unwrap();
        assert_eq!(kids[0].uint().unwrap(), 3);
        assert_eq!(&*kids[1].octets().unwrap(), b"abc");
    }

    #[test]
    fn rejects_truncated() {
        assert!(read(&[0x30, 0x05, 0x02, 0x01]).is_err());
        assert!(read(&[0x30, 0x80, 0x02, 0x01, 0x03]).is_err());
    }

    #[test]
    fn encodes_long_lengths() {
        let v = encode(0x04, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (t, _) = read(&v).unwrap();
        assert_eq!(t.value.len(), 300);
    }
}
