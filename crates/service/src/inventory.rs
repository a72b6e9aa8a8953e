//! The certificate inventory: every certificate seen in any directory, kept in the store.
//!
//! Lookups, `encrypt --to ADDRESS` and publishes through the service record what they saw
//! (the whole list for that address: certificates no longer there are marked gone), and so
//! does a directory audit, for every recipient it read, with the attribute holding each
//! certificate when the backend keeps several (LDAP: `userCertificate`,
//! `userSMIMECertificate`); `smimekit inventory` queries the store only, never the directories.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use smimekit_core::store::{CertFacts, InventoryQuery, Sighting};
use smimekit_core::{CertDer, Mailbox, RecipientKind, RecipientValues, SignatureVerifier};
use smimekit_pki::certinfo;

use crate::certs::rfc3339;
use crate::store::store_error;
use crate::{Service, ServiceError};

const DAY: i64 = 86_400;

/// A certificate a recipient holds and the attributes holding it.
type Held<'a> = (&'a CertDer, Vec<&'a str>);

/// `smimekit inventory`.
#[derive(Debug, Clone, Default)]
pub struct InventoryRequest {
    /// Only certificates that are still valid and expire within this many days.
    pub expiring_days: Option<u32>,
    /// Only this directory (by configured name).
    pub directory: Option<String>,
    /// Also certificates no longer present where they were seen.
    pub include_gone: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InventoryResult {
    pub store: String,
    /// The service clock the query used.
    pub now: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// By expiry, soonest first.
    pub certificates: Vec<InventoryItem>,
}

/// One certificate for one address in one directory.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryItem {
    pub directory: String,
    pub address: String,
    pub recipient_kind: Option<RecipientKind>,
    /// SHA-1, uppercase hex, as Exchange shows it.
    pub sha1_thumbprint: String,
    pub sha256_fingerprint: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days from the service clock to `not_after` (negative once expired).
    pub days_left: i64,
    pub key_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_attribute: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub published_by_smimekit: bool,
    /// Still there when the address was last looked at.
    pub present: bool,
}

impl Service {
    /// `smimekit inventory`: what the store knows, without asking any directory.
    pub async fn inventory(&self, req: &InventoryRequest) -> Result<InventoryResult, ServiceError> {
        let store = self.store().await?;
        let now = self.now();
        let query = InventoryQuery {
            directory: req.directory.clone(),
            not_after_from: req.expiring_days.map(|_| now),
            not_after_until: req
                .expiring_days
                .map(|d| now.saturating_add(i64::from(d) * DAY)),
            include_gone: req.include_gone,
        };
        let rows = store.inventory(&query).await.map_err(store_error)?;
        Ok(InventoryResult {
            store: store.describe(),
            now: rfc3339(now),
            expiring_days: req.expiring_days,
            directory: req.directory.clone(),
            certificates: rows
                .into_iter()
                .map(|r| InventoryItem {
                    directory: r.directory,
                    address: r.address,
                    recipient_kind: r.recipient_kind,
                    sha1_thumbprint: r.facts.sha1,
                    sha256_fingerprint: r.facts.sha256,
                    subject: r.facts.subject,
                    issuer: r.facts.issuer,
                    serial: r.facts.serial,
                    not_before: rfc3339(r.facts.not_before),
                    not_after: rfc3339(r.facts.not_after),
                    days_left: (r.facts.not_after - now).div_euclid(DAY),
                    key_type: r.facts.key_type,
                    source_attribute: r.facts.source_attribute,
                    first_seen: rfc3339(r.first_seen),
                    last_seen: rfc3339(r.last_seen),
                    published_by_smimekit: r.published_by_smimekit,
                    present: r.present,
                })
                .collect(),
        })
    }

    /// The inventory's facts of a certificate; `None` for one that cannot be read (the
    /// inventory lists certificates, and an unreadable value has no facts to list).
    pub(crate) fn cert_facts(&self, cert: &CertDer, attribute: Option<&str>) -> Option<CertFacts> {
        cert_facts(self.engine().verifier, cert, attribute)
    }

