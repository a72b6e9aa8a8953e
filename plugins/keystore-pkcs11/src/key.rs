//! [`TokenKey`]: a private key on a token. Every operation is a job on the token's lane.

use std::sync::Arc;

use async_trait::async_trait;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use smimekit_core::{
    CertDer, DigestAlg, KeyKind, KeySpec, KeyStoreError, NewKey, PrivateKey, RsaPadding, Secret,
    SignatureScheme,
};

use crate::lane::{Lane, TokenState};
use crate::{Found, OID_P256, OID_P384, attr_bytes, op_error};

/// A key on a token, with its certificate. `Debug` shows the URI, never a PIN.
pub struct TokenKey {
    lane: Arc<Lane>,
    id: String,
    handle: ObjectHandle,
    ck_id: Vec<u8>,
    label: Option<String>,
    kind: KeyKind,
    certificate: CertDer,
    chain: Vec<CertDer>,
    /// The token's other certificate objects, as found when the key was opened.
    others: Vec<CertDer>,
    spki: Option<Vec<u8>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    pub(crate) fn new(lane: Arc<Lane>, id: String, f: Found) -> Self {
        Self {
            lane,
            id,
            handle: f.handle,
            ck_id: f.ck_id,
            label: f.label,
            kind: f.kind,
            certificate: f.certificate.unwrap_or_else(|| CertDer::new(Vec::new())),
            chain: f.chain,
            others: f.others,
            spki: None,
        }
    }

    pub(crate) fn generated(lane: Arc<Lane>, id: String, f: Found, spki: Vec<u8>) -> Self {
        let mut k = Self::new(lane, id, f);
        k.spki = Some(spki);
        k
    }

    /// The key's `pkcs11:` URI (token, label, id; no PIN).
    pub fn uri(&self) -> &str {
        &self.id
    }
}

fn digest_info_prefix(d: DigestAlg) -> Option<&'static [u8]> {
    Some(match d {
        DigestAlg::Md5 => &[
            0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05,
            0x05, 0x00, 0x04, 0x10,
        ],
        DigestAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        DigestAlg::Sha224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
        DigestAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        DigestAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        DigestAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        _ => return None,
    })
}

/// The DER DigestInfo that RSASSA-PKCS1-v1_5 signs (we build it, so `CKM_RSA_PKCS` suffices).
pub(crate) fn digest_info(d: DigestAlg, digest: &[u8]) -> Option<Vec<u8>> {
    let p = digest_info_prefix(d)?;
    let mut v = p.to_vec();
    v.extend_from_slice(digest);
    Some(v)
}

