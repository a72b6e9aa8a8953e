//! Certificate lint: will this certificate work for S/MIME in Outlook, OWA, Thunderbird and
//! Apple Mail?
//!
//! Rules are data ([`RULES`]): an id scripts can match on, a default [`Severity`], per-profile
//! overrides, a title, an explanation written for an Exchange admin, and a fix. [`lint`]
//! applies them to a set of certificates (each linted as an end-entity S/MIME certificate)
//! and, with a trust store (the `.sst` uploaded to Exchange Online with
//! `Set-SmimeConfig -SMIMECertificateIssuingCA`), checks that each chains to it with
//! [`crate::chain`]. Key sizes and curves come from the [`SignatureVerifier`] port, so this
//! module stays free of crypto libraries. `docs/lint.md` is generated from the table
//! ([`rules_markdown`]); a test keeps them in step.

use std::collections::HashMap;

use serde::Serialize;
use smimekit_core::{CertDer, SignatureVerifier};

use crate::KeyUsageBits;
use crate::certinfo::{self, CertInfo};
use crate::chain::{ChainBuilder, ChainCert};

/// How bad a finding is. Any `Error` makes `smimekit lint` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Which client's expectations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// What every client needs; the CA/Browser Forum S/MIME BR where clients agree.
    #[default]
    Generic,
    /// Outlook on the web / new Outlook against Exchange Online.
    Owa,
    /// Classic Outlook for Windows.
    Outlook,
    /// Thunderbird (NSS).
    Thunderbird,
    /// Apple Mail on macOS and iOS.
    Apple,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Generic,
        Profile::Owa,
        Profile::Outlook,
        Profile::Thunderbird,
        Profile::Apple,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Owa => "owa",
            Profile::Outlook => "outlook",
            Profile::Thunderbird => "thunderbird",
            Profile::Apple => "apple",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// One rule of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// Per-profile severity; `None` switches the rule off for that profile.
    pub profiles: &'static [(Profile, Option<Severity>)],
    pub title: &'static str,
    pub explanation: &'static str,
    pub fix: &'static str,
}

impl Rule {
    /// The severity under `profile`, or `None` when the rule is off.
    pub fn severity_for(&self, profile: Profile) -> Option<Severity> {
        self.profiles
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, s)| *s)
            .unwrap_or(Some(self.severity))
    }
}

use Profile::*;
use Severity::{Error as E, Info as I, Warning as W};

