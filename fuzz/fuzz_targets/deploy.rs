//! The deploy file (`deploy.toml`) and the files it names: any text is a desired state or a
//! list of errors with file and line, never a panic. The input is the deploy file, then
//! optionally a NUL byte and the bytes every `.csv` it names reads as; certificate files it
//! names read as the project's test PKI (root, intermediate, leaves), folders list the
//! leaves' addresses.

#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use smimekit_service::deploy::{DeploySource, load};

/// The deploy file's world: fixed certificates, the fuzzed CSV.
struct Files<'a> {
    csv: &'a [u8],
}

fn pki(name: &str) -> Vec<u8> {
    static DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/pki/");
    std::fs::read(format!("{DIR}{name}")).unwrap_or_default()
}

impl DeploySource for Files<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let name = path.to_string_lossy().to_ascii_lowercase();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "csv" => Ok(self.csv.to_vec()),
            "json" => Ok(b"{}".to_vec()),
            "pem" | "cer" | "crt" | "der" => Ok(if name.contains("root") {
                pki("root.pem")
            } else if name.contains("issuing") || name.contains("intermediate") {
                pki("intermediate.pem")
            } else if name.contains("bob") {
                pki("bob.pem")
            } else {
                pki("alice.pem")
            }),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    fn list(&self, path: &Path) -> std::io::Result<Vec<String>> {
        if self.is_dir(path) {
            Ok(vec![
                "alice@example.org.pem".into(),
                "bob@example.org.pem".into(),
                "carol@example.org.der".into(),
            ])
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::NotADirectory))
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.extension().is_none()
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        Path::new("/fuzz").join(path)
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, csv) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Some(text) = smimekit_fuzz::text(text) else {
        return;
    };
    let known = ["exo".to_string(), "corp".to_string(), "local".to_string()];
    if let Err(errors) = load("deploy.toml", text, &Files { csv }, &known) {
        assert!(!errors.is_empty(), "a failed load names at least one error");
    }
});
