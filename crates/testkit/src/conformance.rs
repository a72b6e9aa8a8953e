//! The `Directory` conformance suite: what every backend of the port must do, checked through
//! `&dyn Directory` alone, the way `rustls` instantiates one API suite per crypto provider.
//!
//! [`run`] performs every check against one [`Subject`] and returns a [`Report`], one
//! [`Outcome`] per check; [`Report::assert`] fails unless every check passed, except those a
//! caller lists as expected failures (which must still fail: a table entry whose check
//! starts passing fails too, so the table only shrinks). A backend that openly lacks a
//! feature declares it in its [`Capabilities`]: the check then verifies the refusal the port
//! prescribes (`Unsupported` for a trust chain, `NotFound` for a mailbox it cannot create), or
//! is skipped when the port prescribes none (case folding, concurrent writers).
//!
//! Each check works on addresses of its own, so the checks do not see each other's writes and
//! one backend instance serves the whole run. Backends that cannot create mailboxes (LDAP,
//! Exchange Online) are seeded beforehand with [`seed_mailboxes`]. The suite neither starts
//! servers nor makes certificates: the caller passes both in.

use std::collections::BTreeSet;
use std::fmt;

use smimekit_core::{CertDer, Directory, DirectoryError, Mailbox, PublishMode, RecipientKind};

/// What a backend does beyond the port's minimum; each `false` says which refusal the suite
/// expects instead, or that the check is skipped.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// `publish` to an address with no recipient creates a mailbox (embedded directories).
    /// Without it that publish must be [`DirectoryError::NotFound`], and the suite's
    /// mailboxes must exist beforehand ([`seed_mailboxes`]).
    pub creates_mailboxes: bool,
    /// `set_trust_chain`/`trust_chain` store and return the chain; without it both must be
    /// [`DirectoryError::Unsupported`].
    pub trust_chain: bool,
    /// Addresses are matched whatever their case (`Alice@Example.org` is
    /// `alice@example.org`), as the core's `Mailbox` compares them. Skipped without it.
    pub case_insensitive: bool,
    /// Publishes of different certificates to one address, in flight together through one
    /// handle, all arrive. Skipped without it.
    pub concurrent_publishes: bool,
}

impl Capabilities {
    /// Everything: the reference ([`crate::MemoryDirectory`]) and the local directory.
    pub const ALL: Capabilities = Capabilities {
        creates_mailboxes: true,
        trust_chain: true,
        case_insensitive: true,
        concurrent_publishes: true,
    };
}

/// The backend under test and what the suite may use.
#[derive(Debug)]
pub struct Subject<'a> {
    /// A name for the report (`local-sqlite`, `ldap-openldap`…).
    pub backend: &'a str,
    pub directory: &'a dyn Directory,
    pub capabilities: Capabilities,
    /// Distinct certificates, at least [`MIN_CERTIFICATES`]: the concurrent check publishes
    /// all of them to one address.
    pub certificates: &'a [CertDer],
    /// A trust chain (root and intermediates) for [`Capabilities::trust_chain`] backends.
    pub chain: &'a [CertDer],
    /// The domain of the suite's mailboxes (seeded ones included).
    pub domain: &'a str,
    /// A domain for the external contacts the suite creates (never seeded).
    pub contact_domain: &'a str,
    /// An existing recipient's primary address and another address of it (AD
    /// `proxyAddresses`), for backends with aliases.
    pub alias: Option<(Mailbox, Mailbox)>,
}

/// The fewest certificates a [`Subject`] must bring.
pub const MIN_CERTIFICATES: usize = 5;

/// Local parts of the mailboxes the checks publish to, one or more per check.
const MAILBOXES: &[&str] = &[
    "conf-merge",
    "conf-replace",
    "conf-removing",
    "conf-unpublish",
    "conf-agree",
    "conf-kind",
    "conf-addresses",
    "conf-case",
    "conf-concurrent",
];

