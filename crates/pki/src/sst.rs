//! Microsoft serialized certificate store (`.sst`) reader and writer.
//!
//! Layout (docs/exchange-online.md §3, confirmed against MS-OSHARED, Wine and a certutil file):
//!
//! ```text
//! file    := header element* [end]
//! header  := u32le 0 || "CERT"
//! element := property* context        # a context's properties come BEFORE it
//! property:= u32le id, u32le encodingType, u32le length, value
//! context := u32le 32 (cert) | 33 (CRL) | 34 (CTL), u32le encodingType, u32le length, DER
//! end     := 12 zero bytes (id 0)
//! ```
//!
//! [`read_sst`] returns every certificate with the properties that preceded it. It accepts an
//! empty file and a file without end marker (as Wine and certutil output do), stops at id 0,
//! and skips CRL/CTL contexts together with their properties. Property values are returned
//! raw and never interpreted; certificate bytes are not parsed here (see
//! [`crate::container::load_certificates`] for validated loading). Malformed structure is an
//! [`SstError`] carrying the byte offset.
//!
//! [`write_sst`] writes, per certificate, the SHA-1 hash property (id 3) and the certificate
//! context, then the end marker — the minimal form Windows itself produces plus the hash.

use sha1::{Digest, Sha1};
use smimekit_core::CertDer;

/// CERT_CERT_PROP_ID: the element that carries an encoded certificate.
pub const CERT_CONTEXT_ID: u32 = 32;
/// CRL context id (skipped on read).
pub const CRL_CONTEXT_ID: u32 = 33;
/// CTL context id (skipped on read).
pub const CTL_CONTEXT_ID: u32 = 34;
/// CERT_SHA1_HASH_PROP_ID.
pub const SHA1_HASH_PROP_ID: u32 = 3;
/// CERT_FRIENDLY_NAME_PROP_ID (UTF-16LE, NUL-terminated).
pub const FRIENDLY_NAME_PROP_ID: u32 = 11;
/// X509_ASN_ENCODING, the encoding type Windows writes on every element.
pub const X509_ASN_ENCODING: u32 = 1;
/// The 8-byte file header: `u32le 0` then `"CERT"`.
pub const SST_MAGIC: [u8; 8] = [0, 0, 0, 0, b'C', b'E', b'R', b'T'];

/// One certificate of a store and the properties that preceded it, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SstEntry {
    pub certificate: CertDer,
    /// `(property id, raw value)`.
    pub properties: Vec<(u32, Vec<u8>)>,
}

impl SstEntry {
    /// The raw value of the first property with this id.
    pub fn property(&self, id: u32) -> Option<&[u8]> {
        self.properties
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_slice())
    }

    /// The friendly name (property 11), decoded from UTF-16LE without its terminating NUL.
    pub fn friendly_name(&self) -> Option<String> {
        let raw = self.property(FRIENDLY_NAME_PROP_ID)?;
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        Some(String::from_utf16_lossy(&units))
    }
}

/// Why a byte string is not a serialized certificate store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SstError {
    #[error("not a serialized certificate store (expected header 00 00 00 00 'CERT')")]
    BadMagic,
    #[error("offset {offset}: truncated element header ({remaining} bytes left, 12 needed)")]
    TruncatedHeader { offset: usize, remaining: usize },
    #[error("offset {offset}: element length {len} runs past end of file ({file_len} bytes)")]
    Overrun {
        offset: usize,
        len: u32,
        file_len: usize,
    },
    #[error("offset {offset}: invalid property id {id:#x} (must be at most 0xffff)")]
    BadPropertyId { offset: usize, id: u32 },
    #[error("offset {offset}: {count} property element(s) not followed by a certificate")]
    DanglingProperties { offset: usize, count: usize },
    #[error("offset {offset}: certificate element is empty")]
    EmptyCertificate { offset: usize },
}

