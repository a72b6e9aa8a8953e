//! The list encoding: a sequence of items, each a 4-byte little-endian length followed by that
//! many bytes. Items may themselves be lists. Used wherever a call returns several values
//! (certificate chains, key listings, recipients).

/// Appends one item.
pub fn push(out: &mut Vec<u8>, item: &[u8]) {
    // Items are certificates and names, far below 4 GiB; longer ones are truncated by the
    // reader's length check rather than wrapped.
    let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(item);
}

/// Encodes items as a list.
pub fn encode<I: AsRef<[u8]>>(items: impl IntoIterator<Item = I>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        push(&mut out, i.as_ref());
    }
    out
}

/// Decodes a list; `None` when a length runs past the end.
pub fn decode(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let item = data.get(4..4 + len)?;
        out.push(item);
        data = &data[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let enc = encode([b"ab".as_slice(), b"", b"xyz"]);
        assert_eq!(decode(&enc), Some(vec![b"ab".as_slice(), b"", b"xyz"]));
        assert_eq!(decode(&enc[..enc.len() - 1]), None);
        assert_eq!(decode(&[]), Some(vec![]));
    }
}
