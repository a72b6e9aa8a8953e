//! `smimekit`: the command-line front end. Parses arguments, builds requests, calls
//! `smimekit-service`, renders text or JSON, and maps failures to the documented exit codes.

#[macro_use]
mod io;
mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.json;
    logging::init(cli.verbose);
    // One command, one thread: a worker pool would only add start-up cost to every run.
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