/// The rules, in the order findings are reported.
pub const RULES: &[Rule] = &[
    Rule {
        id: "eku-no-email-protection",
        severity: E,
        profiles: &[],
        title: "extendedKeyUsage lacks emailProtection",
        explanation: "The certificate restricts its purposes with an extendedKeyUsage extension that does not list \
            id-kp-emailProtection (1.3.6.1.5.5.7.3.4). Outlook, OWA, Thunderbird and Apple Mail refuse it for \
            signing and encryption; a TLS server or client certificate (serverAuth/clientAuth) is the usual cause.",
        fix: "Issue an S/MIME certificate: extendedKeyUsage = emailProtection (from an S/MIME template in AD CS, or \
            `smimekit ca issue`).",
    },
    Rule {
        id: "eku-missing",
        severity: W,
        profiles: &[],
        title: "no extendedKeyUsage extension",
        explanation: "Without extendedKeyUsage the certificate is valid for every purpose. Outlook and OWA accept that, \
            but the CA/Browser Forum S/MIME Baseline Requirements demand emailProtection, and a certificate that is \
            good for everything is also good for TLS impersonation.",
        fix: "Reissue with extendedKeyUsage = emailProtection.",
    },
    Rule {
        id: "eku-any",
        severity: W,
        profiles: &[(Thunderbird, Some(E))],
        title: "extendedKeyUsage is anyExtendedKeyUsage",
        explanation: "anyExtendedKeyUsage (2.5.29.37.0) without emailProtection is accepted by Windows but NSS \
            (Thunderbird) does not treat it as an S/MIME purpose, and the S/MIME BR forbid it.",
        fix: "Reissue with extendedKeyUsage = emailProtection only.",
    },
    Rule {
        id: "ku-missing",
        severity: W,
        profiles: &[(Apple, Some(E))],
        title: "no keyUsage extension",
        explanation: "Without keyUsage a client has to guess whether the key may sign or decrypt. macOS/iOS Mail \
            require keyUsage to be present and ignore such certificates for S/MIME; Outlook accepts them.",
        fix: "Reissue with a critical keyUsage: digitalSignature + keyEncipherment (RSA) or digitalSignature + \
            keyAgreement (EC).",
    },
    Rule {
        id: "ku-not-critical",
        severity: W,
        profiles: &[(Apple, Some(E))],
        title: "keyUsage is not marked critical",
        explanation: "RFC 8550/8551 and the S/MIME BR want keyUsage critical; Apple Mail is strict about it.",
        fix: "Reissue with keyUsage marked critical.",
    },
    Rule {
        id: "ku-no-digital-signature",
        severity: E,
        profiles: &[],
        title: "keyUsage lacks digitalSignature",
        explanation: "Signed mail from this certificate is rejected: OWA checks for digitalSignature (or \
            nonRepudiation) and Outlook, Thunderbird and Apple Mail for digitalSignature. Encryption-only \
            certificates are legitimate, but then the user needs a second, signing certificate.",
        fix: "Reissue with digitalSignature in keyUsage (or publish a separate signing certificate).",
    },
    Rule {
        id: "ku-rsa-no-key-encipherment",
        severity: E,
        profiles: &[],
        title: "RSA key without keyEncipherment",
        explanation: "Mail to this user is encrypted by wrapping the message key with RSA (key transport), which needs \
            keyEncipherment. Without it Outlook reports that the recipient has no valid encryption certificate \
            and OWA cannot encrypt to the mailbox.",
        fix: "Reissue with keyUsage digitalSignature + keyEncipherment.",
    },
    Rule {
        id: "ku-ec-no-key-agreement",
        severity: E,
        profiles: &[],
        title: "EC key without keyAgreement",
        explanation: "EC keys cannot wrap a key: senders derive it with ECDH, which needs keyAgreement. Without it \
            nobody can encrypt to this certificate.",
        fix: "Reissue with keyUsage digitalSignature + keyAgreement (or use an RSA key).",
    },
    Rule {
        id: "ku-ec-key-encipherment",
        severity: W,
        profiles: &[],
        title: "EC key with keyEncipherment",
        explanation: "keyEncipherment is meaningless for an EC key (a sign the certificate was made from an RSA \
            template) and the S/MIME BR forbid it; some clients refuse such certificates.",
        fix: "Reissue the EC certificate with digitalSignature + keyAgreement.",
    },
    Rule {
        id: "san-email-missing",
        severity: E,
        profiles: &[],
        title: "no e-mail address in the certificate",
        explanation: "Clients match a certificate to a mailbox by its e-mail address (SAN rfc822Name, or the subject \
            emailAddress). Without one, OWA reports a subject mismatch on every signed message and senders cannot \
            find the certificate to encrypt.",
        fix: "Reissue with subjectAltName rfc822Name = the mailbox's primary SMTP address.",
    },
    Rule {
        id: "san-email-subject-only",
        severity: W,
        profiles: &[],
        title: "e-mail address only in the subject, not in subjectAltName",
        explanation: "The address is in the subject's emailAddress (E=) attribute only. Outlook and OWA read it, \
            but RFC 8550 and the S/MIME BR require subjectAltName rfc822Name and newer clients look only there.",
        fix: "Reissue with subjectAltName rfc822Name = the address.",
    },
    Rule {
        id: "san-address-mismatch",
        severity: E,
        profiles: &[],
        title: "certificate address differs from the mailbox",
        explanation: "None of the certificate's addresses equals the expected mailbox. Exchange matches the \
            certificate's address against the recipient's primary SMTP address (then proxy addresses only if \
            OWAUseSecondaryProxiesWhenFindingCertificates is set), so the certificate will not be found for this \
            mailbox and recipients see a signer mismatch.",
        fix: "Reissue for the primary SMTP address, or publish the certificate on the mailbox it was issued for.",
    },
    Rule {
        id: "san-domain-not-lowercase",
        severity: I,
        profiles: &[],
        title: "address domain is not lowercase",
        explanation: "Domains compare case-insensitively and Exchange does so, but some clients and directory \
            lookups compare the address byte for byte.",
        fix: "Prefer lowercase addresses when issuing.",
    },
    Rule {
        id: "key-rsa-too-small",
        severity: E,
        profiles: &[],
        title: "RSA key shorter than 2048 bits",
        explanation: "RSA keys below 2048 bits are refused by current Windows, Thunderbird and Apple Mail, and by the \
            S/MIME BR.",
        fix: "Issue a new certificate with an RSA-2048 (or larger) or a P-256 key.",
    },
    Rule {
        id: "key-ec-curve",
        severity: E,
        profiles: &[],
        title: "EC curve other than P-256, P-384 or P-521",
        explanation: "Mail clients support the NIST curves only; a certificate on another curve (brainpool, \
            secp256k1) cannot be used for S/MIME in Outlook or OWA.",
        fix: "Issue the certificate on P-256 or P-384.",
    },
    Rule {
        id: "key-ec-p521",
        severity: I,
        profiles: &[(Owa, Some(W)), (Outlook, Some(W)), (Apple, Some(W))],
        title: "EC key on P-521",
        explanation: "P-521 is allowed by the S/MIME BR but is the least supported NIST curve in mail clients.",
        fix: "Prefer P-256 or P-384.",
    },
    Rule {
        id: "key-ec-owa",
        severity: I,
        profiles: &[
            (Owa, Some(W)),
            (Generic, None),
            (Thunderbird, None),
            (Apple, None),
        ],
        title: "EC key for Outlook on the web",
        explanation: "Outlook for Windows handles EC (ECDSA/ECDH) S/MIME certificates, but support in OWA and the new \
            Outlook is unverified: users of those may be unable to encrypt to this certificate.",
        fix: "For OWA users, also issue an RSA-2048 certificate, or test OWA with this certificate first.",
    },
    Rule {
        id: "key-algorithm",
        severity: E,
        profiles: &[],
        title: "key algorithm not usable for S/MIME",
        explanation: "Mail clients sign and encrypt with RSA or EC keys only (DSA, Ed25519 and others are not \
            supported by Outlook or OWA).",
        fix: "Issue a certificate with an RSA-2048+ or P-256/P-384 key.",
    },
    Rule {
        id: "sig-md5",
        severity: E,
        profiles: &[],
        title: "certificate signed with MD5",
        explanation: "MD5 signatures are forgeable; every current client rejects the certificate.",
        fix: "Reissue from a CA that signs with SHA-256 or better.",
    },
    Rule {
        id: "sig-sha1",
        severity: W,
        profiles: &[(Thunderbird, Some(E)), (Apple, Some(E))],
        title: "certificate signed with SHA-1",
        explanation: "SHA-1 certificate signatures are collision-prone. Thunderbird 115+ and Apple Mail reject them; \
            Outlook still accepts them, so the problem shows up only for external partners.",
        fix: "Reissue from a CA that signs with SHA-256 (AD CS: set the CA's hash algorithm to SHA256 and renew).",
    },
    Rule {
        id: "validity-expired",
        severity: E,
        profiles: &[],
        title: "certificate expired",
        explanation: "Senders cannot encrypt to an expired certificate and signatures made now are reported invalid. \
            Expired certificates also linger in the GAL and confuse Outlook's choice.",
        fix: "Issue a new certificate, publish it, and remove the expired one (`smimekit publish` prunes expired certificates when asked).",
    },
    Rule {
        id: "validity-not-yet-valid",
        severity: E,
        profiles: &[],
        title: "certificate not yet valid",
        explanation: "The certificate's notBefore is in the future (or a clock is wrong): clients reject it until then.",
        fix: "Wait until notBefore, or check the clock of the issuing CA.",
    },
    Rule {
        id: "validity-expiring-soon",
        severity: W,
        profiles: &[],
        title: "certificate expires soon",
        explanation: "The certificate expires within the warning window. Renew before then so that \
            senders already have the new certificate when the old one stops working.",
        fix: "Issue and publish the successor now; keep the old key to read old mail.",
    },
    Rule {
        id: "validity-too-long",
        severity: W,
        profiles: &[],
        title: "validity period longer than 825 days",
        explanation: "The S/MIME BR limit certificates to 825 days; public CAs' certificates never exceed it and some \
            clients may start enforcing it.",
        fix: "Issue certificates valid for at most 825 days.",
    },
    Rule {
        id: "chain-incomplete",
        severity: E,
        profiles: &[],
        title: "certificate does not chain to the trust store",
        explanation: "OWA validates only against the tenant's uploaded store (Set-SmimeConfig \
            -SMIMECertificateIssuingCA). If the root or an intermediate of this certificate is not in that .sst, \
            every signature from it shows as untrusted and encryption to it fails in OWA.",
        fix: "Add the missing root and intermediates to the store (`smimekit sst create`) and upload it again with \
            Set-SmimeConfig -SMIMECertificateIssuingCA.",
    },
    Rule {
        id: "chain-invalid",
        severity: E,
        profiles: &[],
        title: "the chain to the trust store is broken",
        explanation: "A path to the trust store exists, but a certificate on it is expired or not yet valid, a \
            signature does not verify, or an issuer is not allowed to issue (not a CA, no keyCertSign, path \
            length exceeded). Expired CA certificates in the store also make Set-SmimeConfig fail.",
        fix: "Renew the CA certificate named in the finding and upload the store again.",
    },
    Rule {
        id: "chain-not-checked",
        severity: I,
        profiles: &[(Owa, Some(W))],
        title: "chain not checked",
        explanation: "No trust store was given, so nothing says whether Exchange Online will trust this \
            certificate. For OWA that store is the one uploaded with Set-SmimeConfig.",
        fix: "Lint again against the trust store (the .sst file you upload to Exchange Online).",
    },
    Rule {
        id: "bc-leaf-is-ca",
        severity: E,
        profiles: &[],
        title: "end-entity certificate is a CA",
        explanation: "basicConstraints cA is TRUE: this is a CA certificate, not a user's. Clients refuse CA \
            certificates for mail, and a user holding a CA key could issue certificates for anyone.",
        fix: "Issue the user a certificate with basicConstraints cA FALSE; publish only end-entity certificates.",
    },
    Rule {
        id: "cert-duplicate",
        severity: I,
        profiles: &[],
        title: "the same certificate appears twice",
        explanation: "The same certificate was given more than once (e.g. in userCertificate and \
            userSMIMECertificate). Harmless, but a sign of an untidy directory entry.",
        fix: "Publish each certificate once.",
    },
    Rule {
        id: "cert-superseded",
        severity: W,
        profiles: &[],
        title: "superseded by a newer certificate for the same address",
        explanation: "Another certificate for the same address expires later. Outlook and Exchange keep every \
            certificate published on the mailbox and may pick the older one to encrypt; a stale \
            userSMIMECertificate even overrides a fresh userCertificate.",
        fix: "Unpublish the old certificate (`smimekit unpublish`) once the new one is in place.",
    },
    Rule {
        id: "cert-too-large",
        severity: E,
        profiles: &[],
        title: "certificate larger than 32768 bytes",
        explanation: "Active Directory's userCertificate and userSMIMECertificate attributes hold at most 32768 \
            bytes per value (rangeUpper); Exchange cannot publish a larger certificate.",
        fix: "Reissue without oversized extensions.",
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// What to lint against.
#[derive(Debug, Clone)]
pub struct LintOptions {
    pub profile: Profile,
    /// Validation time, Unix seconds.
    pub at: i64,
    /// Warn when a certificate expires within this many days.
    pub expiring_days: u32,
    /// The mailbox each certificate must carry, if known.
    pub address: Option<String>,
    /// The trust store (e.g. the `.sst` uploaded to Exchange Online), if given.
    pub trust_store: Option<Vec<CertDer>>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    /// What exactly is wrong with this certificate.
    pub detail: String,
    pub explanation: &'static str,
    pub fix: &'static str,
}

/// The findings for one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct LintedCert {
    /// Position among the linted certificates (0-based).
    pub index: usize,
    pub subject: String,
    pub emails: Vec<String>,
    pub sha1_thumbprint: String,
    pub not_after: String,
    pub findings: Vec<Finding>,
}

/// The result of [`lint`].
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub profile: Profile,
    pub certificates: Vec<LintedCert>,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl LintReport {
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
}

const DAY: i64 = 86_400;
const OID_EMAIL: &str = "1.3.6.1.5.5.7.3.4";
const OID_ANY_EKU: &str = "2.5.29.37.0";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";

struct Ctx<'a> {
    profile: Profile,
    out: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn hit(&mut self, id: &str, detail: impl Into<String>) {
        let Some(r) = rule(id) else { return };
        if let Some(severity) = r.severity_for(self.profile) {
            self.out.push(Finding {
                rule: r.id,
                severity,
                title: r.title,
                detail: detail.into(),
                explanation: r.explanation,
                fix: r.fix,
            });
        }
    }
}

