//! `smimekit demo`: the main job end to end, on a fresh machine, with no server.
//!
//! In a work directory (a temporary one, removed afterwards, unless the caller names one):
//! write a config whose only directory is a local one in that folder (the user's own
//! directory is never touched), create a private CA, issue alice@example.org (RSA-2048) and
//! bob@example.org (EC P-256) with PKCS#12 files, publish both certificates and the trust
//! chain to the local directory, write the chain as `org-chain.sst` (what an Exchange Online
//! admin uploads with `Set-SmimeConfig -SMIMECertificateIssuingCA`), lint every certificate
//! with the OWA profile against that store, sign a message as alice, encrypt it to bob's
//! certificate as the directory resolves his address, open it as bob (decrypt + verify
//! against the demo root), and check that `openssl cms` decrypts and verifies the same
//! message to the same content.
//!
//! Every step lands in a [`DemoReport`] (name, ok, detail, files), printed as text or JSON.
//! The first failing step ends the run; the report then ends with it.
//!
//! This lives in the CLI, not in the service: it runs another program (`openssl`) and writes an
//! unencrypted key file for it, which is no business of the application core. It uses only the
//! service's public API, on a service of its own built from the demo's config (so none of the
//! person's configuration, password sources or plugins take part).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use serde::Serialize;
use smimekit_service::{
    CaInitRequest, CaIssueRequest, CaKeyType, CertDer, Config, ContentCipher, DEFAULT_LEAF_DAYS,
    DigestAlg, EncryptRequest, EncryptTo, ErrorKind, IssueSource, KeyRequest, LayerKind,
    LintRequest, Named, OpenRequest, Profile, Secret, Service, ServiceError, Severity, SignRequest,
    StoreFormat, os_user,
};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::DemoArgs;

/// The password of every key file the demo writes (CA keys and user PKCS#12 files). It is
/// the demo's own, printed in the report: these keys protect nothing.
const DEMO_PASSWORD: &str = "demo";
/// The sender (RSA-2048 key).
const DEMO_ALICE: &str = "alice@example.org";
/// The recipient (EC P-256 key).
const DEMO_BOB: &str = "bob@example.org";
/// The name of the directory in the demo's config file.
const DEMO_DIRECTORY: &str = "demo";
const CA_NAME: &str = "Example Org Demo";

/// The message alice writes: the mail headers, then the entity that is signed and encrypted.
const MESSAGE: &str = "From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Quarterly figures\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Bob, the figures are attached in the usual place.\r\n";
/// What bob reads after decrypting and verifying: the signed MIME entity (the
/// From/To/Subject headers stay outside the signature, as every S/MIME client does it).
const SIGNED_ENTITY: &str = "Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Bob, the figures are attached in the usual place.\r\n";

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
struct DemoStep {
    pub name: String,
    /// Passed (a skipped step counts as passed).
    pub ok: bool,
    /// Not run, for a reason given in `detail` (e.g. `openssl` is not on PATH).
    pub skipped: bool,
    pub detail: String,
    /// Files the step wrote or checked, relative to the work directory.
    pub files: Vec<String>,
}

/// What `smimekit demo` did.
#[derive(Debug, Clone, Serialize)]
struct DemoReport {
    /// Every step passed.
    pub ok: bool,
    /// The work directory.
    pub dir: String,
    /// Whether the work directory is kept (`--dir`) or was removed.
    pub kept: bool,
    /// The password of the key files in the work directory.
    pub password: String,
    /// The config file written for the demo (relative to `dir`).
    pub config: String,
    pub steps: Vec<DemoStep>,
}

/// A failed step: its name and why.
type Halt = (String, ServiceError);

fn at(name: &str) -> impl FnOnce(ServiceError) -> Halt + '_ {
    move |e| (name.to_string(), e)
}

fn io_at<'a>(name: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Halt + 'a {
    move |e| (name.to_string(), io_error(path, e))
}

/// A file's bytes, named by its path, for the service.
fn read(path: &Path) -> std::io::Result<Named<Vec<u8>>> {
    Ok(Named::new(path.display().to_string(), std::fs::read(path)?))
}

fn io_error(path: &Path, e: std::io::Error) -> ServiceError {
    ServiceError::new(ErrorKind::Io, format!("{}: {e}", path.display()))
}

