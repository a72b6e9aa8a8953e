//! Watching a service job on the terminal: a progress bar on standard error when a person is
//! watching, and Ctrl-C to stop it between items (those in flight finish, the rest are reported
//! not done); a second Ctrl-C ends the process at once.

use std::io::IsTerminal as _;

use smimekit_service::{Job, ServiceError};

/// Runs `job` to its end, showing its events; `items` names what it works on (`items`, `steps`).
pub async fn watch<T: Send + 'static>(
    mut job: Job<T>,
    items: &'static str,
) -> Result<T, ServiceError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let canceller = job.canceller();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "smimekit: interrupted: finishing the {items} in flight (Ctrl-C again to quit now)"
            );
            canceller.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    while let Some(e) = job.next_event().await {
        if let Some(b) = &bar {
            b.set_length(e.total as u64);
            b.set_position(e.done as u64);
            if let Some(item) = e.current_item {
                b.set_message(item);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let r = job.await;
    interrupt.abort();
    r
}
