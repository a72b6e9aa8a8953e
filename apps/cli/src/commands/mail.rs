//! sign, encrypt, verify, decrypt, open.

use anyhow::Result;
use smimekit_service::{
    ContentCipher, DecryptRequest, DecryptionKey, DigestAlg, EncryptRequest, EncryptTo, ErrorKind,
    OpenRequest, OpenResult, Service, ServiceError, SignRequest,
};

use super::{EXIT_INVALID, EXIT_OK, open_decryption_key, open_key, print_json};
use crate::cli::{CipherArg, DecryptArgs, EncryptArgs, OpenArgs, SignArgs, TrustArgs, VerifyArgs};
use crate::io;

pub async fn sign(service: &Service, a: SignArgs, json: bool) -> Result<u8> {
    let digest = match DigestAlg::from_name(&a.digest) {
        Some(d @ (DigestAlg::Sha256 | DigestAlg::Sha384 | DigestAlg::Sha512)) => d,
        _ => {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!("--digest {}: use sha256, sha384 or sha512", a.digest),
            )
            .into());
        }
    };
    let message = io::read_input(a.io.input.as_deref())?;
    let key = open_key(service, &a.key, a.cert.clone()).await?;
    let signed = service
        .sign(SignRequest {
            key,
            digest,
            pss: a.pss,
            opaque: a.opaque,
            message,
            chain: io::read_all_named(&a.chain)?,
        })
        .await?;
    let out = &signed.message;
    io::write_output(a.io.output.as_deref(), out)?;
    // Signed all the same: an incomplete chain is a warning, not a failure.
    if let Some(w) = signed.chain.warning() {
        eprintln!("warning: {w} (give the issuer with --chain F, or store it with trust push)");
    }
    if json && a.io.output.is_some() {
        let c = &signed.chain;
        print_json(&serde_json::json!({
            "signed": true,
            "bytes": out.len(),
            "digest": digest.name(),
            "opaque": a.opaque,
            "chain": c.included,
            "chain_complete": c.complete,
            "missing_issuer": c.missing_issuer,
        }))?;
    }
    Ok(EXIT_OK)
}

pub async fn encrypt(service: &Service, a: EncryptArgs, json: bool) -> Result<u8> {
    let cipher = match a.cipher {
        CipherArg::Aes256Cbc => ContentCipher::Aes256Cbc,
        CipherArg::Aes192Cbc => ContentCipher::Aes192Cbc,
        CipherArg::Aes128Cbc => ContentCipher::Aes128Cbc,
        CipherArg::Aes256Gcm => ContentCipher::Aes256Gcm,
    };
    let message = io::read_input(a.io.input.as_deref())?;
    let to = a.to.iter().map(|t| encrypt_to(t)).collect::<Result<_>>()?;
    let out = service
        .encrypt(EncryptRequest {
            to,
            cipher,
            oaep: a.oaep,
            message,
            force: a.force,
        })
        .await?;
    io::write_output(a.io.output.as_deref(), &out)?;
    if json && a.io.output.is_some() {
        print_json(
            &serde_json::json!({ "encrypted": true, "bytes": out.len(), "cipher": cipher.name(), "recipients": a.to }),
        )?;
    }
    Ok(EXIT_OK)
}

/// How a `--to` value is read: an existing file is a certificate file; otherwise something with
/// an `@` and no path separator is an address; anything else is a (missing) file, so that the
/// error names it.
fn encrypt_to(arg: &str) -> Result<EncryptTo> {
    let p = std::path::Path::new(arg);
    if !p.exists() && arg.contains('@') && !arg.contains('/') && !arg.contains('\\') {
        Ok(EncryptTo::Address(arg.to_string()))
    } else {
        Ok(EncryptTo::Certificates(io::read_named(p)?))
    }
}

pub async fn verify(service: &Service, a: VerifyArgs, json: bool) -> Result<u8> {
    let req = open_request(&a.trust, io::read_input(a.io.input.as_deref())?, Vec::new())?;
    let result = service.open(req).await?;
    let verdict = result.report.valid;
    // `verify` vouches for the content: it hands it out (to --out or standard output) only
    // with a valid verdict. An invalid or unsigned message writes nothing (the report still
    // says why), so that no script can take content whose exit code it did not check.
    let code = finish(result, a.io.output.as_deref(), json, verdict == Some(true))?;
    match verdict {
        // Nothing unsigned is valid: verify's question has no "yes" to give.
        None => {
            eprintln!(
                "smimekit: not signed: no layer of the message holds a signature (content not written)"
            );
            Ok(EXIT_INVALID)
        }
        Some(false) => {
            eprintln!("smimekit: content not written: the message is not validly signed");
            Ok(code)
        }
        Some(true) => Ok(code),
    }
}

