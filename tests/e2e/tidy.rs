//! The layering rules of ARCHITECTURE.md, checked against `cargo metadata` and the sources:
//!
//! * the apps (`apps/*`) depend on no workspace crate but `smimekit-service`;
//! * plugins (`plugins/*`) never depend on `smimekit-message` or `smimekit-service`;
//! * `smimekit-core` depends on no workspace crate and on no runtime or OpenSSL crate; the
//!   message layer and the service link no OpenSSL and no front end;
//! * `unsafe` appears only in the files ARCHITECTURE.md lists under "Invariants" (the list is
//!   read from the document, so the two cannot drift: an unlisted file with `unsafe` fails, and
//!   so does a listed file without it);
//! * every workspace member is named in the code map;
//! * no library crate writes to standard output or error (`println!`, `eprintln!`, `print!`,
//!   `eprint!`, `dbg!` outside tests in `crates/*` and `plugins/*`, the sample vendor plugins
//!   excepted): libraries return data and log through `tracing`, the apps print.
//!
//! Each rule is a function from data to the violations found; beside each test on the real
//! workspace, a test plants a violation and checks that the rule reports it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::workspace;

/// Where ARCHITECTURE.md states the `unsafe` list: the bullet that starts with this.
const UNSAFE_BULLET: &str = "- `unsafe` lives only";

/// `cargo metadata --no-deps` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn architecture() -> String {
    std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// A workspace member as the rules see it.
#[derive(Debug)]
struct Member {
    name: String,
    /// The member's folder relative to the workspace root (`crates/core`, `xtask`).
    dir: String,
    /// (dependency name, kind: `normal`, `dev` or `build`).
    deps: Vec<(String, String)>,
}

fn members(meta: &Value) -> Vec<Member> {
    let root = meta["workspace_root"].as_str().expect("workspace_root");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .and_then(|d| d.strip_prefix(root).ok())
                .expect("a member lives in the workspace")
                .to_string_lossy()
                .replace('\\', "/");
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| {
                    (
                        d["name"].as_str().expect("name").to_string(),
                        d["kind"].as_str().unwrap_or("normal").to_string(),
                    )
                })
                .collect();
            Member {
                name: p["name"].as_str().expect("name").to_string(),
                dir: if dir.is_empty() { ".".into() } else { dir },
                deps,
            }
        })
        .collect()
}

/// Every dependency edge that breaks a layering rule, as a sentence.
fn layering_violations(meta: &Value) -> Vec<String> {
    let members = members(meta);
    let ours: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut bad = Vec::new();
    for m in &members {
        for (dep, kind) in &m.deps {
            let edge = format!("{} ({}) → {dep} [{kind}]", m.name, m.dir);
            let workspace_dep = ours.contains(&dep.as_str());
            let shipped = kind != "dev";
            if m.dir.starts_with("apps/") && workspace_dep && dep != "smimekit-service" {
                bad.push(format!("{edge}: an app calls only smimekit-service"));
            }
            if m.dir.starts_with("plugins/")
                && (dep == "smimekit-message" || dep == "smimekit-service")
            {
                bad.push(format!(
                    "{edge}: plugins implement core ports, they never call the message layer or the service"
                ));
            }
            if m.name == "smimekit-core" && workspace_dep {
                bad.push(format!("{edge}: the core depends on no workspace crate"));
            }
            let banned: &[&str] = match m.name.as_str() {
                "smimekit-core" => &["tokio", "openssl", "openssl-sys", "reqwest", "libloading"],
                "smimekit-message" => &[
                    "openssl",
                    "openssl-sys",
                    "tokio",
                    "smimekit-engine-openssl",
                    "smimekit-keystore-file",
                ],
                "smimekit-service" => &["clap", "axum", "ratatui", "openssl", "openssl-sys"],
                _ => &[],
            };
            if shipped && banned.contains(&dep.as_str()) {
                bad.push(format!(
                    "{edge}: {} may not depend on {dep} (ARCHITECTURE: code map)",
                    m.name
                ));
            }
        }
    }
    bad
}

