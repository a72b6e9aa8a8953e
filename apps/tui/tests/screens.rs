//! Every screen drawn on ratatui's `TestBackend` at 80×24 and snapshotted (insta), driven by
//! keys through the keymap, with the service's results posted as the runner would.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use smimekit_service::deploy::plan::ChangeAction;
use smimekit_service::deploy::{ApplyReport, ApplyStep, Plan};
use smimekit_service::{
    AuditLogResult, AuditLogRow, CertSummary, ErrorKind, JobEvent, PersonRow, PersonStatus,
    RecipientKind, ServiceError,
};
use smimekit_tui::app::{App, Msg, Screen, Task};
use smimekit_tui::ui;

fn person(address: &str, status: PersonStatus, expiry: Option<(&str, i64)>) -> PersonRow {
    PersonRow {
        address: address.into(),
        kind: Some(RecipientKind::Mailbox),
        directories: vec!["local".into()],
        certificates: usize::from(expiry.is_some()),
        status,
        earliest_expiry: expiry.map(|(s, _)| s.to_string()),
        earliest_expiry_unix: expiry.map(|(_, u)| u),
    }
}

fn people() -> Vec<PersonRow> {
    vec![
        person(
            "carol@example.org",
            PersonStatus::Expiring,
            Some(("2027-01-10T00:00:00Z", 1_799_539_200)),
        ),
        person(
            "alice@example.org",
            PersonStatus::Ready,
            Some(("2045-01-01T00:00:00Z", 2_366_841_600)),
        ),
        person("bob@example.org", PersonStatus::NotReady, None),
    ]
}

fn cert(cn: &str, serial: &str, thumb: &str) -> serde_json::Value {
    serde_json::json!({
        "subject": format!("O=smimekit Test PKI,CN={cn}"),
        "serial": serial,
        "not_after": "2045-01-01T00:00:00Z",
        "thumbprint": thumb,
    })
}

