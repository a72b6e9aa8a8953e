//! Search entries read without panicking, and the write plan for one entry.
//!
//! ldap3's `SearchEntry::construct` panics on a malformed entry and splits values between
//! `attrs` and `bin_attrs` by whether they happen to be UTF-8. Entries here are read straight
//! from the BER structure, every value as bytes, so a certificate whose DER is valid UTF-8
//! is still found and a hostile server cannot crash the process.

use ldap3::ResultEntry;
use ldap3::asn1::{PL, StructureTag};
use smimekit_core::CertDer;
use smimekit_pki::certinfo;

use crate::config::{Settings, same_attr};

/// One entry: its DN and every attribute's values as bytes.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

fn constructed(t: StructureTag) -> Option<Vec<StructureTag>> {
    match t.payload {
        PL::C(v) => Some(v),
        PL::P(_) => None,
    }
}

fn primitive(t: StructureTag) -> Option<Vec<u8>> {
    match t.payload {
        PL::P(v) => Some(v),
        PL::C(_) => None,
    }
}

/// Parses a SearchResultEntry (application tag 4); `None` when it is malformed.
pub fn parse(re: ResultEntry) -> Option<RawEntry> {
    let tag = re.0;
    if tag.id != 4 {
        return None;
    }
    let mut parts = constructed(tag)?.into_iter();
    let dn = String::from_utf8(primitive(parts.next()?)?).ok()?;
    let mut attrs = Vec::new();
    for pa in constructed(parts.next()?)? {
        let mut pa = constructed(pa)?.into_iter();
        let name = String::from_utf8(primitive(pa.next()?)?).ok()?;
        let mut values = Vec::new();
        for v in constructed(pa.next()?)? {
            values.push(primitive(v)?);
        }
        attrs.push((name, values));
    }
    Some(RawEntry { dn, attrs })
}

impl RawEntry {
    /// Values of an attribute (name compared without options, ignoring case).
    pub fn values(&self, attr: &str) -> Vec<Vec<u8>> {
        self.attrs
            .iter()
            .filter(|(n, _)| same_attr(n, attr))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }

    /// Values of an attribute as text (non-UTF-8 values skipped).
    pub fn strings(&self, attr: &str) -> Vec<String> {
        self.values(attr)
            .into_iter()
            .filter_map(|v| String::from_utf8(v).ok())
            .collect()
    }
}

/// A recipient entry as smimekit sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    pub mails: Vec<String>,
    /// `proxyAddresses` SMTP addresses, prefix stripped.
    pub proxies: Vec<String>,
    pub object_classes: Vec<String>,
    /// Values of the certificate attribute (DER certificates), in server order.
    pub certs: Vec<Vec<u8>>,
    /// Values of the userSMIMECertificate attribute (PKCS#7), in server order.
    pub smime: Vec<Vec<u8>>,
    /// OpenLDAP's `entryCSN` (changes with every write): a replace of userSMIMECertificate
    /// asserts it, so that it never overwrites a value another writer added meanwhile.
    pub csn: Option<String>,
}