/// A trust store parsed once, to lint many certificates against it ([`lint_with_store`]):
/// thousands of people's certificates checked against one organisation's chain parse the
/// chain once, not once each.
#[derive(Debug, Clone)]
pub struct PreparedStore {
    store: Vec<CertDer>,
    /// The chain builder's anchors (the store's roots; all of it when it holds no root), or
    /// why the store cannot anchor anything.
    anchors: Result<Vec<ChainCert>, String>,
    /// The store's certificates that parse: the chain builder's pool.
    pool: Vec<ChainCert>,
}

impl PreparedStore {
    pub fn new(store: Vec<CertDer>) -> Self {
        let parsed: Vec<Result<ChainCert, String>> = store
            .iter()
            .map(|c| ChainCert::parse(c).map_err(|e| e.to_string()))
            .collect();
        let roots: Vec<ChainCert> = parsed
            .iter()
            .flatten()
            .filter(|c| c.info.self_signed)
            .cloned()
            .collect();
        let anchors = if roots.is_empty() {
            parsed
                .iter()
                .cloned()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crate::PkiError::Certificate(format!("trust anchor: {e}")).to_string())
        } else {
            Ok(roots)
        };
        Self {
            store,
            anchors,
            pool: parsed.into_iter().flatten().collect(),
        }
    }
}

