//! `cargo xtask man`: the manual pages in `docs/man/` and the shell completions the package
//! installs, rendered from the clap definitions of `smimekit`, `smimekit-web` and `smimekit-tui`
//! (their libraries expose them: `smimekit_cli::cli`, `smimekit_web::cli`, `smimekit_tui::cli`).
//!
//! One section-1 page per command and subcommand (clap_mangen: `smimekit.1`,
//! `smimekit-publish.1`, `smimekit-ca-issue.1`, …, `smimekit-web.1`, `smimekit-tui.1`) is written
//! to the committed folder; the section-5 pages of the configuration and deploy-file formats
//! (`smimekit-config.5`, `smimekit-deploy.5`) are written by hand there. The tests below keep
//! the generated pages equal to a fresh rendering, as `docs/lint.md` is kept with the lint
//! table, and the hand-written ones naming every key README documents. Completions are not
//! committed: `cargo xtask dist` renders them into the package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;

/// Where the pages live, relative to the workspace root.
pub const MAN_DIR: &str = "docs/man";

/// The hand-written pages (not generated, never removed by `cargo xtask man`).
pub const HAND_WRITTEN: &[&str] = &["smimekit-config.5", "smimekit-deploy.5"];

/// The three binaries' command lines, as their `main`s parse them.
fn commands() -> Vec<clap::Command> {
    vec![
        smimekit_cli::cli::Cli::command(),
        smimekit_web::cli::Cli::command(),
        smimekit_tui::cli::Args::command(),
    ]
}

/// Every generated page: file name (`smimekit-publish.1`) → roff.
pub fn generated() -> Result<BTreeMap<String, Vec<u8>>> {
    let mut pages = BTreeMap::new();
    for mut cmd in commands() {
        // build() gives each subcommand its display name (`smimekit-ca-issue`), which names
        // its page and its SYNOPSIS.
        cmd.build();
        render(&cmd, &mut pages)?;
    }
    Ok(pages)
}

/// `cmd`'s page and those of its subcommands (the hidden ones and clap's `help` have none).
fn render(cmd: &clap::Command, pages: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            render(sub, pages)?;
        }
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut roff = Vec::new();
    man.render(&mut roff)
        .with_context(|| format!("rendering {}", man.get_filename()))?;
    roff.extend_from_slice(see_also(cmd).as_bytes());
    pages.insert(man.get_filename(), roff);
    Ok(())
}

/// A SEE ALSO section: the parent command's page and the format pages.
fn see_also(cmd: &clap::Command) -> String {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let mut refs = Vec::new();
    if let Some((parent, _)) = name.rsplit_once('-')
        && name != "smimekit-web"
        && name != "smimekit-tui"
    {
        refs.push(format!("\\fB{parent}\\fR(1)"));
    }
    if name != "smimekit" {
        refs.push("\\fBsmimekit\\fR(1)".to_string());
    }
    refs.dedup();
    refs.push("\\fBsmimekit\\-config\\fR(5)".to_string());
    refs.push("\\fBsmimekit\\-deploy\\fR(5)".to_string());
    format!(
        ".SH \"SEE ALSO\"\n{}\n",
        refs.join(", ").replace("smimekit-", "smimekit\\-")
    )
}

/// `cargo xtask man`: writes every generated page to `docs/man/`, removes generated pages of
/// commands that are gone, and checks the hand-written ones are there.
pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask man");
    }
    let dir = crate::root().join(MAN_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = generated()?;
    for stale in on_disk(&dir)?.keys().filter(|n| !pages.contains_key(*n)) {
        let path = dir.join(stale);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        eprintln!("man: removed {stale}");
    }
    for (name, roff) in &pages {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(roff.as_slice()) {
            std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("man: wrote {name}");
        }
    }
    for name in HAND_WRITTEN {
        if !dir.join(name).is_file() {
            bail!("{MAN_DIR}/{name}: the hand-written page is missing");
        }
    }
    eprintln!("man: {} generated pages in {MAN_DIR}", pages.len());
    Ok(())
}

/// The generated pages (`*.1`) in `dir`, with their bytes.
fn on_disk(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".1") {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            out.insert(name.to_string(), bytes);
        }
    }
    Ok(out)
}

/// Every page (generated and hand-written) as the package installs it: file name → roff.
pub fn all_pages() -> Result<BTreeMap<String, Vec<u8>>> {
    let mut pages = generated()?;
    let dir = crate::root().join(MAN_DIR);
    for name in HAND_WRITTEN {
        let path = dir.join(name);
        let roff = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        pages.insert((*name).to_string(), roff);
    }
    Ok(pages)
}