fn hash_mech(d: DigestAlg) -> Option<(MechanismType, PkcsMgfType)> {
    Some(match d {
        DigestAlg::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        DigestAlg::Sha224 => (MechanismType::SHA224, PkcsMgfType::MGF1_SHA224),
        DigestAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        DigestAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        DigestAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
        _ => return None,
    })
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der_uint(v: &[u8], out: &mut Vec<u8>) {
    let mut v: &[u8] = v;
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    der_len(v.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// PKCS#11 ECDSA output (r‖s, each half the length) as a DER `Ecdsa-Sig-Value`.
pub(crate) fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::with_capacity(raw.len() + 8);
    der_uint(r, &mut body);
    der_uint(s, &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    Some(out)
}

fn unsupported(key: &str, detail: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Unsupported {
        key: key.to_string(),
        detail: detail.into(),
    }
}

fn sign_on(
    st: &mut TokenState,
    key: &str,
    h: ObjectHandle,
    scheme: SignatureScheme,
    digest: &[u8],
) -> Result<Vec<u8>, KeyStoreError> {
    match scheme {
        SignatureScheme::RsaPkcs1(d) => {
            if !st.has_mechanism(MechanismType::RSA_PKCS) {
                return Err(unsupported(key, "the token has no CKM_RSA_PKCS"));
            }
            let data = digest_info(d, digest)
                .ok_or_else(|| unsupported(key, format!("RSA PKCS#1 v1.5 with {}", d.name())))?;
            let s = st
                .session()
                .map_err(|e| op_error(key, "opening a session", &e))?;
            s.sign(&Mechanism::RsaPkcs, h, &data)
                .map_err(|e| op_error(key, "RSA PKCS#1 v1.5 signing", &e))
        }
        SignatureScheme::RsaPss(d) => {
            if !st.has_mechanism(MechanismType::RSA_PKCS_PSS) {
                return Err(unsupported(
                    key,
                    "the token has no CKM_RSA_PKCS_PSS (RSA-PSS)",
                ));
            }
            let (hash_alg, mgf) = hash_mech(d)
                .ok_or_else(|| unsupported(key, format!("RSA-PSS with {}", d.name())))?;
            let params = PkcsPssParams {
                hash_alg,
                mgf,
                s_len: (d.output_len() as u64).into(),
            };
            let s = st
                .session()
                .map_err(|e| op_error(key, "opening a session", &e))?;
            s.sign(&Mechanism::RsaPkcsPss(params), h, digest)
                .map_err(|e| op_error(key, "RSA-PSS signing", &e))
        }
        SignatureScheme::Ecdsa(_) => {
            if !st.has_mechanism(MechanismType::ECDSA) {
                return Err(unsupported(key, "the token has no CKM_ECDSA"));
            }
            let s = st
                .session()
                .map_err(|e| op_error(key, "opening a session", &e))?;
            let raw = s
                .sign(&Mechanism::Ecdsa, h, digest)
                .map_err(|e| op_error(key, "ECDSA signing", &e))?;
            ecdsa_raw_to_der(&raw).ok_or_else(|| KeyStoreError::Failed {
                key: key.to_string(),
                detail: format!("the token returned a {}-byte ECDSA signature", raw.len()),
            })
        }
        other => Err(unsupported(key, format!("{} signatures", other.name()))),
    }
}

fn decrypt_on(
    st: &mut TokenState,
    key: &str,
    h: ObjectHandle,
    padding: &RsaPadding,
    wrapped: &[u8],
) -> Result<Secret, KeyStoreError> {
    let s = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let out = match padding {
        RsaPadding::Pkcs1v15 => s
            .decrypt(&Mechanism::RsaPkcs, h, wrapped)
            .map_err(|e| op_error(key, "RSA PKCS#1 v1.5 decryption", &e))?,
        RsaPadding::Oaep { hash, mgf1, label } => {
            let what = padding.name();
            let (hash_alg, _) = hash_mech(*hash).ok_or_else(|| unsupported(key, what.clone()))?;
            let (_, mgf) = hash_mech(*mgf1).ok_or_else(|| unsupported(key, what.clone()))?;
            let source = if label.is_empty() {
                PkcsOaepSource::empty()
            } else {
                PkcsOaepSource::data_specified(label)
            };
            let params = PkcsOaepParams::new(hash_alg, mgf, source);
            s.decrypt(&Mechanism::RsaPkcsOaep(params), h, wrapped)
                .map_err(|e| match &e {
                    // SoftHSM 2.6 answers CKR_ARGUMENTS_BAD for OAEP with anything but SHA-1.
                    cryptoki::error::Error::Pkcs11(
                        cryptoki::error::RvError::ArgumentsBad
                        | cryptoki::error::RvError::MechanismParamInvalid
                        | cryptoki::error::RvError::MechanismInvalid,
                        _,
                    ) => unsupported(
                        key,
                        format!(
                            "the token cannot do {what} ({}); SoftHSM supports OAEP with SHA-1 only",
                            crate::rv_name(&e)
                        ),
                    ),
                    _ => op_error(key, &format!("{what} decryption"), &e),
                })?
        }
        other => return Err(unsupported(key, other.name())),
    };
    Ok(Secret::new(out))
}

fn field_len(kind: KeyKind) -> Option<u64> {
    match kind {
        KeyKind::Ec { curve: "P-256" } => Some(32),
        KeyKind::Ec { curve: "P-384" } => Some(48),
        KeyKind::Ec { curve: "P-521" } => Some(66),
        _ => None,
    }
}

/// ECDH: `CKM_ECDH1_DERIVE` with the null KDF gives Z as a session `CKO_SECRET_KEY` that is
/// created non-sensitive and extractable so that Z can be read (the CMS KDF runs in the engine,
/// as for soft keys); the object is destroyed at once. The private key itself never leaves.
fn ecdh_on(
    st: &mut TokenState,
    key: &str,
    h: ObjectHandle,
    kind: KeyKind,
    peer: &[u8],
) -> Result<Secret, KeyStoreError> {
    if !st.has_mechanism(MechanismType::ECDH1_DERIVE) {
        return Err(unsupported(key, "the token has no CKM_ECDH1_DERIVE"));
    }
    let len = field_len(kind).ok_or_else(|| unsupported(key, "ECDH with a non-EC key"))?;
    let s = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(len.into()),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let z = s
        .derive_key(&Mechanism::Ecdh1Derive(params), h, &template)
        .map_err(|e| op_error(key, "ECDH key derivation", &e))?;
    let value = s.get_attributes(z, &[AttributeType::Value]);
    let _ = s.destroy_object(z);
    let value = value.map_err(|e| op_error(key, "reading the ECDH secret", &e))?;
    attr_bytes(&value, AttributeType::Value)
        .map(Secret::new)
        .ok_or_else(|| KeyStoreError::Failed {
            key: key.to_string(),
            detail: "the token did not return the ECDH secret".into(),
        })
}

#[async_trait]
impl PrivateKey for TokenKey {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &self.chain
    }

    /// The token's CA and other certificate objects (read when the key was opened).
    async fn store_certificates(&self) -> Result<Vec<CertDer>, KeyStoreError> {
        Ok(self.others.clone())
    }

    fn kind(&self) -> KeyKind {
        self.kind
    }

    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let (id, h, digest) = (self.id.clone(), self.handle, digest.to_vec());
        self.lane
            .call(move |st| sign_on(st, &id, h, scheme, &digest))
            .await?
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        let (id, h, padding, wrapped) = (
            self.id.clone(),
            self.handle,
            padding.clone(),
            wrapped.to_vec(),
        );
        self.lane
            .call(move |st| decrypt_on(st, &id, h, &padding, &wrapped))
            .await?
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        let (id, h, kind, peer) = (self.id.clone(), self.handle, self.kind, peer_point.to_vec());
        self.lane
            .call(move |st| ecdh_on(st, &id, h, kind, &peer))
            .await?
    }
}

/// A DER OCTET STRING's content, or the input when it is not one (some tokens return the raw
/// point in CKA_EC_POINT).
pub(crate) fn unwrap_octets(v: &[u8]) -> &[u8] {
    if v.len() > 2 && v[0] == 0x04 {
        let (len, hdr) = if v[1] < 0x80 {
            (usize::from(v[1]), 2)
        } else if v[1] == 0x81 && v.len() > 3 {
            (usize::from(v[2]), 3)
        } else {
            (0, 0)
        };
        if hdr > 0 && hdr + len == v.len() {
            return &v[hdr..];
        }
    }
    v
}

/// A SubjectPublicKeyInfo from a public key object's attributes.
pub(crate) fn spki_from_public(
    key: &str,
    kind: KeyKind,
    attrs: &[Attribute],
) -> Result<Vec<u8>, KeyStoreError> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    let fail = |e: openssl::error::ErrorStack| KeyStoreError::Failed {
        key: key.to_string(),
        detail: format!("public key from the token: {e}"),
    };
    let missing = || KeyStoreError::Failed {
        key: key.to_string(),
        detail: "the token did not return the public key".into(),
    };
    match kind {
        KeyKind::Rsa { .. } => {
            let n = attr_bytes(attrs, AttributeType::Modulus).ok_or_else(missing)?;
            let e = attr_bytes(attrs, AttributeType::PublicExponent).ok_or_else(missing)?;
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(&n).map_err(fail)?,
                BigNum::from_slice(&e).map_err(fail)?,
            )
            .map_err(fail)?;
            PKey::from_rsa(rsa)
                .and_then(|k| k.public_key_to_der())
                .map_err(fail)
        }
        KeyKind::Ec { curve } => {
            let nid = match curve {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                _ => Nid::SECP521R1,
            };
            let point = attr_bytes(attrs, AttributeType::EcPoint).ok_or_else(missing)?;
            let group = EcGroup::from_curve_name(nid).map_err(fail)?;
            let mut ctx = BigNumContext::new().map_err(fail)?;
            let p = EcPoint::from_bytes(&group, unwrap_octets(&point), &mut ctx).map_err(fail)?;
            let ec = EcKey::from_public_key(&group, &p).map_err(fail)?;
            PKey::from_ec_key(ec)
                .and_then(|k| k.public_key_to_der())
                .map_err(fail)
        }
        KeyKind::Other => Err(unsupported(key, "unknown key type")),
    }
}

