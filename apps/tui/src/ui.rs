//! Drawing: one frame from the [`App`] state, never waiting on anything. Only the visible
//! rows of a list are built, so 100,000 people cost what a page of them costs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};
use smimekit_service::deploy::Plan;
use smimekit_service::deploy::plan::{CertRef, ChangeAction, RemoveReason};
use smimekit_service::{PersonStatus, RecipientKind};

use crate::app::{
    Against, App, Detail, Extent, Held, ItemRef, KeysState, Load, PlanView, SCREENS, Screen,
    TrustRow, item_text,
};
use crate::keymap;

const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

/// Draws the whole screen.
pub fn draw(f: &mut Frame<'_>, app: &mut App) {
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app);
    match app.screen {
        Screen::People => draw_people(f, body, app),
        Screen::Plan => draw_plan(f, body, app),
        Screen::Trust => draw_trust(f, body, app),
        Screen::Keys => draw_keys(f, body, app),
        Screen::Audit => draw_audit(f, body, app),
    }
    draw_status(f, status, app);
    if let Some(scroll) = app.help {
        draw_help(f, body, app, scroll);
    }
    if let Some(c) = &app.confirm {
        popup(
            f,
            body,
            app,
            "Confirm",
            &format!("{}\n\ny: yes   n: no", c.question),
        );
    }
    if let Some(pin) = &app.pin {
        // Nothing of what is typed is drawn, not even its length.
        let tries = pin
            .tries_left
            .map(|t| format!(" · {t} tries left"))
            .unwrap_or_default();
        popup(
            f,
            body,
            app,
            "PIN",
            &format!(
                "{}\n({}{tries})\n\nType it: nothing is shown as you type.\nEnter: unlock   Esc: cancel",
                pin.object, pin.hint
            ),
        );
    }
    if let Some(m) = &app.message {
        popup(f, body, app, "Message", &format!("{m}\n\nEsc: dismiss"));
    }
}

fn style(app: &App, s: Style) -> Style {
    if app.color {
        s
    } else {
        // NO_COLOR: modifiers only.
        Style::default().add_modifier(s.add_modifier)
    }
}

