//! `smimekit-tui [--config F] [--write] [--file deploy.toml]`: sets up the terminal, the
//! service and the loop (keys and service results in, a frame out), and restores the terminal
//! on every way out: `q`, Ctrl-C (a key in raw mode), SIGINT/SIGTERM, an error or a panic
//! (ratatui's hook).

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use smimekit_service::Service;
use smimekit_tui::app::{App, Msg};
use smimekit_tui::cli::Args;
use smimekit_tui::runner::Runner;
use smimekit_tui::ui;
use tokio::sync::mpsc;

enum Input {
    Event(Event),
    Service(Msg),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("smimekit-tui: starting the runtime: {e}");
            return std::process::ExitCode::from(5);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smimekit-tui: {e:#}");
            std::process::ExitCode::from(5)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let config = smimekit_service::Config::load(args.config.as_deref())?;
    // The Keys screen lists the configured key stores; a PKCS#11 table is its module's token.
    let key_stores: Vec<(String, String)> = config
        .keystores
        .iter()
        .map(|k| (k.name.clone(), format!("pkcs11:?module-name={}", k.name)))
        .collect();
    let service = Service::builder()
        .config(config)
        .plugin_path_env(std::env::var_os("SMIMEKIT_PLUGIN_PATH"))
        .actor(smimekit_service::os_user(), "tui")
        .build()?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(args.write, color, args.file.is_some()).with_key_stores(key_stores);

    let (tx, mut results) = mpsc::unbounded_channel();
    let mut runner = Runner::new(service, args.file.clone(), tx);
    for t in app.start() {
        runner.spawn(t);
    }

    // Terminal events are read on a thread of their own (crossterm's read blocks).
    let (etx, mut events) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if etx.send(ev).is_err() {
                break;
            }
        }
    });

    let mut terminal = ratatui::init();
    let outcome = event_loop(
        &mut terminal,
        &mut app,
        &mut runner,
        &mut events,
        &mut results,
    )
    .await;
    ratatui::restore();
    let closed = runner.shutdown().await;
    outcome?;
    closed?;
    Ok(())
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    runner: &mut Runner,
    events: &mut mpsc::UnboundedReceiver<Event>,
    results: &mut mpsc::UnboundedReceiver<Msg>,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        terminal.draw(|f| ui::draw(f, app))?;
        let first = tokio::select! {
            Some(ev) = events.recv() => Some(Input::Event(ev)),
            Some(msg) = results.recv() => Some(Input::Service(msg)),
            _ = tick.tick(), if app.busy().is_some() => {
                app.tick = app.tick.wrapping_add(1);
                None
            }
            _ = tokio::signal::ctrl_c() => { app.quit = true; None }
            _ = term.recv() => { app.quit = true; None }
        };
        // Everything already waiting is handled before the next frame.
        let mut inputs: Vec<Input> = first.into_iter().collect();
        while let Ok(ev) = events.try_recv() {
            inputs.push(Input::Event(ev));
        }
        while let Ok(msg) = results.try_recv() {
            inputs.push(Input::Service(msg));
        }
        for input in inputs {
            let tasks = match input {
                Input::Event(Event::Key(k)) if k.kind != KeyEventKind::Release => app.key(k),
                Input::Event(_) => Vec::new(),
                Input::Service(m) => app.message(m),
            };
            for t in tasks {
                runner.spawn(t);
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}
