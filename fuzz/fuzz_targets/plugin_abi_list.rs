//! The plugin ABI's list encoding (what a vendor plugin returns for lists of byte strings):
//! any bytes decode or are refused, and a decoded list encodes back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_plugin_abi::list;

fuzz_target!(|data: &[u8]| {
    if let Some(items) = list::decode(data) {
        assert_eq!(list::encode(&items), data, "list round trip");
    }
});