/// Lints every certificate in `certs` as an end-entity S/MIME certificate.
pub fn lint(verifier: &dyn SignatureVerifier, certs: &[CertDer], opts: &LintOptions) -> LintReport {
    let store = opts.trust_store.clone().map(PreparedStore::new);
    lint_with_store(verifier, certs, opts, store.as_ref())
}

/// [`lint`] against a trust store prepared once (`opts.trust_store` is not read).
pub fn lint_with_store(
    verifier: &dyn SignatureVerifier,
    certs: &[CertDer],
    opts: &LintOptions,
    store: Option<&PreparedStore>,
) -> LintReport {
    let infos: Vec<Result<CertInfo, String>> = certs
        .iter()
        .map(|c| certinfo::parse(c).map_err(|e| e.to_string()))
        .collect();
    // Chain building: anchors are the store's roots (all of it when it holds no root); the
    // pool is the store plus every given certificate.
    let chain = store.map(|store| {
        let builder = store
            .anchors
            .as_ref()
            .map_err(|e| e.clone())
            .map(|anchors| {
                let given = certs
                    .iter()
                    .zip(&infos)
                    .filter_map(|(c, i)| ChainCert::with_info(c, i.as_ref().ok()?.clone()).ok());
                ChainBuilder::from_parsed(
                    verifier,
                    store.pool.iter().cloned().chain(given),
                    anchors.iter().cloned(),
                )
            });
        (builder, store.store.as_slice())
    });

    let mut out = Vec::new();
    for (index, (cert, info)) in certs.iter().zip(&infos).enumerate() {
        let mut findings = Vec::new();
        let mut ctx = Ctx {
            profile: opts.profile,
            out: &mut findings,
        };
        let linted = match info {
            Ok(info) => {
                lint_one(&mut ctx, verifier, cert, info, opts);
                if let Some((builder, store)) = &chain {
                    check_chain(&mut ctx, builder, store, cert, opts.at);
                } else {
                    ctx.hit("chain-not-checked", "no trust store given");
                }
                duplicates(&mut ctx, index, certs, &infos);
                LintedCert {
                    index,
                    subject: info.subject.clone(),
                    emails: info.emails.clone(),
                    sha1_thumbprint: info.sha1_thumbprint.clone(),
                    not_after: rfc3339(info.not_after),
                    findings,
                }
            }
            Err(e) => LintedCert {
                index,
                subject: format!("<unreadable: {e}>"),
                emails: Vec::new(),
                sha1_thumbprint: String::new(),
                not_after: String::new(),
                findings,
            },
        };
        out.push(linted);
    }
    let count = |s: Severity| {
        out.iter()
            .flat_map(|c| &c.findings)
            .filter(|f| f.severity == s)
            .count()
    };
    LintReport {
        profile: opts.profile,
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
        certificates: out,
    }
}

