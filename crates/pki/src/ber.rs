//! BER → DER normalisation: the one converter of the workspace.
//!
//! Windows, Bouncy Castle and streaming CMS writers emit BER: indefinite lengths (`0x80` …
//! `00 00`) and strings split into chunks (constructed OCTET STRINGs, tag `0x24`, above all).
//! DER parsers (the RustCrypto `der` crate included) reject both, and a signature over signed
//! attributes covers their DER form. [`ber_to_der`] rewrites exactly those two things and
//! nothing else:
//!
//! * every indefinite length becomes the minimal definite length;
//! * every universal string type in constructed form (OCTET STRING `0x24`, BIT STRING `0x23`,
//!   the character and time string types; definite or indefinite, nested to any depth)
//!   becomes its primitive form holding the concatenated chunks (a BIT STRING keeps the
//!   unused-bits count of its last chunk);
//! * everything else — including definite-length elements that contain nothing to rewrite,
//!   non-minimal length encodings, primitive values, and certificates embedded in a message —
//!   is copied byte-for-byte, so signatures over embedded DER stay valid.
//!
//! The container reader runs it on PKCS#7 files; the message layer runs it on the
//! certificates of a SignedData and on signed or authenticated attributes sent in BER
//! ([`crate::asn1::Tlv::raw`] is the input there).
//!
//! What it deliberately does **not** do: it does not sort SET OF, does not fix non-minimal
//! INTEGERs or BOOLEAN encodings, and does not touch constructed forms of IMPLICIT-tagged
//! strings such as CMS `encryptedContent [0]` (the converter cannot know the underlying type
//! of a context-specific tag). For the latter, read the content of the (now definite-length)
//! constructed `[0]` with [`concat_octet_chunks`].
//!
//! Nesting is limited to [`MAX_DEPTH`] levels so hostile input cannot exhaust the stack.

use crate::asn1::{self, HeaderError, Reader};

/// Maximum nesting of constructed elements accepted by [`ber_to_der`].
pub const MAX_DEPTH: usize = crate::limits::LIMITS.ber_depth;

/// Why a BER blob could not be converted. Offsets are byte positions in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    #[error("empty input")]
    Empty,
    #[error("offset {offset}: input ends inside an element (truncated)")]
    Truncated { offset: usize },
    #[error("offset {offset}: invalid length encoding")]
    BadLength { offset: usize },
    #[error("offset {offset}: invalid tag encoding")]
    BadTag { offset: usize },
    #[error("offset {offset}: element length {len} runs past the end of its container ({end})")]
    Overrun {
        offset: usize,
        len: usize,
        end: usize,
    },
    #[error("offset {offset}: primitive element with indefinite length")]
    IndefinitePrimitive { offset: usize },
    #[error("offset {offset}: end-of-contents marker outside an indefinite-length element")]
    UnexpectedEoc { offset: usize },
    #[error("offset {offset}: indefinite-length element has no end-of-contents marker")]
    MissingEoc { offset: usize },
    #[error(
        "offset {offset}: chunk of a constructed string is not a string of its type (tag 0x{tag:02x})"
    )]
    BadChunk { offset: usize, tag: u8 },
    #[error(
        "offset {offset}: chunk of a constructed BIT STRING has no unused-bits octet, more than 7 unused bits, or unused bits before the last chunk"
    )]
    BadBitChunk { offset: usize },
    #[error("offset {offset}: nesting deeper than {MAX_DEPTH} levels")]
    TooDeep { offset: usize },
    #[error("offset {offset}: {count} trailing bytes after the top-level element")]
    TrailingData { offset: usize, count: usize },
}

fn header_error(e: HeaderError) -> BerError {
    match e {
        HeaderError::Truncated(offset) => BerError::Truncated { offset },
        HeaderError::BadLength(offset) => BerError::BadLength { offset },
        HeaderError::BadTag(offset) => BerError::BadTag { offset },
    }
}