/// Generates a key pair on the token (must be logged in); returns the private key's handle,
/// its CKA_ID, kind and SubjectPublicKeyInfo.
pub(crate) fn generate_on_token(
    st: &mut TokenState,
    spec: KeySpec,
    label: &str,
    want_id: Option<Vec<u8>>,
    key: &str,
) -> Result<(ObjectHandle, Vec<u8>, KeyKind, Vec<u8>), KeyStoreError> {
    if !st.logged_in() {
        return Err(KeyStoreError::Locked {
            key: key.to_string(),
            hint: "token PIN (needed to generate a key)".into(),
        });
    }
    let s = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let ck_id = match want_id {
        Some(i) => i,
        None => s
            .generate_random_vec(16)
            .or_else(|_| {
                let mut b = vec![0u8; 16];
                openssl::rand::rand_bytes(&mut b).map(|()| b).map_err(|_| {
                    cryptoki::error::Error::Pkcs11(
                        cryptoki::error::RvError::FunctionFailed,
                        cryptoki::context::Function::GenerateRandom,
                    )
                })
            })
            .map_err(|e| op_error(key, "random CKA_ID", &e))?,
    };
    let exists = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(ck_id.clone()),
        ])
        .map_err(|e| op_error(key, "searching keys", &e))?;
    if !exists.is_empty() {
        return Err(KeyStoreError::Failed {
            key: key.to_string(),
            detail: "a private key with this CKA_ID already exists on the token".into(),
        });
    }
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Id(ck_id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ]
    };
    let mut public = common(false);
    let mut private = common(true);
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ]);
    public.push(Attribute::Verify(true));
    let (mech, kind) = match spec {
        KeySpec::Rsa(bits) => {
            if !(2048..=4096).contains(&bits) || !bits.is_multiple_of(8) {
                return Err(unsupported(
                    key,
                    format!("RSA-{bits}: use 2048, 3072 or 4096 bits"),
                ));
            }
            public.extend([
                Attribute::ModulusBits(u64::from(bits).into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
            ]);
            private.push(Attribute::Decrypt(true));
            (Mechanism::RsaPkcsKeyPairGen, KeyKind::Rsa { bits })
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let (oid, curve) = if spec == KeySpec::EcP256 {
                (OID_P256, "P-256")
            } else {
                (OID_P384, "P-384")
            };
            public.extend([Attribute::EcParams(oid.to_vec()), Attribute::Derive(true)]);
            private.push(Attribute::Derive(true));
            (Mechanism::EccKeyPairGen, KeyKind::Ec { curve })
        }
    };
    let (pub_h, priv_h) = s
        .generate_key_pair(&mech, &public, &private)
        .map_err(|e| op_error(key, "key generation", &e))?;
    let attrs = s
        .get_attributes(
            pub_h,
            &[
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcPoint,
            ],
        )
        .map_err(|e| op_error(key, "reading the public key", &e))?;
    let spki = spki_from_public(key, kind, &attrs)?;
    Ok((priv_h, ck_id, kind, spki))
}