fn lint_one(
    ctx: &mut Ctx<'_>,
    verifier: &dyn SignatureVerifier,
    cert: &CertDer,
    info: &CertInfo,
    opts: &LintOptions,
) {
    // Extended key usage.
    match &info.extended_key_usage {
        None => ctx.hit("eku-missing", "no extendedKeyUsage extension"),
        Some(ekus) if ekus.iter().any(|o| o == OID_EMAIL) => {}
        Some(ekus) if ekus.iter().any(|o| o == OID_ANY_EKU) => ctx.hit(
            "eku-any",
            "extendedKeyUsage is anyExtendedKeyUsage without emailProtection",
        ),
        Some(ekus) => ctx.hit(
            "eku-no-email-protection",
            format!("extendedKeyUsage is {}", eku_names(ekus)),
        ),
    }

    // Key: algorithm, size, curve.
    let key = certinfo::spki_der(cert)
        .ok()
        .and_then(|spki| verifier.public_key_info(&spki).ok());
    let is_rsa = info.public_key_algorithm == OID_RSA;
    let is_ec = info.public_key_algorithm == OID_EC;
    if !is_rsa && !is_ec {
        ctx.hit(
            "key-algorithm",
            format!(
                "public key algorithm {}",
                key.as_ref()
                    .map(|k| k.algorithm.clone())
                    .unwrap_or_else(|| info.public_key_algorithm.clone())
            ),
        );
    }
    if let Some(k) = &key {
        if is_rsa && k.bits < 2048 {
            ctx.hit("key-rsa-too-small", format!("RSA-{}", k.bits));
        }
        if is_ec {
            match k.curve.as_deref() {
                Some("P-256") | Some("P-384") => {}
                Some("P-521") => ctx.hit("key-ec-p521", "EC P-521"),
                other => ctx.hit(
                    "key-ec-curve",
                    format!("EC curve {}", other.unwrap_or("unknown")),
                ),
            }
            ctx.hit(
                "key-ec-owa",
                format!("EC {} key", k.curve.as_deref().unwrap_or("?")),
            );
        }
    }

    // Key usage.
    match info.key_usage {
        None => ctx.hit("ku-missing", "no keyUsage extension"),
        Some(ku) => {
            if !info.key_usage_critical {
                ctx.hit(
                    "ku-not-critical",
                    format!("keyUsage {} is not critical", ku.names().join(", ")),
                );
            }
            let have = ku.names().join(", ");
            // OWA accepts nonRepudiation in place of digitalSignature for signatures.
            let owa_nr = opts.profile == Profile::Owa && ku.contains(KeyUsageBits::NON_REPUDIATION);
            if !ku.contains(KeyUsageBits::DIGITAL_SIGNATURE) && !owa_nr {
                ctx.hit("ku-no-digital-signature", format!("keyUsage is {have}"));
            }
            if is_rsa && !ku.contains(KeyUsageBits::KEY_ENCIPHERMENT) {
                ctx.hit(
                    "ku-rsa-no-key-encipherment",
                    format!("RSA key, keyUsage is {have}"),
                );
            }
            if is_ec && !ku.contains(KeyUsageBits::KEY_AGREEMENT) {
                ctx.hit(
                    "ku-ec-no-key-agreement",
                    format!("EC key, keyUsage is {have}"),
                );
            }
            if is_ec && ku.contains(KeyUsageBits::KEY_ENCIPHERMENT) {
                ctx.hit(
                    "ku-ec-key-encipherment",
                    format!("EC key, keyUsage is {have}"),
                );
            }
        }
    }

    // Addresses.
    if info.emails.is_empty() {
        ctx.hit(
            "san-email-missing",
            "neither subjectAltName rfc822Name nor subject emailAddress",
        );
    } else if san_rfc822_names(cert).is_empty() {
        ctx.hit(
            "san-email-subject-only",
            format!("address {} only in the subject", info.emails.join(", ")),
        );
    }
    let wanted = opts
        .address
        .as_ref()
        .filter(|want| !info.emails.iter().any(|e| addresses_equal(e, want)));
    if let Some(want) = wanted {
        {
            ctx.hit(
                "san-address-mismatch",
                format!(
                    "expected {want}, the certificate has {}",
                    if info.emails.is_empty() {
                        "no address".to_string()
                    } else {
                        info.emails.join(", ")
                    }
                ),
            );
        }
    }
    for e in &info.emails {
        let upper = e
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.chars().any(char::is_uppercase));
        if upper {
            ctx.hit("san-domain-not-lowercase", format!("address {e}"));
        }
    }

    // Signature algorithm.
    match info.signature_algorithm.as_str() {
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.3" | "1.2.840.113549.1.1.2" => {
            ctx.hit("sig-md5", "signed with md5WithRSAEncryption")
        }
        "1.2.840.113549.1.1.5" => ctx.hit("sig-sha1", "signed with sha1WithRSAEncryption"),
        "1.2.840.10045.4.1" => ctx.hit("sig-sha1", "signed with ecdsa-with-SHA1"),
        "1.2.840.10040.4.3" => ctx.hit("sig-sha1", "signed with dsa-with-sha1"),
        "1.3.14.3.2.29" => ctx.hit("sig-sha1", "signed with sha1WithRSASignature (OIW)"),
        _ => {}
    }

    // Validity.
    if opts.at > info.not_after {
        ctx.hit(
            "validity-expired",
            format!(
                "expired {} ({} days ago)",
                rfc3339(info.not_after),
                (opts.at - info.not_after) / DAY
            ),
        );
    } else if opts.at < info.not_before {
        ctx.hit(
            "validity-not-yet-valid",
            format!("valid from {}", rfc3339(info.not_before)),
        );
    } else if info.not_after - opts.at <= i64::from(opts.expiring_days) * DAY {
        ctx.hit(
            "validity-expiring-soon",
            format!(
                "expires {} (in {} days; window {} days)",
                rfc3339(info.not_after),
                (info.not_after - opts.at) / DAY,
                opts.expiring_days
            ),
        );
    }
    let days = (info.not_after - info.not_before) / DAY;
    if days > 825 {
        ctx.hit("validity-too-long", format!("valid for {days} days"));
    }

    if info.is_ca {
        ctx.hit("bc-leaf-is-ca", "basicConstraints cA is TRUE");
    }
    if cert.as_bytes().len() > 32_768 {
        ctx.hit("cert-too-large", format!("{} bytes", cert.as_bytes().len()));
    }
}

