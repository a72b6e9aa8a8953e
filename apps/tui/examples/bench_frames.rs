//! In-process frame timings for `cargo xtask bench-tui` (issue 15's benchmark): the console's
//! own cost, without a terminal in between. `bench_frames CONFIG KEYSTROKES` builds the service
//! on CONFIG's store as `smimekit-tui` does, reads every person, draws the first frame on an
//! 80×24 `TestBackend`, then types `KEYSTROKES` filter keys (narrowing as a person types,
//! then Backspace, which widens and rescans everyone), each followed by a full frame, and
//! prints the figures as one JSON object. The figures through a real terminal (tmux) are
//! taken by xtask around the release binary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use smimekit_service::{Config, Service};
use smimekit_tui::app::{App, EXPIRING_DAYS, Msg};
use smimekit_tui::ui;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, keystrokes] = args.as_slice() else {
        bail!("usage: bench_frames CONFIG KEYSTROKES");
    };
    let keystrokes: usize = keystrokes.parse().context("KEYSTROKES")?;
    let rt = tokio::runtime::Runtime::new()?;

    let start = Instant::now();
    let config = Config::load(Some(&PathBuf::from(config)))?;
    let service = Service::builder().config(config).build()?;
    let rows = rt.block_on(service.people_all(EXPIRING_DAYS))?;
    let read = start.elapsed();
    let people = rows.len();
    let mut app = App::new(false, false, false);
    app.message(Msg::People(Ok(rows)));
    let mut term = Terminal::new(TestBackend::new(80, 24))?;
    term.draw(|f| ui::draw(f, &mut app))?;
    let first = start.elapsed();

    let key = |c: KeyCode| KeyEvent::new(c, KeyModifiers::NONE);
    app.key(key(KeyCode::Char('/')));
    term.draw(|f| ui::draw(f, &mut app))?;
    // Rounds of typing an address prefix one key at a time, then erasing it.
    let mut keys = Vec::new();
    let mut round = 0usize;
    while keys.len() < keystrokes {
        let prefix = format!("user0{:04}", (round * 3_719) % 10_000);
        keys.extend(prefix.chars().map(KeyCode::Char));
        keys.extend(std::iter::repeat_n(KeyCode::Backspace, prefix.len()));
        round += 1;
    }
    keys.truncate(keystrokes);
    let mut lat: Vec<Duration> = Vec::with_capacity(keys.len());
    let mut narrowest = usize::MAX;
    for k in keys {
        let t = Instant::now();
        app.key(key(k));
        term.draw(|f| ui::draw(f, &mut app))?;
        lat.push(t.elapsed());
        narrowest = narrowest.min(app.people.shown.len());
    }
    if narrowest == 0 || narrowest >= people {
        bail!("the filter did not narrow the list ({narrowest} of {people} shown)");
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let q = |p: f64| ms(lat[((lat.len() as f64 - 1.0) * p).round() as usize]);
    println!(
        "{}",
        serde_json::json!({
            "people": people,
            "read_people_ms": ms(read),
            "first_frame_ms": ms(first),
            "keystrokes": lat.len(),
            "keystroke_p50_ms": q(0.50),
            "keystroke_p99_ms": q(0.99),
            "keystroke_max_ms": lat.last().map_or(0.0, |d| ms(*d)),
        })
    );
    rt.block_on(service.shutdown())?;
    Ok(())
}
