//! The MIME layer of S/MIME: just enough RFC 5322 / RFC 2045-2049 to find, take apart and build
//! S/MIME entities, byte-exactly.
//!
//! What it does:
//! * [`parse`] splits an entity into its header fields and raw body without copying the body.
//!   CRLF, LF-only and mixed line ends are accepted; every slice handed out is the exact bytes of
//!   the input (nothing is re-encoded or normalized behind the caller's back).
//! * [`ContentType`] parameters, [`Entity::transfer_encoding`], [`Entity::decoded_body`]
//!   (base64, quoted-printable, identity encodings).
//! * [`multipart_parts`]: the raw bytes of each top-level body part (RFC 2046 §5.1.1: the line
//!   break before a delimiter belongs to the delimiter, so it is not part of the body part). This
//!   is what a detached signature covers, after [`canonicalize_crlf`].
//! * [`smime_kind`] / [`is_smime_type`]: recognizes multipart/signed, application/(x-)pkcs7-mime,
//!   application/(x-)pkcs7-signature, and Outlook's application/octet-stream + `*.p7m`.
//! * Builders that always write CRLF, 7-bit output: [`base64_lines`], [`build_pkcs7_mime`],
//!   [`build_signed_multipart`], plus [`split_for_protection`] (outer envelope headers vs. inner
//!   content entity) and [`to_7bit_safe`] (re-encode an 8-bit / long-line single part entity).
//!
//! What it does not do:
//! * No RFC 2047 decoding of header values (values are returned raw, unfolded), no RFC 2231
//!   parameter continuations/charsets, no comments inside structured header values, no charset
//!   conversion of bodies. The only RFC 2047 *encoding* done is for non-ASCII `Subject`,
//!   `Comments` and `Content-Description` values handed to the builders; any other non-ASCII
//!   header value is written as given (UTF-8).
//! * No recursion: [`multipart_parts`] returns the top level only; parse each part again to go
//!   deeper. [`to_7bit_safe`] does not descend into multiparts or message/rfc822.
//! * No address parsing, no date handling, no cryptography.
//!
//! Robustness: no function here panics on any input (no `unwrap`, no panicking index/slice, no
//! unchecked arithmetic on lengths); limits are [`MAX_HEADER_BLOCK`], [`MAX_HEADER_FIELD`],
//! [`MAX_HEADER_FIELDS`] and [`MAX_PARTS`], from the one table, [`smimekit_pki::LIMITS`].
#![warn(
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used
)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use smimekit_pki::{LIMITS, LimitExceeded};

/// Largest accepted header block (all header fields of one entity), in bytes.
pub const MAX_HEADER_BLOCK: usize = LIMITS.mime_header_block;
/// Largest accepted single header field, unfolded (line breaks of folding not counted), in bytes.
pub const MAX_HEADER_FIELD: usize = LIMITS.mime_header_field;
/// Largest number of header fields in one entity.
pub const MAX_HEADER_FIELDS: usize = LIMITS.mime_header_fields;
/// Largest number of body parts [`multipart_parts`] accepts.
pub const MAX_PARTS: usize = LIMITS.mime_parts;
/// Length of the base64 lines written by [`base64_lines`] (RFC 2045 allows up to 76; 64 is what
/// OpenSSL and NSS write).
pub const BASE64_LINE_LEN: usize = 64;

/// Errors of the MIME layer. Every message names the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The input has no bytes at all.
    #[error("empty input: there is no MIME entity")]
    Empty,
    /// More than [`MAX_HEADER_FIELDS`] header fields in one entity.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The first line is neither a header field (`Name: value`) nor an empty line (e.g. raw DER or
    /// PEM was given instead of a MIME entity).
    #[error("not a MIME entity: the first line is neither a header field nor an empty line")]
    NotMime,
    /// A header block or a single header field exceeds the limits.
    #[error("header too long: {what} exceeds {limit} bytes")]
    HeaderTooLong {
        /// "header block" or "header field".
        what: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// [`multipart_parts`] was called on an entity that is not `multipart/*`.
    #[error("not a multipart entity: Content-Type is {mime_type}")]
    NotMultipart {
        /// The entity's (lowercased) media type.
        mime_type: String,
    },
    /// A multipart entity without (or with an empty) `boundary` parameter.
    #[error("multipart entity has no boundary parameter")]
    MissingBoundary,
    /// No delimiter line `--boundary` (or only a close delimiter) occurs in the body.
    #[error("multipart boundary {boundary:?} not found in the body (no body part)")]
    BoundaryNotFound {
        /// The boundary parameter value.
        boundary: String,
    },
    /// More than [`MAX_PARTS`] body parts.
    #[error("multipart body has more than {limit} parts")]
    TooManyParts {
        /// The limit ([`MAX_PARTS`]).
        limit: usize,
    },
    /// A base64 body contains something other than base64 characters, whitespace and final
    /// padding, or is truncated in the middle of a quantum.
    #[error("invalid base64 body: {detail}")]
    BadBase64 {
        /// What is wrong, with the offset.
        detail: String,
    },
    /// A Content-Transfer-Encoding this module does not decode (e.g. `x-uuencode`).
    #[error("unsupported Content-Transfer-Encoding {encoding:?}")]
    UnsupportedEncoding {
        /// The (lowercased) encoding name.
        encoding: String,
    },
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name as written (case preserved; compare case-insensitively).
    pub name: String,
    /// Field body unfolded (line breaks of folding removed, the folding whitespace kept), leading
    /// and trailing whitespace trimmed; raw text: no RFC 2047 decoding. Non-UTF-8 bytes are
    /// replaced by U+FFFD (use `raw` for the exact bytes).
    pub value: String,
    /// Exact bytes of the field, including folding and its final line end (absent only when the
    /// input ends without a line break).
    pub raw: Vec<u8>,
}

/// A parsed MIME entity (an RFC 5322 message or a body part). Borrows the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity<'a> {
    /// Header fields in order.
    pub headers: Vec<Header>,
    /// Raw header block including the empty line that ends it (when there is one).
    pub header_bytes: &'a [u8],
    /// Raw body: every byte after the empty line (empty when there is no empty line).
    pub body: &'a [u8],
    /// The whole input: `header_bytes` followed by `body`.
    pub raw: &'a [u8],
}

/// What kind of S/MIME object an entity's Content-Type announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmimeKind {
    /// `multipart/signed` with protocol `application/(x-)pkcs7-signature` or no protocol at all.
    SignedMultipart,
    /// `application/pkcs7-mime` or `application/x-pkcs7-mime` (any or no smime-type), or
    /// `application/octet-stream` named `*.p7m`.
    Pkcs7Mime,
    /// `application/pkcs7-signature` or `application/x-pkcs7-signature` (or octet-stream `*.p7s`).
    Pkcs7Signature,
}

/// A parsed Content-Type (also used for Content-Disposition: `mime_type` then holds the
/// lowercased disposition type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// Lowercased `type/subtype`, e.g. `multipart/signed`.
    pub mime_type: String,
    /// Parameters in order: lowercased name, value with quotes removed and backslash escapes
    /// resolved.
    pub params: Vec<(String, String)>,
}

impl Default for ContentType {
    /// `text/plain; charset=us-ascii` (RFC 2045 §5.2).
    fn default() -> Self {
        ContentType {
            mime_type: "text/plain".to_owned(),
            params: vec![("charset".to_owned(), "us-ascii".to_owned())],
        }
    }
}

impl ContentType {
    /// Parses a Content-Type value tolerantly (missing or empty parameters, extra semicolons,
    /// unterminated quotes). A value without a `type/subtype` token yields the RFC 2045 default
    /// `text/plain; charset=us-ascii`.
    pub fn parse(value: &str) -> ContentType {
        let (token, params) = parse_params(value);
        let valid = match token.split_once('/') {
            Some((t, s)) => !t.is_empty() && !s.is_empty() && !token.contains(char::is_whitespace),
            None => false,
        };
        if valid {
            ContentType {
                mime_type: token,
                params,
            }
        } else {
            ContentType::default()
        }
    }

    /// First parameter with that name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mime_type.starts_with("multipart/")
    }
}

/// Splits `token; a=b; c="d"` into the lowercased leading token and the parameters.
fn parse_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut chars = value.char_indices().peekable();
    let mut token = String::new();
    for (_, c) in chars.by_ref() {
        if c == ';' {
            break;
        }
        token.push(c);
    }
    let token = token.trim().to_ascii_lowercase();
    let mut params = Vec::new();
    loop {
        // Skip whitespace and stray semicolons.
        while matches!(chars.peek(), Some((_, c)) if c.is_whitespace() || *c == ';') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        let mut has_eq = false;
        while let Some(&(_, c)) = chars.peek() {
            if c == ';' {
                break;
            }
            chars.next();
            if c == '=' {
                has_eq = true;
                break;
            }
            name.push(c);
        }
        if !has_eq {
            continue; // "; garbage ;" -> ignored
        }
        while matches!(chars.peek(), Some((_, c)) if *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut val = String::new();
        if matches!(chars.peek(), Some((_, '"'))) {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            val.push(e);
                        }
                    }
                    _ => val.push(c),
                }
            }
            // Anything between the closing quote and the next ';' is ignored.
            while let Some(&(_, c)) = chars.peek() {
                if c == ';' {
                    break;
                }
                chars.next();
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ';' {
                    break;
                }
                val.push(c);
                chars.next();
            }
            val = val.trim().to_owned();
        }
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() {
            params.push((name, val));
        }
    }
    (token, params)
}

