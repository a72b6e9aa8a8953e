//! `smimekit`: the command-line front end. Parses arguments, builds requests, calls
//! `smimekit-service`, renders text or JSON, and maps failures to the documented exit codes.

#[macro_use]
mod io;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
// `crate::cli` for the command bodies: the definitions live in the library (xtask renders them).
use smimekit_cli::cli;

fn main() -> ExitCode {
    // --version and -V: the version, the git revision and the OpenSSL in use (run time).
    let matches = cli::Cli::command()
        .version(smimekit_cli::version())
        .get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let json = cli.json;
    logging::init(cli.verbose);
    // The command runs on this thread; what it spawns runs on a worker per core (at most
    // four), beside it: `plan` reads the directories on a task of its own while the command
    // prepares the rest on CPU, and a one-thread runtime would wait for each CPU stretch.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smimekit: cannot start the runtime: {e}");
            return ExitCode::from(commands::EXIT_IO);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = commands::exit_code(&e);
            let text = commands::render(&e);
            if json {
                let body = serde_json::json!({ "error": text, "exit_code": code });
                outln!("{body}");
            }
            eprintln!("smimekit: {text}");
            ExitCode::from(code)
        }
    }
}
