//! Issue 19's host faults, end to end through `smimekit`, with a directory plugin written in C
//! from the header and `docs/plugin-abi.md` alone (`tests/fixtures/plugins/trace_plugin.c`): it
//! records every call in a trace file, and its `dir_close` does libcrypto work before it writes
//! its line. And the contract's tables (functions per command, status → exit code), parsed from
//! the document and compared with what the host does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{fixtures, pki, run, show, smimekit_bin, workspace};

/// Compiles the trace plugin with `defines` into `dir/libtrace.so`, linked to libcrypto.
fn build(dir: &Path, defines: &[&str]) -> PathBuf {
    let out = dir.join(format!(
        "{}trace{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = run(
        Command::new(cc)
            .args(["-shared", "-fPIC", "-Wall", "-I"])
            .arg(workspace().join("crates/plugin-abi/include"))
            .args(defines)
            .arg(fixtures().join("plugins/trace_plugin.c"))
            .arg("-o")
            .arg(&out)
            .arg("-lcrypto"),
        None,
    );
    assert!(res.status.success(), "{}", show("cc trace_plugin.c", &res));
    out
}

/// A working folder: the plugin, `cfg.toml` naming it by its bare file name and a directory
/// `acme` with relative `path`/`trace_file` values (the plugin refuses relative ones).
struct Site {
    dir: tempfile::TempDir,
    lib: String,
}

impl Site {
    fn new(defines: &[&str], extra_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lib = build(dir.path(), defines);
        let lib = lib.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("cfg.toml"),
            format!(
                "[plugins]\npaths = [\"{lib}\"]\n\n[directory.acme]\nkind = \"trace-dir\"\npath = \"data\"\ntrace_file = \"trace.log\"\n{extra_config}"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("msg.txt"),
            "Content-Type: text/plain\r\n\r\nthrough a vendor plugin\r\n",
        )
        .unwrap();
        Self { dir, lib }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `smimekit --config cfg.toml ARGS` run in the site (a relative config path).
    fn cli(&self, args: &[&str]) -> Output {
        run(
            Command::new(smimekit_bin())
                .current_dir(self.path())
                .args(["--config", "cfg.toml"])
                .args(args)
                .env_remove("SMIMEKIT_PASSWORD")
                .env_remove("SMIMEKIT_PLUGIN_PATH")
                .env("XDG_DATA_HOME", self.path().join("xdg")),
            None,
        )
    }

    /// Runs and asserts exit 0 (a crash at exit is a signal: no code).
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            show(&args.join(" "), &out)
        );
        out
    }

    /// The trace's lines: `function argument`.
    fn trace(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("trace.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The functions called since line `from`.
    fn calls_since(&self, from: usize) -> Vec<String> {
        self.trace()[from..]
            .iter()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }
}

/// Each process's calls: a `dir_open` … `dir_close` run per process, each handle closed once.
fn assert_every_open_closed_once(trace: &[String], processes: usize) {
    let opens = trace.iter().filter(|l| l.starts_with("dir_open ")).count();
    let closes = trace.iter().filter(|l| l.starts_with("dir_close ")).count();
    assert_eq!(
        (opens, closes),
        (processes, processes),
        "every process opens the directory once and closes it once:\n{}",
        trace.join("\n")
    );
    // And in order: no call after a close, no second open before it.
    let mut open = false;
    for l in trace {
        if l.starts_with("dir_open ") {
            assert!(!open, "opened twice:\n{}", trace.join("\n"));
            open = true;
        } else if l.starts_with("dir_close ") {
            assert!(open, "closed without an open:\n{}", trace.join("\n"));
            open = false;
        } else {
            assert!(open, "{l:?} outside an open handle:\n{}", trace.join("\n"));
        }
    }
    assert!(
        !open,
        "the last process did not close:\n{}",
        trace.join("\n")
    );
}

/// Faults 1-3 and 5: every command closes the plugin's handle before it exits, although
/// `dir_close` does libcrypto work; the plugin has only the required functions and
/// publish/unpublish (no `dir_recipients`), is named by a bare file name in a relative
/// configuration file and again with `--plugin`, and gets its paths absolute. Both threading
/// models: one worker thread, and the blocking pool.
#[test]
fn every_handle_is_closed_once_before_the_process_exits() {
    for defines in [&[][..], &["-DTHREAD_SAFE"][..]] {
        let site = Site::new(defines, "");
        let lib = site.lib.clone();
        let cert = pki("alice.pem");
        let out = site.ok(&["publish", "alice@example.org", "--cert", &cert]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 added"),
            "{}",
            show("publish", &out)
        );
        let mut processes = 1;
        for i in 0..8 {
            let enc = format!("enc{i}.eml");
            site.ok(&[
                "encrypt",
                "--to",
                "alice@example.org",
                "--in",
                "msg.txt",
                "--out",
                &enc,
            ]);
            let out = site.ok(&["lookup", "alice@example.org", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["directory"], "acme", "{v}");
            assert_eq!(v["certificates"].as_array().map(Vec::len), Some(1), "{v}");
            // The same file twice (configuration and --plugin) is one plugin.
            site.ok(&[
                "--plugin",
                &lib,
                "publish",
                "alice@example.org",
                "--cert",
                &cert,
            ]);
            processes += 3;
        }
        site.ok(&["unpublish", "alice@example.org", "--cert", &cert]);
        processes += 1;
        let trace = site.trace();
        assert_every_open_closed_once(&trace, processes);
        // Lookups used dir_lookup alone: the plugin has no listing to call.
        assert!(!trace.iter().any(|l| l.starts_with("dir_recipients")));
        // What the plugin was given was absolute (it refuses relative paths), and its data
        // landed in the site's folder.
        assert!(site.path().join("data/alice@example.org").is_file());
    }
}

/// A vendor directory that says "no such recipient" does not stop `encrypt --to` (nor
/// `lookup`) when a later directory has the address.
#[test]
fn not_found_in_one_directory_does_not_stop_the_search() {
    let site = Site::new(
        &[],
        "\n[directory.second]\nkind = \"trace-dir\"\npath = \"data2\"\ntrace_file = \"trace.log\"\n",
    );
    std::fs::create_dir(site.path().join("data2")).unwrap();
    let cert = pki("alice.pem");
    site.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &cert,
        "--directory",
        "second",
    ]);
    site.ok(&[
        "encrypt",
        "--to",
        "alice@example.org",
        "--in",
        "msg.txt",
        "--out",
        "enc.eml",
    ]);
    let out = site.ok(&["lookup", "alice@example.org", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["directory"], "second", "{v}");
    assert_eq!(v["searched"], serde_json::json!(["acme", "second"]), "{v}");
    // Nowhere: a recipient problem naming both directories.
    let out = site.cli(&["lookup", "nobody@example.org"]);
    assert_eq!(out.status.code(), Some(4), "{}", show("lookup", &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(searched acme, second)"),
        "{}",
        show("lookup", &out)
    );
}

/// Messages name the directory once; a directory audit goes on past a plugin that cannot
/// list its recipients (and says so), and `publish --contact` into a plugin directory gives
/// no Exchange address-book advice.
#[test]
fn messages_name_the_directory_once_and_give_no_foreign_advice() {
    let site = Site::new(
        &["-DWITH_RECIPIENT"],
        "\n[directory.loc]\nkind = \"local\"\npath = \"loc.json\"\n",
    );
    let out = site.cli(&["lookup", "status-11@example.org"]);
    assert_eq!(out.status.code(), Some(4), "{}", show("lookup", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("acme: asked for status 11"), "{err}");
    for repeated in [
        "directory: directory",
        "directory acme: directory",
        "acme: acme",
    ] {
        assert!(!err.contains(repeated), "{repeated:?} in {err}");
    }
    let out = site.ok(&[
        "publish",
        "dave@partner.example",
        "--cert",
        &pki("alice.pem"),
        "--contact",
        "--force",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("created the external contact \"dave@partner.example\""),
        "{text}"
    );
    assert!(
        !text.contains("GAL") && !text.contains("address book"),
        "{text}"
    );
    // The kind came back through dir_recipient (ABI 1.1).
    let out = site.ok(&["lookup", "dave@partner.example", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "contact", "{v}");
    // Audit: the plugin cannot list; the local directory is audited all the same.
    let out = site.ok(&["directory", "audit"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("directory acme: the plugin does not support listing recipients"),
        "{text}"
    );
    assert!(text.contains("not audited"), "{text}");
    assert!(text.contains("directory loc: 0 recipient(s)"), "{text}");
    // Named alone, it is the error (exit 3, unsupported).
    let out = site.cli(&["directory", "audit", "--directory", "acme"]);
    assert_eq!(out.status.code(), Some(3), "{}", show("audit acme", &out));
}

/// The configuration as key/value pairs (`dir_open_pairs`, ABI 1.1): a vendor in C parses no
/// TOML; nested tables come as dotted keys, paths absolute as in the TOML text.
#[test]
fn configuration_reaches_a_pairs_plugin_as_key_value_pairs() {
    let site = Site::new(&["-DPAIRS"], "\n[directory.acme.extra]\nlevel = \"deep\"\n");
    site.ok(&["publish", "alice@example.org", "--cert", &pki("alice.pem")]);
    let trace = site.trace();
    assert!(
        trace.iter().any(|l| l == "pairs extra.level deep"),
        "{}",
        trace.join("\n")
    );
}

/// A call that does not answer within `[plugins] call_timeout_secs` fails as unavailable
/// (exit 5) naming the limit; the process still waits for the plugin to return and closes
/// its handle before it exits. Both threading models.
#[test]
fn a_call_that_does_not_answer_in_time_fails_and_the_handle_is_still_closed() {
    for defines in [&[][..], &["-DTHREAD_SAFE"][..]] {
        let site = Site::new(defines, "");
        let cfg = std::fs::read_to_string(site.path().join("cfg.toml")).unwrap();
        std::fs::write(
            site.path().join("cfg.toml"),
            cfg.replacen("[plugins]\n", "[plugins]\ncall_timeout_secs = 1\n", 1),
        )
        .unwrap();
        let out = site.cli(&["lookup", "sleep-2500@example.org"]);
        assert_eq!(out.status.code(), Some(5), "{}", show("lookup", &out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("acme: the plugin did not answer within 1000 ms"),
            "{err}"
        );
        let trace = site.trace();
        // The slow call ended, then the handle was closed, before the process exited.
        let calls: Vec<&str> = trace
            .iter()
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(
            calls,
            ["dir_open", "dir_lookup", "slept", "dir_close"],
            "{trace:?}"
        );
    }
}

/// Fault 3: the host never unloads a plugin. The plugin writes `unloaded` from a library
/// destructor, which `dlclose` runs at once: in this process, after every handle is closed,
/// the host shut down and the last reference to the library dropped (on the worker thread,
/// where the old host dropped it, and on this one), the library is still loaded.
#[test]
fn a_plugin_library_is_never_unloaded() {
    use smimekit_core::{Directory, Mailbox};
    use smimekit_plugin_host::directory::PluginDirectory;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lib_path = build(dir.path(), &["-DUNLOAD_MARK"]);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let trace = dir.path().join("trace.log");
    let config = format!(
        "path = \"{}\"\ntrace_file = \"{}\"\n",
        dir.path().join("data").display(),
        trace.display()
    );
    let a = Mailbox::parse("alice@example.org").unwrap();
    let closes = || {
        std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .matches("dir_close")
            .count()
    };
    for (round, shut_down_first) in [(1, false), (2, true)] {
        let lib = smimekit_plugin_host::load(&lib_path).unwrap();
        let d = PluginDirectory::open(lib.clone(), "acme", &config).unwrap();
        assert!(rt.block_on(d.lookup(&a)).unwrap().is_empty());
        if shut_down_first {
            // The handle closed by the shutdown (the worker joined), then the adapter and
            // the last reference dropped here, without a second close.
            lib.shutdown(std::time::Duration::from_secs(60)).unwrap();
            drop(d);
            drop(lib);
        } else {
            // Dropping the adapter queues the close, which holds the library, on the
            // worker: the last reference is dropped there, after the close. Wait for the
            // close (an outcome, polled, at most a minute).
            drop(d);
            drop(lib);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while closes() < round && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        assert_eq!(closes(), round, "round {round}");
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(text.matches("dir_close").count(), 2, "{text}");
    assert!(
        !text.contains("unloaded"),
        "the library was unloaded:\n{text}"
    );
}

// ---- the document's tables, held equal to the host ----

/// The rows of the markdown table under `heading` in docs/plugin-abi.md: cells, trimmed.
fn doc_table(heading: &str) -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(workspace().join("docs/plugin-abi.md")).unwrap();
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/plugin-abi.md has no {heading:?}"));
    let rows: Vec<Vec<String>> = doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and rule
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "no table under {heading:?}");
    rows
}

/// The backticked words of a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// "Which functions each command calls": each command is run, in the table's order, against
/// a plugin that has every function but `dir_recipient`, and the calls it got are the row's.
#[test]
fn each_command_calls_the_functions_the_contract_lists() {
    let site = Site::new(&["-DWITH_RECIPIENTS"], "");
    let rows = doc_table("### Which functions each command calls");
    let cert = pki("alice.pem");
    let mut checked = Vec::new();
    for row in rows {
        let command = ticked(&row[0]).join(" ");
        let want = ticked(&row[1]);
        let args: Vec<String> = command
            .split_whitespace()
            .skip(1) // smimekit
            .map(|w| match w {
                "ADDRESS" => "alice@example.org".to_string(),
                "CERT" => cert.clone(),
                "MSG" => "msg.txt".to_string(),
                "OUT" => "out.eml".to_string(),
                other => other.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = site.trace().len();
        site.ok(&args);
        assert_eq!(site.calls_since(before), want, "{command}");
        checked.push(command);
    }
    for needed in [
        "lookup",
        "encrypt",
        "publish",
        "unpublish",
        "directory audit",
    ] {
        assert!(
            checked.iter().any(|c| c.contains(needed)),
            "the table lacks {needed}: {checked:?}"
        );
    }
}

/// "Status codes": the exit code of a directory call and of a key-store call returning each
/// status, as the table says, checked through `lookup` and `sign --key`.
#[test]
fn statuses_give_the_documented_exit_codes() {
    let site = Site::new(&[], "");
    let rows = doc_table("## 3. Status codes");
    let mut seen = Vec::new();
    for row in &rows {
        let code: u32 = row[0].parse().unwrap_or_else(|_| panic!("{row:?}"));
        let name = row[1].trim_matches('`');
        assert_eq!(
            smimekit_plugin_abi::Status(code).c_name(),
            Some(name),
            "{row:?}"
        );
        seen.push(code);
        if code == 0 {
            continue;
        }
        let want = |cell: &str| -> i32 {
            cell.parse()
                .unwrap_or_else(|_| panic!("exit code cell {cell:?} in {row:?}"))
        };
        let out = site.cli(&["lookup", &format!("status-{code}@example.org")]);
        assert_eq!(
            out.status.code(),
            Some(want(&row[3])),
            "{name} from dir_lookup: {}",
            show("lookup", &out)
        );
        let out = site.cli(&[
            "sign",
            "--key",
            &format!("trace-ks:{code}"),
            "--in",
            "msg.txt",
            "--out",
            "signed.eml",
        ]);
        assert_eq!(
            out.status.code(),
            Some(want(&row[4])),
            "{name} from store_open: {}",
            show("sign", &out)
        );
        // The plugin's message reaches the person word for word.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("status {code}"))
                || code == smimekit_plugin_abi::Status::BAD_SECRET.0,
            "{}",
            show("sign", &out)
        );
    }
    let all: Vec<u32> = smimekit_plugin_abi::Status::ALL
        .iter()
        .map(|s| s.2)
        .collect();
    assert_eq!(seen, all, "the table lists every status, in order");
}