/// A certificate object template (`CKO_CERTIFICATE`, X.509, public, on the token).
pub(crate) fn cert_template(der: &[u8], ck_id: &[u8], label: &str) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Id(ck_id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(der.to_vec()),
    ];
    if let Ok(x) = openssl::x509::X509::from_der(der) {
        if let Ok(s) = x.subject_name().to_der() {
            t.push(Attribute::Subject(s));
        }
        if let Ok(i) = x.issuer_name().to_der() {
            t.push(Attribute::Issuer(i));
        }
        if let Ok(sn) = x.serial_number().to_bn().map(|b| b.to_vec()) {
            // CKA_SERIAL_NUMBER is the DER INTEGER (serials are at most 20 octets).
            let mut v = vec![0x02];
            let pad = sn.first().is_none_or(|b| b & 0x80 != 0);
            let body: Vec<u8> = if pad {
                std::iter::once(0).chain(sn).collect()
            } else {
                sn
            };
            v.push(u8::try_from(body.len()).unwrap_or(0x7f));
            v.extend(body);
            t.push(Attribute::SerialNumber(v));
        }
    }
    t
}

/// Writes certificates to the token: `cert` under the key's CKA_ID and label, each of `chain`
/// (if not yet there) under a CKA_ID of its own.
pub(crate) fn write_certs(
    st: &mut TokenState,
    key: &str,
    ck_id: &[u8],
    label: &str,
    cert: &[u8],
    chain: &[Vec<u8>],
) -> Result<(), KeyStoreError> {
    let s = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let have = |der: &[u8]| -> bool {
        s.find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Value(der.to_vec()),
        ])
        .map(|v| !v.is_empty())
        .unwrap_or(false)
    };
    if !have(cert) {
        s.create_object(&cert_template(cert, ck_id, label))
            .map_err(|e| op_error(key, "writing the certificate", &e))?;
    }
    for (i, c) in chain.iter().enumerate() {
        if have(c) {
            continue;
        }
        let cid = openssl::sha::sha1(c)[..8].to_vec();
        let clabel = openssl::x509::X509::from_der(c)
            .ok()
            .and_then(|x| {
                x.subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .next()
                    .and_then(|e| e.data().to_string().ok())
            })
            .unwrap_or_else(|| format!("{label} issuer {}", i + 1));
        s.create_object(&cert_template(c, &cid, &clabel))
            .map_err(|e| op_error(key, "writing a chain certificate", &e))?;
    }
    Ok(())
}