/// The mailbox addresses (lower case) a backend that cannot create mailboxes must hold before
/// [`run`], each with no certificate.
pub fn seed_mailboxes(domain: &str) -> Vec<String> {
    MAILBOXES.iter().map(|l| format!("{l}@{domain}")).collect()
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    /// Not run: the backend does not claim what it checks.
    Skipped(&'static str),
}

/// Every check's outcome for one backend, in the order they ran.
#[derive(Debug)]
pub struct Report {
    pub backend: String,
    pub outcomes: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// The outcome of check `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| o)
    }

    /// Panics, listing every problem, unless each check passed (or was skipped) except those
    /// in `expected_failures` (check name, reason), which must have failed.
    pub fn assert(&self, expected_failures: &[(&str, &str)]) {
        let problems = self.problems(expected_failures);
        assert!(
            problems.is_empty(),
            "Directory conformance of {}:\n  {}\n{self}",
            self.backend,
            problems.join("\n  ")
        );
    }

    /// What [`Report::assert`] objects to, one sentence each.
    pub fn problems(&self, expected_failures: &[(&str, &str)]) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, reason) in expected_failures {
            if !CHECKS.contains(name) {
                problems.push(format!(
                    "expected failure of {name:?} ({reason}): the suite has no such check"
                ));
            }
        }
        for (name, outcome) in &self.outcomes {
            let expected = expected_failures.iter().find(|(n, _)| n == name);
            match (outcome, expected) {
                (Outcome::Failed(why), None) => problems.push(format!("{name}: {why}")),
                (Outcome::Passed, Some((_, reason))) => problems.push(format!(
                    "{name} now passes: remove its expected-failure entry ({reason})"
                )),
                (Outcome::Skipped(_), Some((_, reason))) => problems.push(format!(
                    "{name} is skipped, yet listed as an expected failure ({reason})"
                )),
                _ => {}
            }
        }
        problems
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}:", self.backend)?;
        for (name, outcome) in &self.outcomes {
            match outcome {
                Outcome::Passed => writeln!(f, "  {name}: passed")?,
                Outcome::Failed(why) => writeln!(f, "  {name}: FAILED: {why}")?,
                Outcome::Skipped(why) => writeln!(f, "  {name}: skipped ({why})")?,
            }
        }
        Ok(())
    }
}

/// The checks' names, in the order [`run`] performs them.
pub const CHECKS: &[&str] = &[
    "lookup_unknown_is_empty",
    "publish_to_unknown_mailbox",
    "merge_keeps_others",
    "replace_keeps_only_the_new_one",
    "publish_removing_drops_exactly_the_listed",
    "unpublish_removes_one",
    "unpublish_unknown_recipient_is_not_found",
    "recipient_and_recipients_agree_with_lookup",
    "recipient_kind_mailbox_and_contact",
    "addresses",
    "case_insensitive_addresses",
    "trust_chain",
    "concurrent_publishes_lose_none",
];

type Checked = Result<(), String>;