    /// Records what a directory holds for an address (all of it: others are marked gone);
    /// `published` names the certificate smimekit just published there.
    pub(crate) async fn record_sighting(
        &self,
        directory: &str,
        address: &Mailbox,
        kind: Option<RecipientKind>,
        certificates: &[CertDer],
        published: Option<&CertDer>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let seen: Vec<CertFacts> = certificates
            .iter()
            .filter_map(|c| self.cert_facts(c, None))
            .collect();
        let mine: Vec<CertFacts> = published
            .filter(|c| certificates.contains(c))
            .and_then(|c| self.cert_facts(c, None))
            .into_iter()
            .collect();
        let mut sightings = vec![Sighting {
            directory,
            address,
            kind,
            certificates: &seen,
            time: now,
            published: false,
            complete: true,
        }];
        if !mine.is_empty() {
            sightings.push(Sighting {
                directory,
                address,
                kind,
                certificates: &mine,
                time: now,
                published: true,
                complete: false,
            });
        }
        let store = self.store().await?;
        store
            .inventory_record(&sightings)
            .await
            .map_err(store_error)
    }

    /// Records what a directory audit read: each recipient's certificates, all of them (others
    /// of the address are marked gone), each with the attributes holding it (`userCertificate,
    /// userSMIMECertificate` for one in both; none where the backend has one list). A PKCS#7
    /// value's CA certificates are its chain, not the recipient's, as in a lookup: a value's
    /// end-entity certificates are recorded, or all of them when it holds CA certificates only.
    pub(crate) async fn record_recipient_values(
        &self,
        directory: &str,
        all: &[RecipientValues],
    ) -> Result<(), ServiceError> {
        // One sighting per address: two entries answering to one address are one holder.
        let mut held: Vec<(&Mailbox, RecipientKind, Vec<Held<'_>>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for rv in all {
            let at = *index
                .entry(rv.recipient.address.to_string().to_lowercase())
                .or_insert_with(|| {
                    held.push((&rv.recipient.address, rv.recipient.kind, Vec::new()));
                    held.len() - 1
                });
            let certs = &mut held[at].2;
            for v in &rv.values {
                let leaves: Vec<&CertDer> = v
                    .certificates
                    .iter()
                    .filter(|c| certinfo::parse(c).map_or(true, |i| !i.is_ca))
                    .collect();
                let chosen = if leaves.is_empty() {
                    v.certificates.iter().collect()
                } else {
                    leaves
                };
                let attribute = Some(v.attribute.as_str()).filter(|a| !a.is_empty());
                for c in chosen {
                    match certs.iter_mut().find(|(h, _)| *h == c) {
                        Some((_, attrs)) => attrs.extend(attribute.filter(|a| !attrs.contains(a))),
                        None => certs.push((c, attribute.into_iter().collect())),
                    }
                }
            }
        }
        let facts: Vec<Vec<CertFacts>> = held
            .iter()
            .map(|(_, _, certs)| {
                certs
                    .iter()
                    .filter_map(|(c, attrs)| {
                        let attribute = (!attrs.is_empty()).then(|| attrs.join(", "));
                        self.cert_facts(c, attribute.as_deref())
                    })
                    .collect()
            })
            .collect();
        let now = self.now();
        let sightings: Vec<Sighting<'_>> = held
            .iter()
            .zip(&facts)
            .map(|((address, kind, _), f)| Sighting {
                directory,
                address,
                kind: Some(*kind),
                certificates: f,
                time: now,
                published: false,
                complete: true,
            })
            .collect();
        if sightings.is_empty() {
            return Ok(());
        }
        let store = self.store().await?;
        store
            .inventory_record(&sightings)
            .await
            .map_err(store_error)
    }

    /// Records the recipients of an import (smimekit put them there).
    pub(crate) async fn record_imported(
        &self,
        directory: &str,
        recipients: &[(Mailbox, RecipientKind, Vec<CertDer>)],
        now: i64,
    ) -> Result<(), ServiceError> {
        let facts: Vec<Vec<CertFacts>> = recipients
            .iter()
            .map(|(_, _, certs)| {
                certs
                    .iter()
                    .filter_map(|c| self.cert_facts(c, None))
                    .collect()
            })
            .collect();
        let sightings: Vec<Sighting<'_>> = recipients
            .iter()
            .zip(&facts)
            .map(|((address, kind, _), f)| Sighting {
                directory,
                address,
                kind: Some(*kind),
                certificates: f,
                time: now,
                published: true,
                complete: false,
            })
            .collect();
        let store = self.store().await?;
        store
            .inventory_record(&sightings)
            .await
            .map_err(store_error)
    }
}

