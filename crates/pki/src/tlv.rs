//! Minimal, allocation-free reader for ASN.1 tag-length-value headers over byte slices.
//!
//! Shared by the [`crate::ber`] converter (which accepts indefinite lengths) and the lenient
//! DER walkers in [`crate::container`] and [`crate::certinfo`] (which do not). It only splits
//! bytes into elements; it never interprets values and never allocates, so it is safe on
//! hostile input: every index is bounds-checked and every length is checked against the
//! remaining input before use.

/// The "constructed" bit of the first identifier octet.
pub(crate) const CONSTRUCTED: u8 = 0x20;

/// Why a header could not be read. Offsets are absolute positions in the caller's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The input ends inside the header at this offset.
    Truncated(usize),
    /// Reserved length octet 0xFF, or a length that does not fit in `usize`.
    BadLength(usize),
    /// A high-tag-number form that never terminates or is absurdly long.
    BadTag(usize),
}

/// One element header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Offset of the first identifier octet.
    pub start: usize,
    /// Number of identifier octets (1 unless the high-tag-number form is used).
    pub tag_len: usize,
    /// The first identifier octet (class, constructed bit, and low tag number or 0x1F).
    pub tag0: u8,
    /// Offset of the first content octet.
    pub content_start: usize,
    /// Content length; `None` for the indefinite form (0x80).
    pub len: Option<usize>,
}

impl Header {
    pub fn constructed(&self) -> bool {
        self.tag0 & CONSTRUCTED != 0
    }

    /// Offset just past the content, for definite lengths.
    pub fn end(&self) -> Option<usize> {
        self.len.and_then(|l| self.content_start.checked_add(l))
    }
}

/// Reads the header of the element starting at `pos`. Does not check that the content fits.
pub(crate) fn read_header(input: &[u8], pos: usize) -> Result<Header, HeaderError> {
    let tag0 = *input.get(pos).ok_or(HeaderError::Truncated(pos))?;
    let mut p = pos + 1;
    if tag0 & 0x1F == 0x1F {
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
    } else if l0 == 0xFF {
        return Err(HeaderError::BadLength(len_pos));
    } else {
        let n = usize::from(l0 & 0x7F);
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
        tag0,
        content_start: p,
        len,
    })
}

/// A definite-length element: its header and the slices of its content and whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag0: u8,
    /// Offset of the element within the slice it was read from.
    pub offset: usize,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Why a definite-length walk failed; `offset` is relative to the walked slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalkError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.reason, self.offset)
    }
}

/// Iterates over consecutive definite-length elements of a slice (DER, or BER without
/// indefinite lengths). Yields an error and stops at the first malformed element.
#[derive(Debug, Clone)]
pub(crate) struct Elements<'a> {
    input: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Elements<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            failed: false,
        }
    }

    /// Reads the next element, or `Ok(None)` at the end of the input.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, WalkError> {
        if self.failed || self.pos >= self.input.len() {
            return Ok(None);
        }
        match read_tlv(self.input, self.pos) {
            Ok(t) => {
                self.pos = t.offset + t.raw.len();
                Ok(Some(t))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Reads the next element, which must exist.
    pub fn require(&mut self, what: &'static str) -> Result<Tlv<'a>, WalkError> {
        let at = self.pos;
        self.next_tlv()?.ok_or(WalkError {
            offset: at,
            reason: what,
        })
    }

    /// The next element if its first identifier octet is `tag0`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag0: u8) -> Result<Option<Tlv<'a>>, WalkError> {
        if self.input.get(self.pos) == Some(&tag0) {
            self.next_tlv()
        } else {
            Ok(None)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.input.len()
    }
}

/// Reads one definite-length element at `pos` and checks that it fits in `input`.
pub(crate) fn read_tlv(input: &[u8], pos: usize) -> Result<Tlv<'_>, WalkError> {
    let h = read_header(input, pos).map_err(|e| match e {
        HeaderError::Truncated(o) => WalkError {
            offset: o,
            reason: "truncated element header",
        },
        HeaderError::BadLength(o) => WalkError {
            offset: o,
            reason: "invalid length",
        },
        HeaderError::BadTag(o) => WalkError {
            offset: o,
            reason: "invalid tag",
        },
    })?;
    let Some(end) = h.end() else {
        return Err(WalkError {
            offset: pos,
            reason: "indefinite length (BER) where a definite length is required",
        });
    };
    if end > input.len() {
        return Err(WalkError {
            offset: pos,
            reason: "element length runs past the end of its container",
        });
    }
    Ok(Tlv {
        tag0: h.tag0,
        offset: pos,
        content: &input[h.content_start..end],
        raw: &input[pos..end],
    })
}

/// Reads a single element that must span all of `input`.
pub(crate) fn read_single(input: &[u8]) -> Result<Tlv<'_>, WalkError> {
    let t = read_tlv(input, 0)?;
    if t.raw.len() != input.len() {
        return Err(WalkError {
            offset: t.raw.len(),
            reason: "trailing bytes after the element",
        });
    }
    Ok(t)
}

/// Appends a DER length (minimal form).
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in 7 bits, checked just above.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let n = bytes.len() - skip;
        // n <= size_of::<usize>() <= 16, so this fits in the low 7 bits.
        out.push(0x80 | n as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends a complete element with a one-octet tag.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag0: u8, content: &[u8]) {
    out.push(tag0);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_long_and_indefinite_headers() {
        let h = read_header(&[0x30, 0x03, 1, 2, 3], 0).unwrap();
        assert_eq!((h.tag_len, h.content_start, h.len), (1, 2, Some(3)));
        let h = read_header(&[0x04, 0x82, 0x01, 0x00], 0).unwrap();
        assert_eq!((h.content_start, h.len), (4, Some(256)));
        let h = read_header(&[0x30, 0x80], 0).unwrap();
        assert_eq!(h.len, None);
        let h = read_header(&[0x9F, 0x81, 0x01, 0x00], 0).unwrap();
        assert_eq!((h.tag_len, h.len), (3, Some(0)));
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(read_header(&[], 0), Err(HeaderError::Truncated(0)));
        assert_eq!(read_header(&[0x30], 0), Err(HeaderError::Truncated(1)));
        assert_eq!(
            read_header(&[0x30, 0xFF], 0),
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
            read_header(&[0x1F, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 0], 0),
            Err(HeaderError::BadTag(0))
        ));
        assert!(read_tlv(&[0x30, 0x05, 1], 0).is_err());
        assert!(read_single(&[0x05, 0x00, 0x00]).is_err());
    }

    #[test]
    fn push_len_is_minimal() {
        for (len, want) in [
            (0usize, vec![0u8]),
            (0x7F, vec![0x7F]),
            (0x80, vec![0x81, 0x80]),
            (0x1234, vec![0x82, 0x12, 0x34]),
        ] {
            let mut v = Vec::new();
            push_len(&mut v, len);
            assert_eq!(v, want);
        }
    }
}
