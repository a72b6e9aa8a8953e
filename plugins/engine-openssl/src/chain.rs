//! Certification-path building and validation with OpenSSL's `X509_verify_cert`.
//!
//! Trust comes only from the request's anchors (never the system CA store; partial chains are
//! not accepted, so an intermediate given as an anchor does not end a path). Validation happens
//! at the request's time; with `smime_purpose` the S/MIME signing purpose applies (which accepts
//! certificates without an EKU). When CRLs are given, every certificate in the path must be
//! covered by one (`CRL_CHECK | CRL_CHECK_ALL`, with indirect/scoped and delta CRLs), and RFC 5280
//! policy processing is on. CRLs are not fetched, OCSP is not consulted.
//! A failure is an outcome with a reason, never an error or a panic.

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509Crl, X509PurposeId, X509StoreContext, X509StoreContextRef};
use smimekit_core::engine::ChainValidator;
use smimekit_core::{CertDer, ChainOutcome, ChainRequest};

use crate::{describe, ffi};

/// [`ChainValidator`] on OpenSSL.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsslChain;

impl ChainValidator for OsslChain {
    fn validate(&self, request: &ChainRequest) -> ChainOutcome {
        match validate(request) {
            Ok(outcome) => outcome,
            Err(reason) => ChainOutcome {
                trusted: false,
                path: vec![request.leaf.clone()],
                reason: Some(reason),
            },
        }
    }
}

