//! EnvelopedData and AuthEnvelopedData decryption with soft RSA and EC keys: recipient
//! parsing, key transport and agreement, key unwrap, content decryption and the AEAD tag.
//! The first input byte chooses whether the content is read as AuthEnvelopedData.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_message::asn1::{self, TAG_SEQUENCE};
use smimekit_message::envelope;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let Ok(ci) = asn1::parse_single(data) else {
        return;
    };
    let Ok(ci) = ci.expect(TAG_SEQUENCE, "ContentInfo") else {
        return;
    };
    let mut r = ci.children();
    let (Ok(_oid), Ok(explicit)) = (r.read("contentType"), r.read_tag(0xa0, "content")) else {
        return;
    };
    let authenticated = mode & 1 == 1;
    let _ = smimekit_fuzz::block_on(envelope::decrypt(
        smimekit_fuzz::engine(),
        &explicit,
        authenticated,
        smimekit_fuzz::keys(),
    ));
});
