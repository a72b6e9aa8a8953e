//! A small BER reader and DER writer for the CMS structures smimekit handles.
//!
//! Why not a generic ASN.1 library: mail in the wild is BER (indefinite lengths, chunked
//! OCTET STRINGs), its SETs are not always sorted, and signatures are computed over the exact
//! bytes that were sent. This reader never re-encodes: every element keeps its raw bytes, so
//! signed attributes and certificates are hashed exactly as received. It handles only
//! single-byte tags (all CMS needs) and refuses anything deeper than [`MAX_DEPTH`].
//!
//! [`Reader::definite`] (and [`parse_definite`]) switch to the lenient definite-length walk
//! used for certificates and certificate containers: indefinite lengths are refused,
//! high-tag-number identifiers are accepted (`tag` is then the first identifier octet) and
//! long-form lengths may use up to `size_of::<usize>()` octets. [`read_header`] is the single
//! header decoder underneath both, also used directly by [`crate::ber`].
//!
//! The writer emits DER for the structures we build; callers keep SET OF order canonical
//! where DER requires it (signed attributes are sorted by [`set_of`]). Re-encoding what was
//! received as BER is not this module's job: [`crate::ber::ber_to_der`] is the one converter.

use std::borrow::Cow;

/// Nesting limit for hostile input ([`crate::LIMITS`]`.ber_depth`).
pub const MAX_DEPTH: usize = crate::limits::LIMITS.ber_depth;

pub const TAG_BOOLEAN: u8 = 0x01;
pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_UTF8_STRING: u8 = 0x0c;
pub const TAG_UTC_TIME: u8 = 0x17;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_BMP_STRING: u8 = 0x1e;
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

/// Which encodings a [`Reader`] accepts; children inherit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// CMS BER: indefinite lengths, single-byte tags, long-form lengths of at most 4 octets.
    Ber,
    /// Lenient definite-length walk (certificates, containers): no indefinite lengths, any
    /// tag form, long-form lengths up to `size_of::<usize>()` octets.
    Definite,
}

/// One element as received.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The first identifier octet (class, constructed bit, tag number or 0x1f for the
    /// high-tag-number form, which only [`Reader::definite`] accepts).
    pub tag: u8,
    /// The element's contents (for indefinite lengths: up to, not including, the end-of-contents).
    pub content: &'a [u8],
    /// The whole element: identifier, length, contents (and end-of-contents).
    pub raw: &'a [u8],
    pub indefinite: bool,
    depth: usize,
    mode: Mode,
}

impl<'a> Tlv<'a> {
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The number of a context-specific tag (`[n]`), if it is one.
    pub fn context(&self) -> Option<u8> {
        (self.tag & 0xc0 == 0x80).then_some(self.tag & 0x1f)
    }