/// Completion scripts for bash, zsh and fish of every binary: path below the package root
/// (`usr/share/bash-completion/completions/smimekit`, …) → script.
pub fn completions() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for mut cmd in commands() {
        let bin = cmd.get_name().to_string();
        for (shell, path) in [
            (
                Shell::Bash,
                format!("usr/share/bash-completion/completions/{bin}"),
            ),
            (
                Shell::Zsh,
                format!("usr/share/zsh/vendor-completions/_{bin}"),
            ),
            (
                Shell::Fish,
                format!("usr/share/fish/vendor_completions.d/{bin}.fish"),
            ),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, &bin, &mut script);
            out.insert(PathBuf::from(path), script);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/man/ holds exactly the pages the clap definitions render today; `cargo xtask man`
    /// rewrites them.
    #[test]
    fn docs_man_matches_the_clap_definitions() {
        let dir = crate::root().join(MAN_DIR);
        let pages = generated().unwrap();
        let disk = on_disk(&dir).unwrap();
        let mut problems = Vec::new();
        for (name, roff) in &pages {
            match disk.get(name) {
                None => problems.push(format!("{name} is missing")),
                Some(b) if b != roff => problems.push(format!("{name} differs")),
                Some(_) => {}
            }
        }
        for name in disk.keys().filter(|n| !pages.contains_key(*n)) {
            problems.push(format!("{name} names no command"));
        }
        assert!(
            problems.is_empty(),
            "{MAN_DIR} is out of step with the CLI (run `cargo xtask man`): {problems:?}"
        );
    }

    /// One page per command and subcommand, nested ones included, for each binary.
    #[test]
    fn every_command_and_subcommand_has_a_page() {
        let pages = generated().unwrap();
        for name in [
            "smimekit.1",
            "smimekit-publish.1",
            "smimekit-ca.1",
            "smimekit-ca-issue.1",
            "smimekit-plugins-check.1",
            "smimekit-web.1",
            "smimekit-web-serve.1",
            "smimekit-web-user-add.1",
            "smimekit-tui.1",
        ] {
            assert!(pages.contains_key(name), "{name}: {:?}", pages.keys());
        }
        fn count(cmd: &clap::Command) -> usize {
            1 + cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                .map(count)
                .sum::<usize>()
        }
        let expected: usize = commands().iter().map(count).sum();
        assert_eq!(pages.len(), expected);
        let publish = String::from_utf8_lossy(&pages["smimekit-publish.1"]);
        assert!(publish.contains("smimekit\\-publish"), "{publish}");
        assert!(publish.contains("\\-\\-replace"), "{publish}");
        assert!(publish.contains("smimekit\\-config\\fR(5)"), "{publish}");
    }

    /// The README's keys (a TOML example or a key table of a section) that a page must name.
    fn readme_keys(section: &str) -> Vec<String> {
        let readme = std::fs::read_to_string(crate::root().join("README.md")).unwrap();
        let start = readme
            .find(&format!("\n## {section}\n"))
            .unwrap_or_else(|| panic!("README has no section {section:?}"));
        let body = &readme[start + 1..];
        let body = &body[..body[3..].find("\n## ").map_or(body.len(), |e| e + 3)];
        let mut keys = Vec::new();
        let mut in_toml = false;
        for line in body.lines() {
            if line.starts_with("```") {
                in_toml = line == "```toml";
                continue;
            }
            if in_toml {
                // `key = value`, commented out or not; tables and comments are skipped.
                let l = line.trim_start_matches('#').trim();
                if let Some((k, _)) = l.split_once(" = ")
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    keys.push(k.to_string());
                }
            } else if let Some(first) = line.strip_prefix("| `") {
                // A key table: the first column's backticked names.
                let cell = first.split(" |").next().unwrap_or("");
                for part in format!("`{cell}").split('`').skip(1).step_by(2) {
                    let key = part.rsplit(' ').next().unwrap_or(part);
                    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        keys.push(key.to_string());
                    }
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn page(name: &str) -> String {
        // roff escapes '-' and '_' is literal; compare on the unescaped text.
        std::fs::read_to_string(crate::root().join(MAN_DIR).join(name))
            .unwrap()
            .replace("\\-", "-")
    }

    /// smimekit-deploy(5) names every key of README "The deploy file".
    #[test]
    fn the_deploy_page_names_every_deploy_file_key() {
        let keys = readme_keys("The deploy file");
        assert!(keys.len() > 10, "{keys:?}");
        let text = page("smimekit-deploy.5");
        let missing: Vec<&String> = keys.iter().filter(|k| !text.contains(k.as_str())).collect();
        assert!(missing.is_empty(), "smimekit-deploy.5 lacks {missing:?}");
    }

    /// smimekit-config(5) names every configuration key README documents (the store, local,
    /// LDAP and Exchange Online directories).
    #[test]
    fn the_config_page_names_every_configuration_key() {
        let mut keys = Vec::new();
        for section in [
            "Configuration",
            "LDAP and Active Directory",
            "Deploy S/MIME to Exchange Online",
        ] {
            keys.extend(readme_keys(section));
        }
        assert!(keys.len() > 30, "{keys:?}");
        let text = page("smimekit-config.5");
        let missing: Vec<&String> = keys.iter().filter(|k| !text.contains(k.as_str())).collect();
        assert!(missing.is_empty(), "smimekit-config.5 lacks {missing:?}");
    }

    #[test]
    fn completions_for_three_shells_of_each_binary() {
        let c = completions();
        assert_eq!(c.len(), 9);
        let bash = String::from_utf8_lossy(
            &c[Path::new("usr/share/bash-completion/completions/smimekit")],
        );
        assert!(bash.contains("publish"), "{bash}");
        assert!(c.contains_key(Path::new("usr/share/zsh/vendor-completions/_smimekit-web")));
        assert!(c.contains_key(Path::new(
            "usr/share/fish/vendor_completions.d/smimekit-tui.fish"
        )));
    }
}
