//! The PKI measurements behind `cargo xtask bench-pki`: `.sst` encode/decode, path building,
//! and making many distinct leaves from one template. They live here, not in the service: they
//! are tooling, and call `smimekit-pki` and the OpenSSL engine directly.

use anyhow::{Context, Result, bail, ensure};
use smimekit_core::{CertDer, CryptoEngine, DigestAlg, KeyKind, PrivateKey, SignatureScheme};
use smimekit_pki::chain::ChainBuilder;
use smimekit_pki::{asn1, container, sst};

/// Timings of the `.sst` codec.
#[derive(Debug, Clone)]
pub struct SstBench {
    pub bytes: usize,
    pub encode_ms: f64,
    pub decode_ms: f64,
    /// Decode plus structural validation of every certificate (what `load_certificates` does).
    pub load_ms: f64,
}

/// Encodes `n` certificates (cycling through `certs`) into an `.sst` and decodes it again,
/// timing each step.
pub fn bench_sst(certs: &[CertDer], n: usize) -> Result<SstBench> {
    ensure!(!certs.is_empty(), "bench_sst needs a certificate");
    let list: Vec<CertDer> = (0..n).map(|i| certs[i % certs.len()].clone()).collect();
    let t = std::time::Instant::now();
    let bytes = sst::write_sst(&list);
    let encode = t.elapsed();
    let t = std::time::Instant::now();
    let entries = sst::read_sst(&bytes).context("bench: reading the .sst back")?;
    let decode = t.elapsed();
    ensure!(
        entries.len() == n,
        "bench: {} of {n} certificates read back",
        entries.len()
    );
    let t = std::time::Instant::now();
    let loaded = container::load_certificates(&bytes, "bench.sst")?;
    let load = t.elapsed();
    ensure!(
        loaded.len() == n,
        "bench: {} of {n} certificates loaded",
        loaded.len()
    );
    Ok(SstBench {
        bytes: bytes.len(),
        encode_ms: encode.as_secs_f64() * 1e3,
        decode_ms: decode.as_secs_f64() * 1e3,
        load_ms: load.as_secs_f64() * 1e3,
    })
}

/// Timings of path building.
#[derive(Debug, Clone)]
pub struct ChainBench {
    /// Parsing and indexing the pool and anchors.
    pub index_ms: f64,
    /// Building (and verifying) the paths of every leaf, on `threads` threads.
    pub build_ms: f64,
    /// The same on one thread.
    pub single_thread_ms: f64,
    pub threads: usize,
    pub per_leaf_us: f64,
    /// Leaves with a valid path (should be all of them).
    pub valid: usize,
}

/// Indexes `pool` + `anchors` once, then builds the path of every leaf at `at`.
pub fn bench_chain(
    engine: &CryptoEngine,
    leaves: &[CertDer],
    pool: &[CertDer],
    anchors: &[CertDer],
    at: i64,
) -> Result<ChainBench> {
    let t = std::time::Instant::now();
    let builder = ChainBuilder::new(engine.verifier, pool, anchors)?;
    let index = t.elapsed();
    let t = std::time::Instant::now();
    let mut valid = 0;
    for r in builder.build_many(leaves, at) {
        if r?.is_valid() {
            valid += 1;
        }
    }
    let build = t.elapsed();
    // The same on one thread, for comparison (the signature cache is warm by now, but it
    // only ever holds the two intermediate links).
    let t = std::time::Instant::now();
    for leaf in leaves {
        builder.build(leaf, at)?;
    }
    let single = t.elapsed();
    Ok(ChainBench {
        index_ms: index.as_secs_f64() * 1e3,
        build_ms: build.as_secs_f64() * 1e3,
        per_leaf_us: build.as_secs_f64() * 1e6 / leaves.len().max(1) as f64,
        single_thread_ms: single.as_secs_f64() * 1e3,
        threads: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        valid,
    })
}

/// Makes `n` distinct leaves from `template` by rewriting its serial number (same length)
/// and re-signing the TBS with `issuer_key` (the key of the template's issuer). The signature
/// scheme is SHA-256 with the key's algorithm and must match the template's
/// signatureAlgorithm (it does when the issuer made the template).
pub async fn resign_copies(
    engine: &CryptoEngine,
    template: &CertDer,
    issuer_key: &dyn PrivateKey,
    n: usize,
) -> Result<Vec<CertDer>> {
    let outer = asn1::parse_single(template.as_bytes()).context("template certificate")?;
    let mut top = outer.children();
    let tbs = top.read_tag(asn1::TAG_SEQUENCE, "tbsCertificate")?;
    let alg = top.read_tag(asn1::TAG_SEQUENCE, "signatureAlgorithm")?;
    let mut f = tbs.children();
    f.optional(0xA0)?;
    let serial = f.read_tag(asn1::TAG_INTEGER, "serialNumber")?;
    // Offset of the serial's content inside the TBS: both slices borrow the same buffer.
    let at = serial.content.as_ptr() as usize - tbs.raw.as_ptr() as usize;
    let len = serial.content.len();
    if len < 4 {
        bail!("template serial number shorter than 4 bytes");
    }
    let scheme = match issuer_key.kind() {
        KeyKind::Ec { .. } => SignatureScheme::Ecdsa(DigestAlg::Sha256),
        _ => SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
    };
    let mut out = Vec::with_capacity(n);
    let mut tbs_bytes = tbs.raw.to_vec();
    for i in 0..n {
        let counter = (i as u64).to_be_bytes();
        // Keep the first byte (sign and non-zero), overwrite the low bytes with a counter.
        let tail = len.min(9) - 1;
        tbs_bytes[at + len - tail..at + len].copy_from_slice(&counter[8 - tail..]);
        let digest = engine.primitives.digest(DigestAlg::Sha256, &[&tbs_bytes])?;
        let sig = issuer_key.sign_digest(scheme, &digest).await?;
        let mut bits = Vec::with_capacity(sig.len() + 1);
        bits.push(0);
        bits.extend_from_slice(&sig);
        out.push(CertDer::new(asn1::seq(&[
            &tbs_bytes,
            alg.raw,
            &asn1::encode(asn1::TAG_BIT_STRING, &bits),
        ])));
    }
    Ok(out)
}