fn fail(name: &str, kind: ErrorKind, msg: impl Into<String>) -> Halt {
    (name.to_string(), ServiceError::new(kind, msg))
}

fn secret() -> Secret {
    Secret::new(DEMO_PASSWORD.as_bytes().to_vec())
}

fn done(name: impl Into<String>, detail: impl Into<String>, files: &[&str]) -> DemoStep {
    DemoStep {
        name: name.into(),
        ok: true,
        skipped: false,
        detail: detail.into(),
        files: files.iter().map(|f| f.to_string()).collect(),
    }
}

/// The work directory: the given one (created, must be empty) or a fresh temporary one.
fn work_dir(dir: Option<&Path>) -> Result<(PathBuf, bool), ServiceError> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let mut entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        if entries.next().is_some() {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "{}: not empty; the demo writes a CA, keys and a directory there: give a new or empty directory",
                    dir.display()
                ),
            ));
        }
        let dir = std::fs::canonicalize(dir).map_err(|e| io_error(dir, e))?;
        return Ok((dir, true));
    }
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "smimekit-demo-{}-{nanos:08x}-{attempt}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, false)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&dir, e)),
        }
    }
    Err(ServiceError::new(
        ErrorKind::Io,
        format!("{}: could not create a temporary directory", base.display()),
    ))
}

/// `smimekit demo [--dir D]`: exit 0 when every step passed, 1 when one failed; an error
/// only when the work directory cannot be set up (not empty: usage; unwritable: I/O).
pub async fn run(a: DemoArgs, json: bool) -> Result<u8> {
    let report = demo(a.dir.as_deref()).await?;
    if json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_INVALID })
}