/// The inventory's facts of a certificate (see [`Service::cert_facts`]).
fn cert_facts(
    verifier: &dyn SignatureVerifier,
    cert: &CertDer,
    attribute: Option<&str>,
) -> Option<CertFacts> {
    let info = certinfo::parse(cert).ok()?;
    let key_type = certinfo::spki_der(cert)
        .ok()
        .and_then(|spki| verifier.public_key_info(&spki).ok())
        .map(|k| match (k.algorithm.as_str(), k.curve) {
            (_, Some(curve)) => curve.replace('-', "").to_ascii_lowercase(),
            (alg, None) => format!("{alg}{}", k.bits),
        })
        .unwrap_or_else(|| info.public_key_algorithm.clone());
    Some(CertFacts {
        sha1: info.sha1_thumbprint,
        sha256: info.sha256_fingerprint,
        subject: info.subject,
        issuer: info.issuer,
        serial: info.serial_hex,
        not_before: info.not_before,
        not_after: info.not_after,
        key_type,
        source_attribute: attribute.map(String::from),
    })
}

/// The inventory's facts of certificates, each distinct certificate parsed once: a plan
/// records listings of several directories holding the same certificates.
#[derive(Debug, Default)]
pub(crate) struct FactsCache {
    seen: Mutex<HashMap<CertDer, Option<CertFacts>>>,
}

impl FactsCache {
    /// The facts of `cert` (no source attribute), as [`Service::cert_facts`] gives them.
    pub(crate) fn facts(
        &self,
        verifier: &dyn SignatureVerifier,
        cert: &CertDer,
    ) -> Option<CertFacts> {
        // A poisoned map (a panic while inserting) is only a cache: compute again.
        if let Some(known) = self.seen.lock().ok().and_then(|s| s.get(cert).cloned()) {
            return known;
        }
        let facts = cert_facts(verifier, cert, None);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(cert.clone(), facts.clone());
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use smimekit_core::{EngineError, PublicKeyInfo, SignatureScheme};

    use super::*;

    /// The engine's verifier, counting the key inspections asked of it.
    #[derive(Debug)]
    struct Counting {
        inner: &'static dyn SignatureVerifier,
        keys: AtomicUsize,
    }

    impl SignatureVerifier for Counting {
        fn verify(
            &self,
            spki_der: &[u8],
            scheme: SignatureScheme,
            message: &[u8],
            signature: &[u8],
        ) -> Result<bool, EngineError> {
            self.inner.verify(spki_der, scheme, message, signature)
        }

        fn public_key_info(&self, spki_der: &[u8]) -> Result<PublicKeyInfo, EngineError> {
            self.keys.fetch_add(1, Ordering::SeqCst);
            self.inner.public_key_info(spki_der)
        }
    }

    fn fixture(name: &str) -> CertDer {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pki")
            .join(name);
        smimekit_pki::load_certificates(&std::fs::read(path).unwrap(), name)
            .unwrap()
            .remove(0)
    }

    /// Each distinct certificate is inspected once, and its facts are the service's.
    #[test]
    fn facts_cache_computes_each_certificate_once() {
        let service = Service::builder().build().unwrap();
        let verifier = Counting {
            inner: service.engine().verifier,
            keys: AtomicUsize::new(0),
        };
        let cache = FactsCache::default();
        let (alice, bob) = (fixture("alice.pem"), fixture("bob.pem"));
        for _ in 0..3 {
            for c in [&alice, &bob] {
                assert_eq!(cache.facts(&verifier, c), service.cert_facts(c, None));
            }
        }
        assert_eq!(verifier.keys.load(Ordering::SeqCst), 2);
        let alice_facts = cache.facts(&verifier, &alice).unwrap();
        assert_eq!(alice_facts.key_type, "rsa2048", "{alice_facts:?}");
        // An unreadable value has no facts, remembered as such.
        let junk = CertDer::new(b"not a certificate".to_vec());
        assert_eq!(cache.facts(&verifier, &junk), None);
        assert_eq!(cache.facts(&verifier, &junk), None);
    }
}