/// The files ARCHITECTURE.md allows `unsafe` in: every backticked `*.rs` path of the
/// [`UNSAFE_BULLET`] bullet and its indented sub-bullets.
fn unsafe_allowlist(architecture: &str) -> Vec<String> {
    let mut lines = architecture
        .lines()
        .skip_while(|l| !l.starts_with(UNSAFE_BULLET));
    let mut bullet = match lines.next() {
        Some(first) => vec![first],
        None => return Vec::new(),
    };
    bullet.extend(lines.take_while(|l| l.starts_with("  ")));
    bullet
        .iter()
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|s| s.ends_with(".rs") && s.contains('/'))
        .map(String::from)
        .collect()
}

/// The code of a Rust source: comments removed, string and character literals emptied (so
/// that text about `unsafe` is not taken for it). Raw strings are read as plain strings.
fn code_only(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < c.len() {
        match (c[i], c.get(i + 1).copied()) {
            ('/', Some('/')) => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            ('"', _) => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A character literal ('x', '\n', '\''); a lifetime ('a) is code.
            ('\'', Some('\\')) => {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            ('\'', Some(_)) if c.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push_str("' '");
            }
            (ch, _) => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Whether Rust source text uses `unsafe`: a block, fn, impl, trait, extern block or
/// function-pointer type, or an unsafe attribute. Comments and literals do not count.
fn uses_unsafe(source: &str) -> bool {
    let code = code_only(source);
    code.match_indices("unsafe").any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + "unsafe".len()..];
        let word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let rest = after.trim_start();
        word && ["{", "fn", "impl", "extern", "trait", "("]
            .iter()
            .any(|t| rest.starts_with(t))
    })
}

/// Files using `unsafe` that the list does not name, and listed files that use none (or do
/// not exist). `sources` are (path relative to the workspace root, text).
fn unsafe_violations(allowed: &[String], sources: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, text) in sources {
        let listed = allowed.contains(path);
        match (uses_unsafe(text), listed) {
            (true, false) => bad.push(format!(
                "{path} uses unsafe but is not in ARCHITECTURE.md's list ({UNSAFE_BULLET}…)"
            )),
            (false, true) => bad.push(format!(
                "{path} is in ARCHITECTURE.md's unsafe list but uses no unsafe: take it off"
            )),
            _ => {}
        }
    }
    for path in allowed {
        if !sources.iter().any(|(p, _)| p == path) {
            bad.push(format!(
                "{path} is in ARCHITECTURE.md's unsafe list but is no Rust source of the workspace"
            ));
        }
    }
    bad
}

/// Every `.rs` file under the members' folders (each once; `target` skipped).
fn workspace_sources(meta: &Value) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "target" || n == ".git") {
                    continue;
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = workspace();
    let mut files = Vec::new();
    for m in members(meta) {
        if m.dir != "." {
            walk(&root.join(&m.dir), &mut files);
        }
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, text)
        })
        .collect()
}

/// The macros that write to standard output or error.
const PRINTS: &[&str] = &["println!", "eprintln!", "print!", "eprint!", "dbg!"];