    /// A reader over the children of a constructed element (same mode as this element's).
    pub fn children(&self) -> Reader<'a> {
        Reader {
            data: self.content,
            pos: 0,
            depth: self.depth + 1,
            mode: self.mode,
        }
    }

    /// The value of a string type; chunked (constructed) BER strings are concatenated.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        self.chunks(None)
    }

    /// The value of an OCTET STRING, primitive or BER-chunked; unlike [`Tlv::octets`], this
    /// element and every chunk must be tagged OCTET STRING.
    pub fn octet_string(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if self.tag & !0x20 != TAG_OCTET_STRING {
            return Err(Asn1Error::UnexpectedTag {
                expected: "OCTET STRING",
                found: self.tag,
            });
        }
        self.chunks(Some(("OCTET STRING", TAG_OCTET_STRING)))
    }

    /// Concatenates the primitive chunks of a (possibly nested) constructed string in one
    /// linear walk over its content: a nested chunk is entered in place, so strings chunked
    /// many levels deep cost one pass, not one per level. With `only`, every chunk must carry
    /// that tag (primitive, or constructed with the 0x20 bit).
    fn chunks(&self, only: Option<(&'static str, u8)>) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let data = self.content;
        let mut out = Vec::with_capacity(data.len());
        // The open nested chunks: where each ends (`None`: at its end-of-contents).
        let mut open: Vec<Option<usize>> = Vec::new();
        let mut pos = 0usize;
        loop {
            match open.last() {
                Some(Some(end)) if pos == *end => {
                    open.pop();
                    continue;
                }
                Some(Some(end)) if pos > *end => return Err(Asn1Error::Truncated { offset: pos }),
                Some(None) if data.get(pos..pos + 2) == Some(&[0, 0]) => {
                    open.pop();
                    pos += 2;
                    continue;
                }
                _ => {}
            }
            if pos >= data.len() {
                if open.is_empty() {
                    break;
                }
                return Err(Asn1Error::Truncated { offset: pos });
            }
            let h = mode_header(data.get(pos..).unwrap_or_default(), pos, self.mode)?;
            if let Some((what, tag)) = only
                && h.tag & !0x20 != tag
            {
                return Err(Asn1Error::UnexpectedTag {
                    expected: what,
                    found: h.tag,
                });
            }
            let content_start = pos + h.content_start;
            if h.tag & 0x20 != 0 {
                if self.depth + 1 + open.len() > MAX_DEPTH {
                    return Err(Asn1Error::TooDeep);
                }
                let end = match h.len {
                    Some(len) => Some(
                        content_start
                            .checked_add(len)
                            .filter(|e| *e <= data.len())
                            .ok_or(Asn1Error::Truncated { offset: pos })?,
                    ),
                    None if self.mode == Mode::Definite => {
                        return Err(Asn1Error::Invalid {
                            offset: pos,
                            detail: "indefinite length (BER) where a definite length is required"
                                .into(),
                        });
                    }
                    None => None,
                };
                open.push(end);
                pos = content_start;
            } else {
                let len = h.len.ok_or_else(|| Asn1Error::Invalid {
                    offset: pos,
                    detail: "indefinite length on a primitive element".into(),
                })?;
                let end = content_start
                    .checked_add(len)
                    .filter(|e| *e <= data.len())
                    .ok_or(Asn1Error::Truncated { offset: pos })?;
                out.extend_from_slice(data.get(content_start..end).unwrap_or_default());
                pos = end;
            }
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

    /// A small non-negative INTEGER (versions, iteration counts) that fits in a `u64`.
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
            if v >> 56 != 0 {
                return Err(Asn1Error::Invalid {
                    offset: 0,
                    detail: "INTEGER too large".into(),
                });
            }
            v = (v << 8) | u64::from(*b);
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
    mode: Mode,
}

impl<'a> Reader<'a> {
    /// A BER reader (see the module documentation).
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            depth: 0,
            mode: Mode::Ber,
        }
    }

    /// A definite-length reader (see the module documentation). Structural errors are
    /// [`Asn1Error::Truncated`] (a header cut short, at the offset of the missing octet) or
    /// [`Asn1Error::Invalid`] (invalid tag or length, indefinite length, or an element running
    /// past the end of its container).
    pub fn definite(data: &'a [u8]) -> Self {
        Self {
            mode: Mode::Definite,
            ..Self::new(data)
        }
    }

    /// Offset of the next element within the slice being read.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The first identifier octet of the next element, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// The next element, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.is_empty() {
            return Ok(None);
        }
        let (tlv, len) = parse_one(self.data, self.pos, self.depth, self.mode)?;
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

    /// All remaining elements; the first malformed one is an error.
    pub fn read_all(mut self) -> Result<Vec<Tlv<'a>>, Asn1Error> {
        let mut out = Vec::new();
        while let Some(t) = self.next()? {
            out.push(t);
        }
        Ok(out)
    }
}

/// One element header, as decoded by [`read_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the first identifier octet.
    pub start: usize,
    /// Number of identifier octets (1 unless the high-tag-number form is used).
    pub tag_len: usize,
    /// The first identifier octet (class, constructed bit, and low tag number or 0x1f).
    pub tag: u8,
    /// Offset of the first content octet.
    pub content_start: usize,
    /// Content length; `None` for the indefinite form (0x80).
    pub len: Option<usize>,
}

impl Header {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Offset just past the content, for definite lengths (`None` also if it overflows).
    pub fn end(&self) -> Option<usize> {
        self.len.and_then(|l| self.content_start.checked_add(l))
    }
}

/// Why [`read_header`] failed. Offsets are absolute positions in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The input ends inside the header at this offset.
    Truncated(usize),
    /// Reserved length octet 0xff, or a length that does not fit in `usize`.
    BadLength(usize),
    /// A high-tag-number form that never terminates or is absurdly long.
    BadTag(usize),
}