const ELEMENT_HEADER_LEN: usize = 12;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads a serialized store. See the module docs for what is accepted.
pub fn read_sst(bytes: &[u8]) -> Result<Vec<SstEntry>, SstError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < SST_MAGIC.len() || bytes[..SST_MAGIC.len()] != SST_MAGIC {
        return Err(SstError::BadMagic);
    }
    let mut entries = Vec::new();
    let mut props: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut props_start = 0usize;
    let mut pos = SST_MAGIC.len();
    while pos < bytes.len() {
        let remaining = bytes.len() - pos;
        if remaining < ELEMENT_HEADER_LEN {
            return Err(SstError::TruncatedHeader {
                offset: pos,
                remaining,
            });
        }
        // Bounds: pos + 12 <= len checked just above.
        let id = u32_at(bytes, pos);
        let len = u32_at(bytes, pos + 8);
        if id == 0 {
            // End marker. Anything after it is ignored, as Windows and Wine do.
            break;
        }
        let value_start = pos + ELEMENT_HEADER_LEN;
        let value_end = match usize::try_from(len)
            .ok()
            .and_then(|l| value_start.checked_add(l))
        {
            Some(end) if end <= bytes.len() => end,
            _ => {
                return Err(SstError::Overrun {
                    offset: pos,
                    len,
                    file_len: bytes.len(),
                });
            }
        };
        let value = &bytes[value_start..value_end];
        match id {
            CERT_CONTEXT_ID => {
                if value.is_empty() {
                    return Err(SstError::EmptyCertificate { offset: pos });
                }
                entries.push(SstEntry {
                    certificate: CertDer::new(value),
                    properties: std::mem::take(&mut props),
                });
            }
            CRL_CONTEXT_ID | CTL_CONTEXT_ID => props.clear(),
            id if id > 0xFFFF => return Err(SstError::BadPropertyId { offset: pos, id }),
            id => {
                if props.is_empty() {
                    props_start = pos;
                }
                props.push((id, value.to_vec()));
            }
        }
        pos = value_end;
    }
    if !props.is_empty() {
        return Err(SstError::DanglingProperties {
            offset: props_start,
            count: props.len(),
        });
    }
    Ok(entries)
}

/// Just the certificates of a store, in file order.
pub fn read_sst_certificates(bytes: &[u8]) -> Result<Vec<CertDer>, SstError> {
    Ok(read_sst(bytes)?
        .into_iter()
        .map(|e| e.certificate)
        .collect())
}