/// Converts one BER-encoded element (the whole input) to DER as described in the module docs.
/// DER input comes back unchanged.
pub fn ber_to_der(input: &[u8]) -> Result<Vec<u8>, BerError> {
    if input.is_empty() {
        return Err(BerError::Empty);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut c = Converter { input };
    let (end, _) = c.element(0, input.len(), &mut out, 0)?;
    if end != input.len() {
        return Err(BerError::TrailingData {
            offset: end,
            count: input.len() - end,
        });
    }
    Ok(out)
}

/// True if `input` contains anything [`ber_to_der`] would rewrite (cheap pre-check callers
/// can use to keep borrowed DER). Malformed input also returns `true` so the caller gets the
/// converter's precise error.
pub fn needs_conversion(input: &[u8]) -> bool {
    fn scan(input: &[u8], depth: usize) -> Result<bool, ()> {
        let mut els = Reader::definite(input);
        while let Some(t) = els.next().map_err(|_| ())? {
            if StringKind::of(t.tag).is_some() {
                return Ok(true);
            }
            if t.is_constructed() {
                if depth >= MAX_DEPTH {
                    return Err(());
                }
                if scan(t.content, depth + 1)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
    // Indefinite lengths make the definite walker fail, which reports `true` as well.
    scan(input, 0).unwrap_or(true)
}

/// Concatenates the content of a constructed string encoding: `content` is a sequence of
/// OCTET STRING chunks (primitive `0x04`, or constructed `0x24` nested), all definite-length
/// (run [`ber_to_der`] first). Use it for IMPLICIT-tagged OCTET STRINGs in constructed form,
/// e.g. CMS `encryptedContent [0]` written by Windows or Bouncy Castle.
pub fn concat_octet_chunks(content: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut acc = Chunks::new(StringKind::Octets);
    let mut c = Converter { input: content };
    c.chunks(0, Some(content.len()), &mut acc, 0)?;
    Ok(acc.data)
}

/// The universal string types whose constructed form [`ber_to_der`] flattens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringKind {
    /// OCTET STRING: chunks are OCTET STRINGs.
    Octets,
    /// BIT STRING: chunks are BIT STRINGs, each with its unused-bits octet.
    Bits,
    /// A character or time string (the primitive tag): X.690 8.23 encodes it as an
    /// OCTET STRING, so chunks are OCTET STRINGs; chunks of the string's own type are
    /// accepted too.
    Text(u8),
}

impl StringKind {
    /// The kind of a constructed universal string tag (one identifier octet).
    fn of(tag: u8) -> Option<Self> {
        match tag {
            0x24 => Some(Self::Octets),
            0x23 => Some(Self::Bits),
            // UTF8String, NumericString … BMPString, and UTCTime/GeneralizedTime.
            0x2c | 0x32..=0x3c | 0x3e => Some(Self::Text(tag & !0x20)),
            _ => None,
        }
    }

    fn primitive_tag(self) -> u8 {
        match self {
            Self::Octets => 0x04,
            Self::Bits => 0x03,
            Self::Text(t) => t,
        }
    }

    /// Whether a chunk with this (primitive or constructed) tag belongs to the string.
    fn takes(self, tag: u8) -> bool {
        let t = tag & !0x20;
        match self {
            Self::Octets => t == 0x04,
            Self::Bits => t == 0x03,
            Self::Text(own) => t == 0x04 || t == own,
        }
    }
}

/// The concatenated data of a constructed string's chunks.
struct Chunks {
    kind: StringKind,
    data: Vec<u8>,
    /// BIT STRING: the unused-bits octet of the last chunk read, and where that chunk was.
    unused: Option<(u8, usize)>,
}

impl Chunks {
    fn new(kind: StringKind) -> Self {
        Self {
            kind,
            data: Vec::new(),
            unused: None,
        }
    }

    /// Appends the content of a primitive chunk starting at `offset`.
    fn push(&mut self, content: &[u8], offset: usize) -> Result<(), BerError> {
        if self.kind != StringKind::Bits {
            self.data.extend_from_slice(content);
            return Ok(());
        }
        // Only the last chunk may leave bits unused.
        if let Some((u, at)) = self.unused
            && u != 0
        {
            return Err(BerError::BadBitChunk { offset: at });
        }
        match content.split_first() {
            Some((&u, bits)) if u <= 7 && (u == 0 || !bits.is_empty()) => {
                self.data.extend_from_slice(bits);
                self.unused = Some((u, offset));
                Ok(())
            }
            _ => Err(BerError::BadBitChunk { offset }),
        }
    }

    /// The primitive element's content.
    fn into_content(self) -> Vec<u8> {
        match self.kind {
            StringKind::Bits => {
                let mut out = Vec::with_capacity(self.data.len() + 1);
                out.push(self.unused.map_or(0, |(u, _)| u));
                out.extend_from_slice(&self.data);
                out
            }
            _ => self.data,
        }
    }
}

struct Converter<'a> {
    input: &'a [u8],
}

impl Converter<'_> {
    /// Converts the element at `pos`, which must end by `limit`. Returns the offset after it
    /// and whether anything was rewritten.
    fn element(
        &mut self,
        pos: usize,
        limit: usize,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(usize, bool), BerError> {
        let h = asn1::read_header(&self.input[..limit], pos).map_err(header_error)?;
        if h.tag == 0 && h.tag_len == 1 {
            return Err(BerError::UnexpectedEoc { offset: pos });
        }
        if !h.constructed() {
            let Some(len) = h.len else {
                return Err(BerError::IndefinitePrimitive { offset: pos });
            };
            let end = self.definite_end(pos, h.content_start, len, limit)?;
            out.extend_from_slice(&self.input[pos..end]);
            return Ok((end, false));
        }
        if depth >= MAX_DEPTH {
            return Err(BerError::TooDeep { offset: pos });
        }
        if let Some(kind) = StringKind::of(h.tag) {
            let content_limit = match h.len {
                Some(len) => Some(self.definite_end(pos, h.content_start, len, limit)?),
                None => None,
            };
            let mut acc = Chunks::new(kind);
            let end =
                self.chunks_until(h.content_start, content_limit, limit, &mut acc, depth + 1)?;
            asn1::push_tlv(out, kind.primitive_tag(), &acc.into_content());
            return Ok((end, true));
        }
        let mark = out.len();
        let (end, changed) = match h.len {
            Some(len) => {
                let end = self.definite_end(pos, h.content_start, len, limit)?;
                let mut p = h.content_start;
                let mut changed = false;
                while p < end {
                    let (next, c) = self.element(p, end, out, depth + 1)?;
                    changed |= c;
                    p = next;
                }
                (end, changed)
            }
            None => {
                let mut p = h.content_start;
                loop {
                    if self.is_eoc(p, limit) {
                        break (p + 2, true);
                    }
                    if p >= limit {
                        return Err(BerError::MissingEoc { offset: pos });
                    }
                    let (next, _) = self.element(p, limit, out, depth + 1)?;
                    p = next;
                }
            }
        };
        // Splice the header in front of the converted content: the original header when
        // nothing changed (keeps non-minimal lengths byte-identical), a fresh one otherwise.
        let header: Vec<u8> = if changed {
            let mut hdr = self.input[pos..pos + h.tag_len].to_vec();
            asn1::push_len(&mut hdr, out.len() - mark);
            hdr
        } else {
            self.input[pos..h.content_start].to_vec()
        };
        out.splice(mark..mark, header);
        Ok((end, changed))
    }

    fn is_eoc(&self, p: usize, limit: usize) -> bool {
        p + 2 <= limit && self.input[p] == 0 && self.input[p + 1] == 0
    }

    fn definite_end(
        &self,
        pos: usize,
        content_start: usize,
        len: usize,
        limit: usize,
    ) -> Result<usize, BerError> {
        match content_start.checked_add(len) {
            Some(end) if end <= limit => Ok(end),
            _ => Err(BerError::Overrun {
                offset: pos,
                len,
                end: limit,
            }),
        }
    }

    /// Appends the data of string chunks from `pos` up to `content_limit` (definite) or
    /// up to and including an end-of-contents marker (indefinite, bounded by `limit`).
    fn chunks_until(
        &mut self,
        pos: usize,
        content_limit: Option<usize>,
        limit: usize,
        data: &mut Chunks,
        depth: usize,
    ) -> Result<usize, BerError> {
        match content_limit {
            Some(end) => {
                self.chunks(pos, Some(end), data, depth)?;
                Ok(end)
            }
            None => {
                let mut p = pos;
                loop {
                    if self.is_eoc(p, limit) {
                        return Ok(p + 2);
                    }
                    if p >= limit {
                        return Err(BerError::MissingEoc { offset: pos });
                    }
                    p = self.chunk(p, limit, data, depth)?;
                }
            }
        }
    }

    fn chunks(
        &mut self,
        pos: usize,
        end: Option<usize>,
        data: &mut Chunks,
        depth: usize,
    ) -> Result<(), BerError> {
        let end = end.unwrap_or(self.input.len());
        let mut p = pos;
        while p < end {
            p = self.chunk(p, end, data, depth)?;
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        pos: usize,
        limit: usize,
        data: &mut Chunks,
        depth: usize,
    ) -> Result<usize, BerError> {
        if depth >= MAX_DEPTH {
            return Err(BerError::TooDeep { offset: pos });
        }
        let h = asn1::read_header(&self.input[..limit], pos).map_err(header_error)?;
        if h.tag_len != 1 || !data.kind.takes(h.tag) {
            return Err(BerError::BadChunk {
                offset: pos,
                tag: h.tag,
            });
        }
        if h.constructed() {
            let content_limit = match h.len {
                Some(len) => Some(self.definite_end(pos, h.content_start, len, limit)?),
                None => None,
            };
            return self.chunks_until(h.content_start, content_limit, limit, data, depth + 1);
        }
        let Some(len) = h.len else {
            return Err(BerError::IndefinitePrimitive { offset: pos });
        };
        let end = self.definite_end(pos, h.content_start, len, limit)?;
        data.push(&self.input[h.content_start..end], pos)?;
        Ok(end)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn der_is_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA];
        assert_eq!(ber_to_der(&der).unwrap(), der);
        assert!(!needs_conversion(&der));
    }

    #[test]
    fn non_minimal_definite_lengths_are_kept() {
        // SEQUENCE with a long-form length 0x81 0x03 (non-minimal), content unchanged.
        let ber = [0x30, 0x81, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(ber_to_der(&ber).unwrap(), ber);
    }

    #[test]
    fn indefinite_lengths_become_definite() {
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0xA0, 0x80, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let der = [0x30, 0x07, 0x02, 0x01, 0x05, 0xA0, 0x02, 0x05, 0x00];
        assert_eq!(ber_to_der(&ber).unwrap(), der);
        assert!(needs_conversion(&ber));
    }

    #[test]
    fn constructed_octet_strings_are_concatenated() {
        // Indefinite 0x24 with a nested definite 0x24 chunk.
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x03, 0x04, 0x01, b'c', 0x00,
            0x00, 0x00, 0x00,
        ];
        let der = [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c'];
        assert_eq!(ber_to_der(&ber).unwrap(), der);
        // Empty constructed octet string.
        assert_eq!(ber_to_der(&[0x24, 0x80, 0x00, 0x00]).unwrap(), [0x04, 0x00]);
        assert_eq!(ber_to_der(&[0x24, 0x00]).unwrap(), [0x04, 0x00]);
    }

    #[test]
    fn other_constructed_strings_become_primitive() {
        // BIT STRING in two chunks: the first with 0 unused bits, the last with 4.
        let ber = [
            0x23, 0x80, 0x03, 0x02, 0x00, 0xAB, 0x03, 0x02, 0x04, 0xC0, 0x00, 0x00,
        ];
        assert_eq!(ber_to_der(&ber).unwrap(), [0x03, 0x03, 0x04, 0xAB, 0xC0]);
        assert!(needs_conversion(&[0x23, 0x03, 0x03, 0x01, 0x00]));
        assert_eq!(ber_to_der(&[0x23, 0x00]).unwrap(), [0x03, 0x01, 0x00]);
        // Unused bits before the last chunk, and a chunk without its unused-bits octet.
        assert_eq!(
            ber_to_der(&[0x23, 0x08, 0x03, 0x02, 0x04, 0xF0, 0x03, 0x02, 0x00, 0x01]),
            Err(BerError::BadBitChunk { offset: 2 })
        );
        assert_eq!(
            ber_to_der(&[0x23, 0x02, 0x03, 0x00]),
            Err(BerError::BadBitChunk { offset: 2 })
        );
        // UTF8String and UTCTime chunked as OCTET STRINGs (X.690 8.23), or as their own type.
        let utf8 = [0x2c, 0x80, 0x04, 0x01, b'h', 0x0c, 0x01, b'i', 0x00, 0x00];
        assert_eq!(ber_to_der(&utf8).unwrap(), [0x0c, 0x02, b'h', b'i']);
        assert_eq!(
            ber_to_der(&[0x37, 0x05, 0x04, 0x03, b'9', b'9', b'Z']).unwrap(),
            [0x17, 0x03, b'9', b'9', b'Z']
        );
        // An INTEGER is no chunk of any string.
        assert_eq!(
            ber_to_der(&[0x2c, 0x03, 0x02, 0x01, 0x00]),
            Err(BerError::BadChunk {
                offset: 2,
                tag: 0x02
            })
        );
    }

    #[test]
    fn signed_attributes_in_ber_become_der() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            ber_to_der(&ber).unwrap(),
            [0x30, 0x08, 0x02, 0x01, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
        // The reader's raw bytes of an indefinite element are a whole input.
        let top = crate::asn1::parse_single(&ber).unwrap();
        assert_eq!(ber_to_der(top.raw).unwrap(), ber_to_der(&ber).unwrap());
        // Multi-octet identifiers are kept.
        let c = [0xbf, 0x81, 0x01, 0x03, 0x02, 0x01, 0x07];
        assert_eq!(ber_to_der(&c).unwrap(), c);
    }

    #[test]
    fn outer_lengths_grow_when_needed() {
        // 200 bytes of chunks inside an indefinite SEQUENCE: result needs a long-form length.
        let mut ber = vec![0x30, 0x80, 0x24, 0x80];
        for _ in 0..4 {
            ber.extend_from_slice(&[0x04, 50]);
            ber.extend_from_slice(&[0x55; 50]);
        }
        ber.extend_from_slice(&[0, 0, 0, 0]);
        let der = ber_to_der(&ber).unwrap();
        assert_eq!(&der[..6], &[0x30, 0x81, 0xCB, 0x04, 0x81, 0xC8]);
        assert_eq!(der.len(), 6 + 200);
    }

    #[test]
    fn implicit_constructed_strings_and_helper() {
        let ber = [0xA0, 0x80, 0x04, 0x01, b'x', 0x04, 0x01, b'y', 0x00, 0x00];
        let der = ber_to_der(&ber).unwrap();
        assert_eq!(der, [0xA0, 0x06, 0x04, 0x01, b'x', 0x04, 0x01, b'y']);
        assert_eq!(concat_octet_chunks(&der[2..]).unwrap(), b"xy");
        assert!(matches!(
            concat_octet_chunks(&[0x02, 0x01, 0x00]),
            Err(BerError::BadChunk {
                offset: 0,
                tag: 0x02
            })
        ));
    }

    #[test]
    fn malformed_input_is_rejected_with_offsets() {
        assert_eq!(ber_to_der(&[]), Err(BerError::Empty));
        assert_eq!(
            ber_to_der(&[0x30, 0x80, 0x05, 0x00]),
            Err(BerError::MissingEoc { offset: 0 })
        );
        assert_eq!(
            ber_to_der(&[0x04, 0x80, 0x00, 0x00]),
            Err(BerError::IndefinitePrimitive { offset: 0 })
        );
        assert_eq!(
            ber_to_der(&[0x00, 0x00]),
            Err(BerError::UnexpectedEoc { offset: 0 })
        );
        assert!(matches!(
            ber_to_der(&[0x30, 0x05, 0x00]),
            Err(BerError::Overrun { offset: 0, .. })
        ));
        assert!(matches!(
            ber_to_der(&[0x30, 0x03, 0x02, 0x05, 0x00]),
            Err(BerError::Overrun { offset: 2, .. })
        ));
        assert!(matches!(
            ber_to_der(&[0x24, 0x03, 0x02, 0x01, 0x00]),
            Err(BerError::BadChunk {
                offset: 2,
                tag: 0x02
            })
        ));
        assert_eq!(
            ber_to_der(&[0x05, 0x00, 0x01]),
            Err(BerError::TrailingData {
                offset: 2,
                count: 1
            })
        );
        // An EOC inside a definite-length element.
        assert_eq!(
            ber_to_der(&[0x30, 0x02, 0x00, 0x00]),
            Err(BerError::UnexpectedEoc { offset: 2 })
        );
    }

    #[test]
    fn depth_is_limited() {
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..100 {
            deep.extend_from_slice(&[0, 0]);
        }
        assert!(matches!(ber_to_der(&deep), Err(BerError::TooDeep { .. })));
        let mut deep_chunks = Vec::new();
        for _ in 0..100 {
            deep_chunks.extend_from_slice(&[0x24, 0x80]);
        }
        assert!(matches!(
            ber_to_der(&deep_chunks),
            Err(BerError::TooDeep { .. })
        ));
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0, 0]);
        }
        assert!(ber_to_der(&ok).is_ok());
    }

    #[test]
    fn never_panics_on_truncations_and_mutations() {
        let ber = [
            0x30, 0x80, 0x06, 0x03, 0x2A, 0x03, 0x04, 0xA0, 0x80, 0x24, 0x80, 0x04, 0x02, 1, 2,
            0x04, 0x81, 0x01, 3, 0x00, 0x00, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00,
        ];
        assert!(ber_to_der(&ber).is_ok());
        for cut in 0..ber.len() {
            let _ = ber_to_der(&ber[..cut]);
            let _ = needs_conversion(&ber[..cut]);
        }
        for i in 0..ber.len() {
            for v in [0x00, 0x01, 0x23, 0x24, 0x2c, 0x30, 0x7F, 0x80, 0x84, 0xFF] {
                let mut m = ber.to_vec();
                m[i] = v;
                let _ = ber_to_der(&m);
                let _ = concat_octet_chunks(&m);
            }
        }
    }
}
