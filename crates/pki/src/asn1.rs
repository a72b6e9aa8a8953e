//! A small BER reader and DER writer for the CMS structures smimekit handles.
//!
//! Why not a generic ASN.1 library: mail in the wild is BER (indefinite lengths, chunked
//! OCTET STRINGs), its SETs are not always sorted, and signatures are computed over the exact
//! bytes that were sent. This reader never re-encodes: every element keeps its raw bytes, so
//! signed attributes and certificates are hashed exactly as received. It handles only
//! single-byte tags (all CMS needs) and refuses anything deeper than [`MAX_DEPTH`].
//!
//! The writer emits DER for the structures we build; callers keep SET OF order canonical
//! where DER requires it (signed attributes are sorted by [`set_of`]).

use std::borrow::Cow;

/// Nesting limit for hostile input.
pub const MAX_DEPTH: usize = 64;

pub const TAG_BOOLEAN: u8 = 0x01;
pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_UTC_TIME: u8 = 0x17;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;

/// Why bytes are not the ASN.1 we expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Asn1Error {
    #[error("offset {offset}: data ends inside an element")]
    Truncated { offset: usize },
    #[error("offset {offset}: {detail}")]
    Invalid { offset: usize, detail: String },
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("expected {expected}, found tag 0x{found:02x}")]
    UnexpectedTag { expected: &'static str, found: u8 },
    #[error("expected {0}, found end of data")]
    Missing(&'static str),
}

/// One element as received.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The element's contents (for indefinite lengths: up to, not including, the end-of-contents).
    pub content: &'a [u8],
    /// The whole element: identifier, length, contents (and end-of-contents).
    pub raw: &'a [u8],
    pub indefinite: bool,
    depth: usize,
}

impl<'a> Tlv<'a> {
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The number of a context-specific tag (`[n]`), if it is one.
    pub fn context(&self) -> Option<u8> {
        (self.tag & 0xc0 == 0x80).then_some(self.tag & 0x1f)
    }

    /// A reader over the children of a constructed element.
    pub fn children(&self) -> Reader<'a> {
        Reader {
            data: self.content,
            pos: 0,
            depth: self.depth + 1,
        }
    }

    /// The value of a string type; chunked (constructed) BER strings are concatenated.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::with_capacity(self.content.len());
        let mut r = self.children();
        while let Some(chunk) = r.next()? {
            out.extend_from_slice(&chunk.octets()?);
        }
        Ok(Cow::Owned(out))
    }

    pub fn expect(self, tag: u8, what: &'static str) -> Result<Self, Asn1Error> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(Asn1Error::UnexpectedTag {
                expected: what,
                found: self.tag,
            })
        }
    }

    /// A small non-negative INTEGER (versions, iteration counts).
    pub fn small_uint(&self) -> Result<u64, Asn1Error> {
        if self.tag != TAG_INTEGER || self.content.is_empty() || self.content.len() > 9 {
            return Err(Asn1Error::Invalid {
                offset: 0,
                detail: "expected a small INTEGER".into(),
            });
        }
        if self.content[0] & 0x80 != 0 {
            return Err(Asn1Error::Invalid {
                offset: 0,
                detail: "negative INTEGER".into(),
            });
        }
        let mut v: u64 = 0;
        for b in self.content {
            v = v.checked_shl(8).ok_or(Asn1Error::Invalid {
                offset: 0,
                detail: "INTEGER too large".into(),
            })? | u64::from(*b);
        }
        Ok(v)
    }
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            depth: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The tag of the next element, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// The next element, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.is_empty() {
            return Ok(None);
        }
        let (tlv, len) = parse_one(self.data, self.pos, self.depth)?;
        self.pos += len;
        Ok(Some(tlv))
    }

    /// The next element, which must exist.
    pub fn read(&mut self, what: &'static str) -> Result<Tlv<'a>, Asn1Error> {
        self.next()?.ok_or(Asn1Error::Missing(what))
    }

    /// The next element, which must exist and carry `tag`.
    pub fn read_tag(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, Asn1Error> {
        self.read(what)?.expect(tag, what)
    }

    /// The next element if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.peek_tag() == Some(tag) {
            self.next()
        } else {
            Ok(None)
        }
    }
}