/// Runs the demo. `Err` only when the work directory cannot be set up (not empty,
/// unwritable); a failing step is reported in the [`DemoReport`].
async fn demo(dir: Option<&Path>) -> Result<DemoReport, ServiceError> {
    let (dir, kept) = work_dir(dir)?;
    let mut steps = Vec::new();
    if let Err((name, e)) = demo_steps(&dir, &mut steps).await {
        steps.push(DemoStep {
            name,
            ok: false,
            skipped: false,
            detail: e.message,
            files: Vec::new(),
        });
    }
    if !kept {
        // Best effort: a leftover temporary directory is no failure of the demo.
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(DemoReport {
        ok: steps.iter().all(|s| s.ok),
        dir: dir.display().to_string(),
        kept,
        password: DEMO_PASSWORD.to_string(),
        config: "config.toml".into(),
        steps,
    })
}

async fn demo_steps(dir: &Path, steps: &mut Vec<DemoStep>) -> Result<(), Halt> {
    let p = |f: &str| dir.join(f);

    // 1. A config with a store and one local directory inside the work directory.
    let name = "config";
    let config_path = p("config.toml");
    let config_text = format!(
        "# Written by `smimekit demo`: a store and one local directory, in this folder.\n\
             [store]\nurl = \"sqlite:smimekit.db\"\n\n\
             [directory.{DEMO_DIRECTORY}]\nkind = \"local\"\n\
             # An older smimekit's directory file here would be imported on first use.\n\
             path = \"old-directory.json\"\n"
    );
    std::fs::write(&config_path, &config_text).map_err(io_at(name, &config_path))?;
    let config = Config::load(Some(&config_path)).map_err(at(name))?;
    // A service of the demo's own: its store (smimekit.db) and directory are in the work
    // directory, and it has no password file or prompt (the demo gives its own passwords).
    let svc = Service::builder()
        .config(config)
        .actor(os_user(), "cli")
        .build()
        .map_err(at(name))?;
    steps.push(done(
            name,
            format!(
                "directory {DEMO_DIRECTORY:?} (kind local) in the store {}; your own directory is not touched",
                p("smimekit.db").display()
            ),
            &["config.toml"],
        ));

    // 2. The CA.
    let name = "ca init";
    let ca_dir = p("ca");
    let init = svc
        .ca_init(&CaInitRequest {
            dir: ca_dir.clone(),
            name: CA_NAME.into(),
            key_type: CaKeyType::Rsa2048,
            secret: secret(),
            crl_url: None,
        })
        .await
        .map_err(at(name))?;
    steps.push(done(
        name,
        format!(
            "RSA-2048 root \"{}\" and issuing CA \"{}\"",
            init.root.subject, init.issuing.subject
        ),
        &[
            "ca/root.pem",
            "ca/issuing.pem",
            "ca/chain.pem",
            "ca/root.p12",
            "ca/issuing.p12",
        ],
    ));

    // 3. The two users, each with a PKCS#12 and a PEM copy of the certificate.
    let mut user_certs = Vec::new();
    for (email, key_type, label, user) in [
        (DEMO_ALICE, CaKeyType::Rsa2048, "RSA-2048", "alice"),
        (DEMO_BOB, CaKeyType::P256, "EC P-256", "bob"),
    ] {
        let name = format!("issue {email}");
        let p12 = format!("{user}.p12");
        let pem = format!("{user}.pem");
        let issued = svc
            .ca_issue(&CaIssueRequest {
                dir: ca_dir.clone(),
                ca_secret: Some(secret()),
                source: IssueSource::Generate {
                    email: email.into(),
                    key_type,
                    p12_name: p(&p12).display().to_string(),
                    p12_secret: secret(),
                    legacy: false,
                },
                days: DEFAULT_LEAF_DAYS,
                renew: false,
            })
            .await
            .map_err(at(&name))?;
        let p12_path = p(&p12);
        let key = issued.pkcs12.as_deref().unwrap_or_default();
        crate::io::write_file(&p12_path, key, crate::io::Access::Owner)
            .map_err(|e| fail(&name, ErrorKind::Io, super::render(&e)))?;
        let pem_path = p(&pem);
        std::fs::write(&pem_path, &issued.pem).map_err(io_at(&name, &pem_path))?;
        steps.push(done(
            &name,
            format!(
                "{label}, serial {}, valid until {}, sha1 {}",
                issued.serial, issued.not_after, issued.sha1_thumbprint
            ),
            &[&p12, &pem],
        ));
        user_certs.push((email, pem_path));
    }

    // 4. The desired state in a deploy file; plan, apply, and plan again (nothing to do).
    let name = "plan";
    let deploy_path = p("deploy.toml");
    let mut deploy_text = format!(
        "# Written by `smimekit demo`: the organisation's S/MIME state (see the README).\n\
         directories = [\"{DEMO_DIRECTORY}\"]\n\n[trust]\nca = \"ca\"\n"
    );
    for (email, pem) in &user_certs {
        let file = pem
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        deploy_text.push_str(&format!(
            "\n[[people]]\naddress = \"{email}\"\nkind = \"mailbox\"\ncertificates = [\"{file}\"]\n"
        ));
    }
    std::fs::write(&deploy_path, &deploy_text).map_err(io_at(name, &deploy_path))?;
    let desired = smimekit_service::deploy::load(
        "deploy.toml",
        &deploy_text,
        &smimekit_service::deploy::FsDeploySource {
            base: dir.to_path_buf(),
        },
        &svc.directory_names(),
    )
    .map_err(|e| at(name)(ServiceError::from(e)))?;
    let plan_request = smimekit_service::deploy::PlanRequest {
        desired,
        replace_unmanaged: Vec::new(),
        inventory_max_age: None,
    };
    let plan = svc.plan(&plan_request).await.map_err(at(name))?;
    let plan_path = p("plan.txt");
    std::fs::write(&plan_path, plan.render()).map_err(io_at(name, &plan_path))?;
    steps.push(done(
        name,
        format!("{} (the plan: plan.txt)", plan.summary.line()),
        &["deploy.toml", "plan.txt"],
    ));
    let name = "apply";
    let report = svc
        .apply(smimekit_service::deploy::ApplyRequest {
            plan,
            deliver: None,
            ca_secret: None,
            time_budget: None,
            just_planned: false,
        })
        .await
        .map_err(at(name))?;
    if !report.succeeded() {
        let failed: Vec<String> = report
            .steps
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.target)))
            .collect();
        return Err(fail(name, ErrorKind::Key, failed.join("; ")));
    }
    let again = svc.plan(&plan_request).await.map_err(at(name))?;
    if again.has_changes() {
        return Err(fail(
            name,
            ErrorKind::Internal,
            format!("a second plan still has changes: {}", again.summary.line()),
        ));
    }
    steps.push(done(
        name,
        format!(
            "{} steps done in directory {DEMO_DIRECTORY:?} (certificates of {} people and the trust chain); a second plan: nothing to do",
            report.done,
            user_certs.len()
        ),
        &["smimekit.db"],
    ));

    // 5. The trust chain as a Microsoft serialized store, for Exchange Online.
    let name = "org-chain.sst";
    let chain: Vec<CertDer> = svc
        .certificates(&read(Path::new(&init.chain)).map_err(io_at(name, Path::new(&init.chain)))?)
        .map_err(at(name))?;
    let sst = svc
        .create_store(&chain, StoreFormat::Sst)
        .map_err(at(name))?;
    let sst_path = p("org-chain.sst");
    std::fs::write(&sst_path, &sst).map_err(io_at(name, &sst_path))?;
    steps.push(done(
            name,
            format!(
                "{} CA certificates, {} bytes: upload with Set-SmimeConfig -SMIMECertificateIssuingCA ([IO.File]::ReadAllBytes(\"org-chain.sst\"))",
                chain.len(),
                sst.len()
            ),
            &["org-chain.sst"],
        ));

    // 6. Lint the user certificates with the OWA profile, each for its mailbox, against
    // that store. The lint rules are for end-entity certificates; the CA certificates are
    // checked as the path each one builds through the store (chain-incomplete/-invalid).
    let name = "lint";
    let (mut checked, mut errors, mut warnings, mut infos) = (0, 0, 0, 0);
    let mut findings = Vec::new();
    for (email, pem) in &user_certs {
        let lint = svc
            .lint(&LintRequest {
                certs: vec![read(pem).map_err(io_at(name, pem))?],
                profile: Profile::Owa,
                chain: Some(Named::new(sst_path.display().to_string(), sst.clone())),
                at: None,
                expiring_days: 30,
                address: Some(email.to_string()),
            })
            .map_err(at(name))?;
        checked += lint.certificates.len();
        errors += lint.errors;
        warnings += lint.warnings;
        infos += lint.infos;
        for c in &lint.certificates {
            for f in &c.cert.findings {
                let severity = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "note",
                };
                findings.push(format!("{severity} {} ({email})", f.rule));
            }
        }
    }
    let summary = format!(
        "{checked} user certificates and their paths through org-chain.sst, profile owa: {errors} errors, {warnings} warnings, {infos} notes{}",
        if findings.is_empty() {
            String::new()
        } else {
            format!(" [{}]", findings.join("; "))
        }
    );
    if errors > 0 {
        return Err(fail(name, ErrorKind::Key, summary));
    }
    steps.push(done(
        name,
        summary,
        &["alice.pem", "bob.pem", "org-chain.sst"],
    ));

    // 7. Sign as alice.
    let name = "sign";
    let alice_key = svc
        .open_key(&KeyRequest {
            reference: p("alice.p12").display().to_string(),
            secret: Some(secret()),
            ..KeyRequest::default()
        })
        .await
        .map_err(at(name))?;
    let message_path = p("message.eml");
    std::fs::write(&message_path, MESSAGE).map_err(io_at(name, &message_path))?;
    let signed = svc
        .sign(SignRequest {
            key: alice_key,
            digest: DigestAlg::Sha256,
            pss: false,
            opaque: false,
            message: MESSAGE.as_bytes().to_vec(),
            chain: Vec::new(),
        })
        .await
        .map_err(at(name))?
        .message;
    let signed_path = p("signed.eml");
    std::fs::write(&signed_path, &signed).map_err(io_at(name, &signed_path))?;
    steps.push(done(
        name,
        format!(
            "as {DEMO_ALICE}: SHA-256, RSA, detached multipart/signed ({} bytes)",
            signed.len()
        ),
        &["message.eml", "signed.eml"],
    ));

    // 8. Encrypt to bob, his certificate looked up in the directory by address.
    let name = "encrypt";
    let bob_cert = svc
        .resolve_recipient(DEMO_BOB, None)
        .await
        .map_err(at(name))?;
    let bob_summary = svc.directory_cert(&bob_cert);
    let sealed = svc
        .encrypt(EncryptRequest {
            to: vec![EncryptTo::Address(DEMO_BOB.into())],
            cipher: ContentCipher::Aes256Cbc,
            oaep: false,
            message: signed,
            force: false,
        })
        .await
        .map_err(at(name))?;
    let sealed_path = p("sealed.eml");
    std::fs::write(&sealed_path, &sealed).map_err(io_at(name, &sealed_path))?;
    steps.push(done(
            name,
            format!(
                "to {DEMO_BOB} (certificate sha1 {} found in directory {DEMO_DIRECTORY:?}): ECDH + AES-256-CBC ({} bytes)",
                bob_summary.cert.sha1_thumbprint,
                sealed.len()
            ),
            &["sealed.eml"],
        ));

    // 9. Open as bob: decrypt, verify against the demo root.
    let name = "open";
    let bob_key = svc
        .open_key(&KeyRequest {
            reference: p("bob.p12").display().to_string(),
            secret: Some(secret()),
            ..KeyRequest::default()
        })
        .await
        .map_err(at(name))?;
    let opened = svc
        .open(OpenRequest {
            keys: vec![bob_key.into()],
            trust: vec![
                read(Path::new(&init.root_cert))
                    .map_err(io_at(name, Path::new(&init.root_cert)))?,
            ],
            message: sealed,
            ..OpenRequest::default()
        })
        .await
        .map_err(at(name))?;
    let opened_path = p("opened.eml");
    std::fs::write(&opened_path, &opened.content).map_err(io_at(name, &opened_path))?;
    let report = &opened.report;
    let decrypted = report
        .layers
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Enveloped | LayerKind::AuthEnveloped));
    let signer = report.signer.clone().unwrap_or_default();
    if !decrypted {
        return Err(fail(
            name,
            ErrorKind::Malformed,
            "the message had no encryption layer",
        ));
    }
    if report.valid != Some(true) {
        let why: Vec<String> = report
            .layers
            .iter()
            .flat_map(|l| l.signers.iter().filter_map(|s| s.reason.clone()))
            .collect();
        return Err(fail(
            name,
            ErrorKind::Key,
            format!("the signature did not verify: {}", why.join("; ")),
        ));
    }
    if !signer.eq_ignore_ascii_case(DEMO_ALICE) {
        return Err(fail(
            name,
            ErrorKind::Key,
            format!("signed by {signer:?}, not {DEMO_ALICE}"),
        ));
    }
    if opened.content != SIGNED_ENTITY.as_bytes() {
        return Err(fail(
            name,
            ErrorKind::Malformed,
            format!(
                "the opened content differs from the entity alice signed: {:?}",
                String::from_utf8_lossy(&opened.content)
            ),
        ));
    }
    steps.push(done(
            name,
            format!(
                "as {DEMO_BOB}: decrypted, signature by {signer} valid (chain to the demo root), the signed entity intact ({} bytes)",
                opened.content.len()
            ),
            &["opened.eml"],
        ));

    // 10. Another implementation reads what we wrote.
    steps.push(openssl_cms_check(dir, &opened.content).map_err(at("openssl cms"))?);

    // 11. The directory in its reviewable form (what `smimekit directory export` writes).
    let name = "directory export";
    let export = svc
        .export_directory(Some(DEMO_DIRECTORY))
        .await
        .map_err(at(name))?;
    let json_path = p("directory.json");
    std::fs::write(&json_path, &export.json).map_err(io_at(name, &json_path))?;
    steps.push(done(
        name,
        format!(
            "{} recipients, {} certificates and a trust chain of {} in {}",
            export.recipients,
            export.certificates,
            export.trust_chain,
            json_path.display()
        ),
        &["directory.json"],
    ));
    Ok(())
}