impl NewKey for TokenKey {
    fn spki_der(&self) -> Result<Vec<u8>, KeyStoreError> {
        if let Some(s) = &self.spki {
            return Ok(s.clone());
        }
        Err(unsupported(
            &self.id,
            "public key of a key opened from the token: use its certificate",
        ))
    }

    fn set_certificate(&mut self, cert: CertDer) {
        self.certificate = cert;
    }

    fn export_pkcs12(
        &self,
        _friendly_name: &str,
        _certificate: &CertDer,
        _chain: &[CertDer],
        _password: &Secret,
        _legacy: bool,
    ) -> Result<Vec<u8>, KeyStoreError> {
        Err(unsupported(
            &self.id,
            "a token key cannot be exported (it never leaves the token); its certificate is stored on the token instead",
        ))
    }

    fn store_certificate(
        &mut self,
        cert: &CertDer,
        chain: &[CertDer],
    ) -> Result<Option<String>, KeyStoreError> {
        let (id, ck_id) = (self.id.clone(), self.ck_id.clone());
        let label = self.label.clone().unwrap_or_else(|| "smimekit".into());
        let der = cert.as_bytes().to_vec();
        let chain_der: Vec<Vec<u8>> = chain.iter().map(|c| c.as_bytes().to_vec()).collect();
        self.lane
            .call_blocking(move |st| write_certs(st, &id, &ck_id, &label, &der, &chain_der))??;
        self.certificate = cert.clone();
        self.chain = chain.to_vec();
        Ok(Some(self.id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_conversion() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80;
        raw[32] = 0;
        raw[33] = 0x01;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        let sig = openssl::ecdsa::EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().num_bytes(), 32);
        // P-521: long-form length.
        let der = ecdsa_raw_to_der(&[0xffu8; 132]).unwrap();
        assert_eq!(&der[..3], &[0x30, 0x81, 138]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn digest_info_is_der() {
        let d = digest_info(DigestAlg::Sha256, &[0u8; 32]).unwrap();
        assert_eq!(d.len(), 51);
        assert_eq!(usize::from(d[1]) + 2, d.len());
        assert_eq!(unwrap_octets(&[4, 2, 9, 9]), &[9, 9]);
        assert_eq!(unwrap_octets(&[4, 9, 9]), &[4, 9, 9]);
    }
}
