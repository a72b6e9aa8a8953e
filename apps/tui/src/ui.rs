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

use crate::app::{App, Detail, ItemRef, PlanView, SCREENS, Screen, item_text};
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
        " smimekit-tui ",
        style(app, Style::new().fg(Color::Black).bg(Color::Cyan)).add_modifier(Modifier::BOLD),
    )];
    for (i, s) in SCREENS.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, s.title());
        spans.push(if *s == app.screen {
            Span::styled(text, Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Span::raw(text)
        });
    }
    spans.push(Span::raw(" "));
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
    let mut line = if p.typing || !p.filter.is_empty() {
        format!(
            " /{}{}  {} of {} · sort: {}",
            p.filter,
            if p.typing { "_" } else { "" },
            p.shown.len(),
            p.rows.len(),
            p.sort.name()
        )
    } else {
        format!(" {} people · sort: {}", p.rows.len(), p.sort.name())
    };
    if p.loading && p.rows.is_empty() {
        line = " loading people from the store…".into();
    }
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
    let widths = [
        Constraint::Min(20),
        Constraint::Length(7),
        Constraint::Length(14),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    f.render_widget(Table::new(rows, widths).header(header), list);
    if detail_h > 0 {
        draw_person_detail(f, detail, app);
    }
}

fn draw_person_detail(f: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::new().borders(Borders::TOP).title(" detail ");
    let mut lines: Vec<Line<'_>> = Vec::new();
    match app.selected_person() {
        None => lines.push(Line::raw(if app.people.rows.is_empty() {
            "Nobody in the inventory yet: lookups and publishes fill it."
        } else {
            "Nobody matches the filter."
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
                    for l in found {
                        if l.certificates.is_empty() {
                            lines.push(Line::raw(format!("{}: no certificate", l.directory)));
                        }
                        for c in &l.certificates {
                            lines.push(Line::raw(format!(
                                "{}: {} serial {} not after {}",
                                l.directory, c.cert.subject, c.cert.serial, c.cert.not_after
                            )));
                            lines.push(Line::raw(format!("  SHA-1 {}", c.cert.sha1_thumbprint)));
                            lines.push(match (&c.usable_for_encryption, &c.unusable_reason) {
                                (true, _) => Line::styled(
                                    "  Outlook/OWA can encrypt to them: yes",
                                    style(app, Style::new().fg(Color::Green)),
                                ),
                                (false, reason) => Line::styled(
                                    format!(
                                        "  Outlook/OWA can encrypt to them: no ({})",
                                        reason.as_deref().unwrap_or("not usable")
                                    ),
                                    style(app, Style::new().fg(Color::Red)),
                                ),
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