fn draw_header(f: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(
        " smimekit ",
        style(app, Style::new().fg(Color::Black).bg(Color::Cyan)).add_modifier(Modifier::BOLD),
    )];
    for (i, s) in SCREENS.iter().enumerate() {
        let text = format!(" {}:{}", i + 1, s.title());
        spans.push(if *s == app.screen {
            Span::styled(text, Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Span::raw(text)
        });
    }
    spans.push(Span::raw("  "));
    if app.write {
        spans.push(Span::styled(
            "WRITE",
            style(app, Style::new().fg(Color::Red)).add_modifier(Modifier::BOLD),
        ));
    } else {
        spans.push(Span::styled(
            "read-only",
            style(app, Style::new().fg(Color::Green)),
        ));
    }
    if let Some(what) = app.busy() {
        spans.push(Span::raw(format!(
            "  {} {what}",
            SPINNER[app.tick % SPINNER.len()]
        )));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(f: &mut Frame<'_>, area: Rect, app: &App) {
    if let Some(line) = &app.palette {
        f.render_widget(Paragraph::new(format!(":{line}_")), area);
        return;
    }
    let mut spans = Vec::new();
    for (key, help) in keymap::hints(app.context()) {
        spans.push(Span::styled(
            key,
            style(app, Style::new().fg(Color::Yellow)).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!(" {help}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn kind(k: Option<RecipientKind>) -> &'static str {
    match k {
        Some(RecipientKind::Mailbox) => "mailbox",
        Some(RecipientKind::Contact) => "contact",
        None => "?",
    }
}

fn status_style(app: &App, s: PersonStatus) -> Style {
    style(
        app,
        match s {
            PersonStatus::Ready => Style::new().fg(Color::Green),
            PersonStatus::Expiring => Style::new().fg(Color::Yellow),
            PersonStatus::NotReady => Style::new().fg(Color::Red),
        },
    )
}

/// Keeps the selection on screen for a list of `page` rows.
fn scroll(selected: usize, offset: &mut usize, page: usize) {
    if selected < *offset {
        *offset = selected;
    } else if page > 0 && selected >= *offset + page {
        *offset = selected + 1 - page;
    }
}

fn draw_people(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let detail_h = if area.height >= 18 { 8 } else { 0 };
    let [info, list, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(detail_h),
    ])
    .areas(area);
    let p = &app.people;
    let first = p.extent == Extent::First;
    // While only the first people are in, the count says so: "of ?" until everyone is.
    let of = match (first, p.loading) {
        (false, _) => p.rows.len().to_string(),
        (true, true) => format!("{} loaded, loading…", p.rows.len()),
        (true, false) => format!("{} (the first; r reads everyone)", p.rows.len()),
    };
    let line = if p.extent == Extent::Nothing && p.loading {
        " loading people from the store…".to_string()
    } else if p.typing || !p.filter.is_empty() {
        format!(
            " /{}{}  {} of {of} · sort: {}",
            p.filter,
            if p.typing { "_" } else { "" },
            p.shown.len(),
            p.sort.name()
        )
    } else if first && p.loading {
        format!(
            " loading… {} of ? people · sort: {}",
            p.rows.len(),
            p.sort.name()
        )
    } else if first {
        format!(
            " the first {} people (reading the rest failed: r retries) · sort: {}",
            p.rows.len(),
            p.sort.name()
        )
    } else {
        format!(" {} people · sort: {}", p.rows.len(), p.sort.name())
    };
    f.render_widget(Paragraph::new(line), info);

    let page = list.height.saturating_sub(1) as usize;
    app.page = page.max(1);
    let p = &mut app.people;
    scroll(p.selected, &mut p.offset, page);
    let p = &app.people;
    let header = Row::new([
        "address",
        "kind",
        "directories",
        "certs",
        "status",
        "expires",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row<'_>> = p
        .shown
        .iter()
        .enumerate()
        .skip(p.offset)
        .take(page)
        .map(|(n, i)| {
            let r = &p.rows[*i];
            let mut row = Row::new(vec![
                Span::raw(r.address.clone()),
                Span::raw(kind(r.kind)),
                Span::raw(r.directories.join(",")),
                Span::raw(r.certificates.to_string()),
                Span::styled(r.status.name(), status_style(app, r.status)),
                Span::raw(
                    r.earliest_expiry
                        .as_deref()
                        .map_or("-", |e| e.get(..10).unwrap_or(e))
                        .to_string(),
                ),
            ]);
            if n == p.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    // Past the people read so far the list goes on: a line says so under the last row.
    let end = (rows.len() < page && p.extent == Extent::First).then(|| {
        let what = if p.loading {
            format!(
                "{} loading the rest of the list…",
                SPINNER[app.tick % SPINNER.len()]
            )
        } else {
            "… the rest could not be read (r retries)".to_string()
        };
        // Below the header and the rows drawn.
        let y = list.y + 1 + rows.len() as u16;
        (
            what,
            Rect {
                y,
                height: 1,
                ..list
            },
        )
    });
    let widths = [
        Constraint::Min(20),
        Constraint::Length(7),
        Constraint::Length(14),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    f.render_widget(Table::new(rows, widths).header(header), list);
    if let Some((what, at)) = end {
        f.render_widget(
            Paragraph::new(what).style(Style::new().add_modifier(Modifier::DIM)),
            at,
        );
    }
    if detail_h > 0 {
        draw_person_detail(f, detail, app);
    }
}

fn draw_person_detail(f: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::new().borders(Borders::TOP).title(" detail ");
    let mut lines: Vec<Line<'_>> = Vec::new();
    match app.selected_person() {
        None => lines.push(Line::raw(match app.people.extent {
            Extent::Nothing if app.people.loading => "Reading the people from the store…",
            Extent::Nothing => "The people could not be read: r tries again.",
            Extent::First if app.people.loading => {
                "Nobody matches the filter among the people read so far; the rest are loading."
            }
            Extent::First => "Nobody matches the filter among the people read.",
            Extent::All if app.people.rows.is_empty() => {
                "Nobody in the inventory yet: lookups and publishes fill it."
            }
            Extent::All => "Nobody matches the filter.",
        })),
        Some(r) => {
            lines.push(Line::from(vec![
                Span::styled(r.address.clone(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!(" · {} · ", kind(r.kind))),
                Span::styled(r.status.name(), status_style(app, r.status)),
                Span::raw(format!(
                    " · {} certificate{} in {}",
                    r.certificates,
                    if r.certificates == 1 { "" } else { "s" },
                    r.directories.join(", ")
                )),
            ]));
            match &app.people.detail {
                Some((a, Detail::Loading)) if *a == r.address => {
                    lines.push(Line::raw(format!(
                        "{} reading certificates…",
                        SPINNER[app.tick % SPINNER.len()]
                    )));
                }
                Some((a, Detail::Loaded(found))) if *a == r.address => {
                    for d in &found.directories {
                        if let Some(e) = &d.error {
                            lines.push(Line::styled(
                                format!("{}: unreadable: {e}", d.directory),
                                style(app, Style::new().fg(Color::Red)),
                            ));
                            continue;
                        }
                        if d.certificates.is_empty() {
                            lines.push(Line::raw(format!(
                                "{}: {}",
                                d.directory,
                                if d.kind.is_some() {
                                    "no certificate"
                                } else {
                                    "no entry"
                                }
                            )));
                        }
                        for c in &d.certificates {
                            let cert = &c.cert.cert;
                            lines.push(Line::raw(format!(
                                "{}: {} serial {} not after {}",
                                d.directory, cert.subject, cert.serial, cert.not_after
                            )));
                            lines.push(Line::raw(format!("  SHA-1 {}", cert.sha1_thumbprint)));
                            for f in &c.findings {
                                lines.push(Line::styled(
                                    format!("  {} {}: {}", f.severity.name(), f.rule, f.title),
                                    style(
                                        app,
                                        Style::new().fg(match f.severity.name() {
                                            "error" => Color::Red,
                                            "warning" => Color::Yellow,
                                            _ => Color::Reset,
                                        }),
                                    ),
                                ));
                            }
                            if !c.cert.usable_for_encryption {
                                lines.push(Line::styled(
                                    format!(
                                        "  not usable: {}",
                                        c.cert.unusable_reason.as_deref().unwrap_or("unknown")
                                    ),
                                    style(app, Style::new().fg(Color::Red)),
                                ));
                            }
                        }
                        if !d.certificates.is_empty() {
                            // Usable and no lint error against the directory's trust chain.
                            lines.push(if d.can_encrypt {
                                Line::styled(
                                    "  Outlook/OWA can encrypt to them: yes",
                                    style(app, Style::new().fg(Color::Green)),
                                )
                            } else {
                                Line::styled(
                                    "  Outlook/OWA can encrypt to them: no",
                                    style(app, Style::new().fg(Color::Red)),
                                )
                            });
                        }
                    }
                }
                _ => lines.push(Line::raw(
                    "Enter: read the certificates from the directories",
                )),
            }
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_plan(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let plan_view = std::mem::replace(&mut app.plan.view, PlanView::Loading);
    match &plan_view {
        PlanView::NoFile => f.render_widget(
            Paragraph::new(
                " No deploy file. Start smimekit-tui with --file deploy.toml to review its plan.",
            )
            .wrap(Wrap { trim: false }),
            area,
        ),
        PlanView::Loading if app.plan.plan.is_none() => f.render_widget(
            Paragraph::new(format!(
                " {} planning: reading the deploy file and the directories…",
                SPINNER[app.tick % SPINNER.len()]
            )),
            area,
        ),
        PlanView::Loading | PlanView::Review => draw_review(f, area, app),
        PlanView::Applying {
            progress,
            finished,
            cancelled,
        } => {
            let mut lines = vec![Line::raw(match progress {
                Some(p) => format!(
                    " {} applying: {} of {} done{}",
                    SPINNER[app.tick % SPINNER.len()],
                    p.done,
                    p.total,
                    if *cancelled {
                        " · cancelling after the current item"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    " {} applying: taking the lock, reading the directories…{}",
                    SPINNER[app.tick % SPINNER.len()],
                    if *cancelled { " · cancelling" } else { "" }
                ),
            })];
            let room = area.height.saturating_sub(1) as usize;
            let skip = finished.len().saturating_sub(room);
            lines.extend(
                finished
                    .iter()
                    .skip(skip)
                    .map(|i| Line::raw(format!("   finished {i}"))),
            );
            f.render_widget(Paragraph::new(lines), area);
        }
        PlanView::Results(report) => draw_results(f, area, app, report),
    }
    app.plan.view = plan_view;
}

fn draw_review(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let Some(plan) = app.plan.plan.as_ref() else {
        f.render_widget(Paragraph::new(" No plan: r plans again."), area);
        return;
    };
    let detail_h = if area.height >= 18 { 7 } else { 0 };
    let [info, list, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(detail_h),
    ])
    .areas(area);
    let approved = app.plan.items.iter().filter(|i| i.approved).count();
    let info_line = if plan.has_changes() {
        format!(
            " {} · {} of {} approved · {}",
            plan.file,
            approved,
            app.plan.items.len(),
            plan.summary.line()
        )
    } else {
        format!(" {} · no changes: nothing to do", plan.file)
    };
    f.render_widget(Paragraph::new(info_line), info);
    let page = list.height as usize;
    app.page = page.max(1);
    scroll(app.plan.selected, &mut app.plan.offset, page);
    let rows: Vec<Row<'_>> = app
        .plan
        .items
        .iter()
        .enumerate()
        .skip(app.plan.offset)
        .take(page)
        .map(|(n, item)| {
            let (dir, target, what) = item_text(plan, &item.at);
            let mark = if item.approved { "[x]" } else { "[ ]" };
            let mut row = Row::new(vec![mark.to_string(), dir, target, what]);
            if !item.approved {
                row = row.style(style(app, Style::new().fg(Color::DarkGray)));
            }
            if n == app.plan.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Length(10),
        Constraint::Length(24),
        Constraint::Min(20),
    ];
    f.render_widget(Table::new(rows, widths), list);
    if detail_h > 0 {
        let lines = app
            .plan
            .items
            .get(app.plan.selected)
            .map(|i| item_detail(plan, &i.at))
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(lines.into_iter().map(Line::raw).collect::<Vec<_>>())
                .block(Block::new().borders(Borders::TOP).title(" change "))
                .wrap(Wrap { trim: false }),
            detail,
        );
    }
}

fn cert_lines(c: &CertRef) -> Vec<String> {
    vec![
        format!("  {}", c.subject),
        format!("  serial {} · not after {}", c.serial, c.not_after),
        format!("  SHA-1 {}", c.thumbprint),
    ]
}

/// The selected change in full.
fn item_detail(plan: &Plan, at: &ItemRef) -> Vec<String> {
    match at {
        ItemRef::Issue(i) => {
            let s = &plan.issue[*i];
            let mut l = vec![format!(
                "{} a certificate for {} with CA {}, to publish in {}",
                s.action,
                s.address,
                s.ca,
                s.directories.join(", ")
            )];
            if let Some(old) = &s.replaces {
                l.push("replaces".into());
                l.extend(cert_lines(old));
            }
            l
        }
        ItemRef::Trust { dir } => {
            let d = &plan.directories[*dir];
            let mut l = vec![format!("{}: upload the trust chain", d.name)];
            if let Some(t) = &d.trust {
                for c in &t.add {
                    l.push(format!("+ {} (SHA-1 {})", c.subject, c.thumbprint));
                }
                for c in &t.remove {
                    l.push(format!("- {} (SHA-1 {})", c.subject, c.thumbprint));
                }
            }
            l
        }
        ItemRef::Change {
            dir,
            person,
            change,
        } => {
            let d = &plan.directories[*dir];
            let p = &d.people[*person];
            let mut l = Vec::new();
            let head = if p.create_contact {
                format!("{} in {} (contact to create)", p.address, d.name)
            } else {
                format!("{} in {}", p.address, d.name)
            };
            match &p.changes[*change] {
                ChangeAction::Add { certificate } => {
                    l.push(format!("{head}: add"));
                    l.extend(cert_lines(certificate));
                }
                ChangeAction::Remove {
                    certificate,
                    reason,
                } => {
                    l.push(format!("{head}: remove ({})", serde_reason(*reason)));
                    l.extend(cert_lines(certificate));
                }
            }
            l.push(if p.ready.encryptable {
                "Outlook/OWA can encrypt to them: yes".into()
            } else {
                format!(
                    "Outlook/OWA can encrypt to them: no ({})",
                    p.ready.reasons.join("; ")
                )
            });
            l
        }
    }
}

fn serde_reason(r: RemoveReason) -> &'static str {
    use RemoveReason as R;
    match r {
        R::Expired => "expired",
        R::Superseded => "superseded",
        R::NotInFile => "no longer in the deploy file",
        R::Unmanaged => "unmanaged, replaced on request",
    }
}

fn draw_results(
    f: &mut Frame<'_>,
    area: Rect,
    app: &mut App,
    report: &smimekit_service::deploy::ApplyReport,
) {
    let detail_h = if area.height >= 14 { 6 } else { 0 };
    let [info, list, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(detail_h),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(format!(
            " applied: {} done · {} unchanged · {} failed · {} not attempted · r: plan again",
            report.done, report.unchanged, report.failed, report.not_attempted
        )),
        info,
    );
    let page = list.height as usize;
    app.page = page.max(1);
    scroll(app.plan.selected, &mut app.plan.offset, page);
    let rows: Vec<Row<'_>> = report
        .steps
        .iter()
        .enumerate()
        .skip(app.plan.offset)
        .take(page)
        .map(|(n, s)| {
            let color = match s.status {
                "done" | "unchanged" => Color::Green,
                "failed" => Color::Red,
                _ => Color::Yellow,
            };
            let what = match &s.error {
                Some(e) => format!("{}: {e}", s.operation),
                None => s.operation.clone(),
            };
            let mut row = Row::new(vec![
                Span::styled(s.status, style(app, Style::new().fg(color))),
                Span::raw(s.directory.clone()),
                Span::raw(s.target.clone()),
                Span::raw(what),
            ]);
            if n == app.plan.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    let widths = [
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(24),
        Constraint::Min(10),
    ];
    f.render_widget(Table::new(rows, widths), list);
    if detail_h > 0
        && let Some(s) = report.steps.get(app.plan.selected)
    {
        // The selected step in full: the directory's own words when it failed.
        let mut lines = vec![format!(
            "{} {} in {}: {}",
            s.operation, s.target, s.directory, s.status
        )];
        if let Some(e) = &s.error {
            lines.push(e.clone());
        }
        if !s.added.is_empty() {
            lines.push(format!("added {}", s.added.join(", ")));
        }
        if !s.removed.is_empty() {
            lines.push(format!("removed {}", s.removed.join(", ")));
        }
        f.render_widget(
            Paragraph::new(lines.into_iter().map(Line::raw).collect::<Vec<_>>())
                .block(Block::new().borders(Borders::TOP).title(" step "))
                .wrap(Wrap { trim: false }),
            detail,
        );
    }
}

/// A list with a detail pane below it when the terminal is tall enough.
fn list_and_detail(area: Rect, detail: u16) -> [Rect; 3] {
    let detail_h = if area.height >= 18 { detail } else { 0 };
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(detail_h),
    ])
    .areas(area)
}

fn detail_pane(f: &mut Frame<'_>, area: Rect, title: &str, lines: Vec<String>) {
    if area.height == 0 {
        return;
    }
    f.render_widget(
        Paragraph::new(lines.into_iter().map(Line::raw).collect::<Vec<_>>())
            .block(
                Block::new()
                    .borders(Borders::TOP)
                    .title(format!(" {title} ")),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn validity_style(app: &App, validity: &str) -> Style {
    style(
        app,
        match validity {
            "valid" => Style::new().fg(Color::Green),
            _ => Style::new().fg(Color::Red),
        },
    )
}

fn draw_trust(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [info, list, detail] = list_and_detail(area, 7);
    let line = match app.trust.load {
        Load::Loaded => {
            let against = if app.plan.plan.is_some() {
                "against the organisation's chain (the deploy file's)"
            } else {
                "no deploy file: nothing to compare with (--file)"
            };
            format!(" {} directories · {against}", app.trust.dirs.len())
        }
        _ => format!(
            " {} reading each directory's trust chain…",
            SPINNER[app.tick % SPINNER.len()]
        ),
    };
    f.render_widget(Paragraph::new(line), info);
    let rows = app.trust_rows();
    let page = list.height as usize;
    app.page = page.max(1);
    scroll(app.trust.selected, &mut app.trust.offset, page);
    let table: Vec<Row<'_>> = rows
        .iter()
        .enumerate()
        .skip(app.trust.offset)
        .take(page)
        .map(|(n, r)| {
            let mut row = match r {
                TrustRow::Directory(d) => {
                    let dir = &app.trust.dirs[*d];
                    let (what, color) = match (&dir.held, app.against(&dir.name)) {
                        (Held::NotKept(_), _) => ("keeps no trust chain".to_string(), None),
                        (Held::Failed(e), _) => (format!("unreadable: {e}"), Some(Color::Red)),
                        (Held::Chain(c), a) => {
                            let n = format!(
                                "{} certificate{}",
                                c.len(),
                                if c.len() == 1 { "" } else { "s" }
                            );
                            match a {
                                Against::NoPlan => (n, None),
                                Against::NotManaged => (format!("{n} · not managed"), None),
                                Against::Matches => {
                                    (format!("{n} · as the organisation's"), Some(Color::Green))
                                }
                                Against::Differs { add, remove } => (
                                    format!(
                                        "{n} · differs: {} missing, {} not the organisation's",
                                        add.len(),
                                        remove.len()
                                    ),
                                    Some(Color::Yellow),
                                ),
                                Against::Note(note) => (format!("{n} · {note}"), None),
                            }
                        }
                    };
                    let s = color.map_or(Style::new(), |c| style(app, Style::new().fg(c)));
                    Row::new(vec![
                        Span::styled(dir.name.clone(), Style::new().add_modifier(Modifier::BOLD)),
                        Span::styled(what, s),
                    ])
                }
                TrustRow::Held { dir, cert } => {
                    let d = &app.trust.dirs[*dir];
                    let Held::Chain(chain) = &d.held else {
                        return Row::new(Vec::<Span<'_>>::new());
                    };
                    let c = &chain[*cert];
                    let foreign = matches!(
                        app.against(&d.name),
                        Against::Differs { remove, .. } if remove.contains(&c.sha1_thumbprint)
                    );
                    Row::new(vec![
                        Span::raw(if foreign { "  ! held" } else { "    held" }),
                        Span::raw(format!(
                            "{} · {} · until {}",
                            c.subject,
                            c.validity,
                            c.not_after.get(..10).unwrap_or(&c.not_after)
                        )),
                    ])
                    .style(if foreign {
                        style(app, Style::new().fg(Color::Yellow))
                    } else {
                        validity_style(app, c.validity)
                    })
                }
                TrustRow::Missing { cert, .. } => Row::new(vec![
                    Span::raw("  + missing"),
                    Span::raw(cert.subject.clone()),
                ])
                .style(style(app, Style::new().fg(Color::Yellow))),
            };
            if n == app.trust.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    let widths = [Constraint::Length(12), Constraint::Min(20)];
    f.render_widget(Table::new(table, widths), list);
    let lines = match rows.get(app.trust.selected) {
        None => vec!["No directory is configured.".to_string()],
        Some(TrustRow::Directory(d)) => {
            let dir = &app.trust.dirs[*d];
            let mut l = vec![format!("directory {}", dir.name)];
            match &dir.held {
                Held::NotKept(why) => l.push(why.clone()),
                Held::Failed(e) => l.push(e.clone()),
                Held::Chain(_) => {}
            }
            l.push(match app.against(&dir.name) {
                Against::NoPlan => {
                    "Start with --file deploy.toml to compare with the organisation's chain."
                        .into()
                }
                Against::NotManaged => "The deploy file does not manage its trust chain.".into(),
                Against::Matches => "Holds exactly the organisation's chain.".into(),
                Against::Differs { add, remove } => format!(
                    "The plan uploads the organisation's chain: {} to add, {} to remove (Plan screen).",
                    add.len(),
                    remove.len()
                ),
                Against::Note(n) => n,
            });
            l
        }
        Some(TrustRow::Held { dir, cert }) => match &app.trust.dirs[*dir].held {
            Held::Chain(chain) => {
                let c = &chain[*cert];
                vec![
                    c.subject.clone(),
                    format!("issuer {}", c.issuer),
                    format!("serial {} · {} .. {}", c.serial, c.not_before, c.not_after),
                    format!("{}{}", c.validity, if c.is_ca { " · CA" } else { "" }),
                    format!("SHA-1 {}", c.sha1_thumbprint),
                ]
            }
            _ => Vec::new(),
        },
        Some(TrustRow::Missing { dir, cert }) => vec![
            format!(
                "In the organisation's chain, not in {}:",
                app.trust.dirs[*dir].name
            ),
            cert.subject.clone(),
            format!("serial {} · not after {}", cert.serial, cert.not_after),
            format!("SHA-1 {}", cert.thumbprint),
        ],
    };
    detail_pane(f, detail, "certificate", lines);
}

fn draw_keys(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [info, list, detail] = list_and_detail(area, 9);
    f.render_widget(
        Paragraph::new(format!(
            " {} key store{} · Enter lists the keys · o opens another by KEYREF",
            app.keys.stores.len(),
            if app.keys.stores.len() == 1 { "" } else { "s" }
        )),
        info,
    );
    let page = list.height.saturating_sub(1) as usize;
    app.page = page.max(1);
    scroll(app.keys.selected, &mut app.keys.offset, page);
    let rows: Vec<Row<'_>> = app
        .keys
        .stores
        .iter()
        .enumerate()
        .skip(app.keys.offset)
        .take(page)
        .map(|(n, s)| {
            let (state, color) = match &s.state {
                KeysState::NotOpened => ("not opened".to_string(), None),
                KeysState::Opening => (
                    format!("{} opening", SPINNER[app.tick % SPINNER.len()]),
                    None,
                ),
                KeysState::Locked(_) => ("locked".to_string(), Some(Color::Yellow)),
                KeysState::Listed(k) => (
                    format!("{} key{}", k.len(), if k.len() == 1 { "" } else { "s" }),
                    Some(Color::Green),
                ),
                KeysState::Failed(_) => ("failed".to_string(), Some(Color::Red)),
            };
            let st = color.map_or(Style::new(), |c| style(app, Style::new().fg(c)));
            let mut row = Row::new(vec![
                Span::raw(s.name.clone()),
                Span::raw(s.reference.clone()),
                Span::styled(state, st),
            ]);
            if n == app.keys.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    let header =
        Row::new(["store", "KEYREF", "state"]).style(Style::new().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(12),
        Constraint::Min(30),
        Constraint::Length(12),
    ];
    f.render_widget(Table::new(rows, widths).header(header), list);
    let lines = match app.keys.stores.get(app.keys.selected) {
        None => vec![
            "No key store is configured ([keystore.NAME] kind = \"pkcs11\").".to_string(),
            "o opens one by KEYREF: a .p12 file or a pkcs11: URI.".to_string(),
        ],
        Some(s) => match &s.state {
            KeysState::NotOpened | KeysState::Opening => vec![format!(
                "{}: Enter lists its keys; a locked token asks for its PIN.",
                s.reference
            )],
            KeysState::Locked(hint) => vec![
                format!("{}: locked ({hint})", s.reference),
                "Enter asks for the PIN again.".to_string(),
            ],
            KeysState::Failed(e) => vec![e.clone()],
            KeysState::Listed(keys) if keys.is_empty() => vec!["No keys in this store.".into()],
            KeysState::Listed(keys) => {
                let mut l = Vec::new();
                for k in keys {
                    l.push(format!(
                        // The kind as `keys list` prints it.
                        "{} {} {:?}{}",
                        k.store,
                        k.selector,
                        k.kind,
                        k.label
                            .as_deref()
                            .map(|x| format!(" \"{x}\""))
                            .unwrap_or_default()
                    ));
                    if let Some(c) = &k.certificate {
                        l.push(format!("  {} · {}", c.subject, c.validity));
                        l.push(format!(
                            "  not after {} · SHA-1 {}",
                            c.not_after, c.sha1_thumbprint
                        ));
                    }
                    if !k.chain.is_empty() {
                        l.push(format!("  {} issuer certificate(s)", k.chain.len()));
                    }
                }
                l
            }
        },
    };
    detail_pane(f, detail, "keys", lines);
}

fn draw_audit(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [info, list, detail] = list_and_detail(area, 7);
    let a = &app.audit;
    let line = match a.load {
        Load::Loaded if a.typing || !a.filter.is_empty() => format!(
            " /{}{}  {} of {} · newest first",
            a.filter,
            if a.typing { "_" } else { "" },
            a.shown.len(),
            a.rows.len()
        ),
        Load::Loaded => format!(" {} changes · newest first · {}", a.rows.len(), a.store),
        _ => format!(
            " {} reading the audit log…",
            SPINNER[app.tick % SPINNER.len()]
        ),
    };
    f.render_widget(Paragraph::new(line), info);
    let page = list.height.saturating_sub(1) as usize;
    app.page = page.max(1);
    let a = &mut app.audit;
    scroll(a.selected, &mut a.offset, page);
    let a = &app.audit;
    let rows: Vec<Row<'_>> = a
        .shown
        .iter()
        .enumerate()
        .skip(a.offset)
        .take(page)
        .map(|(n, i)| {
            let r = &a.rows[*i];
            let ok = r.result == "ok";
            let mut row = Row::new(vec![
                Span::raw(r.time.get(..16).unwrap_or(&r.time).replace('T', " ")),
                Span::raw(r.operation.clone()),
                Span::raw(r.directory.clone()),
                Span::raw(r.address.clone()),
                Span::styled(
                    r.result.clone(),
                    style(
                        app,
                        Style::new().fg(if ok { Color::Green } else { Color::Red }),
                    ),
                ),
            ]);
            if n == a.selected {
                row = row.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            row
        })
        .collect();
    let header = Row::new(["time", "operation", "directory", "address", "result"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(24),
        Constraint::Min(10),
    ];
    f.render_widget(Table::new(rows, widths).header(header), list);
    let lines = match app.selected_audit() {
        None if app.audit.rows.is_empty() && app.audit.load == Load::Loaded => {
            vec!["No change recorded yet: publishes and applies are recorded here.".into()]
        }
        None if app.audit.load == Load::Loaded => vec!["Nothing matches the filter.".into()],
        None => Vec::new(),
        Some(r) => vec![
            format!(
                "#{} {} {} {} in {}: {}",
                r.seq, r.time, r.operation, r.address, r.directory, r.result
            ),
            format!("by {} ({})", r.actor, r.frontend),
            format!("before: {}", r.before.join(", ")),
            format!("after:  {}", r.after.join(", ")),
            format!("hash {}", r.hash),
        ],
    };
    detail_pane(f, detail, "change", lines);
}

fn draw_help(f: &mut Frame<'_>, area: Rect, app: &App, scroll: usize) {
    let lines: Vec<Line<'_>> = keymap::help_lines()
        .into_iter()
        .skip(scroll)
        .map(Line::raw)
        .collect();
    let r = centered(area, area.width.saturating_sub(4), area.height);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Help: keys (j/k scroll, Esc closes) ")
                .style(style(app, Style::new())),
        ),
        r,
    );
}

fn popup(f: &mut Frame<'_>, area: Rect, app: &App, title: &str, text: &str) {
    let width = area.width.saturating_sub(8).min(70);
    let inner = width.saturating_sub(2).max(1) as usize;
    let lines: u16 = text
        .lines()
        .map(|l| (l.chars().count().max(1)).div_ceil(inner) as u16)
        .sum();
    let r = centered(area, width, (lines + 2).min(area.height));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .block(
                Block::bordered()
                    .title(format!(" {title} "))
                    .border_style(style(app, Style::new().fg(Color::Yellow))),
            ),
        r,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
