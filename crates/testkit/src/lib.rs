//! Test support shared by the crates' tests: the interop corpus's place ([`corpus`]), a
//! pinned clock, an in-memory [`Directory`] with the port's reference semantics, the
//! [`conformance`] suite every `Directory` backend runs, and a throwaway PostgreSQL cluster
//! ([`pg`]) for the store's tests and benchmarks.
//!
//! Nothing here is for production use: the directory keeps everything in a mutex-guarded map
//! and never persists.

pub mod conformance;
pub mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};

/// A fixed point in time for certificate tests: 2026-06-01T00:00:00Z, inside the committed
/// test PKI's validity (2025–2045).
pub const PINNED_NOW: i64 = 1_780_272_000;

/// [`PINNED_NOW`] as `smimekit --at` takes it.
pub const PINNED_AT: &str = "2026-06-01T00:00:00Z";

/// [`PINNED_NOW`] as `openssl -attime` takes it.
pub const PINNED_UNIX: &str = "1780272000";

/// A clock that always returns [`PINNED_NOW`], in the shape the service builder takes.
pub fn pinned_clock() -> Arc<dyn Fn() -> i64 + Send + Sync> {
    Arc::new(|| PINNED_NOW)
}

/// The interop corpus, read in place (never copied into the repository):
/// `$SMIMEKIT_CORPUS`, else `shared/corpus` beside the workspace checkout.
///
/// Panics, naming where it looked, when there is no `manifest.json`: a corpus test that finds
/// no corpus fails rather than passing on nothing.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("SMIMEKIT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/corpus"));
    assert!(
        dir.join("manifest.json").is_file(),
        "the interop corpus is not at {} (no manifest.json): set SMIMEKIT_CORPUS",
        dir.display()
    );
    dir
}

/// The workspace root (this crate is `crates/testkit` in it).
fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map_or_else(|| here.join("../.."), Path::to_path_buf)
}

/// An in-memory directory with the same merge semantics every backend must have.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    name: String,
    entries: Mutex<BTreeMap<String, Recipient>>,
    chain: Mutex<Vec<CertDer>>,
}