/// Parses a MIME entity (message or body part).
///
/// * Empty input -> [`MimeError::Empty`].
/// * Input starting with an empty line -> no header fields, body after that line.
/// * First line not of the form `Name:` (obsolete `Name :` accepted) and not empty ->
///   [`MimeError::NotMime`].
/// * Headers running to the end of input without an empty line -> empty body.
/// * A later line that is neither a header field, a continuation nor empty ends the header block
///   tolerantly: the body starts at that line (and `header_bytes` has no empty line).
/// * Header block over [`MAX_HEADER_BLOCK`] or a field over [`MAX_HEADER_FIELD`] ->
///   [`MimeError::HeaderTooLong`]; more than [`MAX_HEADER_FIELDS`] fields -> [`MimeError::Limit`].
pub fn parse(input: &[u8]) -> Result<Entity<'_>, MimeError> {
    if input.is_empty() {
        return Err(MimeError::Empty);
    }
    let mut headers: Vec<Header> = Vec::new();
    // Current field: start offset, and unfolded length so far.
    let mut cur: Option<(usize, usize)> = None;
    let mut pos = 0usize;
    let header_end: usize; // end of header_bytes
    let body_start: usize;
    loop {
        if pos >= input.len() {
            header_end = input.len();
            body_start = input.len();
            break;
        }
        if pos > MAX_HEADER_BLOCK {
            return Err(MimeError::HeaderTooLong {
                what: "header block",
                limit: MAX_HEADER_BLOCK,
            });
        }
        let rest = input.get(pos..).unwrap_or(&[]);
        // Only look as far as the block limit allows, so a huge line without LF costs O(limit).
        let window = rest
            .get(..MAX_HEADER_BLOCK.saturating_add(2))
            .unwrap_or(rest);
        let (line_len, content_len) = match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let content = if i > 0 && window.get(i - 1) == Some(&b'\r') {
                    i - 1
                } else {
                    i
                };
                (i + 1, content)
            }
            None if window.len() < rest.len() => {
                return Err(MimeError::HeaderTooLong {
                    what: "header block",
                    limit: MAX_HEADER_BLOCK,
                });
            }
            None => (rest.len(), rest.len()),
        };
        let content = rest.get(..content_len).unwrap_or(&[]);
        let line_end = pos.saturating_add(line_len);
        if content_len == 0 {
            // Empty line: end of the header block.
            if let Some((start, _)) = cur.take() {
                headers.push(make_header(input, start, pos));
            }
            header_end = line_end;
            body_start = line_end;
            break;
        }
        let first = content.first().copied().unwrap_or(0);
        if first == b' ' || first == b'\t' {
            if let Some((_, unfolded)) = cur.as_mut() {
                *unfolded = unfolded.saturating_add(content_len);
                if *unfolded > MAX_HEADER_FIELD {
                    return Err(MimeError::HeaderTooLong {
                        what: "header field",
                        limit: MAX_HEADER_FIELD,
                    });
                }
                pos = line_end;
                continue;
            }
            return Err(MimeError::NotMime);
        }
        if header_name_len(content).is_some() {
            if content_len > MAX_HEADER_FIELD {
                return Err(MimeError::HeaderTooLong {
                    what: "header field",
                    limit: MAX_HEADER_FIELD,
                });
            }
            if let Some((start, _)) = cur.take() {
                headers.push(make_header(input, start, pos));
            }
            // Counted before the field is kept, so a million short fields cost no memory.
            LimitExceeded::check(
                "header fields in one MIME entity",
                headers.len() + 1,
                MAX_HEADER_FIELDS,
            )?;
            cur = Some((pos, content_len));
            pos = line_end;
            continue;
        }
        if headers.is_empty() && cur.is_none() {
            return Err(MimeError::NotMime);
        }
        // Tolerant: a non-header line ends the header block; the body starts here.
        header_end = pos;
        body_start = pos;
        break;
    }
    if let Some((start, _)) = cur.take() {
        headers.push(make_header(input, start, header_end.min(body_start)));
    }
    if header_end > MAX_HEADER_BLOCK.saturating_add(2) {
        return Err(MimeError::HeaderTooLong {
            what: "header block",
            limit: MAX_HEADER_BLOCK,
        });
    }
    Ok(Entity {
        headers,
        header_bytes: input.get(..header_end).unwrap_or(&[]),
        body: input.get(body_start..).unwrap_or(&[]),
        raw: input,
    })
}

/// If `line` starts with a header field name followed by optional WSP and ':', the name length.
fn header_name_len(line: &[u8]) -> Option<usize> {
    let n = line
        .iter()
        .position(|&b| !(33..=126).contains(&b) || b == b':')?;
    if n == 0 {
        return None;
    }
    let rest = line.get(n..)?;
    let ws = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    (rest.get(ws) == Some(&b':')).then_some(n)
}

/// Builds a [`Header`] from the raw field bytes `input[start..end]`.
fn make_header(input: &[u8], start: usize, end: usize) -> Header {
    let raw = input.get(start..end).unwrap_or(&[]);
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name = String::from_utf8_lossy(raw.get(..colon).unwrap_or(&[]))
        .trim()
        .to_owned();
    let value_raw = raw.get(colon.saturating_add(1)..).unwrap_or(&[]);
    // Remove the CR of each CRLF (but keep lone CRs that are not line ends).
    let mut cleaned = Vec::with_capacity(value_raw.len());
    let mut iter = value_raw.iter().peekable();
    while let Some(&b) = iter.next() {
        if b == b'\r' && iter.peek() == Some(&&b'\n') {
            continue;
        }
        if b == b'\n' {
            continue;
        }
        cleaned.push(b);
    }
    let value = String::from_utf8_lossy(&cleaned).trim().to_owned();
    Header {
        name,
        value,
        raw: raw.to_vec(),
    }
}

impl<'a> Entity<'a> {
    /// Value of the first header field with that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Values of all header fields with that name (case-insensitive), in order.
    pub fn header_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The Content-Type; `text/plain; charset=us-ascii` when absent or syntactically invalid.
    pub fn content_type(&self) -> ContentType {
        self.header("content-type")
            .map(ContentType::parse)
            .unwrap_or_default()
    }

    /// The Content-Disposition (type in `mime_type`, e.g. `attachment`), if present.
    pub fn content_disposition(&self) -> Option<ContentType> {
        let v = self.header("content-disposition")?;
        let (token, params) = parse_params(v);
        Some(ContentType {
            mime_type: token,
            params,
        })
    }

    /// The attachment file name: Content-Disposition `filename`, else Content-Type `name`.
    pub fn filename(&self) -> Option<String> {
        if let Some(f) = self
            .content_disposition()
            .and_then(|d| d.param("filename").map(str::to_owned))
        {
            return Some(f);
        }
        self.content_type().param("name").map(str::to_owned)
    }

    /// Lowercased Content-Transfer-Encoding token (e.g. `base64`), if the header is present.
    pub fn transfer_encoding(&self) -> Option<String> {
        let v = self.header("content-transfer-encoding")?;
        let token: String = v
            .trim()
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ';' && *c != '(')
            .collect();
        Some(token.to_ascii_lowercase())
    }

    /// The body with its Content-Transfer-Encoding removed: base64 (whitespace ignored, missing
    /// padding tolerated, anything else is [`MimeError::BadBase64`]), quoted-printable (see
    /// [`decode_quoted_printable`]), `7bit`/`8bit`/`binary`/absent/empty: the body as is. Other
    /// encodings: [`MimeError::UnsupportedEncoding`].
    pub fn decoded_body(&self) -> Result<Vec<u8>, MimeError> {
        match self.transfer_encoding().as_deref() {
            None | Some("" | "7bit" | "8bit" | "binary") => Ok(self.body.to_vec()),
            Some("base64") => decode_base64(self.body),
            Some("quoted-printable") => Ok(decode_quoted_printable(self.body)),
            Some(other) => Err(MimeError::UnsupportedEncoding {
                encoding: other.to_owned(),
            }),
        }
    }

    /// Same as [`multipart_parts`]`(self)`.
    pub fn parts(&self) -> Result<Vec<&'a [u8]>, MimeError> {
        multipart_parts(self)
    }
}

const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64 transfer encoding: whitespace (SP, HT, CR, LF, FF, VT) is ignored anywhere,
/// final `=` padding is optional; any other character, `=` before the end, or a dangling single
/// character is [`MimeError::BadBase64`].
pub fn decode_base64(data: &[u8]) -> Result<Vec<u8>, MimeError> {
    match decode_base64_fast(data) {
        Some(out) => Ok(out),
        None => decode_base64_checked(data),
    }
}

/// The common case, fast: lines of whole base64 quanta, padding only on the last line. Lines
/// are gathered into a small buffer and decoded straight into the output, so a 10 MiB body
/// needs no full-size intermediate copy. Anything else (odd line lengths, stray characters,
/// data after padding) returns `None`, and the careful decoder gives the precise error.
fn decode_base64_fast(data: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const CHUNK: usize = 64 * 1024;
    let mut out = vec![0u8; data.len() / 4 * 3 + 3];
    let mut written = 0;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK + 1024);
    let mut padded = false;
    let mut flush = |pending: &mut Vec<u8>, written: &mut usize| -> Option<()> {
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(pending.as_slice(), out.get_mut(*written..)?)
            .ok()?;
        *written += n;
        pending.clear();
        Some(())
    };
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        let line = data.get(start..end)?.trim_ascii_end();
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        if padded || line.len() % 4 != 0 {
            return None;
        }
        padded = line.ends_with(b"=");
        pending.extend_from_slice(line);
        if pending.len() >= CHUNK {
            flush(&mut pending, &mut written)?;
        }
    }
    flush(&mut pending, &mut written)?;
    out.truncate(written);
    Some(out)
}

/// Careful base64 decoding with precise errors; tolerant of whitespace anywhere and of
/// missing padding.
fn decode_base64_checked(data: &[u8]) -> Result<Vec<u8>, MimeError> {
    let mut clean = Vec::with_capacity(data.len());
    let mut pad_at: Option<usize> = None;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => {}
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                if let Some(p) = pad_at {
                    return Err(MimeError::BadBase64 {
                        detail: format!(
                            "data after '=' padding (padding at offset {p}, data at offset {i})"
                        ),
                    });
                }
                clean.push(b);
            }
            b'=' => {
                pad_at.get_or_insert(i);
            }
            other => {
                return Err(MimeError::BadBase64 {
                    detail: format!("invalid byte 0x{other:02x} at offset {i}"),
                });
            }
        }
    }
    if clean.len() % 4 == 1 {
        return Err(MimeError::BadBase64 {
            detail: format!(
                "truncated: {} base64 characters is not a whole number of bytes",
                clean.len()
            ),
        });
    }
    B64_LENIENT
        .decode(&clean)
        .map_err(|e| MimeError::BadBase64 {
            detail: e.to_string(),
        })
}