fn plan() -> Plan {
    let person = |address: &str, changes: serde_json::Value| {
        serde_json::json!({
            "address": address, "kind": "mailbox", "create_contact": false,
            "changes": changes, "ready": { "encryptable": true },
        })
    };
    serde_json::from_value(serde_json::json!({
        "format": 1,
        "file": "deploy.toml",
        "created": "2026-12-03T08:00:00Z",
        "at": 1_796_284_800,
        "issue": [],
        "summary": { "add": 2, "remove": 1, "contacts": 0, "issue": 0, "renew": 0,
                     "unmanaged_kept": 0, "trust_updates": 0, "not_ready": 0, "unchanged": 0 },
        "directories": [{
            "name": "local",
            "unchanged": 3,
            "read": {},
            "people": [
                person("alice@example.org", serde_json::json!([
                    { "action": "add", "certificate": cert("Alice Example", "3001", "E123BD87387F9982ED528EBE40BC7906A5A96E94") },
                    { "action": "remove", "reason": "expired", "certificate": cert("Alice Old", "2001", "00112233445566778899AABBCCDDEEFF00112233") },
                ])),
                person("bob@example.org", serde_json::json!([
                    { "action": "add", "certificate": cert("Bob Example", "3002", "EB6B5EE7F9B3074F8FF25EAC86B6597F7100EB01") },
                ])),
            ],
        }],
    }))
    .expect("the test plan is a plan")
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

/// Presses keys, given as a string (one char each) or named.
fn press(app: &mut App, keys: &str) -> Vec<Task> {
    let mut tasks = Vec::new();
    for c in keys.chars() {
        tasks.extend(app.key(key(KeyCode::Char(c))));
    }
    tasks
}

/// The screen as text, one line per row, trailing blanks cut.
fn screen(app: &mut App) -> String {
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    t.draw(|f| ui::draw(f, app)).expect("drawn");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Thumbprints and times are filtered: the snapshot shows the layout.
fn snap(name: &str, text: &str) {
    insta::with_settings!({filters => vec![
        (r"\b[0-9A-F]{40}\b", "[SHA1]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
    ]}, {
        insta::assert_snapshot!(name, text);
    });
}

fn loaded(write: bool) -> App {
    let mut app = App::new(write, false, true);
    app.message(Msg::People(Ok(people())));
    app.message(Msg::Plan(Ok(Box::new(plan()))));
    app
}

#[test]
fn people_screen_lists_sorted_by_address_with_the_detail_pane() {
    let mut app = loaded(false);
    let s = screen(&mut app);
    assert!(s.contains("read-only"), "{s}");
    snap("people", &s);
}

#[test]
fn filter_narrows_as_you_type_and_esc_clears_it() {
    let mut app = loaded(false);
    press(&mut app, "/bo");
    let s = screen(&mut app);
    assert!(
        s.contains("bob@example.org") && !s.contains("alice@example.org"),
        "{s}"
    );
    snap("people_filtered", &s);
    // Backspace widens it again.
    app.key(key(KeyCode::Backspace));
    assert_eq!(app.people.shown.len(), 1, "'b' matches only bob");
    app.key(key(KeyCode::Esc));
    assert_eq!(app.people.shown.len(), 3);
    assert!(app.people.filter.is_empty() && !app.people.typing);
    // While typing, q is a letter, not quit.
    press(&mut app, "/q");
    assert!(!app.quit);
    assert_eq!(app.people.filter, "q");
}

#[test]
fn sort_cycles_address_status_expiry() {
    let mut app = loaded(false);
    let order = |app: &App| -> Vec<String> {
        app.people
            .shown
            .iter()
            .map(|i| app.people.rows[*i].address.clone())
            .collect()
    };
    assert_eq!(
        order(&app),
        ["alice@example.org", "bob@example.org", "carol@example.org"]
    );
    press(&mut app, "s");
    assert_eq!(
        order(&app),
        ["bob@example.org", "carol@example.org", "alice@example.org"]
    );
    press(&mut app, "s");
    assert_eq!(
        order(&app),
        ["carol@example.org", "alice@example.org", "bob@example.org"]
    );
}

/// The first people by address, as `people_first` gives them while the whole list loads.
fn first_part(n: usize) -> Vec<PersonRow> {
    let mut all = people();
    all.sort_by(|a, b| a.address.cmp(&b.address));
    all.truncate(n);
    all
}

/// Everyone, with two people the first part did not reach (after "bob" by address).
fn everyone() -> Vec<PersonRow> {
    let mut all = people();
    all.push(person("bea@example.org", PersonStatus::NotReady, None));
    all.push(person("dave@example.org", PersonStatus::NotReady, None));
    all.sort_by(|a, b| a.address.cmp(&b.address));
    all
}

#[test]
fn the_first_people_show_while_the_whole_list_loads() {
    let mut app = App::new(false, false, true);
    assert!(matches!(
        app.start().first(),
        Some(Task::LoadPeople { first: Some(n) }) if *n > 0
    ));
    // Before anything is read: loading, and nobody is said to be missing.
    let s = screen(&mut app);
    assert!(s.contains("loading people from the store"), "{s}");
    assert!(!s.contains("Nobody"), "{s}");

    app.message(Msg::PeopleFirst(first_part(2)));
    let s = screen(&mut app);
    assert!(
        s.contains("loading… 2 of ? people") && s.contains("loading the rest of the list"),
        "{s}"
    );
    assert!(
        s.contains("people…"),
        "the header's spinner still turns: {s}"
    );
    snap("people_first", &s);

    // Down past the people read so far: the last of them stays selected, and the list says
    // the rest is coming, not that there is nobody more.
    press(&mut app, "jjjG");
    assert_eq!(
        app.selected_person().map(|r| r.address.as_str()),
        Some("bob@example.org")
    );
    let s = screen(&mut app);
    assert!(s.contains("loading the rest of the list"), "{s}");
    assert!(!s.contains("Nobody"), "{s}");

    // Everyone arrives: the count is the whole list's, bob is still the one selected.
    app.message(Msg::People(Ok(everyone())));
    assert_eq!(
        app.selected_person().map(|r| r.address.as_str()),
        Some("bob@example.org")
    );
    let s = screen(&mut app);
    assert!(s.contains(" 5 people · sort: address"), "{s}");
    assert!(!s.contains("loading"), "{s}");
    assert!(s.contains("dave@example.org"), "{s}");
}

#[test]
fn a_filter_typed_before_the_whole_list_applies_again_when_it_arrives() {
    let mut app = App::new(false, false, false);
    app.message(Msg::PeopleFirst(first_part(2)));
    press(&mut app, "/b");
    // Among the first two, only bob.
    let s = screen(&mut app);
    assert!(s.contains("/b_  1 of 2 loaded, loading…"), "{s}");
    assert!(s.contains("bob@example.org"), "{s}");
    snap("people_first_filtered", &s);
    // A filter that matches nobody yet says the rest is still coming.
    press(&mut app, "e");
    let s = screen(&mut app);
    assert!(s.contains("/be_  0 of 2"), "{s}");
    assert!(
        s.contains("the rest are loading") && !s.contains("Nobody matches the filter."),
        "{s}"
    );
    // Everyone arrives while typing: the filter applies to everyone, the line keeps the keys.
    app.message(Msg::People(Ok(everyone())));
    assert!(app.people.typing);
    assert_eq!(app.people.filter, "be");
    let shown: Vec<&str> = app
        .people
        .shown
        .iter()
        .map(|i| app.people.rows[*i].address.as_str())
        .collect();
    assert_eq!(shown, ["bea@example.org"]);
    let s = screen(&mut app);
    assert!(s.contains("/be_  1 of 5 · sort: address"), "{s}");
    // Backspace widens over everyone.
    app.key(key(KeyCode::Backspace));
    assert_eq!(app.people.shown.len(), 2, "'b' matches bea and bob: {s}");
}

#[test]
fn sorting_before_the_whole_list_sorts_what_is_there_and_everyone_after() {
    let mut app = App::new(false, false, false);
    app.message(Msg::PeopleFirst(first_part(2)));
    press(&mut app, "s");
    let order = |app: &App| -> Vec<String> {
        app.people
            .shown
            .iter()
            .map(|i| app.people.rows[*i].address.clone())
            .collect()
    };
    // By status: not ready first.
    assert_eq!(order(&app), ["bob@example.org", "alice@example.org"]);
    app.message(Msg::People(Ok(everyone())));
    assert_eq!(
        order(&app),
        [
            "bea@example.org",
            "bob@example.org",
            "dave@example.org",
            "carol@example.org",
            "alice@example.org"
        ]
    );
}

#[test]
fn a_late_first_part_does_not_replace_the_whole_list_and_refresh_keeps_it_on_screen() {
    let mut app = loaded(false);
    app.message(Msg::PeopleFirst(first_part(1)));
    assert_eq!(app.people.rows.len(), 3);
    let tasks = press(&mut app, "r");
    assert!(
        matches!(tasks.as_slice(), [Task::LoadPeople { first: None }]),
        "{tasks:?}"
    );
    let s = screen(&mut app);
    assert!(s.contains(" 3 people"), "{s}");
}

#[test]
fn the_rest_failing_keeps_the_first_people_and_says_so() {
    let mut app = App::new(false, false, false);
    app.message(Msg::PeopleFirst(first_part(2)));
    app.message(Msg::People(Err(ServiceError::new(
        ErrorKind::Unavailable,
        "the store is locked",
    ))));
    let s = screen(&mut app);
    assert!(s.contains("the store is locked"), "{s}");
    app.key(key(KeyCode::Esc));
    let s = screen(&mut app);
    assert!(
        s.contains("the first 2 people (reading the rest failed: r retries)")
            && s.contains("the rest could not be read"),
        "{s}"
    );
    // r reads the first part and everyone again.
    assert!(matches!(
        press(&mut app, "r").as_slice(),
        [Task::LoadPeople { first: Some(_) }]
    ));
}

#[test]
fn enter_reads_the_selected_persons_certificates() {
    let mut app = loaded(false);
    press(&mut app, "j");
    let tasks = app.key(key(KeyCode::Enter));
    match tasks.as_slice() {
        [Task::Lookup { address }] => assert_eq!(address, "bob@example.org"),
        other => panic!("expected one lookup, got {other:?}"),
    }
    assert!(screen(&mut app).contains("reading certificates"));
}

#[test]
fn plan_screen_reviews_each_change() {
    let mut app = loaded(false);
    app.key(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Plan);
    let s = screen(&mut app);
    snap("plan", &s);
}

#[test]
fn read_only_refuses_apply_and_says_how_to_enable_it() {
    let mut app = loaded(false);
    press(&mut app, "2");
    let tasks = press(&mut app, "a");
    assert!(tasks.is_empty());
    let s = screen(&mut app);
    assert!(s.contains("--write"), "{s}");
    app.key(key(KeyCode::Esc));
    assert!(app.message.is_none());
}

#[test]
fn skipped_change_is_left_out_of_the_applied_plan() {
    let mut app = loaded(true);
    press(&mut app, "2");
    // Skip alice's removal (the second item), keep the two adds.
    press(&mut app, "j ");
    press(&mut app, "a");
    let s = screen(&mut app);
    assert!(
        s.contains("Apply 2 approved changes (1 skipped) to local?"),
        "{s}"
    );
    snap("plan_confirm", &s);
    let tasks = press(&mut app, "y");
    let [Task::Apply(applied)] = tasks.as_slice() else {
        panic!("expected an apply, got {tasks:?}");
    };
    let people = &applied.directories[0].people;
    assert_eq!(people.len(), 2);
    assert!(matches!(
        people[0].changes.as_slice(),
        [ChangeAction::Add { .. }]
    ));
    assert_eq!(people[1].changes.len(), 1);
}

#[test]
fn skipping_every_change_of_a_person_leaves_the_person_out() {
    let mut app = loaded(true);
    press(&mut app, "2");
    press(&mut app, "jj ");
    let p = app.approved_plan().expect("a plan");
    let people: Vec<&str> = p.directories[0]
        .people
        .iter()
        .map(|p| p.address.as_str())
        .collect();
    assert_eq!(people, ["alice@example.org"]);
    // Nothing approved: nothing to apply, and it says so.
    press(&mut app, "S");
    assert!(press(&mut app, "a").is_empty());
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("No change is approved")
    );
}

#[test]
fn apply_shows_progress_then_results_and_cancel_is_a_key() {
    let mut app = loaded(true);
    press(&mut app, "2a");
    assert!(matches!(press(&mut app, "y").as_slice(), [Task::Apply(_)]));
    app.message(Msg::Progress(JobEvent {
        what: "apply".into(),
        done: 1,
        total: 2,
        current_item: Some("local alice@example.org".into()),
    }));
    let s = screen(&mut app);
    assert!(
        s.contains("applying: 1 of 2 done") && s.contains("finished local alice@example.org"),
        "{s}"
    );
    snap("plan_applying", &s);
    assert!(matches!(
        press(&mut app, "c").as_slice(),
        [Task::CancelApply]
    ));
    let step = |target: &str, status: &'static str, error: Option<&str>| ApplyStep {
        directory: "local".into(),
        target: target.into(),
        operation: "publish".into(),
        status,
        added: Vec::new(),
        removed: Vec::new(),
        error: error.map(str::to_string),
        attempts: 1,
        out_of_time: false,
        delivered: None,
    };
    app.message(Msg::Applied(Ok(ApplyReport {
        run: "run-1".into(),
        file: "deploy.toml".into(),
        done: 1,
        unchanged: 0,
        failed: 1,
        not_attempted: 1,
        interrupted_before: 0,
        requeued: 0,
        seconds: 0.5,
        steps: vec![
            step("alice@example.org", "done", None),
            step(
                "bob@example.org",
                "failed",
                Some("the directory said: insufficient access"),
            ),
            step("carol@example.org", "not-attempted", None),
        ],
    })));
    let s = screen(&mut app);
    assert!(
        s.contains("insufficient access") && s.contains("not-attempted"),
        "{s}"
    );
    snap("plan_results", &s);
}

#[test]
fn help_is_generated_from_the_keymap() {
    let mut app = loaded(false);
    press(&mut app, "?");
    let s = screen(&mut app);
    for b in smimekit_tui::keymap::KEYMAP
        .iter()
        .filter(|b| b.context == smimekit_tui::keymap::Context::Global)
    {
        assert!(
            s.contains(b.help) || b.help.len() > 40,
            "help lacks {:?}:\n{s}",
            b.help
        );
    }
    snap("help", &s);
    press(&mut app, "?");
    assert!(app.help.is_none());
}

#[test]
fn errors_are_a_dismissible_message_not_a_crash() {
    let mut app = App::new(false, false, true);
    app.message(Msg::Plan(Err(smimekit_service::ServiceError::new(
        smimekit_service::ErrorKind::Unavailable,
        "directory exo: the service is throttling (Retry-After 30 s)",
    ))));
    let s = screen(&mut app);
    assert!(s.contains("throttling"), "{s}");
    // Keys other than the message's own do nothing while it shows; Ctrl-C still quits.
    press(&mut app, "q");
    assert!(!app.quit && app.message.is_some());
    app.key(key(KeyCode::Enter));
    assert!(app.message.is_none());
    app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn palette_runs_commands() {
    let mut app = loaded(false);
    press(&mut app, ":sort status");
    app.key(key(KeyCode::Enter));
    assert_eq!(app.people.sort, smimekit_tui::app::Sort::Status);
    press(&mut app, ":plan");
    app.key(key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::Plan);
    press(&mut app, ":frobnicate");
    app.key(key(KeyCode::Enter));
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("not a command")
    );
}

#[test]
fn fits_small_terminals_without_panicking() {
    let mut app = loaded(true);
    for (w, h) in [(80, 24), (40, 10), (20, 5), (1, 1)] {
        for k in ["", "2", "?", "a"] {
            press(&mut app, k);
            let mut t = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
            t.draw(|f| ui::draw(f, &mut app)).expect("drawn");
        }
    }
}

fn audit_row(seq: i64, time: &str, operation: &str, address: &str, result: &str) -> AuditLogRow {
    AuditLogRow {
        seq,
        time: time.into(),
        actor: "admin".into(),
        frontend: "cli".into(),
        operation: operation.into(),
        directory: "local".into(),
        address: address.into(),
        before: Vec::new(),
        after: vec!["E123BD87387F9982ED528EBE40BC7906A5A96E94".into()],
        result: result.into(),
        hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
    }
}

#[test]
fn audit_log_is_read_on_first_visit_newest_first_and_filters_as_you_type() {
    let mut app = loaded(false);
    assert!(matches!(press(&mut app, "5").as_slice(), [Task::LoadAudit]));
    assert_eq!(app.screen, Screen::Audit);
    assert!(screen(&mut app).contains("reading the audit log"));
    // The service gives the oldest first.
    app.message(Msg::Audit(Ok(AuditLogResult {
        store: "sqlite:/data/smimekit.db".into(),
        rows: vec![
            audit_row(
                1,
                "2026-12-01T09:00:00Z",
                "publish",
                "alice@example.org",
                "ok",
            ),
            audit_row(
                2,
                "2026-12-02T10:00:00Z",
                "unpublish",
                "bob@example.org",
                "ok",
            ),
            audit_row(
                3,
                "2026-12-03T11:00:00Z",
                "publish",
                "carol@example.org",
                "failed: insufficient access",
            ),
        ],
    })));
    let s = screen(&mut app);
    let carol = s.find("carol@example.org").expect("carol shown");
    let alice = s.find("alice@example.org").expect("alice shown");
    assert!(carol < alice, "newest first:\n{s}");
    snap("audit", &s);
    // A second visit reads nothing again; r does.
    assert!(press(&mut app, "15").is_empty());
    assert!(matches!(press(&mut app, "r").as_slice(), [Task::LoadAudit]));
    app.message(Msg::Audit(Ok(AuditLogResult {
        store: "s".into(),
        rows: vec![
            audit_row(
                1,
                "2026-12-01T09:00:00Z",
                "publish",
                "alice@example.org",
                "ok",
            ),
            audit_row(
                2,
                "2026-12-02T10:00:00Z",
                "unpublish",
                "bob@example.org",
                "ok",
            ),
        ],
    })));
    // The filter matches the operation too, and q is a letter while typing.
    press(&mut app, "/unpub");
    assert!(!app.quit);
    let s = screen(&mut app);
    assert!(
        s.contains("bob@example.org") && !s.contains("alice@"),
        "{s}"
    );
    assert_eq!(
        app.selected_audit().map(|r| r.seq),
        Some(2),
        "the match is selected"
    );
    app.key(key(KeyCode::Esc));
    assert_eq!(app.audit.shown.len(), 2);
    // Scrolling moves the selection down the list.
    press(&mut app, "j");
    assert_eq!(app.selected_audit().map(|r| r.seq), Some(1));
}

fn summary(subject: &str, thumb: &str, validity: &'static str) -> CertSummary {
    CertSummary {
        subject: subject.into(),
        issuer: "O=smimekit Test PKI,CN=Root".into(),
        serial: "01".into(),
        emails: Vec::new(),
        not_before: "2025-01-01T00:00:00Z".into(),
        not_after: "2045-01-01T00:00:00Z".into(),
        validity,
        sha1_thumbprint: thumb.into(),
        sha256_fingerprint: String::new(),
        is_ca: true,
    }
}

#[test]
fn trust_screen_shows_each_directory_against_the_organisations_chain() {
    let mut app = App::new(false, false, true);
    // The plan: local holds an old CA the deploy file's chain does not have, and lacks its
    // issuing CA.
    let mut p = plan();
    p.directories[0].trust = Some(
        serde_json::from_value(serde_json::json!({
            "add": [cert("Deploy Test Issuing CA", "02", "1111111111111111111111111111111111111111")],
            "remove": [cert("Old CA", "09", "2222222222222222222222222222222222222222")],
            "chain": ["1111111111111111111111111111111111111111", "3333333333333333333333333333333333333333"],
        }))
        .expect("a trust plan"),
    );
    app.message(Msg::Plan(Ok(Box::new(p))));
    assert!(matches!(press(&mut app, "3").as_slice(), [Task::LoadTrust]));
    app.message(Msg::Trust(vec![
        (
            "local".into(),
            Ok(vec![
                summary(
                    "CN=Deploy Test Root",
                    "3333333333333333333333333333333333333333",
                    "valid",
                ),
                summary(
                    "CN=Old CA",
                    "2222222222222222222222222222222222222222",
                    "expired",
                ),
            ]),
        ),
        (
            "corp".into(),
            Err(ServiceError::new(
                ErrorKind::Unsupported,
                "directory corp keeps no trust chain",
            )),
        ),
        (
            "exo".into(),
            Err(ServiceError::new(
                ErrorKind::Unavailable,
                "directory exo: the service is throttling (Retry-After 30 s)",
            )),
        ),
    ]));
    let s = screen(&mut app);
    assert!(
        s.contains("differs: 1 missing, 1 not the organisation's"),
        "{s}"
    );
    assert!(s.contains("! held") && s.contains("+ missing"), "{s}");
    assert!(
        s.contains("keeps no trust chain") && s.contains("throttling"),
        "{s}"
    );
    snap("trust", &s);
    // The rows: local, its two certificates, the missing one, corp, exo.
    assert_eq!(app.trust_rows().len(), 6);
    press(&mut app, "jjj");
    let s = screen(&mut app);
    assert!(
        s.contains("In the organisation's chain, not in local"),
        "{s}"
    );
}

#[test]
fn pin_dialog_never_shows_the_pin_and_hands_it_over_once() {
    let mut app = App::new(false, false, false)
        .with_key_stores(vec![("hsm".into(), "pkcs11:?module-name=hsm".into())]);
    press(&mut app, "4");
    let tasks = app.key(key(KeyCode::Enter));
    let [
        Task::ListKeys {
            store: 0,
            reference,
            secret: None,
        },
    ] = tasks.as_slice()
    else {
        panic!("expected a listing, got {tasks:?}");
    };
    assert_eq!(reference, "pkcs11:?module-name=hsm");
    app.message(Msg::Keys {
        store: 0,
        result: Err(ServiceError::new(
            ErrorKind::Locked {
                object: "PIN of token \"alice\" for pkcs11:?module-name=hsm".into(),
                hint: "not found in SMIMEKIT_PIN, SMIMEKIT_PASSWORD".into(),
                tries_left: Some(3),
            },
            "locked",
        )),
    });
    assert!(app.pin.is_some());
    // Every key is the PIN's while the dialog is open: q and digits alike.
    press(&mut app, "q4x");
    app.key(key(KeyCode::Backspace));
    press(&mut app, "72é");
    assert!(!app.quit && app.screen == Screen::Keys);
    let s = screen(&mut app);
    assert!(
        s.contains("PIN of token") && s.contains("3 tries left"),
        "{s}"
    );
    for shown in ["q472", "q4", "*", "•", "é"] {
        assert!(!s.contains(shown), "{shown:?} on screen:\n{s}");
    }
    snap("keys_pin", &s);
    assert!(!format!("{app:?}").contains("q472"), "Debug shows the PIN");
    let tasks = app.key(key(KeyCode::Enter));
    let [
        Task::ListKeys {
            store: 0,
            secret: Some(secret),
            ..
        },
    ] = tasks.as_slice()
    else {
        panic!("expected a listing with the PIN, got {tasks:?}");
    };
    assert_eq!(secret.expose(), "q472é".as_bytes());
    assert!(!format!("{tasks:?}").contains("q472"));
    assert!(app.pin.is_none());
    // A wrong PIN: locked again, the dialog asks again; Esc cancels and the store says locked.
    app.message(Msg::Keys {
        store: 0,
        result: Err(ServiceError::new(
            ErrorKind::Locked {
                object: "PIN of token \"alice\"".into(),
                hint: "wrong PIN".into(),
                tries_left: Some(2),
            },
            "locked",
        )),
    });
    press(&mut app, "99");
    app.key(key(KeyCode::Esc));
    assert!(app.pin.is_none());
    assert!(screen(&mut app).contains("locked (wrong PIN)"));
    // Another error is a message, not a dialog.
    press(&mut app, "r");
    app.message(Msg::Keys {
        store: 0,
        result: Err(ServiceError::new(
            ErrorKind::NotFound,
            "pkcs11:?module-name=hsm: several tokens match: add token=… or serial=…",
        )),
    });
    assert!(app.pin.is_none());
    assert!(screen(&mut app).contains("several tokens match"));
}

#[test]
fn palette_opens_a_key_store_by_keyref() {
    let mut app = App::new(false, false, false);
    press(&mut app, "4");
    assert!(screen(&mut app).contains("No key store is configured"));
    press(&mut app, "o");
    assert_eq!(app.palette.as_deref(), Some("open "));
    press(&mut app, "alice.p12");
    let tasks = app.key(key(KeyCode::Enter));
    assert!(
        matches!(tasks.as_slice(), [Task::ListKeys { store: 0, reference, .. }] if reference == "alice.p12"),
        "{tasks:?}"
    );
    assert_eq!(app.keys.stores.len(), 1);
}

#[test]
fn person_detail_shows_certificates_lint_findings_and_whether_outlook_can_encrypt() {
    use smimekit_service::{
        DirectoryCert, Finding, PersonCert, PersonDetail, PersonDirectory, Severity,
    };
    let mut app = loaded(false);
    assert!(matches!(
        app.key(key(KeyCode::Enter)).as_slice(),
        [Task::Lookup { .. }]
    ));
    let mut c = summary(
        "CN=alice@example.org",
        "E123BD87387F9982ED528EBE40BC7906A5A96E94",
        "valid",
    );
    c.is_ca = false;
    app.message(Msg::Lookup {
        address: "alice@example.org".into(),
        result: Ok(Box::new(PersonDetail {
            address: "alice@example.org".into(),
            directories: vec![
                PersonDirectory {
                    directory: "local".into(),
                    kind: Some(RecipientKind::Mailbox),
                    certificates: vec![PersonCert {
                        cert: DirectoryCert {
                            cert: c,
                            address: "alice@example.org".into(),
                            usable_for_encryption: true,
                            unusable_reason: None,
                        },
                        findings: vec![Finding {
                            rule: "e_sha1_signature",
                            severity: Severity::Error,
                            title: "signed with SHA-1",
                            detail: String::new(),
                            explanation: "",
                            fix: "",
                        }],
                        pem: String::new(),
                    }],
                    can_encrypt: false,
                    error: None,
                },
                PersonDirectory {
                    directory: "exo".into(),
                    kind: None,
                    certificates: Vec::new(),
                    can_encrypt: false,
                    error: Some("directory exo: throttled".into()),
                },
            ],
            can_encrypt: false,
            history: Vec::new(),
        })),
    });
    let s = screen(&mut app);
    assert!(
        s.contains("error e_sha1_signature: signed with SHA-1")
            && s.contains("can encrypt to them: no")
            && s.contains("exo: unreadable: directory exo: throttled"),
        "{s}"
    );
    snap("people_detail", &s);
}