/// Whether a workspace source belongs to a library crate's code (not its tests): under
/// `crates/` or `plugins/` (the sample vendor plugins excepted), in `src/`.
fn is_library_source(path: &str) -> bool {
    let mut parts = path.split('/');
    let (Some(area), Some(member), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(area, "crates" | "plugins") && !member.starts_with("sample-vendor") && dir == "src"
}

/// `code` without its `#[cfg(test)] mod … { … }` blocks (`code` is [`code_only`] text, so
/// braces in strings and comments are gone).
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let mut item = after.trim_start();
        // Further attributes (`#[allow(…)]`) before the module.
        while item.starts_with("#[") {
            let mut depth = 0usize;
            let end = item.char_indices().find_map(|(j, ch)| {
                match ch {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                None
            });
            item = item[end.unwrap_or(item.len())..].trim_start();
        }
        let is_mod = item.starts_with("mod ") || item.starts_with("pub(crate) mod ");
        let open = item.find(['{', ';']);
        match (is_mod, open) {
            (true, Some(i)) if item[i..].starts_with('{') => {
                let body = &item[i..];
                let mut depth = 0usize;
                let mut end = body.len();
                for (j, ch) in body.char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &body[end..];
            }
            // A test-only item that is not an inline module: its code is a test's too, but
            // only whole modules are skipped; keep scanning after the attribute.
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Library sources that print, as `path: macro` lines.
fn print_violations(sources: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, text) in sources.iter().filter(|(p, _)| is_library_source(p)) {
        let code = without_test_modules(&code_only(text));
        for m in PRINTS {
            let used = code.match_indices(m).any(|(i, _)| {
                !code[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if used {
                bad.push(format!(
                    "{path}: {m} in a library (return the text, or log it with tracing)"
                ));
            }
        }
    }
    bad
}

/// Members whose folder the "Code map" section does not name (as `` `crates/core` ``).
fn unmapped_members(meta: &Value, architecture: &str) -> Vec<String> {
    let map = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Code map"))
        .unwrap_or("");
    members(meta)
        .iter()
        .filter(|m| !map.contains(&format!("`{}`", m.dir)))
        .map(|m| {
            format!(
                "{} (`{}`) is not in ARCHITECTURE.md's code map: say what it is for and what it may depend on",
                m.name, m.dir
            )
        })
        .collect()
}

#[test]
fn layering_rules_hold() {
    let bad = layering_violations(&metadata());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn layering_rules_report_planted_edges() {
    let mut meta = metadata();
    let plant = |meta: &mut Value, package: &str, dep: &str, kind: Option<&str>| {
        let p = meta["packages"]
            .as_array_mut()
            .expect("packages")
            .iter_mut()
            .find(|p| p["name"] == package)
            .unwrap_or_else(|| panic!("no package {package}"));
        p["dependencies"]
            .as_array_mut()
            .expect("dependencies")
            .push(json!({ "name": dep, "kind": kind }));
    };
    plant(&mut meta, "smimekit-cli", "smimekit-pki", None);
    plant(
        &mut meta,
        "smimekit-keystore-file",
        "smimekit-service",
        None,
    );
    plant(
        &mut meta,
        "smimekit-directory-ldap",
        "smimekit-message",
        Some("dev"),
    );
    plant(&mut meta, "smimekit-core", "smimekit-pki", None);
    plant(&mut meta, "smimekit-core", "tokio", None);
    plant(&mut meta, "smimekit-service", "clap", None);
    // Allowed: a dev-only engine for the message layer's tests.
    plant(
        &mut meta,
        "smimekit-message",
        "smimekit-engine-openssl",
        Some("dev"),
    );
    let bad = layering_violations(&meta);
    for edge in [
        "smimekit-cli (apps/cli) → smimekit-pki",
        "smimekit-keystore-file (plugins/keystore-file) → smimekit-service",
        "smimekit-directory-ldap (plugins/directory-ldap) → smimekit-message [dev]",
        "smimekit-core (crates/core) → smimekit-pki",
        "smimekit-core (crates/core) → tokio",
        "smimekit-service (crates/service) → clap",
    ] {
        assert!(
            bad.iter().any(|b| b.starts_with(edge)),
            "{edge} not reported: {bad:#?}"
        );
    }
    assert_eq!(bad.len(), 6, "{bad:#?}");
}

#[test]
fn unsafe_only_in_the_files_architecture_lists() {
    let allowed = unsafe_allowlist(&architecture());
    assert!(
        allowed.len() >= 3,
        "ARCHITECTURE.md has no `unsafe` file list under {UNSAFE_BULLET:?}: {allowed:?}"
    );
    let bad = unsafe_violations(&allowed, &workspace_sources(&metadata()));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn unsafe_check_reports_planted_files() {
    let doc = "## Invariants\n\n- `unsafe` lives only in:\n  - `a/ffi.rs` (C calls), `a/stale.rs`;\n  - `a/gone.rs`.\n- Next rule: `b/not-listed.rs`.\n";
    let allowed = unsafe_allowlist(doc);
    assert_eq!(allowed, ["a/ffi.rs", "a/stale.rs", "a/gone.rs"]);
    let sources: Vec<(String, String)> = [
        ("a/ffi.rs", "fn f() { unsafe { g() } }"),
        (
            "a/stale.rs",
            "// No unsafe { here }: a comment.\nfn unsafe_name() {}",
        ),
        ("b/block.rs", "let x = unsafe { *p };"),
        ("b/impl.rs", "unsafe impl Send for X {}"),
        ("b/fn.rs", "pub unsafe extern \"C\" fn f() {}"),
        ("b/type.rs", "type F = unsafe extern \"C\" fn();"),
        ("b/attr.rs", "#[unsafe(no_mangle)]"),
        ("b/string.rs", "let url = \"http://x\"; unsafe { y() }"),
        ("b/text.rs", "let s = \"the word unsafe is fine in text\";"),
        (
            "b/literals.rs",
            "let s = \"a \\\" quote, then\nunsafe { in text }\"; let q = '\"'; /* unsafe {} */",
        ),
        ("b/after-char.rs", "let q = '\"'; unsafe { y() }"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    let mut bad = unsafe_violations(&allowed, &sources);
    bad.sort();
    let files: Vec<&str> = bad
        .iter()
        .map(|b| b.split_once(' ').map_or(b.as_str(), |(f, _)| f))
        .collect();
    assert_eq!(
        files,
        [
            "a/gone.rs",
            "a/stale.rs",
            "b/after-char.rs",
            "b/attr.rs",
            "b/block.rs",
            "b/fn.rs",
            "b/impl.rs",
            "b/string.rs",
            "b/type.rs"
        ],
        "{bad:#?}"
    );
}

#[test]
fn every_member_is_in_the_code_map() {
    let bad = unmapped_members(&metadata(), &architecture());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn code_map_check_reports_a_planted_member() {
    let mut meta = metadata();
    let before = unmapped_members(&meta, &architecture());
    let root = meta["workspace_root"].as_str().expect("root").to_string();
    meta["packages"]
        .as_array_mut()
        .expect("packages")
        .push(json!({
            "name": "smimekit-ghost",
            "manifest_path": format!("{root}/crates/ghost/Cargo.toml"),
            "dependencies": [],
        }));
    let bad = unmapped_members(&meta, &architecture());
    assert_eq!(bad.len(), before.len() + 1, "{bad:#?}");
    assert!(
        bad.iter()
            .any(|b| b.starts_with("smimekit-ghost (`crates/ghost`)")),
        "{bad:?}"
    );
    // A member named only outside the code map section does not count.
    let doc = "## Code map\n\n- `crates/core`\n\n## Decisions\n\n`crates/ghost`\n";
    assert!(
        unmapped_members(&meta, doc)
            .iter()
            .any(|b| b.starts_with("smimekit-ghost"))
    );
}

#[test]
fn no_library_prints() {
    let bad = print_violations(&workspace_sources(&metadata()));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn print_check_reports_planted_prints() {
    let sources: Vec<(String, String)> = [
        ("crates/a/src/lib.rs", "fn f() { eprintln!(\"x\"); }"),
        ("plugins/b/src/deep/mod.rs", "fn f() { dbg!(x); print!(\"y\"); }"),
        // Tests, apps, tools and the sample plugins may print; so may text about printing.
        (
            "crates/a/src/ok.rs",
            "fn f() {} // println!(\"no\")\nconst S: &str = \"eprintln!\";\n#[cfg(test)]\n#[allow(clippy::x, y::z)]\nmod tests {\n    fn t() { println!(\"{}\", {1}); }\n}\n",
        ),
        ("crates/a/tests/t.rs", "fn t() { println!(); }"),
        ("apps/cli/src/main.rs", "fn main() { eprintln!(); }"),
        ("xtask/src/main.rs", "fn main() { println!(); }"),
        ("plugins/sample-vendor-rust/src/lib.rs", "fn f() { eprintln!(); }"),
        ("crates/a/src/name.rs", "fn f() { my_println!(); }"),
        // Code after a test module is scanned again.
        (
            "crates/a/src/after.rs",
            "#[cfg(test)]\nmod tests { fn t() {} }\nfn f() { println!(); }",
        ),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    let bad = print_violations(&sources);
    let found: Vec<&str> = bad
        .iter()
        .map(|b| b.split_once(" in a library").map_or(b.as_str(), |(f, _)| f))
        .collect();
    assert_eq!(
        found,
        [
            "crates/a/src/lib.rs: eprintln!",
            "plugins/b/src/deep/mod.rs: print!",
            "plugins/b/src/deep/mod.rs: dbg!",
            "crates/a/src/after.rs: println!",
        ],
        "{bad:#?}"
    );
}
