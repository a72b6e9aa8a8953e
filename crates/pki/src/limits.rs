//! The one table of limits on input: how much of anything smimekit reads before it refuses.
//!
//! Mail, certificate files and PKCS#12 files are hostile input. Every parser bounds its work by
//! one of these numbers, so that any input of at most 10 MiB is refused or processed in about a
//! second and a few dozen MiB (`cargo xtask bench-adversarial` measures it). The values are
//! far above what clients send (a message has one to three signers, a chain of a few
//! certificates), and each refusal is a [`LimitExceeded`] that names what was counted and the
//! limit. README's "Limits on input" table is this table (a test keeps them equal).
//!
//! This module only holds the numbers and the error; each parser checks its own count where it
//! reads the elements (`smimekit-message` for MIME and CMS, [`crate::asn1`] for BER nesting,
//! the file key store for PKCS#12).

/// Limits on input, one field per thing counted. [`LIMITS`] is the table every parser uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Header fields in one MIME entity (a message or a body part).
    pub mime_header_fields: usize,
    /// Bytes of the header block of one MIME entity.
    pub mime_header_block: usize,
    /// Bytes of one header field, unfolded.
    pub mime_header_field: usize,
    /// Body parts of one multipart entity.
    pub mime_parts: usize,
    /// Layers `open` peels: CMS layers (signed, enveloped, digested, data) and the multiparts
    /// (multipart/signed, an outer wrapper) holding them, counted together.
    pub layers: usize,
    /// Nesting depth of one BER/DER structure.
    pub ber_depth: usize,
    /// SignerInfos in one SignedData.
    pub signer_infos: usize,
    /// Certificates in one SignedData.
    pub certificates: usize,
    /// CRLs in one SignedData.
    pub crls: usize,
    /// RecipientInfos in one EnvelopedData or AuthEnvelopedData, each encrypted key of a key
    /// agreement counted.
    pub recipient_infos: usize,
    /// Recipients a key without a certificate is tried on (those of its algorithm and curve).
    pub trial_decryptions: usize,
    /// Certificates in one certificate file (PEM, DER, `.p7b`, `.sst`).
    pub container_certificates: usize,
    /// Iterations of one PKCS#12 key derivation (MAC, encrypted safe, shrouded key bag).
    pub pkcs12_iterations: u64,
    /// Iterations of all the key derivations of one PKCS#12 file, added up.
    pub pkcs12_total_iterations: u64,
    /// Bags in one PKCS#12 file, nested ones counted.
    pub pkcs12_bags: usize,
}

/// The limits every parser applies.
pub const LIMITS: Limits = Limits {
    mime_header_fields: 1_000,
    mime_header_block: 1024 * 1024,
    mime_header_field: 64 * 1024,
    mime_parts: 10_000,
    layers: 16,
    ber_depth: 64,
    signer_infos: 64,
    certificates: 256,
    crls: 64,
    recipient_infos: 10_000,
    trial_decryptions: 64,
    container_certificates: 10_000,
    pkcs12_iterations: 1_000_000,
    pkcs12_total_iterations: 4_000_000,
    pkcs12_bags: 256,
};

impl Limits {
    /// The table as (name, value, what is counted), in README order.
    pub fn rows(&self) -> Vec<(&'static str, u64, &'static str)> {
        let u = |v: usize| v as u64;
        vec![
            (
                "mime_header_fields",
                u(self.mime_header_fields),
                "header fields in one MIME entity",
            ),
            (
                "mime_header_block",
                u(self.mime_header_block),
                "bytes of one entity's header block",
            ),
            (
                "mime_header_field",
                u(self.mime_header_field),
                "bytes of one header field, unfolded",
            ),
            (
                "mime_parts",
                u(self.mime_parts),
                "body parts of one multipart",
            ),
            (
                "layers",
                u(self.layers),
                "nested layers `open` peels (CMS layers and the multiparts holding them)",
            ),
            (
                "ber_depth",
                u(self.ber_depth),
                "nesting depth of one BER/DER structure",
            ),
            (
                "signer_infos",
                u(self.signer_infos),
                "SignerInfos in one SignedData",
            ),
            (
                "certificates",
                u(self.certificates),
                "certificates in one SignedData",
            ),
            ("crls", u(self.crls), "CRLs in one SignedData"),
            (
                "recipient_infos",
                u(self.recipient_infos),
                "RecipientInfos (and encrypted keys of key agreements) in one message layer",
            ),
            (
                "trial_decryptions",
                u(self.trial_decryptions),
                "recipients a key without a certificate is tried on",
            ),
            (
                "container_certificates",
                u(self.container_certificates),
                "certificates in one PEM/DER/.p7b/.sst file",
            ),
            (
                "pkcs12_iterations",
                self.pkcs12_iterations,
                "iterations of one PKCS#12 key derivation",
            ),
            (
                "pkcs12_total_iterations",
                self.pkcs12_total_iterations,
                "iterations of all key derivations of one PKCS#12 file",
            ),
            (
                "pkcs12_bags",
                u(self.pkcs12_bags),
                "bags in one PKCS#12 file, nested ones counted",
            ),
        ]
    }
}

/// Input that exceeds one of the [`LIMITS`]: `what` names what was counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many {what}: more than {limit} (a limit on input; see \"Limits on input\")")]
pub struct LimitExceeded {
    /// What was counted, plural (`SignerInfos in one SignedData`).
    pub what: &'static str,
    /// The limit that was exceeded.
    pub limit: u64,
}

impl LimitExceeded {
    /// `Err` when `count` exceeds `limit`.
    pub fn check(what: &'static str, count: usize, limit: usize) -> Result<(), LimitExceeded> {
        if count > limit {
            Err(LimitExceeded {
                what,
                limit: limit as u64,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_only_above_the_limit() {
        assert!(LimitExceeded::check("things", 3, 3).is_ok());
        let e = LimitExceeded::check("SignerInfos in one SignedData", 65, 64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many SignerInfos in one SignedData: more than 64 (a limit on input; see \"Limits on input\")"
        );
    }

    /// README's table is this table: one row `| name | value | what |` per limit.
    #[test]
    fn readme_states_every_limit() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .expect("README.md at the workspace root");
        for (name, value, what) in LIMITS.rows() {
            let row = format!("| `{name}` | {value} | {what} |");
            assert!(readme.contains(&row), "README lacks the row\n{row}");
        }
    }
}
