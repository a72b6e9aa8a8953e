//! `open` end to end, as `smimekit open` runs it: MIME or raw CMS, every layer peeled
//! (signatures verified, EnvelopedData and AuthEnvelopedData decrypted with soft RSA and EC
//! keys), the report built. Any input must give a report or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_message::signed::VerifyContext;
use smimekit_message::smime::{self, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let opts = OpenOptions {
        verify: VerifyContext {
            at: smimekit_fuzz::PINNED_UNIX,
            ..VerifyContext::default()
        },
        ..OpenOptions::default()
    };
    let engine = smimekit_fuzz::engine();
    let keys = smimekit_fuzz::keys();
    if let Ok(opened) = smimekit_fuzz::block_on(smime::open(engine, data.to_vec(), keys, &opts)) {
        // Nothing unsigned is valid: a verdict needs at least one layer with signers.
        if opened.report.valid == Some(true) {
            assert!(
                opened.report.layers.iter().any(|l| !l.signers.is_empty()),
                "valid without a signer"
            );
        }
    }
});