/// Runs every check against `s`.
pub async fn run(s: &Subject<'_>) -> Report {
    let mut outcomes = Vec::new();
    if s.certificates.len() < MIN_CERTIFICATES
        || s.certificates
            .iter()
            .map(CertDer::as_bytes)
            .collect::<BTreeSet<_>>()
            .len()
            != s.certificates.len()
    {
        let why = format!(
            "the subject brings {} certificate(s); the suite needs at least {MIN_CERTIFICATES}, all different",
            s.certificates.len()
        );
        for name in CHECKS {
            outcomes.push((*name, Outcome::Failed(why.clone())));
        }
        return Report {
            backend: s.backend.to_string(),
            outcomes,
        };
    }
    for name in CHECKS {
        let outcome = match *name {
            "lookup_unknown_is_empty" => done(lookup_unknown_is_empty(s).await),
            "publish_to_unknown_mailbox" => done(publish_to_unknown_mailbox(s).await),
            "merge_keeps_others" => done(merge_keeps_others(s).await),
            "replace_keeps_only_the_new_one" => done(replace_keeps_only_the_new_one(s).await),
            "publish_removing_drops_exactly_the_listed" => {
                done(publish_removing_drops_exactly_the_listed(s).await)
            }
            "unpublish_removes_one" => done(unpublish_removes_one(s).await),
            "unpublish_unknown_recipient_is_not_found" => {
                done(unpublish_unknown_recipient_is_not_found(s).await)
            }
            "recipient_and_recipients_agree_with_lookup" => {
                done(recipient_and_recipients_agree_with_lookup(s).await)
            }
            "recipient_kind_mailbox_and_contact" => {
                done(recipient_kind_mailbox_and_contact(s).await)
            }
            "addresses" => done(addresses(s).await),
            "case_insensitive_addresses" if !s.capabilities.case_insensitive => {
                Outcome::Skipped("the backend does not claim case-insensitive addresses")
            }
            "case_insensitive_addresses" => done(case_insensitive_addresses(s).await),
            "trust_chain" => done(trust_chain(s).await),
            "concurrent_publishes_lose_none" if !s.capabilities.concurrent_publishes => {
                Outcome::Skipped("the backend does not claim concurrent writers to one address")
            }
            "concurrent_publishes_lose_none" => done(concurrent_publishes_lose_none(s).await),
            other => Outcome::Failed(format!("check {other} is not implemented")),
        };
        outcomes.push((*name, outcome));
    }
    Report {
        backend: s.backend.to_string(),
        outcomes,
    }
}

fn done(r: Checked) -> Outcome {
    match r {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e),
    }
}

// ---- helpers ----

fn mailbox(local: &str, domain: &str) -> Result<Mailbox, String> {
    Mailbox::parse(&format!("{local}@{domain}")).map_err(|e| e.to_string())
}

/// Short names for certificates in messages: `c0`, `c1`… by position in the subject, else
/// the length.
fn names(s: &Subject<'_>, certs: &[CertDer]) -> String {
    let v: Vec<String> = certs
        .iter()
        .map(|c| match s.certificates.iter().position(|x| x == c) {
            Some(i) => format!("c{i}"),
            None => match s.chain.iter().position(|x| x == c) {
                Some(i) => format!("chain{i}"),
                None => format!("<{} bytes>", c.as_bytes().len()),
            },
        })
        .collect();
    format!("[{}]", v.join(", "))
}