/// The interop check: `openssl cms` decrypts `sealed.eml` with bob's key (exported from his
/// PKCS#12 to `bob.key`) and verifies the result against `ca/root.pem`, and the content is
/// `expected`. Skipped (not failed) when `openssl` is not on PATH.
fn openssl_cms_check(dir: &Path, expected: &[u8]) -> Result<DemoStep, ServiceError> {
    const NAME: &str = "openssl cms";
    const PASS_VAR: &str = "SMIMEKIT_DEMO_P12_PASSWORD";
    let run = |args: &[&str]| -> Result<Option<String>, ServiceError> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            // The child's environment only: how `-passin env:` gets the demo password.
            .env(PASS_VAR, DEMO_PASSWORD)
            .output();
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServiceError::new(
                ErrorKind::Io,
                format!("starting openssl: {e}"),
            )),
            Ok(o) if o.status.success() => {
                Ok(Some(String::from_utf8_lossy(&o.stdout).trim().to_string()))
            }
            Ok(o) => Err(ServiceError::new(
                ErrorKind::Key,
                format!(
                    "openssl {} failed ({}): {}",
                    args.join(" "),
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )),
        }
    };
    let Some(version) = run(&["version"])? else {
        return Ok(DemoStep {
            name: NAME.into(),
            ok: true,
            skipped: true,
            detail: "skipped: openssl is not on PATH".into(),
            files: Vec::new(),
        });
    };
    let version: String = version
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let passin = format!("env:{PASS_VAR}");
    // bob.key holds an unencrypted key: create it owner-only before openssl writes into it.
    let key_path = dir.join("bob.key");
    // A new file, never one (or a link) already at the path: what a run left is removed first.
    match std::fs::remove_file(&key_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&key_path, e)),
        _ => {}
    }
    let mut key_file = std::fs::OpenOptions::new();
    key_file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut key_file, 0o600);
    key_file
        .open(&key_path)
        .map_err(|e| io_error(&key_path, e))?;
    let steps: [&[&str]; 3] = [
        &[
            "pkcs12", "-in", "bob.p12", "-nocerts", "-nodes", "-passin", &passin, "-out", "bob.key",
        ],
        &[
            "cms",
            "-decrypt",
            "-in",
            "sealed.eml",
            "-recip",
            "bob.pem",
            "-inkey",
            "bob.key",
            "-out",
            "openssl-signed.eml",
        ],
        &[
            "cms",
            "-verify",
            "-in",
            "openssl-signed.eml",
            "-CAfile",
            "ca/root.pem",
            "-out",
            "openssl-content.eml",
        ],
    ];
    for args in steps {
        if run(args)?.is_none() {
            return Err(ServiceError::new(
                ErrorKind::Io,
                "openssl disappeared from PATH",
            ));
        }
    }
    let content_path = dir.join("openssl-content.eml");
    let theirs = std::fs::read(&content_path).map_err(|e| io_error(&content_path, e))?;
    if theirs != expected {
        return Err(ServiceError::new(
            ErrorKind::Malformed,
            format!(
                "openssl and smimekit disagree on the content ({} vs {} bytes)",
                theirs.len(),
                expected.len()
            ),
        ));
    }
    Ok(done(
        NAME,
        format!(
            "{version}: cms -decrypt (bob.key) and -verify (-CAfile ca/root.pem) OK, same content ({} bytes)",
            theirs.len()
        ),
        &["bob.key", "openssl-signed.eml", "openssl-content.eml"],
    ))
}