impl MemoryDirectory {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            entries: Mutex::default(),
            chain: Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Recipient>>, DirectoryError> {
        self.entries
            .lock()
            .map_err(|_| DirectoryError::Other("directory lock poisoned".into()))
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self
            .lock()?
            .get(&address.key())
            .map(|r| r.certificates.clone())
            .unwrap_or_default())
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut map = self.lock()?;
        let entry = map.entry(address.key()).or_insert_with(|| Recipient {
            address: address.clone(),
            kind,
            certificates: Vec::new(),
        });
        if mode == PublishMode::Replace {
            entry.certificates.clear();
        }
        if !entry.certificates.contains(certificate) {
            entry.certificates.push(certificate.clone());
        }
        Ok(entry.certificates.clone())
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut map = self.lock()?;
        let entry = map
            .get_mut(&address.key())
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
        entry.certificates.retain(|c| c != certificate);
        Ok(entry.certificates.clone())
    }

    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        self.chain
            .lock()
            .map(|c| c.clone())
            .map_err(|_| DirectoryError::Other("trust chain lock poisoned".into()))
    }

    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        let mut c = self
            .chain
            .lock()
            .map_err(|_| DirectoryError::Other("trust chain lock poisoned".into()))?;
        *c = chain.to_vec();
        Ok(c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::conformance::{self, Capabilities, Outcome, Subject};
    use super::*;

    fn cert(b: u8) -> CertDer {
        CertDer::new(vec![0x30, 1, b])
    }

    fn certs() -> Vec<CertDer> {
        (0..6).map(cert).collect()
    }

    fn subject<'a>(
        d: &'a dyn Directory,
        certs: &'a [CertDer],
        chain: &'a [CertDer],
    ) -> Subject<'a> {
        Subject {
            backend: "memory",
            directory: d,
            capabilities: Capabilities::ALL,
            certificates: certs,
            chain,
            domain: "example.org",
            contact_domain: "partner.example",
            alias: None,
        }
    }

    /// The reference passes the whole suite.
    #[tokio::test]
    async fn memory_directory_conforms() {
        let d = MemoryDirectory::new("mem");
        let (c, chain) = (certs(), [cert(100), cert(101)]);
        let report = conformance::run(&subject(&d, &c, &chain)).await;
        assert_eq!(report.outcomes.len(), conformance::CHECKS.len());
        assert!(
            report.outcomes.iter().all(|(_, o)| *o == Outcome::Passed),
            "{report}"
        );
        report.assert(&[]);
    }

    /// A way to break the reference, so that the suite is seen to fail.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Flaw {
        /// Merge drops what was there.
        MergeReplaces,
        /// publish_removing drops every other value.
        RemovesUnlisted,
        /// Unpublish from nobody succeeds.
        UnpublishUnknownOk,
        /// Every recipient reads back as a mailbox.
        ForgetsKind,
    }

    #[derive(Debug)]
    struct Flawed(MemoryDirectory, Flaw);

    #[async_trait]
    impl Directory for Flawed {
        fn name(&self) -> &str {
            self.0.name()
        }
        async fn lookup(&self, a: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
            self.0.lookup(a).await
        }
        async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
            let mut all = self.0.recipients().await?;
            if self.1 == Flaw::ForgetsKind {
                all.iter_mut().for_each(|r| r.kind = RecipientKind::Mailbox);
            }
            Ok(all)
        }
        async fn publish(
            &self,
            a: &Mailbox,
            k: RecipientKind,
            c: &CertDer,
            m: PublishMode,
        ) -> Result<Vec<CertDer>, DirectoryError> {
            let m = if self.1 == Flaw::MergeReplaces {
                PublishMode::Replace
            } else {
                m
            };
            self.0.publish(a, k, c, m).await
        }
        async fn publish_removing(
            &self,
            a: &Mailbox,
            k: RecipientKind,
            c: &CertDer,
            m: PublishMode,
            remove: &[CertDer],
        ) -> Result<Vec<CertDer>, DirectoryError> {
            if self.1 == Flaw::RemovesUnlisted {
                return self.0.publish(a, k, c, PublishMode::Replace).await;
            }
            self.0.publish_removing(a, k, c, m, remove).await
        }
        async fn unpublish(
            &self,
            a: &Mailbox,
            c: &CertDer,
        ) -> Result<Vec<CertDer>, DirectoryError> {
            match self.0.unpublish(a, c).await {
                Err(DirectoryError::NotFound(_)) if self.1 == Flaw::UnpublishUnknownOk => {
                    Ok(vec![])
                }
                other => other,
            }
        }
    }

    #[tokio::test]
    async fn each_flaw_fails_its_check_and_the_table_must_name_it() {
        let (c, chain) = (certs(), [cert(100)]);
        for (flaw, check) in [
            (Flaw::MergeReplaces, "merge_keeps_others"),
            (
                Flaw::RemovesUnlisted,
                "publish_removing_drops_exactly_the_listed",
            ),
            (
                Flaw::UnpublishUnknownOk,
                "unpublish_unknown_recipient_is_not_found",
            ),
            (Flaw::ForgetsKind, "recipient_kind_mailbox_and_contact"),
        ] {
            let d = Flawed(MemoryDirectory::new("flawed"), flaw);
            let mut s = subject(&d, &c, &chain);
            // No trust chain: the default methods refuse it, as the port says.
            s.capabilities.trust_chain = false;
            let report = conformance::run(&s).await;
            assert!(
                matches!(report.outcome(check), Some(Outcome::Failed(_))),
                "{flaw:?}: {report}"
            );
            assert_eq!(
                report.outcome("trust_chain"),
                Some(&Outcome::Passed),
                "{report}"
            );
            let failed: Vec<&str> = report
                .outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .map(|(n, _)| *n)
                .collect();
            assert!(!report.problems(&[]).is_empty());
            let table: Vec<(&str, &str)> = failed.iter().map(|n| (*n, "known")).collect();
            assert_eq!(report.problems(&table), Vec::<String>::new(), "{flaw:?}");
        }
        // The reference passes, so a table entry for it is itself a problem, as is a name
        // the suite does not know.
        let d = MemoryDirectory::new("mem");
        let report = conformance::run(&subject(&d, &c, &chain)).await;
        let p = report.problems(&[("merge_keeps_others", "r"), ("no_such_check", "r")]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("no such check"), "{p:?}");
        assert!(p[1].contains("merge_keeps_others now passes"), "{p:?}");
    }

    #[tokio::test]
    async fn a_subject_with_too_few_certificates_fails_every_check() {
        let d = MemoryDirectory::new("mem");
        let c = [cert(1), cert(1), cert(2), cert(3), cert(4)];
        let report = conformance::run(&subject(&d, &c, &[])).await;
        assert!(
            report
                .outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Failed(_))),
            "{report}"
        );
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn the_pinned_time_is_one_instant_in_every_form() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        let (date, time) = PINNED_AT.split_once('T').unwrap();
        assert_eq!(time, "00:00:00Z");
        let ymd: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
        assert_eq!(days_from_civil(ymd[0], ymd[1], ymd[2]) * 86_400, PINNED_NOW);
        assert_eq!(PINNED_UNIX, PINNED_NOW.to_string());
        assert_eq!(pinned_clock()(), PINNED_NOW);
    }

    #[test]
    fn the_corpus_is_found() {
        assert!(corpus().join("manifest.json").is_file());
    }
}