/// The same certificates, ignoring order (no backend promises one) but not duplicates.
fn same_set(a: &[CertDer], b: &[CertDer]) -> bool {
    let mut a: Vec<&[u8]> = a.iter().map(CertDer::as_bytes).collect();
    let mut b: Vec<&[u8]> = b.iter().map(CertDer::as_bytes).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// A write's read-back is `expected`, and a lookup right after returns the same.
async fn expect_written(
    s: &Subject<'_>,
    what: &str,
    address: &Mailbox,
    written: Result<Vec<CertDer>, DirectoryError>,
    expected: &[CertDer],
) -> Checked {
    let back = written.map_err(|e| format!("{what} for {address}: {e}"))?;
    if !same_set(&back, expected) {
        return Err(format!(
            "{what} for {address} read back {}, expected {}",
            names(s, &back),
            names(s, expected)
        ));
    }
    expect_lookup(s, &format!("after {what}"), address, &back).await
}

/// A lookup of `address` returns `expected`.
async fn expect_lookup(
    s: &Subject<'_>,
    when: &str,
    address: &Mailbox,
    expected: &[CertDer],
) -> Checked {
    let found = s
        .directory
        .lookup(address)
        .await
        .map_err(|e| format!("lookup {address} {when}: {e}"))?;
    if same_set(&found, expected) {
        Ok(())
    } else {
        Err(format!(
            "lookup {address} {when} returned {}, but the write read back {}",
            names(s, &found),
            names(s, expected)
        ))
    }
}

async fn publish(
    s: &Subject<'_>,
    address: &Mailbox,
    kind: RecipientKind,
    cert: &CertDer,
    mode: PublishMode,
) -> Result<Vec<CertDer>, String> {
    s.directory
        .publish(address, kind, cert, mode)
        .await
        .map_err(|e| {
            format!(
                "publish {} {mode:?} to {address}: {e}",
                names(s, std::slice::from_ref(cert))
            )
        })
}

// ---- the checks ----

async fn lookup_unknown_is_empty(s: &Subject<'_>) -> Checked {
    let nobody = mailbox("conf-nobody", s.domain)?;
    let d = s.directory;
    let found = d
        .lookup(&nobody)
        .await
        .map_err(|e| format!("lookup: {e}"))?;
    if !found.is_empty() {
        return Err(format!("lookup {nobody} returned {}", names(s, &found)));
    }
    match d.recipient(&nobody).await {
        Ok(None) => {}
        Ok(Some(r)) => return Err(format!("recipient({nobody}) found {:?}", r.address)),
        Err(e) => return Err(format!("recipient({nobody}): {e}")),
    }
    match d.addresses(&nobody).await {
        Ok(a) if a.is_empty() => Ok(()),
        Ok(a) => Err(format!("addresses({nobody}) returned {a:?}")),
        Err(e) => Err(format!("addresses({nobody}): {e}")),
    }
}

async fn publish_to_unknown_mailbox(s: &Subject<'_>) -> Checked {
    let fresh = mailbox("conf-unseeded", s.domain)?;
    let c = &s.certificates[0];
    let r = s
        .directory
        .publish(&fresh, RecipientKind::Mailbox, c, PublishMode::Merge)
        .await;
    if s.capabilities.creates_mailboxes {
        expect_written(
            s,
            "publish to a new mailbox",
            &fresh,
            r,
            std::slice::from_ref(c),
        )
        .await?;
        match s.directory.recipient(&fresh).await {
            Ok(Some(rec)) if rec.kind == RecipientKind::Mailbox => Ok(()),
            Ok(Some(rec)) => Err(format!("{fresh} was created as {:?}", rec.kind)),
            Ok(None) => Err(format!(
                "recipient({fresh}) finds nothing after the publish"
            )),
            Err(e) => Err(format!("recipient({fresh}): {e}")),
        }
    } else {
        match r {
            Err(DirectoryError::NotFound(_)) => {
                expect_lookup(s, "after NotFound", &fresh, &[]).await
            }
            Err(e) => Err(format!(
                "publish to {fresh}, which has no entry, failed with {e:?}, not NotFound"
            )),
            Ok(back) => Err(format!(
                "publish to {fresh}, which has no entry, succeeded ({}), though the backend \
                 does not claim to create mailboxes",
                names(s, &back)
            )),
        }
    }
}

async fn merge_keeps_others(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-merge", s.domain)?;
    let [c0, c1, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    let m = RecipientKind::Mailbox;
    let r = s.directory.publish(&a, m, c0, PublishMode::Merge).await;
    expect_written(s, "merge c0", &a, r, std::slice::from_ref(c0)).await?;
    let r = s.directory.publish(&a, m, c1, PublishMode::Merge).await;
    expect_written(s, "merge c1", &a, r, &[c0.clone(), c1.clone()]).await?;
    // Publishing what is there already changes nothing and duplicates nothing.
    let r = s.directory.publish(&a, m, c0, PublishMode::Merge).await;
    expect_written(s, "merge c0 again", &a, r, &[c0.clone(), c1.clone()]).await
}

async fn replace_keeps_only_the_new_one(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-replace", s.domain)?;
    let [c0, c1, c2, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    let m = RecipientKind::Mailbox;
    publish(s, &a, m, c0, PublishMode::Merge).await?;
    publish(s, &a, m, c1, PublishMode::Merge).await?;
    let r = s.directory.publish(&a, m, c2, PublishMode::Replace).await;
    expect_written(s, "replace with c2", &a, r, std::slice::from_ref(c2)).await?;
    // Replacing with what is the only value already keeps it.
    let r = s.directory.publish(&a, m, c2, PublishMode::Replace).await;
    expect_written(s, "replace with c2 again", &a, r, std::slice::from_ref(c2)).await
}

async fn publish_removing_drops_exactly_the_listed(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-removing", s.domain)?;
    let [c0, c1, c2, c3, c4, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    let m = RecipientKind::Mailbox;
    for c in [c0, c1, c2] {
        publish(s, &a, m, c, PublishMode::Merge).await?;
    }
    // c0 is there and listed: it goes. c4 is listed but absent, c3 is the new one (never
    // removed, though listed); c1 and c2 were not listed: they stay.
    let r = s
        .directory
        .publish_removing(
            &a,
            m,
            c3,
            PublishMode::Merge,
            &[c0.clone(), c4.clone(), c3.clone()],
        )
        .await;
    expect_written(
        s,
        "publish_removing c3, removing c0, c4 and c3",
        &a,
        r,
        &[c1.clone(), c2.clone(), c3.clone()],
    )
    .await
}

async fn unpublish_removes_one(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-unpublish", s.domain)?;
    let [c0, c1, c2, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    let m = RecipientKind::Mailbox;
    publish(s, &a, m, c0, PublishMode::Merge).await?;
    publish(s, &a, m, c1, PublishMode::Merge).await?;
    let r = s.directory.unpublish(&a, c0).await;
    expect_written(s, "unpublish c0", &a, r, std::slice::from_ref(c1)).await?;
    // A value that is not there: nothing changes, and it is no error.
    let r = s.directory.unpublish(&a, c2).await;
    expect_written(
        s,
        "unpublish c2 (never published)",
        &a,
        r,
        std::slice::from_ref(c1),
    )
    .await?;
    let r = s.directory.unpublish(&a, c1).await;
    expect_written(s, "unpublish c1 (the last one)", &a, r, &[]).await
}

async fn unpublish_unknown_recipient_is_not_found(s: &Subject<'_>) -> Checked {
    let nobody = mailbox("conf-nobody", s.domain)?;
    match s.directory.unpublish(&nobody, &s.certificates[0]).await {
        Err(DirectoryError::NotFound(a)) if a == nobody => Ok(()),
        Err(DirectoryError::NotFound(a)) => Err(format!("NotFound names {a}, not {nobody}")),
        Err(e) => Err(format!(
            "unpublish from {nobody} failed with {e:?}, not NotFound"
        )),
        Ok(left) => Err(format!(
            "unpublish from {nobody}, who does not exist, succeeded ({})",
            names(s, &left)
        )),
    }
}

async fn recipient_and_recipients_agree_with_lookup(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-agree", s.domain)?;
    let [c0, c1, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    publish(s, &a, RecipientKind::Mailbox, c0, PublishMode::Merge).await?;
    let back = publish(s, &a, RecipientKind::Mailbox, c1, PublishMode::Merge).await?;
    expect_lookup(s, "after two merges", &a, &back).await?;
    let one = s
        .directory
        .recipient(&a)
        .await
        .map_err(|e| format!("recipient({a}): {e}"))?
        .ok_or_else(|| format!("recipient({a}) finds nothing after a publish"))?;
    if one.address != a || !same_set(&one.certificates, &back) {
        return Err(format!(
            "recipient({a}) gives {} with {}, the write read back {}",
            one.address,
            names(s, &one.certificates),
            names(s, &back)
        ));
    }
    let all = s
        .directory
        .recipients()
        .await
        .map_err(|e| format!("recipients(): {e}"))?;
    let mine: Vec<_> = all.iter().filter(|r| r.address == a).collect();
    match mine[..] {
        [r] if same_set(&r.certificates, &back) => Ok(()),
        [r] => Err(format!(
            "recipients() lists {a} with {}, the write read back {}",
            names(s, &r.certificates),
            names(s, &back)
        )),
        _ => Err(format!("recipients() lists {a} {} time(s)", mine.len())),
    }
}

async fn recipient_kind_mailbox_and_contact(s: &Subject<'_>) -> Checked {
    let mb = mailbox("conf-kind", s.domain)?;
    let contact = mailbox("conf-contact", s.contact_domain)?;
    let [c0, c1, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    publish(s, &mb, RecipientKind::Mailbox, c0, PublishMode::Merge).await?;
    let r = s
        .directory
        .publish(&contact, RecipientKind::Contact, c1, PublishMode::Merge)
        .await;
    expect_written(
        s,
        "publish to a new contact",
        &contact,
        r,
        std::slice::from_ref(c1),
    )
    .await?;
    for (address, kind) in [
        (&mb, RecipientKind::Mailbox),
        (&contact, RecipientKind::Contact),
    ] {
        match s.directory.recipient(address).await {
            Ok(Some(r)) if r.kind == kind => {}
            Ok(Some(r)) => {
                return Err(format!(
                    "{address} reads back as {:?}, not {kind:?}",
                    r.kind
                ));
            }
            Ok(None) => return Err(format!("recipient({address}) finds nothing")),
            Err(e) => return Err(format!("recipient({address}): {e}")),
        }
    }
    let all = s
        .directory
        .recipients()
        .await
        .map_err(|e| format!("recipients(): {e}"))?;
    match all.iter().find(|r| r.address == contact) {
        Some(r) if r.kind == RecipientKind::Contact => {}
        Some(r) => return Err(format!("recipients() lists {contact} as {:?}", r.kind)),
        None => return Err(format!("recipients() does not list {contact}")),
    }
    // A later publish to the contact keeps it a contact, whatever kind the caller names.
    publish(s, &contact, RecipientKind::Mailbox, c0, PublishMode::Merge).await?;
    match s.directory.recipient(&contact).await {
        Ok(Some(r)) if r.kind == RecipientKind::Contact => Ok(()),
        Ok(Some(r)) => Err(format!(
            "{contact} became {:?} after a publish naming another kind",
            r.kind
        )),
        Ok(None) => Err(format!("recipient({contact}) finds nothing")),
        Err(e) => Err(format!("recipient({contact}): {e}")),
    }
}

async fn addresses(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-addresses", s.domain)?;
    let c0 = &s.certificates[0];
    publish(s, &a, RecipientKind::Mailbox, c0, PublishMode::Merge).await?;
    let got = s
        .directory
        .addresses(&a)
        .await
        .map_err(|e| format!("addresses({a}): {e}"))?;
    if got.first() != Some(&a) {
        return Err(format!(
            "addresses({a}) returned {got:?}: {a} must come first"
        ));
    }
    let Some((primary, alias)) = &s.alias else {
        return Ok(());
    };
    let got = s
        .directory
        .addresses(alias)
        .await
        .map_err(|e| format!("addresses({alias}): {e}"))?;
    if got.first() != Some(alias) || !got.contains(primary) {
        return Err(format!(
            "addresses({alias}) returned {got:?}: {alias} first, then {primary} among the others"
        ));
    }
    // One entry: published through the alias, found through the primary address.
    let c1 = &s.certificates[1];
    let back = publish(s, alias, RecipientKind::Mailbox, c1, PublishMode::Merge).await?;
    if !back.contains(c1) {
        return Err(format!("publish to {alias} read back {}", names(s, &back)));
    }
    let found = s
        .directory
        .lookup(primary)
        .await
        .map_err(|e| format!("lookup {primary}: {e}"))?;
    if same_set(&found, &back) {
        Ok(())
    } else {
        Err(format!(
            "published through {alias} ({}), {primary} finds {}",
            names(s, &back),
            names(s, &found)
        ))
    }
}

async fn case_insensitive_addresses(s: &Subject<'_>) -> Checked {
    let lower = mailbox("conf-case", s.domain)?;
    let mixed = mailbox("Conf-Case", &s.domain.to_ascii_uppercase())?;
    let upper = mailbox("CONF-CASE", &s.domain.to_ascii_uppercase())?;
    let [c0, c1, ..] = s.certificates else {
        return Err("too few certificates".into());
    };
    let r = s
        .directory
        .publish(&mixed, RecipientKind::Mailbox, c0, PublishMode::Merge)
        .await;
    expect_written(
        s,
        "publish c0 as Conf-Case",
        &mixed,
        r,
        std::slice::from_ref(c0),
    )
    .await?;
    expect_lookup(
        s,
        "(upper case) after publishing as Conf-Case",
        &upper,
        std::slice::from_ref(c0),
    )
    .await?;
    // The same recipient, whichever way the address is written: merged, not a second one.
    let r = s
        .directory
        .publish(&lower, RecipientKind::Mailbox, c1, PublishMode::Merge)
        .await;
    expect_written(
        s,
        "publish c1 as conf-case",
        &lower,
        r,
        &[c0.clone(), c1.clone()],
    )
    .await?;
    expect_lookup(s, "(mixed case)", &mixed, &[c0.clone(), c1.clone()]).await?;
    let r = s.directory.unpublish(&upper, c0).await;
    expect_written(
        s,
        "unpublish c0 as CONF-CASE",
        &upper,
        r,
        std::slice::from_ref(c1),
    )
    .await?;
    let all = s
        .directory
        .recipients()
        .await
        .map_err(|e| format!("recipients(): {e}"))?;
    let n = all.iter().filter(|r| r.address == lower).count();
    if n == 1 {
        Ok(())
    } else {
        Err(format!(
            "recipients() lists {lower} (in any case) {n} time(s)"
        ))
    }
}

async fn trust_chain(s: &Subject<'_>) -> Checked {
    let d = s.directory;
    if !s.capabilities.trust_chain {
        return match (d.set_trust_chain(s.chain).await, d.trust_chain().await) {
            (Err(DirectoryError::Unsupported(_)), Err(DirectoryError::Unsupported(_))) => Ok(()),
            (set, get) => Err(format!(
                "a backend without a trust chain must refuse both calls as Unsupported: \
                 set_trust_chain gave {:?}, trust_chain gave {:?}",
                set.map(|c| names(s, &c)),
                get.map(|c| names(s, &c))
            )),
        };
    }
    if s.chain.is_empty() {
        return Err("the subject brings no trust chain to store".into());
    }
    let back = d
        .set_trust_chain(s.chain)
        .await
        .map_err(|e| format!("set_trust_chain: {e}"))?;
    if back != s.chain {
        return Err(format!(
            "set_trust_chain read back {}, expected {} in that order",
            names(s, &back),
            names(s, s.chain)
        ));
    }
    let got = d
        .trust_chain()
        .await
        .map_err(|e| format!("trust_chain: {e}"))?;
    if got != s.chain {
        return Err(format!(
            "trust_chain returned {}, expected {} in that order",
            names(s, &got),
            names(s, s.chain)
        ));
    }
    // Setting it again replaces it (here: with its first certificate alone).
    let first = &s.chain[..1];
    let back = d
        .set_trust_chain(first)
        .await
        .map_err(|e| format!("set_trust_chain (one certificate): {e}"))?;
    let got = d
        .trust_chain()
        .await
        .map_err(|e| format!("trust_chain: {e}"))?;
    if back == first && got == first {
        Ok(())
    } else {
        Err(format!(
            "replacing the chain with {} read back {}, then trust_chain returned {}",
            names(s, first),
            names(s, &back),
            names(s, &got)
        ))
    }
}

async fn concurrent_publishes_lose_none(s: &Subject<'_>) -> Checked {
    let a = mailbox("conf-concurrent", s.domain)?;
    let writes = s.certificates.iter().map(|c| {
        s.directory
            .publish(&a, RecipientKind::Mailbox, c, PublishMode::Merge)
    });
    let results = join_all(writes.collect()).await;
    for (c, r) in s.certificates.iter().zip(results) {
        let back = r.map_err(|e| {
            format!(
                "concurrent publish {}: {e}",
                names(s, std::slice::from_ref(c))
            )
        })?;
        if !back.contains(c) {
            return Err(format!(
                "the concurrent publish of {} read back {}, without it",
                names(s, std::slice::from_ref(c)),
                names(s, &back)
            ));
        }
    }
    expect_lookup(s, "after concurrent publishes", &a, s.certificates).await
}

/// Polls every future to completion, concurrently, on the current task (the suite brings no
/// runtime of its own; the caller's drives it).
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Option<Pin<Box<F>>>> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
