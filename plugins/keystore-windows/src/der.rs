//! Small byte helpers shared by both key paths (pure Rust, unit-tested on every host).

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_uint(v: &[u8], out: &mut Vec<u8>) {
    let skip = v.iter().take_while(|&&b| b == 0).count();
    let v = &v[skip.min(v.len().saturating_sub(1))..];
    let v = if v.is_empty() { &[0u8][..] } else { v };
    let pad = v[0] & 0x80 != 0;
    out.push(0x02);
    der_len(v.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// CNG's raw ECDSA signature (r‖s, big-endian, equal halves) as DER `Ecdsa-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::with_capacity(raw.len() + 8);
    der_uint(r, &mut body);
    der_uint(s, &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend_from_slice(&body);
    Some(out)
}

/// CryptoAPI works little-endian: signatures come out and ciphertexts go in reversed.
pub fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a pad byte
        raw[63] = 1; // s = 1 after stripping zeros
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn long_len() {
        let mut v = Vec::new();
        der_len(300, &mut v);
        assert_eq!(v, [0x82, 1, 44]);
        assert_eq!(hex(&[0xab, 1]), "ab01");
        assert_eq!(reversed(&[1, 2, 3]), [3, 2, 1]);
    }
}