fn eku_names(ekus: &[String]) -> String {
    ekus.iter()
        .map(|o| match o.as_str() {
            "1.3.6.1.5.5.7.3.1" => "serverAuth".to_string(),
            "1.3.6.1.5.5.7.3.2" => "clientAuth".to_string(),
            "1.3.6.1.5.5.7.3.3" => "codeSigning".to_string(),
            "1.3.6.1.5.5.7.3.8" => "timeStamping".to_string(),
            "1.3.6.1.5.5.7.3.9" => "OCSPSigning".to_string(),
            "1.3.6.1.4.1.311.10.3.4" => "EFS".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SAN rfc822Name values, read from the DER ([`CertInfo::emails`] merges them with the
/// subject's emailAddress values).
fn san_rfc822_names(cert: &CertDer) -> Vec<String> {
    fn walk(der: &[u8]) -> Result<Vec<String>, crate::asn1::Asn1Error> {
        use crate::asn1::{self, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
        const OID_SAN: &[u8] = const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME.as_bytes();
        let outer = asn1::parse_single(der)?;
        let tbs = outer.children().read_tag(TAG_SEQUENCE, "tbsCertificate")?;
        let mut f = tbs.children();
        let mut out = Vec::new();
        while let Some(t) = f.next()? {
            if t.tag != 0xA3 {
                continue;
            }
            let seq = t.children().read_tag(TAG_SEQUENCE, "extensions")?;
            let mut exts = seq.children();
            while let Some(ext) = exts.next()? {
                let mut e = ext.children();
                let oid = e.read_tag(TAG_OID, "extnID")?;
                let mut v = e.read("extnValue")?;
                if v.tag == asn1::TAG_BOOLEAN {
                    v = e.read("extnValue")?;
                }
                let v = v.expect(TAG_OCTET_STRING, "extnValue")?;
                if oid.content == OID_SAN {
                    let names = asn1::parse_single(v.content)?;
                    let mut r = names.children();
                    while let Some(gn) = r.next()? {
                        if gn.tag == 0x81 {
                            out.push(String::from_utf8_lossy(gn.content).into_owned());
                        }
                    }
                }
            }
        }
        Ok(out)
    }
    walk(cert.as_bytes()).unwrap_or_default()
}

/// Local parts compare exactly, domains case-insensitively (RFC 5321); Exchange compares the
/// whole address case-insensitively, which we follow.
fn addresses_equal(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn check_chain(
    ctx: &mut Ctx<'_>,
    builder: &Result<ChainBuilder<'_>, String>,
    store: &[CertDer],
    cert: &CertDer,
    at: i64,
) {
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            ctx.hit(
                "chain-incomplete",
                format!("the trust store is unusable: {e}"),
            );
            return;
        }
    };
    // Every given certificate that parses is in the builder's pool.
    let Some(parsed) = builder.find(cert) else {
        return;
    };
    // The facts of a certificate on a path (all in the builder).
    let info = |c: &CertDer| {
        builder
            .find(c)
            .map(|c| c.info.clone())
            .or_else(|| certinfo::parse(c).ok())
    };
    let report = match builder.build_parsed(parsed, at) {
        Ok(r) => r,
        Err(e) => {
            ctx.hit("chain-incomplete", e.to_string());
            return;
        }
    };
    let Some(best) = report.paths.first() else {
        ctx.hit("chain-incomplete", "no path found");
        return;
    };
    if best.anchored {
        // Every CA on the path must be in the store itself, not merely among the given files.
        let missing: Vec<&String> = best
            .certificates
            .iter()
            .zip(&best.subjects)
            .skip(1)
            .filter(|(c, _)| !store.contains(c))
            .map(|(_, s)| s)
            .collect();
        let top_is_root = best
            .certificates
            .last()
            .and_then(info)
            .is_some_and(|i| i.self_signed);
        if !top_is_root {
            if let (Some(subject), Some(top)) = (best.subjects.last(), best.certificates.last()) {
                let issuer = info(top).map(|i| i.issuer).unwrap_or_default();
                ctx.hit(
                    "chain-incomplete",
                    format!("the store holds {subject:?} but not its root {issuer:?}"),
                );
            }
        } else if !missing.is_empty() {
            ctx.hit(
                "chain-incomplete",
                format!(
                    "the store lacks {}",
                    missing
                        .iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        // Problems on the leaf itself (expired…) are reported by their own rules.
        let ca_problems: Vec<String> = best
            .problems
            .iter()
            .filter(|p| p.cert() > 0 || matches!(p, crate::chain::PathProblem::BadSignature { .. }))
            .map(|p| p.describe(&best.subjects))
            .collect();
        if !ca_problems.is_empty() {
            ctx.hit("chain-invalid", ca_problems.join("; "));
        }
    } else {
        let why: Vec<String> = best
            .problems
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    crate::chain::PathProblem::UnknownIssuer { .. }
                        | crate::chain::PathProblem::UntrustedRoot { .. }
                        | crate::chain::PathProblem::Loop { .. }
                        | crate::chain::PathProblem::TooLong { .. }
                )
            })
            .map(|p| p.describe(&best.subjects))
            .collect();
        ctx.hit("chain-incomplete", why.join("; "));
    }
}

fn duplicates(
    ctx: &mut Ctx<'_>,
    index: usize,
    certs: &[CertDer],
    infos: &[Result<CertInfo, String>],
) {
    let Some(Ok(me)) = infos.get(index) else {
        return;
    };
    if certs[..index].contains(&certs[index]) {
        ctx.hit(
            "cert-duplicate",
            format!(
                "same certificate as an earlier one ({})",
                me.sha1_thumbprint
            ),
        );
        return;
    }
    if me.is_ca {
        return;
    }
    let mine: Vec<String> = me.emails.iter().map(|e| e.to_lowercase()).collect();
    let mut newer: HashMap<&str, (&str, i64)> = HashMap::new();
    for (j, other) in infos.iter().enumerate() {
        let Ok(o) = other else { continue };
        if j == index || o.is_ca || certs[j] == certs[index] {
            continue;
        }
        let later = o.not_after > me.not_after
            || (o.not_after == me.not_after && o.not_before > me.not_before);
        if !later {
            continue;
        }
        for e in &o.emails {
            if let Some(m) = mine.iter().find(|m| **m == e.to_lowercase()) {
                newer
                    .entry(m.as_str())
                    .or_insert((o.sha1_thumbprint.as_str(), o.not_after));
            }
        }
    }
    let mut list: Vec<_> = newer.into_iter().collect();
    list.sort();
    for (addr, (thumb, not_after)) in list {
        ctx.hit(
            "cert-superseded",
            format!(
                "{addr}: certificate {thumb} expires later ({})",
                rfc3339(not_after)
            ),
        );
    }
}

/// RFC 3339 UTC (`2026-06-01T00:00:00Z`) of Unix seconds.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(DAY);
    let secs = unix.rem_euclid(DAY);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The rule table as Markdown, for `docs/lint.md` (between the `rules:begin`/`rules:end`
/// markers).
pub fn rules_markdown() -> String {
    let mut s = String::new();
    s.push_str("| id | severity | profiles | title |\n|---|---|---|---|\n");
    for r in RULES {
        let prof: Vec<String> = r
            .profiles
            .iter()
            .map(|(p, sev)| format!("{}: {}", p.name(), sev.map(Severity::name).unwrap_or("off")))
            .collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.id,
            r.severity.name(),
            if prof.is_empty() {
                "—".to_string()
            } else {
                prof.join(", ")
            },
            r.title
        ));
    }
    for r in RULES {
        s.push_str(&format!(
            "\n### `{}` — {}\n\n{}\n\n**Fix:** {}\n",
            r.id,
            r.title,
            squash(r.explanation),
            squash(r.fix)
        ));
    }
    s
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::*;
    use crate::chain::tests::{AT, EKU_SERVER, FakeVerifier, SHA1_RSA, Spec, make};

    fn opts() -> LintOptions {
        LintOptions {
            profile: Profile::Generic,
            at: AT,
            expiring_days: 30,
            address: None,
            trust_store: None,
        }
    }

    fn ids(certs: &[CertDer], o: &LintOptions) -> Vec<Vec<&'static str>> {
        lint(&FakeVerifier, certs, o)
            .certificates
            .iter()
            .map(|c| c.findings.iter().map(|f| f.rule).collect())
            .collect()
    }

    fn good() -> Spec {
        Spec {
            not_after: "270101000000Z",
            not_before: "260101000000Z",
            ..Spec::leaf("Alice", "Int")
        }
    }

    #[test]
    fn good_certificate_has_only_the_chain_note() {
        assert_eq!(
            ids(&[make(&good())], &opts()),
            vec![vec!["chain-not-checked"]]
        );
    }

    #[test]
    fn table_of_bad_certificates() {
        let ec = |ku: u16| Spec {
            key: "ec-P-256".into(),
            ku: Some((ku, true)),
            ..good()
        };
        let cases: Vec<(Spec, Vec<&str>)> = vec![
            (
                Spec {
                    not_after: "260301000000Z",
                    not_before: "250101000000Z",
                    ..good()
                },
                vec!["validity-expired"],
            ),
            (
                Spec {
                    not_before: "270101000000Z",
                    not_after: "280101000000Z",
                    ..good()
                },
                vec!["validity-not-yet-valid"],
            ),
            (
                Spec {
                    not_after: "260615000000Z",
                    ..good()
                },
                vec!["validity-expiring-soon"],
            ),
            (
                Spec {
                    not_before: "250101000000Z",
                    not_after: "300101000000Z",
                    ..good()
                },
                vec!["validity-too-long"],
            ),
            (
                Spec {
                    sig_oid: SHA1_RSA,
                    ..good()
                },
                vec!["sig-sha1"],
            ),
            (
                Spec {
                    eku: None,
                    ..good()
                },
                vec!["eku-missing"],
            ),
            (
                Spec {
                    eku: Some(vec![EKU_SERVER]),
                    ..good()
                },
                vec!["eku-no-email-protection"],
            ),
            (Spec { ku: None, ..good() }, vec!["ku-missing"]),
            (
                Spec {
                    ku: Some((0b101, false)),
                    ..good()
                },
                vec!["ku-not-critical"],
            ),
            (
                Spec {
                    ku: Some((0b1, true)),
                    ..good()
                },
                vec!["ku-rsa-no-key-encipherment"],
            ),
            (
                Spec {
                    ku: Some((0b100, true)),
                    ..good()
                },
                vec!["ku-no-digital-signature"],
            ),
            (
                ec(0b101),
                vec!["ku-ec-no-key-agreement", "ku-ec-key-encipherment"],
            ),
            (ec(0b10001), vec![]),
            (
                Spec {
                    key: "rsa-1024".into(),
                    ..good()
                },
                vec!["key-rsa-too-small"],
            ),
            (
                Spec {
                    san: vec![],
                    ..good()
                },
                vec!["san-email-missing"],
            ),
            (
                Spec {
                    san: vec!["alice@Example.ORG".into()],
                    ..good()
                },
                vec!["san-domain-not-lowercase"],
            ),
            (
                Spec {
                    bc: Some((true, None)),
                    ..good()
                },
                vec!["bc-leaf-is-ca"],
            ),
        ];
        for (spec, want) in cases {
            let got = &ids(&[make(&spec)], &opts())[0];
            let got: Vec<&str> = got
                .iter()
                .copied()
                .filter(|r| *r != "chain-not-checked")
                .collect();
            assert_eq!(got, want, "{spec:?}");
        }
    }

    #[test]
    fn profiles_adjust_severity() {
        let sha1 = make(&Spec {
            sig_oid: SHA1_RSA,
            ..good()
        });
        let sev = |p| {
            lint(
                &FakeVerifier,
                &[sha1.clone()],
                &LintOptions {
                    profile: p,
                    ..opts()
                },
            )
            .certificates[0]
                .findings
                .iter()
                .find(|f| f.rule == "sig-sha1")
                .unwrap()
                .severity
        };
        assert_eq!(sev(Profile::Generic), Severity::Warning);
        assert_eq!(sev(Profile::Thunderbird), Severity::Error);
        let ec = make(&Spec {
            key: "ec-P-256".into(),
            ku: Some((0b10001, true)),
            ..good()
        });
        let r = lint(
            &FakeVerifier,
            &[ec.clone()],
            &LintOptions {
                profile: Profile::Owa,
                ..opts()
            },
        );
        let rules: Vec<_> = r.certificates[0]
            .findings
            .iter()
            .map(|f| (f.rule, f.severity))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("key-ec-owa", Severity::Warning),
                ("chain-not-checked", Severity::Warning)
            ]
        );
        assert!(!r.has_errors());
    }

    #[test]
    fn address_duplicates_and_chain() {
        let a = make(&good());
        let newer = make(&Spec {
            serial: 2,
            not_after: "280101000000Z",
            ..good()
        });
        let o = LintOptions {
            address: Some("bob@example.org".into()),
            ..opts()
        };
        let got = ids(&[a.clone(), newer.clone(), a.clone()], &o);
        assert!(got[0].contains(&"san-address-mismatch"));
        assert!(got[0].contains(&"cert-superseded"), "{got:?}");
        assert!(!got[1].contains(&"cert-superseded"));
        assert!(got[2].contains(&"cert-duplicate"));

        let root = make(&Spec::ca("Root", "Root", None));
        let int = make(&Spec::ca("Int", "Root", Some(0)));
        let with = |store: Vec<CertDer>| {
            let o = LintOptions {
                trust_store: Some(store),
                ..opts()
            };
            ids(&[a.clone()], &o).remove(0)
        };
        assert!(with(vec![root.clone(), int.clone()]).is_empty());
        assert_eq!(with(vec![root.clone()]), vec!["chain-incomplete"]);
        assert_eq!(with(vec![int.clone()]), vec!["chain-incomplete"]);
        let old_int = make(&Spec {
            not_after: "260101000000Z",
            not_before: "200101000000Z",
            ..Spec::ca("Int", "Root", Some(0))
        });
        assert_eq!(with(vec![root, old_int]), vec!["chain-invalid"]);
    }

    /// A store prepared once and linted against many times (as plan's readiness does)
    /// reports what `lint` reports with the store given each time, findings and details
    /// alike: good chains, missing roots or intermediates, an expired intermediate, and a
    /// store holding something unreadable. (`address_duplicates_and_chain` pins the chain
    /// rules' outcomes themselves.)
    #[test]
    fn a_prepared_store_lints_as_the_store_given_each_time() {
        let leaf = make(&good());
        let other = make(&Spec {
            serial: 7,
            ..good()
        });
        let root = make(&Spec::ca("Root", "Root", None));
        let int = make(&Spec::ca("Int", "Root", Some(0)));
        let old_int = make(&Spec {
            not_after: "260101000000Z",
            not_before: "200101000000Z",
            ..Spec::ca("Int", "Root", Some(0))
        });
        let junk = CertDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let findings = |r: &LintReport| -> Vec<Vec<(&'static str, String)>> {
            r.certificates
                .iter()
                .map(|c| {
                    c.findings
                        .iter()
                        .map(|f| (f.rule, f.detail.clone()))
                        .collect()
                })
                .collect()
        };
        for store in [
            vec![root.clone(), int.clone()],
            vec![root.clone()],
            vec![int.clone()],
            vec![root.clone(), old_int],
            vec![junk.clone()],
            vec![root.clone(), int.clone(), junk],
        ] {
            let o = LintOptions {
                address: Some("alice@example.org".into()),
                trust_store: Some(store.clone()),
                ..opts()
            };
            let prepared = PreparedStore::new(store);
            for certs in [
                vec![leaf.clone()],
                vec![other.clone(), leaf.clone(), int.clone()],
            ] {
                let once = lint(&FakeVerifier, &certs, &o);
                let again = lint_with_store(&FakeVerifier, &certs, &o, Some(&prepared));
                assert_eq!(findings(&once), findings(&again));
                assert_eq!(
                    (once.errors, once.warnings, once.infos),
                    (again.errors, again.warnings, again.infos)
                );
            }
        }
    }

    #[test]
    fn rfc3339_and_profiles() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(AT), "2026-06-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(Profile::from_name("OWA"), Some(Profile::Owa));
        assert!(Profile::from_name("x").is_none());
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "duplicate rule id {}", r.id);
        }
    }

    /// docs/lint.md carries the generated table; `SMIMEKIT_BLESS=1` rewrites it.
    #[test]
    fn docs_lint_md_matches_the_rule_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/lint.md");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (begin, end) = (
            "<!-- rules:begin (generated from crates/pki/src/lint.rs; SMIMEKIT_BLESS=1 cargo test -p smimekit-pki lint) -->\n",
            "<!-- rules:end -->",
        );
        let generated = rules_markdown();
        let current = text.find(begin).and_then(|b| {
            text[b + begin.len()..]
                .find(end)
                .map(|e| &text[b + begin.len()..b + begin.len() + e])
        });
        if current != Some(generated.as_str()) {
            if std::env::var_os("SMIMEKIT_BLESS").is_some() {
                let new = match (text.find(begin), text.find(end)) {
                    (Some(b), Some(e)) => format!("{}{begin}{generated}{}", &text[..b], &text[e..]),
                    _ => format!("{text}{begin}{generated}{end}\n"),
                };
                std::fs::write(path, new).unwrap();
            } else {
                panic!(
                    "docs/lint.md is out of date with RULES: run SMIMEKIT_BLESS=1 cargo test -p smimekit-pki lint"
                );
            }
        }
        for r in RULES {
            assert!(
                text.contains(r.id) || std::env::var_os("SMIMEKIT_BLESS").is_some(),
                "{}",
                r.id
            );
        }
    }
}
