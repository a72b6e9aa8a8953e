//! Lint of the organisation's OWA S/MIME settings (`exchange config show|set`): what the
//! service shows beside Get-SmimeConfig's values.

/// Lint of the OWA S/MIME settings (exchange-online.md §2.2, §5).
pub fn org_settings_warnings(settings: &[(String, String)]) -> Vec<String> {
    let get = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let mut w = Vec::new();
    if let Some(enc) = get("OWAEncryptionAlgorithms") {
        for (id, name) in [("6601", "DES"), ("6602", "RC2"), ("6603", "3DES")] {
            if enc.split(';').any(|a| a.trim().starts_with(id)) {
                w.push(format!("OWAEncryptionAlgorithms includes {name} ({id}): weak; use 6610 (AES-256) or 660E (AES-128)"));
            }
        }
    }
    if let Some(sig) = get("OWASigningAlgorithms") {
        for (id, name) in [("8003", "MD5"), ("8004", "SHA-1")] {
            if sig.split(';').any(|a| a.trim().starts_with(id)) {
                w.push(format!("OWASigningAlgorithms includes {name} ({id}): broken for signatures; use 800C (SHA-256) or 800E (SHA-512)"));
            }
        }
    }
    if get("OWADisableCRLCheck").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        w.push("OWADisableCRLCheck = true: revoked certificates are accepted".into());
    }
    if get("OWAIncludeCertificateChainWithoutRootCertificate")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        && get("OWAIncludeCertificateChainAndRootCertificate")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        w.push("no certificate chain in signed mail: recipients without your intermediates cannot validate signatures (set OWAIncludeCertificateChainWithoutRootCertificate = true)".into());
    }
    if get("OWAAllowUserChoiceOfSigningCertificate").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        w.push("OWAAllowUserChoiceOfSigningCertificate = true: users may sign with any certificate they hold".into());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risky_settings_warn() {
        let s = vec![
            (
                "OWAEncryptionAlgorithms".to_string(),
                "6603;6610".to_string(),
            ),
            ("OWASigningAlgorithms".to_string(), "8004".to_string()),
            ("OWADisableCRLCheck".to_string(), "True".to_string()),
        ];
        let w = org_settings_warnings(&s);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            org_settings_warnings(&[("OWASigningAlgorithms".into(), "800C".into())]).is_empty()
        );
    }
}