fn print_text(r: &DemoReport) {
    outln!("smimekit demo in {}", r.dir);
    outln!(
        "  key files (ca/*.p12, alice.p12, bob.p12) use the demo password {:?}\n",
        r.password
    );
    for s in &r.steps {
        let mark = match (s.ok, s.skipped) {
            (true, false) => "✓",
            (true, true) => "-",
            (false, _) => "✗",
        };
        outln!("{mark} {}: {}", s.name, s.detail);
        if !s.files.is_empty() {
            outln!("    {}", s.files.join(", "));
        }
    }
    outln!();
    let passed = r.steps.iter().filter(|s| s.ok && !s.skipped).count();
    let skipped = r.steps.iter().filter(|s| s.skipped).count();
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    if r.ok {
        outln!("demo: all {passed} steps passed{skipped}");
    } else {
        outln!(
            "demo: FAILED at step {:?} ({passed} passed before it{skipped})",
            r.steps.last().map(|s| s.name.as_str()).unwrap_or("?")
        );
    }
    if r.kept {
        outln!(
            "files kept in {} (its config: smimekit --config {}/{} lookup bob@example.org)",
            r.dir,
            r.dir,
            r.config
        );
    } else {
        outln!("work files were in a temporary directory, removed now (keep them with --dir D)");
    }
}
