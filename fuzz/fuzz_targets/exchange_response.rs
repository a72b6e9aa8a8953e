//! Exchange Online admin API answers: the JSON page (`value` items, CLIXML items), the
//! recipient objects' addresses and `UserCertificate` values in every encoding, and error
//! bodies; CLIXML text alone as well.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_directory_exchange::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Some(text) = smimekit_fuzz::text(data) {
        fuzzing::decode_page(text);
        let _ = smimekit_directory_exchange::clixml::to_json(text);
    }
});