/// Parses one element starting at `pos`; returns it and its total length.
fn parse_one(data: &[u8], pos: usize, depth: usize) -> Result<(Tlv<'_>, usize), Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep);
    }
    let rest = &data[pos.min(data.len())..];
    let tag = *rest.first().ok_or(Asn1Error::Truncated { offset: pos })?;
    if tag & 0x1f == 0x1f {
        return Err(Asn1Error::Invalid {
            offset: pos,
            detail: "multi-byte tags are not used by CMS".into(),
        });
    }
    let first_len = *rest
        .get(1)
        .ok_or(Asn1Error::Truncated { offset: pos + 1 })?;
    let (header_len, content_len, indefinite) = if first_len < 0x80 {
        (2usize, usize::from(first_len), false)
    } else if first_len == 0x80 {
        if tag & 0x20 == 0 {
            return Err(Asn1Error::Invalid {
                offset: pos,
                detail: "indefinite length on a primitive element".into(),
            });
        }
        // Scan children until the end-of-contents marker.
        let mut off = 2usize;
        loop {
            match (rest.get(off), rest.get(off + 1)) {
                (Some(0), Some(0)) => break,
                (Some(_), _) => {
                    let (_, n) = parse_one(rest, off, depth + 1)?;
                    off += n;
                }
                (None, _) => return Err(Asn1Error::Truncated { offset: pos + off }),
            }
        }
        (2usize, off - 2, true)
    } else {
        let n = usize::from(first_len & 0x7f);
        if n > 4 {
            return Err(Asn1Error::Invalid {
                offset: pos,
                detail: format!("length of {n} bytes is too large"),
            });
        }
        let bytes = rest
            .get(2..2 + n)
            .ok_or(Asn1Error::Truncated { offset: pos + 2 })?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len, false)
    };
    let end = header_len
        .checked_add(content_len)
        .ok_or(Asn1Error::Truncated { offset: pos })?;
    let total = if indefinite { end + 2 } else { end };
    if total > rest.len() {
        return Err(Asn1Error::Truncated { offset: pos });
    }
    Ok((
        Tlv {
            tag,
            content: &rest[header_len..end],
            raw: &rest[..total],
            indefinite,
            depth,
        },
        total,
    ))
}

/// Parses exactly one element covering all of `data` (trailing zero padding is tolerated).
pub fn parse_single(data: &[u8]) -> Result<Tlv<'_>, Asn1Error> {
    let (tlv, len) = parse_one(data, 0, 0)?;
    if data[len..].iter().any(|b| *b != 0) {
        return Err(Asn1Error::Invalid {
            offset: len,
            detail: format!("{} bytes of trailing data", data.len() - len),
        });
    }
    Ok(tlv)
}

/// Converts an element to DER lengths and primitive strings, recursively. Used only where an
/// encoding must be recomputed (signed attributes sent with BER lengths).
pub fn to_der(tlv: &Tlv<'_>) -> Result<Vec<u8>, Asn1Error> {
    if !tlv.indefinite && !tlv.is_constructed() {
        return Ok(tlv.raw.to_vec());
    }
    // Constructed universal string types become primitive.
    let string_tag = matches!(
        tlv.tag & 0x1f,
        0x03 | 0x04 | 0x0c | 0x13 | 0x14 | 0x16 | 0x1e
    ) && tlv.tag & 0xc0 == 0;
    if string_tag && tlv.is_constructed() {
        return Ok(encode(tlv.tag & !0x20, &tlv.octets()?));
    }
    if !tlv.is_constructed() {
        return Ok(encode(tlv.tag, tlv.content));
    }
    let mut content = Vec::with_capacity(tlv.content.len());
    let mut r = tlv.children();
    while let Some(child) = r.next()? {
        content.extend_from_slice(&to_der(&child)?);
    }
    Ok(encode(tlv.tag, &content))
}

// ---- writer ----

/// Appends a DER length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One DER element.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A constructed element from already-encoded children.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    push_len(&mut out, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, parts)
}

/// A DER SET OF: members sorted by their encodings.
pub fn set_of(mut members: Vec<Vec<u8>>) -> Vec<u8> {
    members.sort();
    let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
    constructed(TAG_SET, &refs)
}

pub fn octet_string(data: &[u8]) -> Vec<u8> {
    encode(TAG_OCTET_STRING, data)
}

pub fn small_int(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    encode(TAG_INTEGER, &content)
}

pub fn null() -> Vec<u8> {
    vec![TAG_NULL, 0]
}

/// `[n] EXPLICIT` or constructed `[n] IMPLICIT` wrapper.
pub fn context_constructed(n: u8, parts: &[&[u8]]) -> Vec<u8> {
    constructed(0xa0 | n, parts)
}

/// `[n] IMPLICIT` primitive.
pub fn context_primitive(n: u8, content: &[u8]) -> Vec<u8> {
    encode(0x80 | n, content)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(data: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(data.len() + 1);
    content.push(0);
    content.extend_from_slice(data);
    encode(TAG_BIT_STRING, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        let top = parse_single(&ber).unwrap();
        assert!(top.indefinite);
        let mut r = top.children();
        assert_eq!(r.read("int").unwrap().small_uint().unwrap(), 5);
        let s = r.read("octets").unwrap();
        assert_eq!(&*s.octets().unwrap(), b"abc");
        assert!(r.next().unwrap().is_none());
        let der = to_der(&top).unwrap();
        assert_eq!(
            der,
            [0x30, 0x08, 0x02, 0x01, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x80, 0x02, 0x01],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x1f, 0x01, 0x00],
        ];
        for c in cases {
            assert!(parse_single(c).is_err(), "{c:02x?}");
        }
        let mut deep = vec![];
        for _ in 0..200 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(parse_single(&deep).is_err());
    }

    #[test]
    fn writer_lengths() {
        assert_eq!(encode(4, &[0; 3])[..2], [4, 3]);
        assert_eq!(encode(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(encode(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
        assert_eq!(small_int(0), [2, 1, 0]);
        assert_eq!(small_int(128), [2, 2, 0, 128]);
        assert_eq!(
            set_of(vec![vec![2, 1, 9], vec![2, 1, 1]]),
            [0x31, 6, 2, 1, 1, 2, 1, 9]
        );
    }
}