fn push_element(out: &mut Vec<u8>, id: u32, value: &[u8]) {
    // Callers guarantee value.len() <= u32::MAX (checked in write_sst).
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&X509_ASN_ENCODING.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

/// Writes a store holding `certs` in order: header, then per certificate the SHA-1 hash
/// property (id 3) and the certificate element (id 32), then the 12-byte end marker.
///
/// A certificate longer than `u32::MAX` bytes cannot be represented in the format and is
/// left out (no real certificate comes near that size).
pub fn write_sst(certs: &[CertDer]) -> Vec<u8> {
    let body: usize = certs
        .iter()
        .map(|c| 2 * ELEMENT_HEADER_LEN + 20 + c.as_bytes().len())
        .sum();
    let mut out = Vec::with_capacity(SST_MAGIC.len() + body + ELEMENT_HEADER_LEN);
    out.extend_from_slice(&SST_MAGIC);
    for cert in certs {
        let der = cert.as_bytes();
        if u32::try_from(der.len()).is_err() {
            continue;
        }
        let hash = Sha1::digest(der);
        push_element(&mut out, SHA1_HASH_PROP_ID, &hash);
        push_element(&mut out, CERT_CONTEXT_ID, der);
    }
    out.extend_from_slice(&[0u8; ELEMENT_HEADER_LEN]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn certs() -> Vec<CertDer> {
        vec![
            CertDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
            CertDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x02]),
        ]
    }

    #[test]
    fn round_trip_with_hash_property_and_end_marker() {
        let bytes = write_sst(&certs());
        assert_eq!(&bytes[..8], &SST_MAGIC);
        assert_eq!(&bytes[bytes.len() - 12..], &[0u8; 12]);
        let entries = read_sst(&bytes).unwrap();
        assert_eq!(entries.len(), 2);
        for (e, c) in entries.iter().zip(certs()) {
            assert_eq!(e.certificate, c);
            assert_eq!(e.properties.len(), 1);
            assert_eq!(
                e.property(SHA1_HASH_PROP_ID).unwrap(),
                &Sha1::digest(c.as_bytes())[..]
            );
        }
        // Exact layout of the first element: id 3, enc 1, len 20.
        assert_eq!(&bytes[8..20], &[3, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0]);
    }

    #[test]
    fn empty_header_only_and_no_end_marker() {
        assert_eq!(read_sst(&[]).unwrap(), vec![]);
        assert_eq!(read_sst(&SST_MAGIC).unwrap(), vec![]);
        assert_eq!(read_sst(&write_sst(&[])).unwrap(), vec![]);
        let mut b = write_sst(&certs());
        b.truncate(b.len() - 12);
        assert_eq!(read_sst(&b).unwrap().len(), 2);
    }

    #[test]
    fn skips_crl_contexts_and_keeps_other_properties() {
        let mut b = SST_MAGIC.to_vec();
        push_element(&mut b, 11, &[b'A', 0, 0, 0]);
        push_element(&mut b, CRL_CONTEXT_ID, &[0x30, 0x00]);
        push_element(&mut b, 11, &[b'B', 0, 0, 0]);
        push_element(&mut b, 20, &[1, 2]);
        push_element(&mut b, CERT_CONTEXT_ID, &[0x30, 0x00]);
        let e = read_sst(&b).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].properties,
            vec![(11, vec![b'B', 0, 0, 0]), (20, vec![1, 2])]
        );
        assert_eq!(e[0].friendly_name().as_deref(), Some("B"));
    }

    #[test]
    fn malformed_input_reports_offsets() {
        assert_eq!(read_sst(b"CERT0000"), Err(SstError::BadMagic));
        assert_eq!(read_sst(&[0, 0, 0]), Err(SstError::BadMagic));
        let good = write_sst(&certs());
        // Truncated inside the header of the second certificate's first element.
        let cut = &good[..8 + 32 + 17 + 4];
        assert_eq!(
            read_sst(cut),
            Err(SstError::TruncatedHeader {
                offset: 57,
                remaining: 4
            })
        );
        // Length past the end.
        let mut b = SST_MAGIC.to_vec();
        b.extend_from_slice(&[32, 0, 0, 0, 1, 0, 0, 0, 0x9F, 0x86, 0x01, 0x00, 0x30]);
        let err = read_sst(&b).unwrap_err();
        assert_eq!(
            err,
            SstError::Overrun {
                offset: 8,
                len: 99999,
                file_len: 21
            }
        );
        assert_eq!(
            err.to_string(),
            "offset 8: element length 99999 runs past end of file (21 bytes)"
        );
        // u32::MAX length.
        let mut b = SST_MAGIC.to_vec();
        b.extend_from_slice(&[32, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(read_sst(&b), Err(SstError::Overrun { .. })));
        // Property id out of range.
        let mut b = SST_MAGIC.to_vec();
        push_element(&mut b, 0x10000, &[]);
        assert_eq!(
            read_sst(&b),
            Err(SstError::BadPropertyId {
                offset: 8,
                id: 0x10000
            })
        );
        // Properties at the end without a certificate.
        let mut b = SST_MAGIC.to_vec();
        push_element(&mut b, 3, &[0; 20]);
        assert_eq!(
            read_sst(&b),
            Err(SstError::DanglingProperties {
                offset: 8,
                count: 1
            })
        );
        // Empty certificate.
        let mut b = SST_MAGIC.to_vec();
        push_element(&mut b, 32, &[]);
        assert_eq!(read_sst(&b), Err(SstError::EmptyCertificate { offset: 8 }));
    }

    #[test]
    fn never_panics_on_truncation_or_mutation() {
        let good = write_sst(&certs());
        for cut in 0..good.len() {
            let _ = read_sst(&good[..cut]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x20, 0x7F, 0xFF] {
                let mut m = good.clone();
                m[i] = v;
                let _ = read_sst(&m);
            }
        }
    }
}
