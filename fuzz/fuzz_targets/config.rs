//! The TOML configuration: any text is a `Config` or an error naming the file, never a panic.
//! Directory and key-store sections are checked against the built-in plugins' kinds.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use smimekit_service::Config;

fuzz_target!(|data: &[u8]| {
    let Some(text) = smimekit_fuzz::text(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, Path::new("/fuzz/smimekit.toml")) {
        let _ = config.check_kinds(&[]);
        let _ = config.directory_names();
        let _ = config.pkcs11_module(None);
    }
});
