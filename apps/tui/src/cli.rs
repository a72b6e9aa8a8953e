//! The `smimekit-tui` command line (clap): what `main` parses, and what `cargo xtask man`
//! renders as the smimekit-tui(1) manual page. Definitions only; `main` runs them.

use std::path::PathBuf;

use clap::Parser;

/// The smimekit console: people, the deploy plan and its apply, in a terminal.
#[derive(Debug, Parser)]
#[command(name = "smimekit-tui", version)]
pub struct Args {
    /// The configuration file (default: as `smimekit` finds it).
    #[arg(long, value_name = "F")]
    pub config: Option<PathBuf>,
    /// Allow changes (apply); without it the console only reads.
    #[arg(long)]
    pub write: bool,
    /// The deploy file whose plan the Plan screen shows.
    #[arg(long, value_name = "deploy.toml")]
    pub file: Option<PathBuf>,
}
