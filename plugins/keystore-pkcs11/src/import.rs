//! `token import`: a PKCS#12's key, public key and certificate (plus chain) as token objects
//! with one CKA_ID. EC keys get CKA_DERIVE on both halves so that ECDH (CMS decryption) works.

use cryptoki::object::{Attribute, KeyType, ObjectClass};
use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::Id;
use smimekit_core::{KeyStoreError, Secret};

use crate::key::write_certs;
use crate::lane::TokenState;
use crate::{OID_P256, OID_P384, OID_P521, op_error};

/// What goes on the token. Private-key attributes are secret material: the value is dropped
/// (and the vectors zeroized) once the objects are created.
pub(crate) struct Objects {
    pub ck_id: Vec<u8>,
    pub label: String,
    private: Vec<Attribute>,
    public: Vec<Attribute>,
    cert: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

impl Drop for Objects {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for a in &mut self.private {
            match a {
                Attribute::PrivateExponent(v)
                | Attribute::Prime1(v)
                | Attribute::Prime2(v)
                | Attribute::Exponent1(v)
                | Attribute::Exponent2(v)
                | Attribute::Coefficient(v)
                | Attribute::Value(v) => v.zeroize(),
                _ => {}
            }
        }
    }
}

fn failed(key: &str, what: &str, e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Failed {
        key: key.to_string(),
        detail: format!("{what}: {e}"),
    }
}

pub(crate) fn objects_from_p12(
    key: &str,
    data: &[u8],
    password: &Secret,
    label: Option<&str>,
) -> Result<Objects, KeyStoreError> {
    let pass = password
        .as_str()
        .ok_or_else(|| KeyStoreError::Unsupported {
            key: key.to_string(),
            detail: "PKCS#12 passwords must be UTF-8".into(),
        })?;
    let p12 = Pkcs12::from_der(data).map_err(|e| KeyStoreError::Malformed {
        key: key.to_string(),
        detail: format!("not a PKCS#12 file: {e}"),
    })?;
    let parsed = p12.parse2(pass).map_err(|_| KeyStoreError::BadSecret {
        key: key.to_string(),
        tries_left: None,
    })?;
    let (Some(pkey), Some(cert)) = (parsed.pkey, parsed.cert) else {
        return Err(KeyStoreError::NotFound {
            key: key.to_string(),
            detail: "the PKCS#12 holds no private key with a certificate".into(),
        });
    };
    let cert_der = cert.to_der().map_err(|e| failed(key, "certificate", e))?;
    let chain: Vec<Vec<u8>> = parsed
        .ca
        .map(|s| s.iter().filter_map(|c| c.to_der().ok()).collect())
        .unwrap_or_default();
    let label = label.map(str::to_string).unwrap_or_else(|| {
        cert.subject_name()
            .entries_by_nid(openssl::nid::Nid::PKCS9_EMAILADDRESS)
            .chain(
                cert.subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME),
            )
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_else(|| "imported".into())
    });
    // CKA_ID: the first 20 bytes of SHA-1 over the certificate's public key, as many tools do.
    let spki = pkey
        .public_key_to_der()
        .map_err(|e| failed(key, "public key", e))?;
    let ck_id = openssl::sha::sha1(&spki).to_vec();
    let subject = cert.subject_name().to_der().unwrap_or_default();
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Id(ck_id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ]
    };
    let mut private = common(true);
    private.extend([
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Subject(subject.clone()),
    ]);
    let mut public = common(false);
    public.extend([
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Verify(true),
        Attribute::Subject(subject),
    ]);
    match pkey.id() {
        Id::RSA => {
            let rsa = pkey.rsa().map_err(|e| failed(key, "RSA key", e))?;
            let need = |b: Option<&openssl::bn::BigNumRef>| {
                b.map(|b| b.to_vec())
                    .ok_or_else(|| failed(key, "RSA key", "CRT parameters missing"))
            };
            private.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Decrypt(true),
                Attribute::Modulus(rsa.n().to_vec()),
                Attribute::PublicExponent(rsa.e().to_vec()),
                Attribute::PrivateExponent(rsa.d().to_vec()),
                Attribute::Prime1(need(rsa.p())?),
                Attribute::Prime2(need(rsa.q())?),
                Attribute::Exponent1(need(rsa.dmp1())?),
                Attribute::Exponent2(need(rsa.dmq1())?),
                Attribute::Coefficient(need(rsa.iqmp())?),
            ]);
            public.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Encrypt(true),
                Attribute::Modulus(rsa.n().to_vec()),
                Attribute::PublicExponent(rsa.e().to_vec()),
            ]);
        }
        Id::EC => {
            let ec = pkey.ec_key().map_err(|e| failed(key, "EC key", e))?;
            let oid = match ec.group().curve_name() {
                Some(openssl::nid::Nid::X9_62_PRIME256V1) => OID_P256,
                Some(openssl::nid::Nid::SECP384R1) => OID_P384,
                Some(openssl::nid::Nid::SECP521R1) => OID_P521,
                _ => {
                    return Err(KeyStoreError::Unsupported {
                        key: key.to_string(),
                        detail: "EC keys on P-256, P-384 or P-521 only".into(),
                    });
                }
            };
            let mut ctx = BigNumContext::new().map_err(|e| failed(key, "EC key", e))?;
            let point = ec
                .public_key()
                .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
                .map_err(|e| failed(key, "EC key", e))?;
            // CKA_EC_POINT is a DER OCTET STRING.
            let mut octets = vec![0x04];
            if point.len() >= 0x80 {
                octets.push(0x81);
            }
            octets.push(point.len() as u8);
            octets.extend(&point);
            private.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::Derive(true),
                Attribute::EcParams(oid.to_vec()),
                Attribute::Value(ec.private_key().to_vec()),
            ]);
            public.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::Derive(true),
                Attribute::EcParams(oid.to_vec()),
                Attribute::EcPoint(octets),
            ]);
        }
        _ => {
            return Err(KeyStoreError::Unsupported {
                key: key.to_string(),
                detail: "only RSA and EC keys can be imported".into(),
            });
        }
    }
    Ok(Objects {
        ck_id,
        label,
        private,
        public,
        cert: cert_der,
        chain,
    })
}

/// Creates the objects; on failure, removes what was created.
pub(crate) fn create(st: &mut TokenState, o: &Objects, key: &str) -> Result<(), KeyStoreError> {
    if !st.logged_in() {
        return Err(KeyStoreError::Locked {
            key: key.to_string(),
            hint: "token PIN (needed to import a key)".into(),
        });
    }
    let s = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let exists = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(o.ck_id.clone()),
        ])
        .map_err(|e| op_error(key, "searching keys", &e))?;
    if !exists.is_empty() {
        return Err(KeyStoreError::Failed {
            key: key.to_string(),
            detail: format!("this key is already on the token (label \"{}\")", o.label),
        });
    }
    let priv_h = s
        .create_object(&o.private)
        .map_err(|e| op_error(key, "writing the private key", &e))?;
    let pub_h = match s.create_object(&o.public) {
        Ok(h) => h,
        Err(e) => {
            let _ = s.destroy_object(priv_h);
            return Err(op_error(key, "writing the public key", &e));
        }
    };
    if let Err(e) = write_certs(st, key, &o.ck_id, &o.label, &o.cert, &o.chain) {
        if let Ok(s) = st.session() {
            let _ = s.destroy_object(priv_h);
            let _ = s.destroy_object(pub_h);
        }
        return Err(e);
    }
    Ok(())
}