/// Decodes the header of the element starting at `pos`: any tag form, definite or indefinite
/// length. Does not check that the content fits in `input`.
pub fn read_header(input: &[u8], pos: usize) -> Result<Header, HeaderError> {
    let tag = *input.get(pos).ok_or(HeaderError::Truncated(pos))?;
    let mut p = pos + 1;
    if tag & 0x1f == 0x1f {
        // High-tag-number form: base-128 continuation octets. Four octets cover any tag
        // number anyone uses; more is treated as garbage.
        loop {
            let b = *input.get(p).ok_or(HeaderError::Truncated(p))?;
            p += 1;
            if b & 0x80 == 0 {
                break;
            }
            if p - pos > 5 {
                return Err(HeaderError::BadTag(pos));
            }
        }
    }
    let tag_len = p - pos;
    let l0 = *input.get(p).ok_or(HeaderError::Truncated(p))?;
    let len_pos = p;
    p += 1;
    let len = if l0 < 0x80 {
        Some(usize::from(l0))
    } else if l0 == 0x80 {
        None
    } else if l0 == 0xff {
        return Err(HeaderError::BadLength(len_pos));
    } else {
        let n = usize::from(l0 & 0x7f);
        if n > std::mem::size_of::<usize>() {
            return Err(HeaderError::BadLength(len_pos));
        }
        let bytes = input
            .get(p..p + n)
            .ok_or(HeaderError::Truncated(input.len()))?;
        p += n;
        let mut v: usize = 0;
        for b in bytes {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(usize::from(*b)))
                .ok_or(HeaderError::BadLength(len_pos))?;
        }
        Some(v)
    };
    Ok(Header {
        start: pos,
        tag_len,
        tag,
        content_start: p,
        len,
    })
}

/// The header of the element at the start of `rest` under `mode`'s rules; `pos` (the offset of
/// `rest` in the caller's slice) is only added to error offsets.
fn mode_header(rest: &[u8], pos: usize, mode: Mode) -> Result<Header, Asn1Error> {
    let at = |detail: &str, o: usize| Asn1Error::Invalid {
        offset: pos + o,
        detail: detail.into(),
    };
    if mode == Mode::Definite {
        return read_header(rest, 0).map_err(|e| match e {
            HeaderError::Truncated(o) => Asn1Error::Truncated { offset: pos + o },
            HeaderError::BadLength(o) => at("invalid length", o),
            HeaderError::BadTag(o) => at("invalid tag", o),
        });
    }
    // CMS BER: refuse what CMS never uses before decoding.
    let tag = *rest.first().ok_or(Asn1Error::Truncated { offset: pos })?;
    if tag & 0x1f == 0x1f {
        return Err(at("multi-byte tags are not used by CMS", 0));
    }
    let first_len = *rest
        .get(1)
        .ok_or(Asn1Error::Truncated { offset: pos + 1 })?;
    let n = usize::from(first_len & 0x7f);
    if first_len > 0x80 && n > 4 {
        return Err(at(&format!("length of {n} bytes is too large"), 0));
    }
    // With a one-octet tag and at most 4 length octets, the only failure left is running
    // out of length octets.
    read_header(rest, 0).map_err(|_| Asn1Error::Truncated { offset: pos + 2 })
}

/// Parses one element starting at `pos`; returns it and its total length.
fn parse_one(
    data: &[u8],
    pos: usize,
    depth: usize,
    mode: Mode,
) -> Result<(Tlv<'_>, usize), Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep);
    }
    let rest = &data[pos.min(data.len())..];
    let h = mode_header(rest, pos, mode)?;
    let header_len = h.content_start;
    let invalid = |detail: &str| Asn1Error::Invalid {
        offset: pos,
        detail: detail.into(),
    };
    let (content_len, indefinite) = match h.len {
        Some(len) => (len, false),
        None if mode == Mode::Definite => {
            return Err(invalid(
                "indefinite length (BER) where a definite length is required",
            ));
        }
        None if !h.constructed() => {
            return Err(invalid("indefinite length on a primitive element"));
        }
        None => {
            // Scan children until the end-of-contents marker.
            let mut off = header_len;
            loop {
                match (rest.get(off), rest.get(off + 1)) {
                    (Some(0), Some(0)) => break,
                    (Some(_), _) => {
                        let (_, n) = parse_one(rest, off, depth + 1, mode)?;
                        off += n;
                    }
                    (None, _) => return Err(Asn1Error::Truncated { offset: pos + off }),
                }
            }
            (off - header_len, true)
        }
    };
    let overrun = || match mode {
        Mode::Ber => Asn1Error::Truncated { offset: pos },
        Mode::Definite => invalid("element length runs past the end of its container"),
    };
    let end = header_len.checked_add(content_len).ok_or_else(overrun)?;
    let total = if indefinite { end + 2 } else { end };
    if total > rest.len() {
        return Err(overrun());
    }
    Ok((
        Tlv {
            tag: h.tag,
            content: &rest[header_len..end],
            raw: &rest[..total],
            indefinite,
            depth,
            mode,
        },
        total,
    ))
}

