//! PEM block scanning. OpenSSL parses the blocks; this only finds them and their labels.

use base64::Engine as _;

/// One `-----BEGIN LABEL----- … -----END LABEL-----` block.
#[derive(Debug, Clone)]
pub(crate) struct Block<'a> {
    pub label: &'a str,
    /// The whole block, armour included (what OpenSSL's PEM readers want).
    pub text: &'a str,
    /// RFC 1421 headers present (`Proc-Type: 4,ENCRYPTED` marks a legacy encrypted key).
    pub encrypted_header: bool,
}

impl Block<'_> {
    /// The base64 body decoded (headers skipped).
    pub fn decode(&self) -> Result<Vec<u8>, String> {
        let mut body = String::new();
        for line in self.text.lines().skip(1) {
            let line = line.trim();
            if line.starts_with("-----END") {
                break;
            }
            if line.contains(':') {
                continue; // RFC 1421 header
            }
            body.push_str(line);
        }
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("bad base64 in {} block: {e}", self.label))
    }
}

/// Whether `data` looks like PEM text at all.
pub(crate) fn is_pem(data: &[u8]) -> bool {
    let head = &data[..data.len().min(64 * 1024)];
    head.windows(11).any(|w| w == b"-----BEGIN ")
}

/// All blocks in `text`, in order. Text between blocks is ignored.
pub(crate) fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(b) = rest.find("-----BEGIN ") {
        let start = offset + b;
        let after = &text[start + 11..];
        let Some(close) = after.find("-----") else {
            break;
        };
        let label = after[..close].trim();
        let end_marker = format!("-----END {label}-----");
        let Some(end_rel) = text[start..].find(&end_marker) else {
            break;
        };
        let end = start + end_rel + end_marker.len();
        let block = &text[start..end];
        out.push(Block {
            label,
            text: block,
            encrypted_header: block.contains("Proc-Type:") && block.contains("ENCRYPTED"),
        });
        offset = end;
        rest = &text[end..];
    }
    out
}

/// Labels of private-key blocks OpenSSL's PEM reader accepts.
pub(crate) fn is_key_label(label: &str) -> bool {
    matches!(
        label,
        "PRIVATE KEY"
            | "ENCRYPTED PRIVATE KEY"
            | "RSA PRIVATE KEY"
            | "EC PRIVATE KEY"
            | "DSA PRIVATE KEY"
            | "ANY PRIVATE KEY"
    )
}

pub(crate) fn is_cert_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_and_headers() {
        let text = "junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\nmore\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        let b = blocks(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "RSA PRIVATE KEY");
        assert!(b[0].encrypted_header);
        assert_eq!(b[0].decode().unwrap(), vec![0, 0, 0]);
        assert_eq!(b[1].label, "CERTIFICATE");
        assert!(!b[1].encrypted_header);
        assert_eq!(b[1].decode().unwrap(), vec![0, 1, 2]);
        assert!(is_pem(text.as_bytes()));
    }
}