impl Entry {
    pub fn from_raw(raw: &RawEntry, s: &Settings) -> Self {
        let proxies = s
            .proxy_attr
            .as_deref()
            .map(|a| {
                raw.strings(a)
                    .into_iter()
                    .filter_map(|p| {
                        let (scheme, addr) = p.split_once(':')?;
                        scheme
                            .eq_ignore_ascii_case("smtp")
                            .then(|| addr.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            dn: raw.dn.clone(),
            mails: raw.strings(&s.mail_attr),
            proxies,
            object_classes: raw.strings("objectClass"),
            certs: raw.values(&s.cert_attr),
            smime: raw.values(&s.smime_attr),
            csn: raw.strings("entryCSN").into_iter().next(),
        }
    }

    /// The entry's primary address: `mail`, else the primary (`SMTP:`) proxy address.
    pub fn primary_address(&self) -> Option<&str> {
        self.mails
            .first()
            .or_else(|| self.proxies.first())
            .map(String::as_str)
    }

    /// Every address of the entry.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.mails.iter().chain(&self.proxies) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(a)) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Whether it is an external contact (AD `contact`, or an entry under `contacts_dn`).
    pub fn is_contact(&self, s: &Settings) -> bool {
        self.object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case("contact"))
            || s.contacts_dn.as_deref().is_some_and(|c| {
                self.dn
                    .to_ascii_lowercase()
                    .ends_with(&c.to_ascii_lowercase())
            })
    }

    /// The recipient's certificates: the certificate attribute's values, then the end-entity
    /// certificates of userSMIMECertificate values not already listed. Unreadable values
    /// are skipped here (the audit names them).
    pub fn certificates(&self) -> Vec<CertDer> {
        let mut out: Vec<CertDer> = self.certs.iter().map(|v| CertDer::new(v.clone())).collect();
        for v in &self.smime {
            if let Ok(leaves) = smime_leaves(v) {
                for c in leaves {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }
}

/// Every certificate of a PKCS#7 value (the leaf and its chain).
pub fn smime_certificates(value: &[u8]) -> Result<Vec<CertDer>, String> {
    smimekit_pki::load_certificates(value, "userSMIMECertificate").map_err(|e| e.to_string())
}

/// The end-entity certificates of a PKCS#7 value (CA certificates of the chain left out).
pub fn smime_leaves(value: &[u8]) -> Result<Vec<CertDer>, String> {
    let all = smime_certificates(value)?;
    let leaves: Vec<CertDer> = all
        .iter()
        .filter(|c| certinfo::parse(c).map(|i| !i.is_ca).unwrap_or(true))
        .cloned()
        .collect();
    // A chain of CA certificates only (a CA publishing itself): every certificate counts.
    Ok(if leaves.is_empty() { all } else { leaves })
}

/// The values an entry should hold after a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub certs: Vec<Vec<u8>>,
    pub smime: Vec<Vec<u8>>,
    /// userSMIMECertificate values kept because they cannot be read as PKCS#7 holding a
    /// certificate (another tool's format, damage): never dropped, reported.
    pub unreadable: usize,
}

/// Works out the target values for the final certificate set `fin`: the certificate
/// attribute holds exactly `fin`; userSMIMECertificate keeps each existing value whose
/// end-entity certificates are all in `fin` (byte for byte, as another tool wrote it), keeps
/// every value it cannot read (it cannot know whose certificates they hold), and gets a new
/// certs-only PKCS#7 (leaf + chain) for every certificate no kept value covers.
pub fn target(
    entry_certs: &[Vec<u8>],
    entry_smime: &[Vec<u8>],
    fin: &[CertDer],
    chain: &dyn Fn(&CertDer) -> Vec<CertDer>,
    write_smime: bool,
) -> Target {
    let mut certs: Vec<Vec<u8>> = entry_certs
        .iter()
        .filter(|v| fin.iter().any(|c| c.as_bytes() == v.as_slice()))
        .cloned()
        .collect();
    for c in fin {
        if !certs.iter().any(|v| v.as_slice() == c.as_bytes()) {
            certs.push(c.as_bytes().to_vec());
        }
    }
    let unreadable = entry_smime
        .iter()
        .filter(|v| smime_leaves(v).map_or(true, |l| l.is_empty()))
        .count();
    if !write_smime {
        return Target {
            certs,
            smime: entry_smime.to_vec(),
            unreadable,
        };
    }
    let mut smime = Vec::new();
    let mut covered: Vec<CertDer> = Vec::new();
    for v in entry_smime {
        match smime_leaves(v) {
            Ok(leaves) if !leaves.is_empty() => {
                if leaves.iter().all(|l| fin.contains(l)) {
                    smime.push(v.clone());
                    covered.extend(leaves);
                }
            }
            // Unreadable: kept as it is.
            _ => smime.push(v.clone()),
        }
    }
    for c in fin {
        if !covered.contains(c) {
            let mut p7 = vec![c.clone()];
            p7.extend(chain(c));
            smime.push(smimekit_pki::write_p7b(&p7));
        }
    }
    Target {
        certs,
        smime,
        unreadable,
    }
}

/// Whether two value lists hold the same values (order ignored, bytes compared exactly).
pub fn same_values(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    a.len() == b.len() && a.iter().all(|v| b.contains(v)) && b.iter().all(|v| a.contains(v))
}