/// Parses exactly one element covering all of `data` (trailing zero padding is tolerated).
pub fn parse_single(data: &[u8]) -> Result<Tlv<'_>, Asn1Error> {
    let (tlv, len) = parse_one(data, 0, 0, Mode::Ber)?;
    if data[len..].iter().any(|b| *b != 0) {
        return Err(Asn1Error::Invalid {
            offset: len,
            detail: format!("{} bytes of trailing data", data.len() - len),
        });
    }
    Ok(tlv)
}

/// Parses exactly one definite-length element (see [`Reader::definite`]) covering all of
/// `data`; any trailing byte is an error.
pub fn parse_definite(data: &[u8]) -> Result<Tlv<'_>, Asn1Error> {
    let (tlv, len) = parse_one(data, 0, 0, Mode::Definite)?;
    if len != data.len() {
        return Err(Asn1Error::Invalid {
            offset: len,
            detail: "trailing bytes after the element".into(),
        });
    }
    Ok(tlv)
}

// ---- writer ----

/// Appends a DER length (minimal form).
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in 7 bits, checked just above.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        // At most size_of::<usize>() octets, so the count fits in the low 7 bits.
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One DER element.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_tlv(&mut out, tag, content);
    out
}

/// Appends one DER element with a one-octet tag.
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
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

    #[test]
    fn small_uint_limits() {
        let int = |c: &[u8]| encode(TAG_INTEGER, c);
        let v = int(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(parse_single(&v).unwrap().small_uint().unwrap(), u64::MAX);
        let v = int(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(parse_single(&v).unwrap().small_uint().is_err());
        let v = int(&[0x80]);
        assert!(parse_single(&v).unwrap().small_uint().is_err());
    }

    /// Chunks nested to the depth limit are read in one pass, and agree with a walk by hand.
    #[test]
    fn nested_chunks_are_concatenated() {
        // 60 levels of indefinite constructed OCTET STRINGs, each level also holding a chunk
        // before and a definite constructed chunk after its nested one.
        let depth = 60;
        let mut v = Vec::new();
        let mut want = Vec::new();
        for i in 0..depth {
            v.extend_from_slice(&[0x24, 0x80, 0x04, 0x01, i as u8]);
            want.push(i as u8);
        }
        let mut tail = Vec::new();
        for i in (0..depth).rev() {
            v.extend_from_slice(&[0x24, 0x03, 0x04, 0x01, 0x80 | i as u8, 0, 0]);
            tail.push(0x80 | i as u8);
        }
        want.extend(tail);
        let t = parse_single(&v).unwrap();
        assert_eq!(&*t.octets().unwrap(), &want[..]);
        assert_eq!(&*t.octet_string().unwrap(), &want[..]);
        // A chunk running past its parent, a missing end-of-contents, and a wrong chunk tag.
        let past = [0x24, 0x05, 0x24, 0x05, 0x04, 0x01, b'a'];
        assert!(
            Reader::new(&past).next().is_err() || parse_single(&past).unwrap().octets().is_err()
        );
        let open_end = [0x24, 0x06, 0x24, 0x80, 0x04, 0x01, b'a', 0x00];
        assert!(parse_single(&open_end).and_then(|t| t.octets()).is_err());
        let bad = [0x24, 0x05, 0x24, 0x03, 0x0c, 0x01, b'a'];
        let t = parse_single(&bad).unwrap();
        assert_eq!(&*t.octets().unwrap(), b"a");
        assert!(t.octet_string().is_err());
        // Deeper than the limit counts from the element's own depth.
        let mut deep = Vec::new();
        for _ in 0..MAX_DEPTH + 1 {
            deep.extend_from_slice(&[0x24, 0x80]);
        }
        deep.extend_from_slice(&[0x04, 0x00]);
        deep.extend(std::iter::repeat_n(0u8, 2 * (MAX_DEPTH + 1)));
        assert!(parse_single(&deep).and_then(|t| t.octets()).is_err());
    }

    #[test]
    fn octet_string_requires_octet_string_chunks() {
        let ok = [
            0x24, 0x80, 0x04, 0x01, b'a', 0x24, 0x03, 0x04, 0x01, b'b', 0, 0,
        ];
        assert_eq!(&*parse_single(&ok).unwrap().octet_string().unwrap(), b"ab");
        let bad = [0x24, 0x03, 0x0c, 0x01, b'a'];
        let t = parse_single(&bad).unwrap();
        assert_eq!(&*t.octets().unwrap(), b"a");
        assert!(t.octet_string().is_err());
        assert!(
            parse_single(&[0x02, 0x01, 0x00])
                .unwrap()
                .octet_string()
                .is_err()
        );
    }

    #[test]
    fn reads_short_long_and_indefinite_headers() {
        let h = read_header(&[0x30, 0x03, 1, 2, 3], 0).unwrap();
        assert_eq!((h.tag_len, h.content_start, h.len), (1, 2, Some(3)));
        let h = read_header(&[0x04, 0x82, 0x01, 0x00], 0).unwrap();
        assert_eq!((h.content_start, h.len), (4, Some(256)));
        let h = read_header(&[0x30, 0x80], 0).unwrap();
        assert_eq!(h.len, None);
        let h = read_header(&[0x9f, 0x81, 0x01, 0x00], 0).unwrap();
        assert_eq!((h.tag_len, h.len), (3, Some(0)));
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(read_header(&[], 0), Err(HeaderError::Truncated(0)));
        assert_eq!(read_header(&[0x30], 0), Err(HeaderError::Truncated(1)));
        assert_eq!(
            read_header(&[0x30, 0xff], 0),
            Err(HeaderError::BadLength(1))
        );
        assert!(matches!(
            read_header(&[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0),
            Err(HeaderError::BadLength(1))
        ));
        assert!(matches!(
            read_header(&[0x30, 0x82, 1], 0),
            Err(HeaderError::Truncated(_))
        ));
        assert!(matches!(
            read_header(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 0], 0),
            Err(HeaderError::BadTag(0))
        ));
    }

    #[test]
    fn definite_mode() {
        // High tag numbers and 8-octet lengths are read; children inherit the mode.
        let v = [
            0x30, 0x88, 0, 0, 0, 0, 0, 0, 0, 5, 0x9f, 0x81, 0x01, 0x01, 0xaa,
        ];
        let t = parse_definite(&v).unwrap();
        let mut r = t.children();
        assert_eq!(r.position(), 0);
        let hi = r.read("high tag").unwrap();
        assert_eq!((hi.tag, hi.content, hi.raw.len()), (0x9f, &[0xaa][..], 5));
        assert_eq!(r.position(), 5);
        assert!(r.is_empty());
        assert!(parse_single(&v).is_err());
        let text = |d: &[u8]| parse_definite(d).unwrap_err().to_string();
        assert_eq!(
            text(&[0x30, 0x80, 0, 0]),
            "offset 0: indefinite length (BER) where a definite length is required"
        );
        assert_eq!(
            text(&[0x30, 0x05, 0x00]),
            "offset 0: element length runs past the end of its container"
        );
        assert_eq!(
            text(&[0x05, 0x00, 0x00]),
            "offset 2: trailing bytes after the element"
        );
        assert_eq!(text(&[0x30]), "offset 1: data ends inside an element");
        assert_eq!(text(&[0x30, 0xff]), "offset 1: invalid length");
        let mut r = Reader::definite(&[0x05, 0x00, 0x30, 0x04, 0x02, 0x01, 0x00]);
        assert!(r.next().unwrap().is_some());
        assert_eq!(
            r.next().unwrap_err(),
            Asn1Error::Invalid {
                offset: 2,
                detail: "element length runs past the end of its container".into()
            }
        );
        // The definite walk accepts multi-octet identifiers.
        let c = [0xbf, 0x81, 0x01, 0x03, 0x02, 0x01, 0x07];
        assert_eq!(parse_definite(&c).unwrap().raw, c);
    }

    #[test]
    fn push_len_is_minimal() {
        for (len, want) in [
            (0usize, vec![0u8]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x80]),
            (0x1234, vec![0x82, 0x12, 0x34]),
        ] {
            let mut v = Vec::new();
            push_len(&mut v, len);
            assert_eq!(v, want);
        }
        let mut v = vec![9];
        push_tlv(&mut v, 0x04, &[1]);
        assert_eq!(v, [9, 0x04, 0x01, 0x01]);
    }
}
