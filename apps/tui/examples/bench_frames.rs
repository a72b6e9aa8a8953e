//! In-process frame timings for `cargo xtask bench-tui` (issue 15's benchmark): the console's
//! own cost, without a terminal in between. `bench_frames CONFIG KEYSTROKES` loads CONFIG and
//! builds the service as `smimekit-tui` does, starts the console's tasks through its runner,
//! and draws a frame on an 80×24 `TestBackend` after each result, as the console's loop does.
//! The first frame is the first People screen with people in it (checked: it shows the first
//! person by address and a screenful of rows); the whole list is in when everyone read is on
//! it. Then it types `KEYSTROKES` filter keys over everyone (narrowing as a person types,
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
use smimekit_tui::app::{App, Extent, Msg};
use smimekit_tui::runner::Runner;
use smimekit_tui::ui;
use tokio::sync::mpsc;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, keystrokes] = args.as_slice() else {
        bail!("usage: bench_frames CONFIG KEYSTROKES");
    };
    let keystrokes: usize = keystrokes.parse().context("KEYSTROKES")?;
    let rt = tokio::runtime::Runtime::new()?;
    let _entered = rt.enter();

    let start = Instant::now();
    let config = Config::load(Some(&PathBuf::from(config)))?;
    let config_at = start.elapsed();
    let service = Service::builder().config(config).build()?;
    let service_at = start.elapsed();
    let mut app = App::new(false, false, false);
    let (tx, mut results) = mpsc::unbounded_channel();
    let mut runner = Runner::new(service, None, tx);
    for t in app.start() {
        runner.spawn(t);
    }
    let mut term = Terminal::new(TestBackend::new(80, 24))?;
    // The loop's frame before anything is read.
    term.draw(|f| ui::draw(f, &mut app))?;
    let mut first = None;
    let mut first_part = None;
    let whole = loop {
        let Some(msg) = rt.block_on(results.recv()) else {
            bail!("the runner stopped before the people were read");
        };
        if let Msg::People(Err(e)) = &msg {
            bail!("reading people: {}", e.message);
        }
        if let Msg::PeopleFirst(rows) = &msg {
            first_part = Some((start.elapsed(), rows.len()));
        }
        app.message(msg);
        term.draw(|f| ui::draw(f, &mut app))?;
        if first.is_none() && !app.people.rows.is_empty() {
            first = Some(start.elapsed());
            check_first_frame(&term, &app)?;
        }
        if app.people.extent == Extent::All {
            break start.elapsed();
        }
    };
    let first = first.context("the store holds nobody")?;
    let people = app.people.rows.len();

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
            "config_ms": ms(config_at),
            "service_ms": ms(service_at),
            "first_people": first_part.map(|(_, n)| n),
            "first_people_ms": first_part.map(|(t, _)| ms(t)),
            "first_frame_ms": ms(first),
            "whole_list_ms": ms(whole),
            "keystrokes": lat.len(),
            "keystroke_p50_ms": q(0.50),
            "keystroke_p99_ms": q(0.99),
            "keystroke_max_ms": lat.last().map_or(0.0, |d| ms(*d)),
        })
    );
    rt.block_on(runner.shutdown())?;
    Ok(())
}

/// The first frame is a full one: the People screen with the first person by address on the
/// first row and the list filled (as many rows as it has room for, or everyone).
fn check_first_frame(term: &Terminal<TestBackend>, app: &App) -> Result<()> {
    let buf = term.backend().buffer();
    let lines: Vec<String> = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect();
    let p = &app.people;
    let wanted = app.page.min(p.shown.len());
    let drawn = p
        .shown
        .iter()
        .take(wanted)
        .filter(|i| lines.iter().any(|l| l.starts_with(&p.rows[**i].address)))
        .count();
    let head = p.shown.first().map(|i| p.rows[*i].address.as_str());
    if wanted == 0 || drawn < wanted || !lines.iter().any(|l| l.contains("1:People")) {
        bail!(
            "the first frame is not a full People screen (the first person {head:?}, {drawn} of {wanted} rows):\n{}",
            lines.join("\n")
        );
    }
    Ok(())
}
