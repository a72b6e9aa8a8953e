//! The console, end to end: the real `smimekit-tui` in a detached tmux session at 80×24, driven
//! with `send-keys` and read with `capture-pane`, over the deploy tests' world (the local
//! directory in the store, the Exchange Online emulator and slapd, started here). It starts,
//! filters to one person and reads its certificate, opens the plan, skips one change, applies
//! the rest with `--write`, and the directories are checked; the audit log shows the writes,
//! a password-protected key store opens through the PIN dialog, and `q` quits with exit 0.
//!
//! Every step waits on what the screen shows (capture-pane polled until the text appears, a
//! generous deadline), never on a guessed time.
//!
//! It is a child of `deploy` to share that module's world (`World`, the test CA) unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Setup, World, person, thumb};
use crate::common::{p, smimekit_bin};

/// How long any one step may take on a busy machine before the test fails.
const STEP: Duration = Duration::from_secs(90);

/// A tmux server of its own (a private socket) with one session running the console.
struct Tmux {
    socket: String,
    /// The command's exit status is written here when it ends.
    exit_file: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, args: &[String], env: &[(&str, String)]) -> Self {
        let bin =
            smimekit_bin().with_file_name(format!("smimekit-tui{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "{} is missing: build it first (`cargo xtask test` builds every binary before the tests)",
            bin.display()
        );
        let socket = format!("smimekit-tui-{}", std::process::id());
        let exit_file = dir.join("tui.exit");
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = String::from("cd ");
        line.push_str(&quote(&p(dir)));
        line.push_str(" && env -u SMIMEKIT_PASSWORD -u SMIMEKIT_PIN NO_COLOR=1");
        for (k, v) in env {
            line.push_str(&format!(" {k}={}", quote(v)));
        }
        line.push(' ');
        line.push_str(&quote(&p(&bin)));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push_str(&format!("; echo $? > {}", quote(&p(&exit_file))));
        let out = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-s", "tui", "-x", "80", "-y", "24", "sh", "-c", &line])
            .output()
            .expect("tmux runs (xtask setup installs it)");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Self { socket, exit_file };
        // Esc goes to the console at once, not after tmux's wait for an escape sequence.
        t.tmux(&["set-option", "-s", "escape-time", "0"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// The screen as text.
    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "tui"]).stdout)
            .into_owned()
    }

    /// Keys, in tmux's names (`Enter`, `Escape`, `Space`) or literal text (`-l`).
    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "tui"];
        a.extend(keys);
        assert!(self.tmux(&a).status.success(), "send-keys {keys:?}");
    }

    fn text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "tui", "-l", text])
                .status
                .success(),
            "send-keys -l {text:?}"
        );
    }

    /// Polls the screen until it shows everything in `want`; returns that screen.
    fn wait_for(&self, want: &[&str]) -> String {
        self.wait_until(&format!("{want:?}"), |s| want.iter().all(|w| s.contains(w)))
    }

    fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let s = self.capture();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the console did not show {what} within {STEP:?}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the command to end; its exit status.
    fn wait_exit(&self) -> i32 {
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.exit_file)
                && let Ok(code) = s.trim().parse()
            {
                return code;
            }
            if Instant::now() > deadline {
                panic!("the console did not exit; the screen:\n{}", self.capture());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

#[test]
fn console_filters_reads_a_certificate_skips_one_change_and_applies_the_rest() {
    let mailboxes = vec!["alice@example.org".to_string(), "bob@example.org".into()];
    let w = World::new(Setup {
        exo_throttle_every: Some(0),
        openldap: true,
        ad: false,
        mailboxes: mailboxes.clone(),
    });
    // Two people already in the local directory (so in the store's inventory): alice, and
    // carol whom the deploy file does not name.
    let alice = w.person_cert("alice@example.org");
    let bob = w.person_cert("bob@example.org");
    let carol = w.ca.valid("carol@example.org");
    // Outside certs/, the folder the deploy file names.
    std::fs::write(
        w.path("carol.pem"),
        smimekit_pki::write_pem(std::slice::from_ref(&carol)),
    )
    .unwrap();
    for (a, f) in [
        ("alice@example.org", "certs/alice@example.org.pem"),
        ("carol@example.org", "carol.pem"),
    ] {
        w.ok(&[
            "publish",
            a,
            "--cert",
            &p(&w.path(f)),
            "--directory",
            "local",
        ]);
    }
    let mut toml =
        String::from("directories = [\"local\", \"exo\", \"corp\"]\n\n[trust]\nca = \"ca\"\n");
    for a in &mailboxes {
        toml.push_str(&person(a, "mailbox", "\"certs\""));
    }
    let file = w.deploy(&toml);

    let env = [("XDG_DATA_HOME", p(&w.path("data")))];
    let args: Vec<String> = ["--config", &w.config, "--write", "--file", &file]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = Tmux::start(w.dir.path(), &args, &env);

    // Start: the People screen, two people, writing enabled.
    let s = t.wait_for(&[
        "2 people",
        "alice@example.org",
        "carol@example.org",
        "WRITE",
    ]);
    assert!(s.contains("1:People"), "{s}");

    // Filter to one person, keep the filter, read the certificate from the directory.
    t.text("/carol");
    let s = t.wait_for(&["/carol_  1 of 2"]);
    assert!(!s.contains("alice@example.org"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for(&["/carol  1 of 2"]);
    t.keys(&["Enter"]);
    let s = t.wait_for(&[
        &format!("SHA-1 {}", thumb(&carol)),
        "can encrypt to them: yes",
    ]);
    assert!(s.contains("local: CN=carol@example.org"), "{s}");

    // The plan: alice is in local already; every other change is to do. The last change is
    // bob's certificate in corp: skip it.
    t.keys(&["2"]);
    let s = t.wait_for(&["approved", "trust chain"]);
    let total = approved_of(&s).1;
    assert!(total >= 5, "{s}");
    t.keys(&["G"]);
    t.wait_for(&["bob@example.org in corp: add"]);
    t.keys(&["Space"]);
    t.wait_for(&[&format!("{} of {total} approved", total - 1)]);

    // Apply the rest: a confirmation first, then the results.
    t.keys(&["a"]);
    let s = t.wait_for(&[&format!("Apply {} approved changes (1 skipped)", total - 1)]);
    assert!(
        s.contains("local") && s.contains("exo") && s.contains("corp"),
        "{s}"
    );
    t.keys(&["y"]);
    let s = t.wait_for(&["applied: ", "not attempted"]);
    assert!(s.contains("· 0 failed · 0 not attempted"), "{s}");

    // The directories: bob everywhere but corp, alice everywhere, the chain where kept.
    let bob_t = thumb(&bob);
    let alice_t = thumb(&alice);
    let local = w.local();
    assert_eq!(
        local.people.get("bob@example.org").map(|(_, t)| t.clone()),
        Some(vec![bob_t.clone()])
    );
    assert_eq!(local.trust, w.ca.chain_thumbs());
    assert_eq!(w.exo_certs("bob@example.org"), Some(vec![bob_t.clone()]));
    assert_eq!(
        w.exo_certs("alice@example.org"),
        Some(vec![alice_t.clone()])
    );
    assert_eq!(
        w.lookup("corp", "alice@example.org").map(|(_, t)| t),
        Some(vec![alice_t])
    );
    assert_eq!(w.lookup("corp", "bob@example.org"), None, "skipped");

    // The audit log: the writes, newest first; the filter narrows it.
    t.keys(&["5"]);
    t.wait_for(&["changes · newest first", "bob@example.org"]);
    t.text("/exo");
    let s = t.wait_for(&["/exo_"]);
    assert!(!s.contains(" local "), "only exo rows:\n{s}");
    // Esc clears it (the next key waits for that: an Esc followed at once by a key is the
    // terminal's Alt-key).
    t.keys(&["Escape"]);
    t.wait_for(&["changes · newest first"]);

    // The trust chains, against the deploy file's (the plan on screen is from before apply).
    t.keys(&["3"]);
    t.wait_for(&["corp", "keeps no trust chain", "local"]);

    // A password-protected key store: the PIN dialog takes the password, never shows it.
    t.keys(&["4", "o"]);
    t.text("ca/issuing.p12");
    t.keys(&["Enter"]);
    t.wait_for(&["nothing is shown as you type"]);
    t.text("test");
    let s = t.capture();
    assert!(!s.contains("test"), "the PIN is on screen:\n{s}");
    t.keys(&["Enter"]);
    let s = t.wait_until("the store listed with 1 key", |s| {
        s.contains("not after") && s.lines().any(|l| l.trim_end().ends_with(" 1 key"))
    });
    assert!(s.contains("Deploy Test"), "{s}");
    assert!(!s.contains("test"), "the password is on screen:\n{s}");

    // q quits with 0 and leaves the alternate screen.
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
}

/// `(approved, total)` from the plan's info line.
fn approved_of(screen: &str) -> (usize, usize) {
    let line = screen
        .lines()
        .find(|l| l.contains(" approved"))
        .unwrap_or_else(|| panic!("no approved count:\n{screen}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "of").unwrap();
    (
        words[at - 1].parse().unwrap(),
        words[at + 1].parse().unwrap(),
    )
}