/// Decodes quoted-printable: `=XX` (either hex case), soft line breaks (`=` at the end of a
/// line, trailing whitespace after it allowed), trailing whitespace of lines removed (RFC 2045
/// §6.7 (3)). Hard line breaks are kept exactly as they are in the input (CRLF or LF). A `=` not
/// followed by two hex digits is kept literally.
pub fn decode_quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or(&[]);
        let (line, brk, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let (content, brk) = if i > 0 && rest.get(i - 1) == Some(&b'\r') {
                    (
                        rest.get(..i - 1).unwrap_or(&[]),
                        rest.get(i - 1..=i).unwrap_or(&[]),
                    )
                } else {
                    (rest.get(..i).unwrap_or(&[]), rest.get(i..=i).unwrap_or(&[]))
                };
                (content, brk, pos.saturating_add(i).saturating_add(1))
            }
            None => (rest, &[][..], data.len()),
        };
        // Trailing whitespace is transport padding.
        let trimmed_len = line
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |i| i + 1);
        let line = line.get(..trimmed_len).unwrap_or(&[]);
        let (line, soft) = match line.split_last() {
            Some((b'=', head)) => (head, true),
            _ => (line, false),
        };
        let mut i = 0usize;
        while let Some(&b) = line.get(i) {
            let escaped = match (b, line.get(i + 1), line.get(i + 2)) {
                (b'=', Some(&h), Some(&l)) => hex_val(h).zip(hex_val(l)),
                _ => None,
            };
            if let Some((h, l)) = escaped {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(b);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(brk);
        }
        pos = next;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Raw bytes of each top-level body part of a multipart entity, in order.
///
/// A delimiter line is `--boundary` (or the close delimiter `--boundary--`) at the start of a
/// line, followed only by optional transport padding (SP/HT) and the line end. The line break
/// before a delimiter belongs to the delimiter, so a part never includes it. The preamble and the
/// epilogue are skipped. A missing close delimiter is accepted when at least one part was opened
/// (the last part then runs to the end of the body). Works on CRLF, LF-only and mixed input.
///
/// Errors: [`MimeError::NotMultipart`], [`MimeError::MissingBoundary`],
/// [`MimeError::BoundaryNotFound`] (no part at all), [`MimeError::TooManyParts`].
pub fn multipart_parts<'a>(entity: &Entity<'a>) -> Result<Vec<&'a [u8]>, MimeError> {
    let ct = entity.content_type();
    if !ct.is_multipart() {
        return Err(MimeError::NotMultipart {
            mime_type: ct.mime_type,
        });
    }
    let boundary = ct.param("boundary").unwrap_or("");
    if boundary.is_empty() {
        return Err(MimeError::MissingBoundary);
    }
    split_multipart_body(entity.body, boundary.as_bytes()).ok_or_else(|| {
        MimeError::BoundaryNotFound {
            boundary: boundary.to_owned(),
        }
    })?
}

/// `None` when no part was found; `Some(Err)` on too many parts.
fn split_multipart_body<'a>(
    body: &'a [u8],
    boundary: &[u8],
) -> Option<Result<Vec<&'a [u8]>, MimeError>> {
    let mut dash = Vec::with_capacity(boundary.len() + 2);
    dash.extend_from_slice(b"--");
    dash.extend_from_slice(boundary);
    let mut parts: Vec<&'a [u8]> = Vec::new();
    let mut open: Option<usize> = None; // start of the current part
    let mut pos = 0usize;
    while pos < body.len() {
        let rest = body.get(pos..).unwrap_or(&[]);
        let (line_len, content_len) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (
                i + 1,
                if i > 0 && rest.get(i - 1) == Some(&b'\r') {
                    i - 1
                } else {
                    i
                },
            ),
            None => (rest.len(), rest.len()),
        };
        let line = rest.get(..content_len).unwrap_or(&[]);
        if let Some(after) = line.strip_prefix(dash.as_slice()) {
            let (after, close) = match after.strip_prefix(b"--") {
                Some(a) => (a, true),
                None => (after, false),
            };
            if after.iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r') {
                if let Some(start) = open {
                    // The line break before the delimiter belongs to the delimiter.
                    let lb = if pos >= 2 && body.get(pos - 2..pos) == Some(b"\r\n") {
                        2
                    } else if pos >= 1 && body.get(pos - 1) == Some(&b'\n') {
                        1
                    } else {
                        0
                    };
                    let end = pos.saturating_sub(lb).max(start);
                    parts.push(body.get(start..end).unwrap_or(&[]));
                    if parts.len() > MAX_PARTS {
                        return Some(Err(MimeError::TooManyParts { limit: MAX_PARTS }));
                    }
                }
                if close {
                    open = None;
                    break;
                }
                open = Some(pos.saturating_add(line_len));
            }
        }
        pos = pos.saturating_add(line_len);
    }
    if let Some(start) = open {
        // No close delimiter: the last part runs to the end.
        parts.push(body.get(start..).unwrap_or(&[]));
        if parts.len() > MAX_PARTS {
            return Some(Err(MimeError::TooManyParts { limit: MAX_PARTS }));
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(Ok(parts))
    }
}

/// Converts every lone LF to CRLF; existing CRLF pairs are kept and a lone CR is kept as is.
pub fn canonicalize_crlf(data: &[u8]) -> Cow<'_, [u8]> {
    // Mail is usually canonical already: find the first bare LF before copying anything.
    let bare_lf = |i: usize| i == 0 || data.get(i - 1) != Some(&b'\r');
    let Some(first) = memchr::memchr_iter(b'\n', data).find(|&i| bare_lf(i)) else {
        return Cow::Borrowed(data);
    };
    let extra = memchr::memchr_iter(b'\n', data.get(first..).unwrap_or_default()).count();
    let mut out = Vec::with_capacity(data.len().saturating_add(extra));
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data).skip_while(|&i| i < first) {
        if bare_lf(i) {
            out.extend_from_slice(data.get(start..i).unwrap_or_default());
            out.extend_from_slice(b"\r");
            start = i;
        }
    }
    out.extend_from_slice(data.get(start..).unwrap_or_default());
    Cow::Owned(out)
}

/// The S/MIME kind announced by a Content-Type alone (case-insensitive): `multipart/signed`
/// (protocol `application/(x-)pkcs7-signature` or absent), `application/(x-)pkcs7-mime`,
/// `application/(x-)pkcs7-signature`, and `application/octet-stream` whose `name` ends in `.p7m`
/// (or `.p7s`). Use [`smime_kind`] to also consider the Content-Disposition file name.
pub fn is_smime_type(ct: &ContentType) -> Option<SmimeKind> {
    match ct.mime_type.as_str() {
        "multipart/signed" => match ct.param("protocol").map(|p| p.trim().to_ascii_lowercase()) {
            None => Some(SmimeKind::SignedMultipart),
            Some(p) if p.is_empty() || is_pkcs7_signature_type(&p) => {
                Some(SmimeKind::SignedMultipart)
            }
            Some(_) => None, // e.g. application/pgp-signature
        },
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => Some(SmimeKind::Pkcs7Mime),
        t if is_pkcs7_signature_type(t) => Some(SmimeKind::Pkcs7Signature),
        "application/octet-stream" => ct.param("name").and_then(kind_from_filename),
        _ => None,
    }
}

fn is_pkcs7_signature_type(t: &str) -> bool {
    t == "application/pkcs7-signature" || t == "application/x-pkcs7-signature"
}

fn kind_from_filename(name: &str) -> Option<SmimeKind> {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with(".p7m") {
        Some(SmimeKind::Pkcs7Mime)
    } else if n.ends_with(".p7s") {
        Some(SmimeKind::Pkcs7Signature)
    } else {
        None
    }
}

