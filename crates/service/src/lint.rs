//! `smimekit lint`: the rule table lives in `smimekit_pki::lint`; this parses the inputs and
//! names each certificate's source.

use serde::Serialize;
use smimekit_pki::lint::{self, LintOptions, LintedCert};

pub use smimekit_pki::lint::{Finding, Profile, RULES, Rule, Severity};

use crate::certs::rfc3339;
use crate::{Named, Service, ServiceError};

/// What to lint.
#[derive(Debug, Clone, Default)]
pub struct LintRequest {
    /// Certificates (any container); every certificate in each is linted, named by its input.
    pub certs: Vec<Named<Vec<u8>>>,
    pub profile: Profile,
    /// The trust store to chain to (the `.sst` uploaded to Exchange Online), if any.
    pub chain: Option<Named<Vec<u8>>>,
    /// Validation time (Unix seconds); the service clock when `None`.
    pub at: Option<i64>,
    /// Warning window for expiry, in days.
    pub expiring_days: u32,
    /// The mailbox the certificates must be for.
    pub address: Option<String>,
}

/// One linted certificate and the input it came from.
#[derive(Debug, Clone, Serialize)]
pub struct LintedFileCert {
    /// The input's name.
    pub file: String,
    #[serde(flatten)]
    pub cert: LintedCert,
}

/// The lint result; `errors > 0` means exit 1.
#[derive(Debug, Clone, Serialize)]
pub struct LintResult {
    pub profile: Profile,
    pub at: String,
    /// The trust store's name.
    pub chain: Option<String>,
    pub certificates: Vec<LintedFileCert>,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl LintResult {
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
}

impl Service {
    /// Lints every certificate of the given inputs.
    pub fn lint(&self, req: &LintRequest) -> Result<LintResult, ServiceError> {
        let mut certs = Vec::new();
        let mut files = Vec::new();
        for input in &req.certs {
            let loaded = self.certificates(input)?;
            files.extend(std::iter::repeat_n(input.name.clone(), loaded.len()));
            certs.extend(loaded);
        }
        let trust_store = match &req.chain {
            Some(input) => Some(self.certificates(input)?),
            None => None,
        };
        let at = req.at.unwrap_or_else(|| self.now());
        let opts = LintOptions {
            profile: req.profile,
            at,
            expiring_days: req.expiring_days,
            address: req.address.clone(),
            trust_store,
        };
        let report = lint::lint(self.engine().verifier, &certs, &opts);
        Ok(LintResult {
            profile: report.profile,
            at: rfc3339(at),
            chain: req.chain.as_ref().map(|c| c.name.clone()),
            errors: report.errors,
            warnings: report.warnings,
            infos: report.infos,
            certificates: report
                .certificates
                .into_iter()
                .zip(files)
                .map(|(cert, file)| LintedFileCert { file, cert })
                .collect(),
        })
    }
}