pub async fn decrypt(service: &Service, a: DecryptArgs, json: bool) -> Result<u8> {
    let message = io::read_input(a.io.input.as_deref())?;
    let key = open_decryption_key(service, &a.key, a.key_cert.clone()).await?;
    let result = service
        .decrypt(DecryptRequest {
            keys: vec![key],
            message,
        })
        .await?;
    // Decrypted content is written owner-only.
    io::write_secret_output(a.io.output.as_deref(), &result.content)?;
    if json {
        print_json(&result.report)?;
    }
    Ok(EXIT_OK)
}

pub async fn open(service: &Service, a: OpenArgs, json: bool) -> Result<u8> {
    let mut keys = Vec::new();
    for k in &a.key {
        let mut key = open_decryption_key(service, k, a.key_cert.clone()).await?;
        if a.key_cert.is_none() && matches!(key, DecryptionKey::Bare(_)) {
            // A key file without a certificate: the --cert file that is its certificate, if
            // any, names it; else it stays bare and is tried on every recipient of its type.
            for c in &a.trust.cert {
                let with = Some(c.display().to_string());
                if let Ok(k) = open_decryption_key(service, k, with).await {
                    key = k;
                    break;
                }
            }
        }
        keys.push(key);
    }
    let req = open_request(&a.trust, io::read_input(a.io.input.as_deref())?, keys)?;
    let result = service.open(req).await?;
    // `open` was asked to open, not to vouch: the content comes with the report's verdict.
    finish(result, a.io.output.as_deref(), json, true)
}

fn open_request(t: &TrustArgs, message: Vec<u8>, keys: Vec<DecryptionKey>) -> Result<OpenRequest> {
    let at = t.at.as_deref().map(parse_time).transpose()?;
    let detached_content = t
        .content
        .as_deref()
        .map(|p| io::read_input(Some(p)))
        .transpose()?;
    Ok(OpenRequest {
        keys,
        trust: io::read_all_named(&t.trust)?,
        certs: io::read_all_named(&t.cert)?,
        crls: Vec::new(),
        at,
        message,
        detached_content,
        allow_sha1: t.allow_sha1,
        allow_address_mismatch: t.allow_address_mismatch,
    })
}

fn parse_time(s: &str) -> Result<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            ServiceError::new(
                ErrorKind::Invalid,
                format!("--at {s}: not an RFC 3339 time ({e})"),
            )
            .into()
        })
}

/// Writes the content, prints the report, and turns the verdict into the exit code.
/// Writes the content (when `give_content`) and the report; the exit code of the verdict.
fn finish(
    result: OpenResult,
    out: Option<&std::path::Path>,
    json: bool,
    give_content: bool,
) -> Result<u8> {
    let OpenResult { report, content } = result;
    // What a layer was decrypted from is secret: written owner-only.
    let write_output = if report.layers.iter().any(|l| l.recipient.is_some()) {
        io::write_secret_output
    } else {
        io::write_output
    };
    if json {
        print_json(&report)?;
        // With --json, standard output carries the report; the content goes to --out only.
        if out.is_some() && give_content {
            write_output(out, &content)?;
        }
    } else {
        if give_content {
            write_output(out, &content)?;
        }
        for (i, layer) in report.layers.iter().enumerate() {
            let kind = serde_json::to_value(layer.kind).unwrap_or_default();
            let kind = kind.as_str().unwrap_or("layer");
            eprintln!("layer {}: {kind} {}", i + 1, layer.algorithm);
            if let Some(r) = &layer.recipient {
                eprintln!("  decrypted for {r}");
            }
            for s in &layer.signers {
                let status = serde_json::to_value(s.status).unwrap_or_default();
                eprintln!(
                    "  signer {} — {}{}",
                    s.address.as_deref().unwrap_or("?"),
                    status.as_str().unwrap_or("?"),
                    s.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                for w in &s.warnings {
                    eprintln!("    warning: {w}");
                }
            }
            if layer.signers.is_empty()
                && let Some(r) = &layer.reason
            {
                eprintln!("  {r}");
            }
        }
    }
    Ok(match report.valid {
        Some(false) => EXIT_INVALID,
        _ => EXIT_OK,
    })
}