/// The S/MIME kind of an entity: [`is_smime_type`] on its Content-Type, and for
/// `application/octet-stream` also the Content-Disposition `filename` (Outlook labels opaque
/// S/MIME that way).
pub fn smime_kind(entity: &Entity<'_>) -> Option<SmimeKind> {
    let ct = entity.content_type();
    if let Some(k) = is_smime_type(&ct) {
        return Some(k);
    }
    if ct.mime_type == "application/octet-stream" {
        return entity
            .content_disposition()
            .and_then(|d| d.param("filename").and_then(kind_from_filename));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// Base64 of `data` in lines of [`BASE64_LINE_LEN`] characters, each terminated by CRLF (empty
/// input gives empty output). Encodes in one go, then copies into a preallocated buffer.
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = STANDARD.encode(data);
    let bytes = encoded.as_bytes();
    let lines = bytes.len().div_ceil(BASE64_LINE_LEN);
    let mut out = Vec::with_capacity(bytes.len().saturating_add(lines.saturating_mul(2)));
    for chunk in bytes.chunks(BASE64_LINE_LEN) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Header names the builders set themselves; such names in `extra_headers` are skipped.
const BUILDER_OWNED: [&str; 4] = [
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-description",
];

/// Writes `extra_headers` (skipping the ones the builder writes itself).
fn write_extra_headers(out: &mut Vec<u8>, extra_headers: &[(String, String)]) {
    for (name, value) in extra_headers {
        if BUILDER_OWNED
            .iter()
            .any(|o| name.trim().eq_ignore_ascii_case(o))
        {
            continue;
        }
        write_header(out, name, value);
    }
}

/// Writes one header field, CRLF-terminated and folded at whitespace to about 78 columns.
/// Sanitizes against header injection: invalid name characters are dropped (and an empty name
/// skips the field); line breaks inside the value become folding, whitespace-only lines are
/// dropped. Non-ASCII values of unstructured fields (Subject, Comments, Content-Description) are
/// RFC 2047 encoded; other values are written as given.
fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .collect();
    if name.is_empty() {
        return;
    }
    let unstructured = ["subject", "comments", "content-description"]
        .iter()
        .any(|u| name.eq_ignore_ascii_case(u));
    let value = if unstructured && !value.is_ascii() {
        encode_rfc2047(&value.split(['\r', '\n']).collect::<Vec<_>>().join(" "))
    } else {
        value.to_owned()
    };
    // Normalize embedded line breaks to folding.
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b": ");
    let mut first = true;
    for piece in value.split('\n') {
        let piece = piece.strip_suffix('\r').unwrap_or(piece);
        let piece: String = piece.chars().filter(|&c| c != '\r').collect();
        if first {
            line.extend_from_slice(piece.trim_start().as_bytes());
            first = false;
            continue;
        }
        if piece.trim().is_empty() {
            continue;
        }
        // Mark a fold point with a LF; fold_line turns it into CRLF.
        line.push(b'\n');
        if !piece.starts_with([' ', '\t']) {
            line.push(b' ');
        }
        line.extend_from_slice(piece.as_bytes());
    }
    for (i, physical) in line.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        fold_line(out, physical);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `line`, inserting CRLF before whitespace so that lines stay within 78 characters where
/// the text allows it.
fn fold_line(out: &mut Vec<u8>, line: &[u8]) {
    const LIMIT: usize = 78;
    let mut cur = line;
    while cur.len() > LIMIT {
        let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
        // Must keep a non-whitespace character before the fold point.
        let Some(first_text) = cur.iter().position(|b| !is_ws(b)) else {
            break;
        };
        let search_from = first_text.saturating_add(1);
        let window = cur.get(search_from..=LIMIT).unwrap_or(&[]);
        let at = match window.iter().rposition(is_ws) {
            Some(i) => search_from + i,
            None => match cur
                .get(search_from.max(LIMIT)..)
                .and_then(|r| r.iter().position(is_ws))
            {
                Some(i) => search_from.max(LIMIT) + i,
                None => break,
            },
        };
        out.extend_from_slice(cur.get(..at).unwrap_or(&[]));
        out.extend_from_slice(b"\r\n");
        cur = cur.get(at..).unwrap_or(&[]);
    }
    out.extend_from_slice(cur);
}

/// RFC 2047 B-encoding as a sequence of encoded words (each at most 75 characters, split on
/// character boundaries), separated by a space (a folding point).
fn encode_rfc2047(value: &str) -> String {
    // "=?UTF-8?B?" + "?=" = 12 chars; 75 - 12 = 63 -> at most 45 input bytes (60 base64 chars).
    const MAX_CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > MAX_CHUNK {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
    }
    words.join(" ")
}

/// An opaque S/MIME entity: `extra_headers` first (in order; Content-Type/-Transfer-Encoding/
/// -Disposition/-Description among them are skipped), then
///
/// ```text
/// Content-Type: application/pkcs7-mime; smime-type=enveloped-data;
///  name="smime.p7m"
/// Content-Transfer-Encoding: base64
/// Content-Disposition: attachment; filename="smime.p7m"
/// ```
///
/// an empty line and `der` as [`base64_lines`]. `smime_type` is e.g. `enveloped-data`,
/// `signed-data`, `authEnveloped-data` (characters other than letters, digits, `-`, `.`, `_` are
/// dropped). MIME-Version is not added: pass it in `extra_headers` for a top-level message.
pub fn build_pkcs7_mime(
    smime_type: &str,
    der: &[u8],
    extra_headers: &[(String, String)],
) -> Vec<u8> {
    let smime_type = sanitize_token(smime_type);
    let body = base64_lines(der);
    let mut out = Vec::with_capacity(body.len() + 512);
    write_extra_headers(&mut out, extra_headers);
    out.extend_from_slice(b"Content-Type: application/pkcs7-mime; smime-type=");
    out.extend_from_slice(smime_type.as_bytes());
    out.extend_from_slice(b";\r\n name=\"smime.p7m\"\r\n");
    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
    out.extend_from_slice(b"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn sanitize_token(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

static BOUNDARY_COUNTER: AtomicU64 = AtomicU64::new(0);

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// A boundary that does not occur anywhere in `content`: `smimekit-` + 32 hex digits derived
/// from a hash of the signature (which already depends on the content's digest and the signing
/// time) and a process-wide counter; regenerated on the (astronomically unlikely) collision.
fn make_boundary(content: &[u8], signature: &[u8]) -> String {
    let seed = fnv1a(signature, 0);
    make_boundary_with(content, seed, || {
        BOUNDARY_COUNTER.fetch_add(1, Ordering::Relaxed)
    })
}

fn boundary_candidate(seed: u64, n: u64) -> String {
    let a = splitmix(seed ^ n);
    let b = splitmix(a ^ 0x5851_f42d_4c95_7f2d ^ n.rotate_left(32));
    format!("smimekit-{a:016x}{b:016x}")
}

fn make_boundary_with(content: &[u8], seed: u64, mut counter: impl FnMut() -> u64) -> String {
    loop {
        let boundary = boundary_candidate(seed, counter());
        if !contains(content, boundary.as_bytes()) {
            return boundary;
        }
    }
}

/// A detached-signature message: `extra_headers` first (Content-* among them skipped), then
///
/// ```text
/// Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;
///  boundary="smimekit-…"
/// ```
///
/// a preamble, part 1 = `content_entity` byte for byte (it must already be canonical CRLF, and
/// is what the signature covers), part 2 = `application/pkcs7-signature` `smime.p7s` with
/// `signature_der` in base64. The boundary never occurs in `content_entity`. `micalg` is
/// lowercased and reduced to token characters. MIME-Version is not added (pass it in
/// `extra_headers` for a top-level message).
pub fn build_signed_multipart(
    content_entity: &[u8],
    signature_der: &[u8],
    micalg: &str,
    extra_headers: &[(String, String)],
) -> Vec<u8> {
    let boundary = make_boundary(content_entity, signature_der);
    let micalg = sanitize_token(micalg).to_ascii_lowercase();
    let sig = base64_lines(signature_der);
    let mut out = Vec::with_capacity(content_entity.len() + sig.len() + 1024);
    write_extra_headers(&mut out, extra_headers);
    out.extend_from_slice(
        b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=",
    );
    out.extend_from_slice(micalg.as_bytes());
    out.extend_from_slice(b";\r\n boundary=\"");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(
        b"\"\r\n\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n--",
    );
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(content_entity);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(
        b"\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
          Content-Transfer-Encoding: base64\r\n\
          Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\
          Content-Description: S/MIME Cryptographic Signature\r\n\r\n",
    );
    out.extend_from_slice(&sig);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// Header fields as `(name, value)` pairs, in order.
pub type OuterHeaders = Vec<(String, String)>;

/// Splits a full RFC 5322 message the way a mail client does before signing or encrypting it:
/// returns the outer headers (every field except `Content-*` and `MIME-Version`, as
/// `(name, unfolded value)`, in order) and the inner entity: the `Content-*` fields (exact raw
/// bytes, folding kept) + empty line + body, all CRLF-canonical. When the message has no
/// Content-Type, `Content-Type: text/plain; charset=…` is added (`us-ascii` for ASCII bodies,
/// `utf-8` for UTF-8 ones, `unknown-8bit` otherwise).
///
/// Input that is not header-shaped (empty, starts with an empty line, or the first line is not
/// `Name: value`) is taken entirely, byte for byte, as a text/plain body with no outer headers.
/// The inner entity is not made 7-bit safe; apply [`to_7bit_safe`] for that.
///
/// Errors: [`MimeError::HeaderTooLong`].
pub fn split_for_protection(message: &[u8]) -> Result<(OuterHeaders, Vec<u8>), MimeError> {
    let header_shaped = !(message.starts_with(b"\n") || message.starts_with(b"\r\n"));
    let entity = match parse(message) {
        Ok(e) if header_shaped => Some(e),
        Ok(_) | Err(MimeError::Empty | MimeError::NotMime) => None,
        Err(e) => return Err(e),
    };
    let Some(entity) = entity else {
        let mut inner = default_content_type(message);
        inner.extend_from_slice(b"\r\n");
        inner.extend_from_slice(&canonicalize_crlf(message));
        return Ok((Vec::new(), inner));
    };
    let mut outer = Vec::new();
    let mut inner = Vec::with_capacity(message.len() + 64);
    let mut has_ct = false;
    for h in &entity.headers {
        let lname = h.name.to_ascii_lowercase();
        if lname.starts_with("content-") {
            has_ct |= lname == "content-type";
            let mut raw = canonicalize_crlf(&h.raw).into_owned();
            if !raw.ends_with(b"\r\n") {
                raw.extend_from_slice(b"\r\n");
            }
            inner.extend_from_slice(&raw);
        } else if lname != "mime-version" {
            outer.push((h.name.clone(), h.value.clone()));
        }
    }
    if !has_ct {
        inner.extend_from_slice(&default_content_type(entity.body));
    }
    inner.extend_from_slice(b"\r\n");
    inner.extend_from_slice(&canonicalize_crlf(entity.body));
    Ok((outer, inner))
}

fn default_content_type(body: &[u8]) -> Vec<u8> {
    let charset = if body.is_ascii() {
        "us-ascii"
    } else if std::str::from_utf8(body).is_ok() {
        "utf-8"
    } else {
        "unknown-8bit"
    };
    format!("Content-Type: text/plain; charset={charset}\r\n").into_bytes()
}

/// Makes a single-part entity safe for 7-bit transport before it is signed: if its body has 8-bit
/// bytes (0x80 and above), NUL, a lone CR, or a line longer than 998 octets, and its Content-Transfer-Encoding is
/// absent, `7bit`, `8bit` or `binary`, the body is re-encoded (quoted-printable for `text/*`,
/// base64 otherwise) and the Content-Transfer-Encoding field replaced. Otherwise (already
/// 7-bit, base64/QP, multipart or message/*, or not parseable) the entity is returned unchanged.
/// The result is always CRLF-canonical. Header fields are not changed except for
/// Content-Transfer-Encoding.
pub fn to_7bit_safe(entity: &[u8]) -> Cow<'_, [u8]> {
    let canonical = canonicalize_crlf(entity);
    let Ok(parsed) = parse(&canonical) else {
        return canonical;
    };
    let cte = parsed.transfer_encoding();
    if !matches!(cte.as_deref(), None | Some("" | "7bit" | "8bit" | "binary")) {
        return canonical;
    }
    let ct = parsed.content_type();
    if ct.is_multipart() || ct.mime_type.starts_with("message/") || !needs_encoding(parsed.body) {
        return canonical;
    }
    let (cte_name, body): (&[u8], Vec<u8>) = if ct.mime_type.starts_with("text/") {
        (b"quoted-printable", encode_quoted_printable(parsed.body))
    } else {
        (b"base64", base64_lines(parsed.body))
    };
    let mut out = Vec::with_capacity(canonical.len() + body.len() / 3 + 64);
    for h in &parsed.headers {
        if h.name.eq_ignore_ascii_case("content-transfer-encoding") {
            continue;
        }
        out.extend_from_slice(&h.raw);
        if !h.raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: ");
    out.extend_from_slice(cte_name);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body);
    Cow::Owned(out)
}

/// True if a CRLF-canonical body is not valid 7-bit data (RFC 5322 line length, 8-bit, NUL,
/// lone CR).
fn needs_encoding(body: &[u8]) -> bool {
    let mut line_len = 0usize;
    let mut prev = 0u8;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'\n' => {
                if prev != b'\r' {
                    return true;
                }
                line_len = 0;
            }
            b'\r' => {
                if body.get(i + 1) != Some(&b'\n') {
                    return true;
                }
            }
            0 | 0x80..=0xff => return true,
            _ => {
                line_len += 1;
                if line_len > 998 {
                    return true;
                }
            }
        }
        prev = b;
    }
    false
}

/// Quoted-printable encoding of a CRLF-canonical body: CRLF pairs are hard line breaks, encoded
/// lines are at most 76 characters, `=`, controls, 8-bit bytes, whitespace at the end of a line,
/// and the `F` of a line starting with `From ` are encoded.
pub fn encode_quoted_printable(body: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(body.len() + body.len() / 2 + 16);
    let mut rest = body;
    loop {
        let (line, had_break, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => (
                rest.get(..i).unwrap_or(&[]),
                true,
                rest.get(i + 2..).unwrap_or(&[]),
            ),
            None => (rest, false, &[][..]),
        };
        let mut col = 0usize;
        let last = line.len().saturating_sub(1);
        for (i, &b) in line.iter().enumerate() {
            let literal = match b {
                b' ' | b'\t' => i != last,
                b'F' if i == 0 => !line.starts_with(b"From "),
                b'.' if i == 0 => line.len() != 1,
                b'=' => false,
                33..=126 => true,
                _ => false,
            };
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.push(b'=');
                out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
                out.push(HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0'));
            }
            col += width;
        }
        if !had_break {
            break;
        }
        out.extend_from_slice(b"\r\n");
        rest = next;
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    // ---------------------------------------------------------------- helpers

    /// Minimal SHA-256 (FIPS 180-4) to compare part bytes with the corpus manifest.
    fn sha256_hex(data: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    #[test]
    fn sha256_helper_known_answer() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Deterministic xorshift PRNG for the fuzz-ish tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % (n.max(1) as u64)) as usize
        }
    }

    fn lf_only(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    /// Runs every public entry point on `data`; only checks invariants that must always hold.
    fn exercise(data: &[u8]) {
        if let Ok(e) = parse(data) {
            assert_eq!(e.header_bytes.len() + e.body.len(), data.len());
            let _ = e.content_type();
            let _ = e.transfer_encoding();
            let _ = e.decoded_body();
            let _ = e.filename();
            let _ = smime_kind(&e);
            if let Ok(parts) = multipart_parts(&e) {
                assert!(parts.len() <= MAX_PARTS);
                for p in parts.iter().take(8) {
                    if let Ok(pe) = parse(p) {
                        let _ = pe.decoded_body();
                        let _ = multipart_parts(&pe);
                    }
                }
            }
        }
        let _ = split_for_protection(data);
        let _ = to_7bit_safe(data).into_owned();
        let _ = canonicalize_crlf(data).into_owned();
        let _ = decode_base64(data);
        let _ = decode_quoted_printable(data);
    }

    // ---------------------------------------------------------------- corpus

    /// The corpus (testkit's one locator): a test that cannot find it fails, it does not
    /// pass on nothing.
    fn corpus_dir() -> PathBuf {
        smimekit_testkit::corpus()
    }

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    struct Case {
        file: String,
        kind: String,
        layers: Vec<String>,
        plaintext_sha256: Option<String>,
    }

    /// Crude reader of the pretty-printed manifest (no JSON dependency): one case per
    /// top-level `"file"` key, layer types from the `"type"` keys nested inside `layers`.
    fn manifest(dir: &Path) -> Vec<Case> {
        let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
        let field = |chunk: &str, key: &str| -> Option<String> {
            let start = chunk.find(key)? + key.len();
            let end = chunk[start..].find('"')?;
            Some(chunk[start..start + end].to_owned())
        };
        text.split("\n   \"file\": \"")
            .skip(1)
            .map(|chunk| {
                let file = chunk[..chunk.find('"').unwrap()].to_owned();
                let layers = chunk
                    .split("\n     \"type\": \"")
                    .skip(1)
                    .map(|c| c[..c.find('"').unwrap()].to_owned())
                    .collect();
                Case {
                    file,
                    kind: field(chunk, "\n   \"kind\": \"").unwrap_or_default(),
                    layers,
                    plaintext_sha256: field(chunk, "\"plaintext_sha256\": \""),
                }
            })
            .collect()
    }

    fn expected_kind(case: &Case) -> Option<SmimeKind> {
        let outer = case
            .layers
            .first()
            .map(String::as_str)
            .unwrap_or(case.kind.as_str());
        match outer {
            "signed-detached" => Some(SmimeKind::SignedMultipart),
            "signed-opaque" | "enveloped" | "auth-enveloped" | "signed+enveloped" => {
                Some(SmimeKind::Pkcs7Mime)
            }
            _ => None,
        }
    }

    /// Depth-first search for an S/MIME entity inside MIME wrappers.
    fn find_smime(data: &[u8], depth: usize) -> Option<SmimeKind> {
        let e = parse(data).ok()?;
        if let Some(k) = smime_kind(&e) {
            return Some(k);
        }
        if depth == 0 {
            return None;
        }
        let parts = multipart_parts(&e).ok()?;
        parts.iter().find_map(|p| find_smime(p, depth - 1))
    }

    fn check_signed_multipart(name: &str, data: &[u8]) -> Vec<u8> {
        let e = parse(data).unwrap_or_else(|err| panic!("{name}: {err}"));
        let parts = multipart_parts(&e).unwrap_or_else(|err| panic!("{name}: parts: {err}"));
        assert!(parts.len() >= 2, "{name}: {} parts", parts.len());
        let sig = parse(parts[1]).unwrap_or_else(|err| panic!("{name}: sig part: {err}"));
        assert_eq!(smime_kind(&sig), Some(SmimeKind::Pkcs7Signature), "{name}");
        let der = sig
            .decoded_body()
            .unwrap_or_else(|err| panic!("{name}: sig body: {err}"));
        assert_eq!(
            der.first(),
            Some(&0x30),
            "{name}: signature is not a DER SEQUENCE"
        );
        parts[0].to_vec()
    }

    #[test]
    fn corpus_messages() {
        let dir = corpus_dir();
        let cases = manifest(&dir);
        let mut files = Vec::new();
        walk(&dir, &mut files);
        files.retain(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".eml") || s.ends_with("mimekit/thunderbird-signed.txt")
        });
        files.sort();
        assert!(files.len() >= 90, "only {} messages found", files.len());
        let (mut hashed, mut lf_checked) = (0, 0);
        for path in &files {
            let rel = path
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let case = cases
                .iter()
                .find(|c| c.file == rel)
                .unwrap_or_else(|| panic!("{rel} not in manifest"));
            let data = std::fs::read(path).unwrap();
            let e = parse(&data).unwrap_or_else(|err| panic!("{rel}: {err}"));
            // Byte exactness of the header split.
            assert_eq!([e.header_bytes, e.body].concat(), data, "{rel}");
            let mut hdrs: Vec<u8> = e.headers.iter().flat_map(|h| h.raw.clone()).collect();
            let blank = &e.header_bytes[hdrs.len().min(e.header_bytes.len())..];
            assert!(
                blank == b"\r\n" || blank == b"\n",
                "{rel}: header block tail {blank:?}"
            );
            hdrs.extend_from_slice(blank);
            assert_eq!(hdrs, e.header_bytes, "{rel}");

            let kind = smime_kind(&e);
            assert_eq!(kind, expected_kind(case), "{rel}: kind");
            match kind {
                Some(SmimeKind::SignedMultipart) => {
                    let part1 = check_signed_multipart(&rel, &data);
                    let single_layer = case.layers.len() <= 1;
                    // The manifest records SHA-256("") where OpenSSL could not verify (PKITS DSA
                    // parameter inheritance); nothing to compare there.
                    const EMPTY: &str =
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
                    match &case.plaintext_sha256 {
                        Some(want) if single_layer && want != EMPTY => {
                            assert_eq!(
                                &sha256_hex(&canonicalize_crlf(&part1)),
                                want,
                                "{rel}: part 1 digest"
                            );
                            hashed += 1;
                        }
                        _ => {}
                    }
                    // LF-only transport: same parts, same canonical first part.
                    let lf = lf_only(&data);
                    let lf_part1 = check_signed_multipart(&format!("{rel} (LF)"), &lf);
                    assert_eq!(
                        canonicalize_crlf(&lf_part1).into_owned(),
                        canonicalize_crlf(&part1).into_owned(),
                        "{rel} (LF)"
                    );
                    if !part1
                        .windows(1)
                        .enumerate()
                        .any(|(i, w)| w == b"\n" && (i == 0 || part1[i - 1] != b'\r'))
                    {
                        assert_eq!(
                            canonicalize_crlf(&lf_part1).into_owned(),
                            part1,
                            "{rel}: CRLF part 1 from LF"
                        );
                    }
                    let n = multipart_parts(&e).unwrap().len();
                    assert_eq!(
                        multipart_parts(&parse(&lf).unwrap()).unwrap().len(),
                        n,
                        "{rel} (LF)"
                    );
                    lf_checked += 1;
                }
                Some(SmimeKind::Pkcs7Mime) => {
                    let der = e
                        .decoded_body()
                        .unwrap_or_else(|err| panic!("{rel}: {err}"));
                    assert_eq!(der.first(), Some(&0x30), "{rel}");
                    let lf = lf_only(&data);
                    assert_eq!(
                        parse(&lf).unwrap().decoded_body().unwrap(),
                        der,
                        "{rel} (LF)"
                    );
                }
                Some(SmimeKind::Pkcs7Signature) => panic!("{rel}: bare signature at top level"),
                None => {
                    assert!(
                        find_smime(&data, 4).is_some(),
                        "{rel}: no S/MIME entity inside the wrapper"
                    );
                }
            }
            exercise(&data);
        }
        eprintln!(
            "{} messages, {hashed} part-1 digests, {lf_checked} LF variants",
            files.len()
        );
        assert!(hashed >= 30, "only {hashed} part digests checked");
        assert!(lf_checked >= 30, "only {lf_checked} LF variants checked");
    }

    #[test]
    fn corpus_truncations_and_mutations_never_panic() {
        let dir = corpus_dir();
        let small = [
            "thunderbird-nss/smime/alice.dsig.SHA256.multipart.eml",
            "thunderbird-nss/smime/alice.env.eml",
            "rfc4134/4.8.eml",
            "protected-headers-lamps/smime-multipart-signed.eml",
        ];
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let interesting = [
            b'\r', b'\n', b'-', b':', b'=', b' ', b'\t', b'"', b';', 0xff, 0,
        ];
        for f in small {
            let data = std::fs::read(dir.join(f)).unwrap();
            for cut in 0..=data.len() {
                exercise(&data[..cut]);
                exercise(&data[cut..]);
            }
            for _ in 0..2000 {
                let mut m = data.clone();
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(m.len());
                    match rng.below(3) {
                        0 => m[i] = interesting[rng.below(interesting.len())],
                        1 => {
                            m.remove(i);
                        }
                        _ => m.insert(i, interesting[rng.below(interesting.len())]),
                    }
                }
                exercise(&m);
            }
        }
    }

    // ---------------------------------------------------------------- garbage

    #[test]
    fn garbage_inputs_are_errors() {
        assert_eq!(parse(b""), Err(MimeError::Empty));
        // DER / PEM / text are not MIME entities.
        assert_eq!(
            parse(&[0x30, 0x82, 0x01, 0x00, 0x06, 0x09]),
            Err(MimeError::NotMime)
        );
        assert_eq!(
            parse(b"-----BEGIN PKCS7-----\nMIIB\n"),
            Err(MimeError::NotMime)
        );
        assert_eq!(parse(b"hello world\r\n"), Err(MimeError::NotMime));
        assert_eq!(
            parse(b" leading: continuation\r\n"),
            Err(MimeError::NotMime)
        );
        assert_eq!(parse(b":no name\r\n"), Err(MimeError::NotMime));

        let no_boundary =
            parse(b"Content-Type: multipart/signed\r\n\r\n--x\r\na\r\n--x--\r\n").unwrap();
        assert_eq!(
            multipart_parts(&no_boundary),
            Err(MimeError::MissingBoundary)
        );
        let empty_boundary =
            parse(b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n").unwrap();
        assert_eq!(
            multipart_parts(&empty_boundary),
            Err(MimeError::MissingBoundary)
        );
        let not_found =
            parse(b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--x\r\na\r\n").unwrap();
        assert_eq!(
            multipart_parts(&not_found),
            Err(MimeError::BoundaryNotFound {
                boundary: "zz".into()
            })
        );
        let close_only =
            parse(b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz--\r\n").unwrap();
        assert!(matches!(
            multipart_parts(&close_only),
            Err(MimeError::BoundaryNotFound { .. })
        ));
        let text = parse(b"Content-Type: text/plain\r\n\r\nhi").unwrap();
        assert_eq!(
            multipart_parts(&text),
            Err(MimeError::NotMultipart {
                mime_type: "text/plain".into()
            })
        );

        let bad64 = parse(b"Content-Transfer-Encoding: base64\r\n\r\nMIIB*AAA\r\n").unwrap();
        assert!(matches!(
            bad64.decoded_body(),
            Err(MimeError::BadBase64 { .. })
        ));
        let err = bad64.decoded_body().unwrap_err().to_string();
        assert!(err.contains("0x2a") && err.contains("offset 4"), "{err}");
        let unknown = parse(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin").unwrap();
        assert_eq!(
            unknown.decoded_body(),
            Err(MimeError::UnsupportedEncoding {
                encoding: "x-uuencode".into()
            })
        );
    }

    #[test]
    fn huge_headers_are_rejected() {
        // One header line over 64 KiB.
        let mut m = b"Subject: ".to_vec();
        m.extend(std::iter::repeat_n(b'a', MAX_HEADER_FIELD + 1));
        m.extend_from_slice(b"\r\n\r\nbody");
        assert_eq!(
            parse(&m),
            Err(MimeError::HeaderTooLong {
                what: "header field",
                limit: MAX_HEADER_FIELD
            })
        );
        // Folded field over 64 KiB unfolded.
        let mut m = b"X-Long: a\r\n".to_vec();
        for _ in 0..2000 {
            m.extend_from_slice(
                b" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        m.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse(&m),
            Err(MimeError::HeaderTooLong {
                what: "header field",
                ..
            })
        ));
        // Fewer fields than the count limit, over 1 MiB in total.
        let mut m = Vec::new();
        while m.len() <= MAX_HEADER_BLOCK + 100 {
            m.extend_from_slice(b"X-Filler: ");
            m.extend(std::iter::repeat_n(b'0', 60 * 1024));
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(b"\r\nbody");
        assert!(matches!(
            parse(&m),
            Err(MimeError::HeaderTooLong {
                what: "header block",
                ..
            })
        ));
        // A 3 MiB line without any line break.
        let mut m = b"X: ".to_vec();
        m.extend(std::iter::repeat_n(b'b', 3 * 1024 * 1024));
        assert!(matches!(parse(&m), Err(MimeError::HeaderTooLong { .. })));
        assert!(split_for_protection(&m).is_err());
        // Just under the limits is fine.
        let mut m = b"Subject: ".to_vec();
        m.extend(std::iter::repeat_n(b'a', MAX_HEADER_FIELD - 100));
        m.extend_from_slice(b"\r\n\r\nbody");
        assert_eq!(parse(&m).unwrap().body, b"body");
    }

    #[test]
    fn too_many_header_fields() {
        let build = |n: usize| {
            let mut m = Vec::new();
            for i in 0..n {
                m.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            m.extend_from_slice(b"\r\nbody");
            m
        };
        let ok = build(MAX_HEADER_FIELDS);
        assert_eq!(parse(&ok).unwrap().headers.len(), MAX_HEADER_FIELDS);
        let err = parse(&build(MAX_HEADER_FIELDS + 1)).unwrap_err();
        assert_eq!(
            err,
            MimeError::Limit(LimitExceeded {
                what: "header fields in one MIME entity",
                limit: MAX_HEADER_FIELDS as u64
            })
        );
        // A million one-byte fields: refused at the limit, not read to the end.
        let mut m = b"a:\n".repeat(1_000_000);
        m.extend_from_slice(b"\nbody");
        assert!(matches!(parse(&m), Err(MimeError::Limit(_))));
    }

    #[test]
    fn too_many_parts() {
        let build = |n: usize| {
            let mut m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
            for _ in 0..n {
                m.extend_from_slice(b"--b\r\n\r\nx\r\n");
            }
            m.extend_from_slice(b"--b--\r\n");
            m
        };
        let ok = build(MAX_PARTS);
        assert_eq!(
            multipart_parts(&parse(&ok).unwrap()).unwrap().len(),
            MAX_PARTS
        );
        let bad = build(MAX_PARTS + 1);
        assert_eq!(
            multipart_parts(&parse(&bad).unwrap()),
            Err(MimeError::TooManyParts { limit: MAX_PARTS })
        );
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(0x2545F4914F6CDD1D);
        let tokens: [&[u8]; 16] = [
            b"Content-Type: multipart/signed; boundary=b\r\n",
            b"Content-Type: application/pkcs7-mime\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Content-Transfer-Encoding: quoted-printable\r\n",
            b"\r\n",
            b"\n",
            b"--b\r\n",
            b"--b--\r\n",
            b" folded\r\n",
            b"=\r\n",
            b"=4",
            b"MIIB",
            b"\xff\x00\x80",
            b"X:",
            b"\r",
            b"\"",
        ];
        for _ in 0..3000 {
            let mut m = Vec::new();
            for _ in 0..rng.below(40) {
                if rng.below(4) == 0 {
                    m.push(rng.next() as u8);
                } else {
                    m.extend_from_slice(tokens[rng.below(tokens.len())]);
                }
            }
            exercise(&m);
        }
    }

    // ---------------------------------------------------------------- parse

    #[test]
    fn parse_crlf_lf_mixed_and_folding() {
        let m = b"Subject: a\r\n b\r\n\tc\r\nFrom: x@y\n\nbody\r\n";
        let e = parse(m).unwrap();
        assert_eq!(e.headers.len(), 2);
        assert_eq!(e.headers[0].name, "Subject");
        assert_eq!(e.headers[0].value, "a b\tc");
        assert_eq!(e.headers[0].raw, b"Subject: a\r\n b\r\n\tc\r\n");
        assert_eq!(e.header("SUBJECT"), Some("a b\tc"));
        assert_eq!(e.header("from"), Some("x@y"));
        assert_eq!(e.header_bytes, b"Subject: a\r\n b\r\n\tc\r\nFrom: x@y\n\n");
        assert_eq!(e.body, b"body\r\n");
        assert_eq!(e.raw, m);
        // First of duplicate headers; header_all gives all.
        let e = parse(b"Received: 1\r\nReceived: 2\r\n\r\n").unwrap();
        assert_eq!(e.header("received"), Some("1"));
        assert_eq!(e.header_all("RECEIVED").collect::<Vec<_>>(), ["1", "2"]);
        // Obsolete "Name : value".
        assert_eq!(
            parse(b"Subject : x\r\n\r\n").unwrap().header("subject"),
            Some("x")
        );
    }

    #[test]
    fn parse_edge_shapes() {
        // Headers only, no blank line: empty body.
        let e = parse(b"Content-Type: text/plain\r\n").unwrap();
        assert_eq!(e.body, b"");
        assert_eq!(e.headers[0].value, "text/plain");
        let e = parse(b"Subject: no newline at all").unwrap();
        assert_eq!(e.headers[0].raw, b"Subject: no newline at all");
        assert_eq!(e.body, b"");
        // Empty header block (a body part with no headers).
        let e = parse(b"\r\nThis is some sample content.").unwrap();
        assert!(e.headers.is_empty());
        assert_eq!(e.header_bytes, b"\r\n");
        assert_eq!(e.body, b"This is some sample content.");
        assert_eq!(e.content_type(), ContentType::default());
        let e = parse(b"\n").unwrap();
        assert_eq!((e.header_bytes, e.body), (&b"\n"[..], &b""[..]));
        // A non-header line after headers starts the body (tolerant).
        let e = parse(b"Subject: x\r\nthis is not a header\r\nmore\r\n").unwrap();
        assert_eq!(e.headers.len(), 1);
        assert_eq!(e.body, b"this is not a header\r\nmore\r\n");
        // Non-UTF-8 header bytes do not fail.
        let e = parse(b"Subject: caf\xe9\r\n\r\n").unwrap();
        assert_eq!(e.headers[0].raw, b"Subject: caf\xe9\r\n");
    }

    #[test]
    fn content_type_parsing() {
        let ct = ContentType::parse(
            "Multipart/Signed; protocol=\"application/pkcs7-signature\";; micalg=SHA-256 ;\r\n \
             boundary=\"----=_a;b\\\"c\"; junk; =x; empty=",
        );
        assert_eq!(ct.mime_type, "multipart/signed");
        assert_eq!(ct.param("PROTOCOL"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("micalg"), Some("SHA-256"));
        assert_eq!(ct.param("boundary"), Some("----=_a;b\"c"));
        assert_eq!(ct.param("empty"), Some(""));
        assert_eq!(ct.param("junk"), None);
        assert!(ct.is_multipart());
        assert_eq!(ContentType::parse("text/html").params, vec![]);
        assert_eq!(ContentType::parse("garbage"), ContentType::default());
        assert_eq!(ContentType::parse(""), ContentType::default());
        assert_eq!(
            ContentType::parse("a/b; x=\"unterminated").param("x"),
            Some("unterminated")
        );
        let e = parse(b"content-type: Application/PKCS7-MIME; smime-type=enveloped-data\r\n\r\n")
            .unwrap();
        assert_eq!(e.content_type().param("smime-type"), Some("enveloped-data"));
        assert_eq!(
            parse(b"X: y\r\n\r\n").unwrap().content_type(),
            ContentType::default()
        );
    }

    #[test]
    fn transfer_encodings() {
        let e = parse(b"Content-Transfer-Encoding:  BASE64 (comment)\r\n\r\nTUlNRQ\r\n").unwrap();
        assert_eq!(e.transfer_encoding().as_deref(), Some("base64"));
        assert_eq!(e.decoded_body().unwrap(), b"MIME");
        assert_eq!(decode_base64(b" TU lN\r\nRQ== \r\n").unwrap(), b"MIME");
        assert_eq!(decode_base64(b"TUlNRQ=").unwrap(), b"MIME");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert!(matches!(
            decode_base64(b"TU=lNRQ"),
            Err(MimeError::BadBase64 { .. })
        ));
        assert!(matches!(
            decode_base64(b"TUlNR"),
            Err(MimeError::BadBase64 { .. })
        ));
        assert!(matches!(
            decode_base64(b"TUlN-RQ"),
            Err(MimeError::BadBase64 { .. })
        ));

        assert_eq!(
            decode_quoted_printable(b"caf=C3=a9 =\r\nsoft  \r\nhard=\nx=ZZ=4"),
            b"caf\xc3\xa9 soft\r\nhardx=ZZ=4"
        );
        assert_eq!(decode_quoted_printable(b"a=  \r\nb"), b"ab");
        let e = parse(b"Content-Transfer-Encoding: quoted-printable\n\na=3Db\n").unwrap();
        assert_eq!(e.decoded_body().unwrap(), b"a=b\n");
        for cte in ["7bit", "8bit", "binary"] {
            let m = format!("Content-Transfer-Encoding: {cte}\r\n\r\n=41\r\n");
            assert_eq!(
                parse(m.as_bytes()).unwrap().decoded_body().unwrap(),
                b"=41\r\n"
            );
        }
        assert_eq!(
            parse(b"X: y\r\n\r\n=41").unwrap().decoded_body().unwrap(),
            b"=41"
        );
    }

    // ---------------------------------------------------------------- multipart

    fn parts_of(m: &[u8]) -> Vec<Vec<u8>> {
        multipart_parts(&parse(m).unwrap())
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn multipart_splitting() {
        let m = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--b\r\n\
                  A: 1\r\n\r\none\r\n\r\n--b \t\r\n\r\ntwo\r\n--bb\r\nstill two\r\n--b--  \r\nepilogue\r\n--b\r\nignored\r\n";
        assert_eq!(
            parts_of(m),
            vec![
                b"A: 1\r\n\r\none\r\n".to_vec(),
                b"\r\ntwo\r\n--bb\r\nstill two".to_vec()
            ]
        );
        // LF-only.
        let lf = lf_only(m);
        assert_eq!(
            parts_of(&lf),
            vec![
                b"A: 1\n\none\n".to_vec(),
                b"\ntwo\n--bb\nstill two".to_vec()
            ]
        );
        // No preamble, empty parts, missing close delimiter.
        let m =
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\n--b\r\nlast\r\n";
        assert_eq!(
            parts_of(m),
            vec![b"".to_vec(), b"".to_vec(), b"last\r\n".to_vec()]
        );
        // Truncated right after the opening delimiter: one empty part.
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b";
        assert_eq!(parts_of(m), vec![b"".to_vec()]);
        // Nested multipart: only the top level is split.
        let m = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
                  Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\r\nx\r\n--inner--\r\n\
                  --outer--\r\n";
        let p = parts_of(m);
        assert_eq!(p.len(), 1);
        assert_eq!(parts_of(&p[0]), vec![b"\r\nx".to_vec()]);
        // Mixed line ends: the part keeps its own bytes; only the break before the delimiter goes.
        let m =
            b"Content-Type: multipart/signed; boundary=b\n\n--b\nA: 1\r\n\r\nx\n--b\r\ny\r\n--b--";
        assert_eq!(parts_of(m), vec![b"A: 1\r\n\r\nx".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn canonicalization() {
        assert_eq!(
            canonicalize_crlf(b"a\nb\r\nc\rd\n\n").into_owned(),
            b"a\r\nb\r\nc\rd\r\n\r\n"
        );
        assert_eq!(canonicalize_crlf(b"").into_owned(), b"");
        assert_eq!(canonicalize_crlf(b"\r\n\r\n").into_owned(), b"\r\n\r\n");
        assert_eq!(canonicalize_crlf(b"\r\r\n").into_owned(), b"\r\r\n");
    }

    #[test]
    fn smime_kinds() {
        let k = |ct: &str| is_smime_type(&ContentType::parse(ct));
        assert_eq!(
            k(
                "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=x"
            ),
            Some(SmimeKind::SignedMultipart)
        );
        assert_eq!(
            k("Multipart/Signed; Protocol=\"Application/X-PKCS7-Signature\""),
            Some(SmimeKind::SignedMultipart)
        );
        assert_eq!(
            k("multipart/signed; boundary=x"),
            Some(SmimeKind::SignedMultipart)
        );
        assert_eq!(
            k("multipart/signed; protocol=\"application/pgp-signature\""),
            None
        );
        assert_eq!(
            k("application/pkcs7-mime; smime-type=enveloped-data"),
            Some(SmimeKind::Pkcs7Mime)
        );
        assert_eq!(k("APPLICATION/X-PKCS7-MIME"), Some(SmimeKind::Pkcs7Mime));
        assert_eq!(
            k("application/pkcs7-mime; smime-type=certs-only"),
            Some(SmimeKind::Pkcs7Mime)
        );
        assert_eq!(
            k("application/pkcs7-signature"),
            Some(SmimeKind::Pkcs7Signature)
        );
        assert_eq!(
            k("application/x-pkcs7-signature; name=smime.p7s"),
            Some(SmimeKind::Pkcs7Signature)
        );
        assert_eq!(
            k("application/octet-stream; name=\"SMIME.P7M\""),
            Some(SmimeKind::Pkcs7Mime)
        );
        assert_eq!(k("application/octet-stream; name=x.bin"), None);
        assert_eq!(k("text/plain"), None);
        assert_eq!(k("multipart/mixed; boundary=x"), None);
        let e = parse(b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n filename=\"smime.p7m\"\r\n\r\n").unwrap();
        assert_eq!(smime_kind(&e), Some(SmimeKind::Pkcs7Mime));
        assert_eq!(e.filename().as_deref(), Some("smime.p7m"));
        let e = parse(b"Content-Type: application/octet-stream\r\n\r\n").unwrap();
        assert_eq!(smime_kind(&e), None);
    }

    // ---------------------------------------------------------------- builders

    fn assert_7bit_crlf(out: &[u8], max_line: usize) {
        assert!(
            out.iter().all(|&b| b < 0x80 && b != 0),
            "8-bit byte in output"
        );
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
            }
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
        }
        for line in out.split(|&b| b == b'\n') {
            assert!(
                line.len() <= max_line + 1,
                "line too long: {}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn base64_lines_format_and_roundtrip() {
        assert_eq!(base64_lines(b""), b"");
        assert_eq!(base64_lines(b"MIME"), b"TUlNRQ==\r\n");
        for len in [1usize, 47, 48, 49, 1000, 4097] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let out = base64_lines(&data);
            assert_7bit_crlf(&out, 76);
            let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
            for l in &lines[..lines.len() - 2] {
                assert_eq!(l.len(), BASE64_LINE_LEN + 1);
            }
            assert!(out.ends_with(b"\r\n"));
            assert_eq!(decode_base64(&out).unwrap(), data);
        }
    }

    #[test]
    fn base64_lines_is_fast() {
        let data = vec![0xa5u8; 10 * 1024 * 1024];
        let t = std::time::Instant::now();
        let out = base64_lines(&data);
        let took = t.elapsed();
        assert_eq!(out.len(), 13_981_016 + 2 * 218_454);
        if !cfg!(debug_assertions) {
            assert!(took.as_millis() < 100, "10 MiB took {took:?}");
        }
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn build_pkcs7_mime_roundtrip() {
        let der: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let extra = hdrs(&[
            ("From", "Alice <alice@example.com>"),
            ("To", "bob@example.com"),
            (
                "Subject",
                "Grüße aus Köln — a rather long subject line that needs more than one encoded word",
            ),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain"), // skipped: the builder owns it
        ]);
        for st in ["enveloped-data", "signed-data", "authEnveloped-data"] {
            let out = build_pkcs7_mime(st, &der, &extra);
            assert_7bit_crlf(&out, 78);
            let e = parse(&out).unwrap();
            assert_eq!(e.headers[0].name, "From");
            assert_eq!(e.header("to"), Some("bob@example.com"));
            assert!(e.header("subject").unwrap().starts_with("=?UTF-8?B?"));
            assert_eq!(e.header_all("content-type").count(), 1);
            assert_eq!(smime_kind(&e), Some(SmimeKind::Pkcs7Mime));
            let ct = e.content_type();
            assert_eq!(ct.param("smime-type"), Some(st));
            assert_eq!(ct.param("name"), Some("smime.p7m"));
            assert_eq!(e.filename().as_deref(), Some("smime.p7m"));
            assert_eq!(e.transfer_encoding().as_deref(), Some("base64"));
            assert_eq!(e.decoded_body().unwrap(), der);
        }
        // The encoded subject decodes back.
        let out = build_pkcs7_mime("enveloped-data", b"\x30\x00", &extra);
        let subject = parse(&out).unwrap().header("subject").unwrap().to_owned();
        let decoded: Vec<u8> = subject
            .split_whitespace()
            .flat_map(|w| {
                decode_base64(
                    w.trim_start_matches("=?UTF-8?B?")
                        .trim_end_matches("?=")
                        .as_bytes(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(String::from_utf8(decoded).unwrap(), extra[2].1);
    }

    #[test]
    fn builder_headers_are_sanitized_and_folded() {
        let long_refs: String = (0..60)
            .map(|i| format!("<msg{i}@example.com>"))
            .collect::<Vec<_>>()
            .join(" ");
        let extra = hdrs(&[
            ("Subject", "hi\r\nBcc: evil@example.com"),
            ("X-Multi", "a\n\n\r\nb"),
            ("Bad Name:", "v"),
            ("", "dropped"),
            ("References", &long_refs),
        ]);
        let out = build_pkcs7_mime("enveloped-data", b"\x30\x00", &extra);
        assert_7bit_crlf(&out, 78);
        let e = parse(&out).unwrap();
        assert_eq!(e.header("bcc"), None);
        assert_eq!(e.header("subject"), Some("hi Bcc: evil@example.com"));
        assert_eq!(e.header("x-multi"), Some("a b"));
        assert_eq!(e.header("BadName"), Some("v"));
        assert_eq!(e.header("references"), Some(long_refs.as_str()));
        assert!(
            e.headers
                .iter()
                .find(|h| h.name == "References")
                .unwrap()
                .raw
                .len()
                > 1000
        );
    }

    #[test]
    fn build_signed_multipart_roundtrip() {
        let content =
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello\r\n--not-a-boundary\r\n\r\n";
        let sig: Vec<u8> = std::iter::once(0x30)
            .chain((0..1500u32).map(|i| i as u8))
            .collect();
        let extra = hdrs(&[("From", "a@example.com"), ("MIME-Version", "1.0")]);
        let out = build_signed_multipart(content, &sig, "SHA-256", &extra);
        assert_7bit_crlf(&out, 998);
        let e = parse(&out).unwrap();
        assert_eq!(e.header("mime-version"), Some("1.0"));
        assert_eq!(smime_kind(&e), Some(SmimeKind::SignedMultipart));
        let ct = e.content_type();
        assert_eq!(ct.param("protocol"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("micalg"), Some("sha-256"));
        let boundary = ct.param("boundary").unwrap().to_owned();
        assert!(boundary.len() <= 70);
        assert!(!contains(content, boundary.as_bytes()));
        let parts = multipart_parts(&e).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0], content,
            "part 1 must be the content entity byte for byte"
        );
        let p2 = parse(parts[1]).unwrap();
        assert_eq!(smime_kind(&p2), Some(SmimeKind::Pkcs7Signature));
        assert_eq!(
            p2.header("content-description"),
            Some("S/MIME Cryptographic Signature")
        );
        assert_eq!(p2.filename().as_deref(), Some("smime.p7s"));
        assert_eq!(p2.decoded_body().unwrap(), sig);
        // LF transport of the built message still gives the same canonical part 1.
        let lf = lf_only(&out);
        let lf_parts = multipart_parts(&parse(&lf).unwrap()).unwrap();
        assert_eq!(canonicalize_crlf(lf_parts[0]).into_owned(), content);
        // Content without trailing line break.
        let out =
            build_signed_multipart(b"Content-Type: text/plain\r\n\r\nx", &sig, "sha-512", &[]);
        assert_eq!(
            multipart_parts(&parse(&out).unwrap()).unwrap()[0],
            b"Content-Type: text/plain\r\n\r\nx"
        );
    }

    #[test]
    fn boundaries_are_unique_and_avoid_the_content() {
        let content = b"Content-Type: text/plain\r\n\r\nsame content\r\n";
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let out = build_signed_multipart(content, b"\x30\x00", "sha-256", &[]);
            let b = parse(&out)
                .unwrap()
                .content_type()
                .param("boundary")
                .unwrap()
                .to_owned();
            assert!(seen.insert(b), "boundary repeated");
        }
        // Content that contains the first candidates: the generator moves on to the next one.
        let seed = 0x1234_5678_9abc_def0;
        let (c0, c1, c2) = (
            boundary_candidate(seed, 0),
            boundary_candidate(seed, 1),
            boundary_candidate(seed, 2),
        );
        assert!(c0 != c1 && c1 != c2);
        let evil = format!("Content-Type: text/plain\r\n\r\n--{c0}\r\nx{c1}--\r\n");
        let mut n = 0;
        let picked = make_boundary_with(evil.as_bytes(), seed, || {
            n += 1;
            n - 1
        });
        assert_eq!(picked, c2);
        assert_eq!(n, 3);
        assert_eq!(make_boundary_with(b"", seed, || 0), c0);
    }

    #[test]
    fn split_for_protection_cases() {
        let msg = b"From: a@example.com\nTo: b@example.com\nSubject: hi\nMIME-Version: 1.0\n\
                    Content-Type: text/plain;\n charset=utf-8\nContent-Transfer-Encoding: 8bit\n\
                    Message-ID: <1@x>\n\nBody caf\xc3\xa9\n";
        let (outer, inner) = split_for_protection(msg).unwrap();
        assert_eq!(
            outer,
            hdrs(&[
                ("From", "a@example.com"),
                ("To", "b@example.com"),
                ("Subject", "hi"),
                ("Message-ID", "<1@x>")
            ])
        );
        assert_eq!(
            inner,
            b"Content-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBody caf\xc3\xa9\r\n"
        );
        // No Content-Type: one is added.
        let (outer, inner) = split_for_protection(b"Subject: x\r\n\r\nplain\r\n").unwrap();
        assert_eq!(outer, hdrs(&[("Subject", "x")]));
        assert_eq!(
            inner,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nplain\r\n"
        );
        // Not header-shaped: everything is the body.
        let (outer, inner) = split_for_protection(b"just text\nline 2: with colon\n").unwrap();
        assert!(outer.is_empty());
        assert_eq!(inner, b"Content-Type: text/plain; charset=us-ascii\r\n\r\njust text\r\nline 2: with colon\r\n");
        let (_, inner) = split_for_protection(b"\nA: b\n").unwrap();
        assert_eq!(
            inner,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n\r\nA: b\r\n"
        );
        let (_, inner) = split_for_protection("Grüße\n".as_bytes()).unwrap();
        assert!(inner.starts_with(b"Content-Type: text/plain; charset=utf-8\r\n\r\n"));
        let (_, inner) = split_for_protection(b"").unwrap();
        assert_eq!(inner, b"Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        // Headers only.
        let (outer, inner) = split_for_protection(b"Subject: x").unwrap();
        assert_eq!(outer.len(), 1);
        assert_eq!(inner, b"Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        // Inner entity parses back as MIME.
        let (_, inner) = split_for_protection(msg).unwrap();
        assert_eq!(
            parse(&inner).unwrap().content_type().param("charset"),
            Some("utf-8")
        );
    }

    #[test]
    fn to_7bit_safe_cases() {
        // 7-bit stays as is (but canonical).
        let plain = b"Content-Type: text/plain\n\nhello\n";
        assert_eq!(
            to_7bit_safe(plain).into_owned(),
            canonicalize_crlf(plain).into_owned()
        );
        // 8-bit text -> quoted-printable, and it decodes back to the canonical body.
        let body =
            "Grüße, From the team\r\nFrom here\r\ntrailing space \r\n.\r\n= sign\r\n".repeat(3);
        let mut m =
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                .to_vec();
        m.extend_from_slice(body.as_bytes());
        let out = to_7bit_safe(&m).into_owned();
        assert_7bit_crlf(&out, 76);
        let e = parse(&out).unwrap();
        assert_eq!(e.transfer_encoding().as_deref(), Some("quoted-printable"));
        assert_eq!(e.header_all("content-transfer-encoding").count(), 1);
        assert_eq!(e.decoded_body().unwrap(), body.as_bytes());
        assert!(!out.windows(7).any(|w| w == b"\r\nFrom "));
        // Long line -> QP with soft breaks.
        let long = format!("Content-Type: text/plain\r\n\r\n{}\r\n", "x".repeat(2000));
        let out = to_7bit_safe(long.as_bytes());
        assert_7bit_crlf(&out, 76);
        assert_eq!(
            parse(&out).unwrap().decoded_body().unwrap(),
            format!("{}\r\n", "x".repeat(2000)).as_bytes()
        );
        // Binary -> base64.
        let mut bin =
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                .to_vec();
        let payload: Vec<u8> = (0..=255u8).collect();
        bin.extend_from_slice(&payload);
        let out = to_7bit_safe(&bin).into_owned();
        assert_7bit_crlf(&out, 76);
        let e = parse(&out).unwrap();
        assert_eq!(e.transfer_encoding().as_deref(), Some("base64"));
        assert_eq!(
            e.decoded_body().unwrap(),
            canonicalize_crlf(&payload).into_owned()
        );
        // No headers at all: default text/plain -> QP.
        let out = to_7bit_safe(b"\r\ncaf\xe9").into_owned();
        assert_eq!(parse(&out).unwrap().decoded_body().unwrap(), b"caf\xe9");
        // Already encoded or multipart: unchanged.
        let b64 = b"Content-Transfer-Encoding: base64\r\n\r\n\xff\r\n";
        assert_eq!(to_7bit_safe(b64).into_owned(), b64);
        let mp = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xff\r\n--b--\r\n";
        assert_eq!(to_7bit_safe(mp).into_owned(), mp);
        // Not MIME: returned canonical.
        assert_eq!(to_7bit_safe(b"\xff\xfe\n").into_owned(), b"\xff\xfe\r\n");
    }

    #[test]
    fn qp_encoder_properties() {
        let mut rng = Rng(42);
        for _ in 0..300 {
            let len = rng.below(400);
            let raw: Vec<u8> = (0..len)
                .map(|_| match rng.below(6) {
                    0 => b' ',
                    1 => b'\n',
                    2 => b'=',
                    3 => rng.next() as u8,
                    _ => b'a' + rng.below(26) as u8,
                })
                .collect();
            let canon = canonicalize_crlf(&raw).into_owned();
            let enc = encode_quoted_printable(&canon);
            assert_7bit_crlf(&enc, 76);
            assert_eq!(decode_quoted_printable(&enc), canon);
        }
    }
}

#[cfg(test)]
mod base64_fast_tests {
    use super::*;

    /// The fast decoder and the careful one agree wherever the fast one answers.
    #[test]
    fn fast_path_agrees_with_the_careful_decoder() {
        let mut seed = 7u64;
        for len in [0usize, 1, 2, 3, 47, 48, 57, 100, 1000, 70_000, 200_000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            for width in [64usize, 76, 4, 1000] {
                let mut text = Vec::new();
                for chunk in b64.as_bytes().chunks(width) {
                    text.extend_from_slice(chunk);
                    text.extend_from_slice(b"\r\n");
                }
                assert_eq!(
                    decode_base64_fast(&text).as_deref(),
                    Some(data.as_slice()),
                    "{len}/{width}"
                );
                assert_eq!(decode_base64_checked(&text).unwrap(), data, "{len}/{width}");
            }
        }
        // Odd line lengths and data after padding fall back to the careful decoder.
        assert_eq!(decode_base64_fast(b"QUJD\r\nRA\r\n"), None);
        assert_eq!(decode_base64(b"QUJD\r\nRA\r\n").unwrap(), b"ABCD");
        assert_eq!(decode_base64_fast(b"QQ==\r\nQUJD\r\n"), None);
        assert!(decode_base64(b"QQ==\r\nQUJD\r\n").is_err());
    }
}