/// The validation proper; `Err` carries the reason for an untrusted outcome.
fn validate(request: &ChainRequest) -> Result<ChainOutcome, String> {
    let leaf = X509::from_der(request.leaf.as_bytes())
        .map_err(|e| format!("cannot parse the certificate: {}", describe(&e)))?;

    let mut store = X509StoreBuilder::new().map_err(|e| describe(&e))?;
    let mut anchors = 0usize;
    for der in &request.anchors {
        // An unreadable anchor simply trusts nothing.
        let added = X509::from_der(der.as_bytes()).map(|cert| store.add_cert(cert).is_ok());
        anchors += usize::from(added.unwrap_or(false));
    }
    if anchors == 0 {
        return Err("no trust anchors".into());
    }
    // The CRLs go to the verification context, not the store: OpenSSL looks CRLs up in a store
    // only by the certificate's issuer name, which never finds an indirect CRL (cRLIssuer).
    let crls = request
        .crls
        .iter()
        .map(|der| X509Crl::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot parse a CRL: {}", describe(&e)))?;

    let mut param = X509VerifyParam::new().map_err(|e| describe(&e))?;
    // time_t is i64 on this platform but not on every one.
    #[allow(clippy::useless_conversion)]
    let at = request
        .at
        .try_into()
        .map_err(|_| format!("validation time {} out of range", request.at))?;
    param.set_time(at);
    // RFC 5280 policy processing (initial policy set anyPolicy, no explicit policy required):
    // without it OpenSSL ignores policy constraints, inhibitAnyPolicy and policy mappings.
    let mut flags = X509VerifyFlags::USE_CHECK_TIME | X509VerifyFlags::POLICY_CHECK;
    if !request.crls.is_empty() {
        // Indirect CRLs, distribution-point scopes, and delta CRLs are part of RFC 5280
        // revocation checking; without these flags OpenSSL rejects valid scoped CRLs.
        flags |= X509VerifyFlags::CRL_CHECK
            | X509VerifyFlags::CRL_CHECK_ALL
            | X509VerifyFlags::EXTENDED_CRL_SUPPORT
            | X509VerifyFlags::USE_DELTAS;
    }
    param.set_flags(flags).map_err(|e| describe(&e))?;
    // The caller's level, never OpenSSL's default (which differs between versions and builds).
    param.set_auth_level(i32::from(request.security_level));
    if request.smime_purpose {
        param
            .set_purpose(X509PurposeId::SMIME_SIGN)
            .map_err(|e| format!("S/MIME purpose: {}", describe(&e)))?;
    }
    store.set_param(&param).map_err(|e| describe(&e))?;
    let store = store.build();

    let mut untrusted = Stack::new().map_err(|e| describe(&e))?;
    for der in &request.intermediates {
        if let Ok(cert) = X509::from_der(der.as_bytes()) {
            untrusted.push(cert).map_err(|e| describe(&e))?;
        }
    }

    let mut ctx = X509StoreContext::new().map_err(|e| describe(&e))?;
    ctx.init(&store, &leaf, &untrusted, |c| {
        ffi::with_ctx_crls(c, &crls, |c| outcome(c, request))
    })
    .map_err(|e| describe(&e))
}

/// Runs the verification on an initialised context and reads the result.
fn outcome(c: &mut X509StoreContextRef, request: &ChainRequest) -> ChainOutcome {
    match c.verify_cert() {
        Ok(true) => {
            let path: Vec<CertDer> = c
                .chain()
                .map(|chain| {
                    chain
                        .iter()
                        .filter_map(|cert| cert.to_der().ok())
                        .map(CertDer::from)
                        .collect()
                })
                .unwrap_or_default();
            if path.is_empty() {
                return untrusted(
                    request,
                    "OpenSSL verified the chain but returned no path".into(),
                );
            }
            ChainOutcome {
                trusted: true,
                path,
                reason: None,
            }
        }
        Ok(false) => untrusted(
            request,
            format!("{} (depth {})", c.error().error_string(), c.error_depth()),
        ),
        Err(e) => untrusted(request, format!("verification error: {}", describe(&e))),
    }
}

fn untrusted(request: &ChainRequest, reason: String) -> ChainOutcome {
    ChainOutcome {
        trusted: false,
        path: vec![request.leaf.clone()],
        reason: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::X509Ref;

    use super::*;
    use crate::testutil::{DAY, T2020, cert, ec_key};

    struct Pki {
        root_key: PKey<Private>,
        root: X509,
        ca_key: PKey<Private>,
        ca: X509,
        leaf: X509,
    }

    /// Root (10 years from 2020) → intermediate (5 years) → leaf (1 year from 2020).
    fn pki() -> Pki {
        let root_key = ec_key(Nid::X9_62_PRIME256V1);
        let root = cert("Test Root", &root_key, None, true, 1, T2020, 3650);
        let ca_key = ec_key(Nid::X9_62_PRIME256V1);
        let ca = cert(
            "Test CA",
            &ca_key,
            Some((&root, &root_key)),
            true,
            2,
            T2020,
            1825,
        );
        let leaf_key = ec_key(Nid::X9_62_PRIME256V1);
        let leaf = cert(
            "alice@example.com",
            &leaf_key,
            Some((&ca, &ca_key)),
            false,
            3,
            T2020,
            365,
        );
        Pki {
            root_key,
            root,
            ca_key,
            ca,
            leaf,
        }
    }

    fn der(c: &X509Ref) -> CertDer {
        CertDer::from(c.to_der().unwrap())
    }

    fn request(p: &Pki, at: i64) -> ChainRequest {
        ChainRequest {
            leaf: der(&p.leaf),
            intermediates: vec![der(&p.ca)],
            anchors: vec![der(&p.root)],
            at,
            crls: vec![],
            smime_purpose: true,
            security_level: 1,
        }
    }

    /// A CRL from `issuer`, valid for 30 days from `at`, revoking `serials`.
    fn crl(issuer: &X509, key: &PKey<Private>, at: i64, serials: &[u32]) -> Vec<u8> {
        // The safe crate has no CRL builder: `openssl ca -gencrl` in a temp directory.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("smimekit-engine-crl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), issuer.to_pem().unwrap()).unwrap();
        std::fs::write(dir.join("ca.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let mut index = String::new();
        for s in serials {
            // status, expiry, revocation date, serial (hex), file, subject
            index.push_str(&format!(
                "R\t301231000000Z\t200601000000Z\t{s:02X}\tunknown\t/CN=x\n"
            ));
        }
        std::fs::write(dir.join("index.txt"), index).unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        let conf = format!(
            "[ca]\ndefault_ca=c\n[c]\ndatabase={d}/index.txt\ncrlnumber={d}/crlnumber\n\
             default_md=sha256\ndefault_crl_days=30\n",
            d = dir.display()
        );
        std::fs::write(dir.join("ca.cnf"), conf).unwrap();
        let status = std::process::Command::new("openssl")
            .args(["ca", "-gencrl", "-batch", "-config"])
            .arg(dir.join("ca.cnf"))
            .arg("-cert")
            .arg(dir.join("ca.pem"))
            .arg("-keyfile")
            .arg(dir.join("ca.key"))
            .args([
                "-crl_lastupdate",
                &asn1_time(at),
                "-crl_nextupdate",
                &asn1_time(at + 30 * DAY),
            ])
            .arg("-out")
            .arg(dir.join("crl.pem"))
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let pem = std::fs::read(dir.join("crl.pem")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        X509Crl::from_pem(&pem).unwrap().to_der().unwrap()
    }

    /// `YYYYMMDDHHMMSSZ` for a Unix time (UTC).
    fn asn1_time(t: i64) -> String {
        let days = t.div_euclid(DAY);
        let secs = t.rem_euclid(DAY);
        // Civil-from-days (Howard Hinnant).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    #[test]
    fn good_chain() {
        let p = pki();
        let out = OsslChain.validate(&request(&p, T2020 + 100 * DAY));
        assert!(out.trusted, "{:?}", out.reason);
        assert_eq!(out.reason, None);
        assert_eq!(out.path, vec![der(&p.leaf), der(&p.ca), der(&p.root)]);
    }

    /// The security level is the request's: a leaf signed with SHA-1 (or an RSA-1024 leaf at
    /// level 2) fails, and level 0 accepts it.
    #[test]
    fn security_level_is_explicit() {
        use openssl::rsa::Rsa;
        use openssl::x509::X509Builder;
        let p = pki();
        let resign = |key: &PKey<Private>, digest: MessageDigest| {
            let mut b = X509Builder::new().unwrap();
            b.set_version(2).unwrap();
            b.set_serial_number(p.leaf.serial_number()).unwrap();
            b.set_subject_name(p.leaf.subject_name()).unwrap();
            b.set_issuer_name(p.ca.subject_name()).unwrap();
            b.set_pubkey(key).unwrap();
            b.set_not_before(p.leaf.not_before()).unwrap();
            b.set_not_after(p.leaf.not_after()).unwrap();
            b.sign(&p.ca_key, digest).unwrap();
            b.build()
        };
        let leaf_key = ec_key(Nid::X9_62_PRIME256V1);
        let sha1 = resign(&leaf_key, MessageDigest::sha1());
        let mut req = request(&p, T2020 + DAY);
        req.leaf = der(&sha1);
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("too weak"));
        req.security_level = 0;
        assert!(OsslChain.validate(&req).trusted);

        let rsa1024 = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let small = resign(&rsa1024, MessageDigest::sha256());
        let mut req = request(&p, T2020 + DAY);
        req.leaf = der(&small);
        assert!(OsslChain.validate(&req).trusted, "level 1 takes RSA-1024");
        req.security_level = 2;
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("key too weak"));
    }

    #[test]
    fn expired_at_time() {
        let p = pki();
        let out = OsslChain.validate(&request(&p, T2020 + 400 * DAY));
        assert!(!out.trusted);
        assert_eq!(out.path, vec![der(&p.leaf)]);
        assert_eq!(
            out.reason.as_deref(),
            Some("certificate has expired (depth 0)")
        );
        let out = OsslChain.validate(&request(&p, T2020 - DAY));
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("not yet valid"));
    }

    #[test]
    fn untrusted_root() {
        let p = pki();
        let other = pki();
        let mut req = request(&p, T2020 + DAY);
        req.anchors = vec![der(&other.root)];
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("depth 1"));
        // The intermediate as anchor is not enough: partial chains are not accepted.
        req.anchors = vec![der(&p.ca)];
        assert!(!OsslChain.validate(&req).trusted);
        // Missing intermediate.
        let mut req = request(&p, T2020 + DAY);
        req.intermediates.clear();
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("local issuer"));
    }

    #[test]
    fn revoked_via_crl() {
        let p = pki();
        let at = T2020 + 200 * DAY;
        let root_crl = crl(&p.root, &p.root_key, at - DAY, &[]);
        let ca_crl_clean = crl(&p.ca, &p.ca_key, at - DAY, &[]);
        let ca_crl_revoked = crl(&p.ca, &p.ca_key, at - DAY, &[3]);

        let mut req = request(&p, at);
        req.crls = vec![root_crl.clone(), ca_crl_clean];
        let out = OsslChain.validate(&req);
        assert!(out.trusted, "{:?}", out.reason);

        req.crls = vec![root_crl.clone(), ca_crl_revoked];
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert_eq!(out.reason.as_deref(), Some("certificate revoked (depth 0)"));

        // CRL_CHECK_ALL: the intermediate needs a CRL too.
        req.crls = vec![root_crl];
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(
            out.reason
                .unwrap()
                .contains("unable to get certificate CRL")
        );
    }

    #[test]
    fn garbage_is_an_outcome() {
        let p = pki();
        let mut req = request(&p, T2020 + DAY);
        req.leaf = CertDer::from(b"\x30\x03\x02\x01\x00".to_vec());
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert_eq!(out.path, vec![req.leaf.clone()]);
        assert!(out.reason.unwrap().contains("cannot parse"));

        let mut req = request(&p, T2020 + DAY);
        req.anchors = vec![CertDer::from(vec![1, 2, 3])];
        req.intermediates.push(CertDer::from(vec![]));
        assert!(!OsslChain.validate(&req).trusted);

        let mut req = request(&p, T2020 + DAY);
        req.crls = vec![vec![0x30, 0x00]];
        assert!(!OsslChain.validate(&req).trusted);
    }

    #[test]
    fn smime_purpose_checks_eku() {
        // A leaf whose EKU is serverAuth only fails the S/MIME purpose.
        let p = pki();
        let key = ec_key(Nid::X9_62_PRIME256V1);
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(
            &openssl::bn::BigNum::from_u32(9)
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "server").unwrap();
        b.set_subject_name(&name.build()).unwrap();
        b.set_issuer_name(p.ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(T2020).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(T2020 + 365 * DAY).unwrap())
            .unwrap();
        b.append_extension(
            openssl::x509::extension::ExtendedKeyUsage::new()
                .server_auth()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&p.ca_key, MessageDigest::sha256()).unwrap();
        let server = b.build();
        let mut req = request(&p, T2020 + DAY);
        req.leaf = der(&server);
        let out = OsslChain.validate(&req);
        assert!(!out.trusted);
        assert!(out.reason.unwrap().contains("purpose"));
        req.smime_purpose = false;
        assert!(OsslChain.validate(&req).trusted);
    }
}
