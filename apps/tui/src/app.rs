//! The console's state and how keys and service results change it. Pure: no terminal, no
//! service. A key or a result goes in ([`App::key`], [`App::message`]); [`Task`]s come out,
//! which the runner spawns against the service, posting results back as [`Msg`]s.

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use smimekit_service::deploy::plan::{CertRef, ChangeAction};
use smimekit_service::deploy::{ApplyReport, Plan};
use smimekit_service::{
    AuditLogResult, AuditLogRow, CertSummary, ErrorKind, JobEvent, KeySummary, PersonDetail,
    PersonRow, PersonStatus, Secret, ServiceError,
};
use zeroize::Zeroizing;

use crate::keymap::{self, Action, Context, Key};

/// The screens, in `Tab` order (number keys are 1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    People,
    Plan,
    Trust,
    Keys,
    Audit,
}

pub const SCREENS: [Screen; 5] = [
    Screen::People,
    Screen::Plan,
    Screen::Trust,
    Screen::Keys,
    Screen::Audit,
];

impl Screen {
    pub fn title(self) -> &'static str {
        match self {
            Self::People => "People",
            Self::Plan => "Plan",
            Self::Trust => "Trust",
            Self::Keys => "Keys",
            Self::Audit => "Audit",
        }
    }
}

/// Days before expiry that make a person "expiring".
pub const EXPIRING_DAYS: u32 = 30;

/// How many people (the first by address) are read and drawn before the whole list: a few
/// screenfuls of a tall terminal, read at a cost that does not grow with the store.
pub const FIRST_PEOPLE: usize = 200;

/// Work for the service, spawned by the runner.
#[derive(Debug, Clone)]
pub enum Task {
    /// Everyone; with `first`, the first that many by address are read and posted first
    /// ([`Msg::PeopleFirst`]), so the list shows before the whole of it is in.
    LoadPeople {
        first: Option<usize>,
    },
    /// A person's entry and certificates in every configured directory, with lint findings
    /// (the web's person page reads the same).
    Lookup {
        address: String,
    },
    LoadPlan,
    Apply(Box<Plan>),
    CancelApply,
    /// Every configured directory's trust chain.
    LoadTrust,
    LoadAudit,
    /// The keys of a key store (`store`: its row on the Keys screen), with the PIN the
    /// dialog took when it was locked.
    ListKeys {
        store: usize,
        reference: String,
        secret: Option<Secret>,
    },
}

/// What comes back.
#[derive(Debug)]
pub enum Msg {
    /// The first people by address, while the whole list is still loading.
    PeopleFirst(Vec<PersonRow>),
    /// Everyone.
    People(Result<Vec<PersonRow>, ServiceError>),
    Lookup {
        address: String,
        result: Result<Box<PersonDetail>, ServiceError>,
    },
    Plan(Result<Box<Plan>, ServiceError>),
    Progress(JobEvent),
    Applied(Result<ApplyReport, ServiceError>),
    /// Each configured directory, in search order, with its trust chain.
    Trust(Vec<(String, Result<Vec<CertSummary>, ServiceError>)>),
    Audit(Result<AuditLogResult, ServiceError>),
    Keys {
        store: usize,
        result: Result<Vec<KeySummary>, ServiceError>,
    },
}

/// How the People list is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Address,
    Status,
    Expiry,
}

impl Sort {
    pub fn name(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Status => "status",
            Self::Expiry => "expiry",
        }
    }
}

/// A person's certificates as read for the detail pane.
#[derive(Debug)]
pub enum Detail {
    Loading,
    Loaded(Box<PersonDetail>),
}

/// How much of the People list is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Nothing read yet.
    Nothing,
    /// The first people by address ([`FIRST_PEOPLE`]); the rest is loading, or failed.
    First,
    /// Everyone.
    All,
}

#[derive(Debug)]
pub struct People {
    /// A read is under way.
    pub loading: bool,
    pub extent: Extent,
    /// The people read (everyone once `extent` is [`Extent::All`]), in the current sort order.
    pub rows: Vec<PersonRow>,
    /// Indices into `rows` that match the filter.
    pub shown: Vec<usize>,
    pub filter: String,
    /// The filter line has the keys.
    pub typing: bool,
    pub sort: Sort,
    /// Index into `shown`.
    pub selected: usize,
    /// First row on screen (index into `shown`).
    pub offset: usize,
    /// The address the detail is for, and it.
    pub detail: Option<(String, Detail)>,
    /// The filter's index: the addresses of `rows`, in order, ASCII lower case, each followed
    /// by a NUL, searched as one string (a keystroke over 100,000 people costs one `memmem`
    /// pass, not a comparison per person).
    haystack: Vec<u8>,
    /// Where each row's address starts in `haystack`.
    starts: Vec<usize>,
}

/// One reviewable change of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemRef {
    Issue(usize),
    Trust {
        dir: usize,
    },
    Change {
        dir: usize,
        person: usize,
        change: usize,
    },
}

#[derive(Clone, Debug)]
pub struct PlanItem {
    pub at: ItemRef,
    pub approved: bool,
}

#[derive(Debug)]
pub enum PlanView {
    /// Started without `--file`.
    NoFile,
    Loading,
    Review,
    Applying {
        progress: Option<JobEvent>,
        /// Items finished so far, in order.
        finished: Vec<String>,
        cancelled: bool,
    },
    Results(ApplyReport),
}

#[derive(Debug)]
pub struct PlanScreen {
    pub view: PlanView,
    pub plan: Option<Plan>,
    pub items: Vec<PlanItem>,
    pub selected: usize,
    pub offset: usize,
}

/// Whether a screen's data was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    NotYet,
    Loading,
    Loaded,
}

/// What a directory holds as its trust chain.
#[derive(Debug)]
pub enum Held {
    Chain(Vec<CertSummary>),
    /// The directory keeps no trust chain (its own words).
    NotKept(String),
    /// Reading it failed (the directory's words).
    Failed(String),
}

#[derive(Debug)]
pub struct TrustDir {
    pub name: String,
    pub held: Held,
}

#[derive(Debug)]
pub struct TrustScreen {
    pub load: Load,
    pub dirs: Vec<TrustDir>,
    pub selected: usize,
    pub offset: usize,
}

/// One line of the Trust screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRow {
    Directory(usize),
    Held {
        dir: usize,
        cert: usize,
    },
    /// In the organisation's chain (the deploy file's), missing from the directory.
    Missing {
        dir: usize,
        cert: CertRef,
    },
}

/// How a directory's trust chain compares with the organisation's (the deploy file's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Against {
    /// No deploy file, or its plan is not read yet.
    NoPlan,
    /// The deploy file names no trust chain for this directory.
    NotManaged,
    Matches,
    Differs {
        add: Vec<CertRef>,
        remove: Vec<String>,
    },
    /// The plan's note (the directory keeps none).
    Note(String),
}

#[derive(Debug)]
pub struct AuditScreen {
    pub load: Load,
    pub store: String,
    /// Newest first.
    pub rows: Vec<AuditLogRow>,
    /// Indices into `rows` that match the filter.
    pub shown: Vec<usize>,
    pub filter: String,
    pub typing: bool,
    pub selected: usize,
    pub offset: usize,
}

/// A key store as the Keys screen lists it.
#[derive(Debug)]
pub struct KeyStoreRow {
    /// The configuration's name (`[keystore.NAME]`), or the KEYREF opened with `:open`.
    pub name: String,
    pub reference: String,
    pub state: KeysState,
}

#[derive(Debug)]
pub enum KeysState {
    NotOpened,
    Opening,
    /// Locked and the PIN dialog was cancelled.
    Locked(String),
    Listed(Vec<KeySummary>),
    Failed(String),
}

#[derive(Debug)]
pub struct KeysScreen {
    pub stores: Vec<KeyStoreRow>,
    pub selected: usize,
    pub offset: usize,
}

/// The most a PIN may hold: the buffer is allocated once at this size, so typing never
/// moves it (a moved buffer would leave a copy behind that nothing wipes).
pub const PIN_MAX: usize = 256;

/// The PIN dialog: what is typed goes into a zeroized buffer, is never drawn (not even as a
/// count) and leaves only as a [`Secret`] moved into the unlock request.
pub struct PinDialog {
    pub store: usize,
    /// The service's question (`PIN of token "alice" for pkcs11:…`).
    pub object: String,
    pub hint: String,
    pub tries_left: Option<u32>,
    pin: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PinDialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinDialog")
            .field("store", &self.store)
            .field("object", &self.object)
            .field("pin", &"<redacted>")
            .finish()
    }
}

impl PinDialog {
    fn new(store: usize, object: String, hint: String, tries_left: Option<u32>) -> Self {
        Self {
            store,
            object,
            hint,
            tries_left,
            pin: Zeroizing::new(Vec::with_capacity(PIN_MAX)),
        }
    }

    fn push(&mut self, c: char) {
        let mut b = [0u8; 4];
        let bytes = c.encode_utf8(&mut b).as_bytes();
        if self.pin.len() + bytes.len() <= PIN_MAX {
            self.pin.extend_from_slice(bytes);
        }
        b.iter_mut().for_each(|x| *x = 0);
    }

    /// Removes the last character (all its UTF-8 bytes).
    fn pop(&mut self) {
        while let Some(b) = self.pin.pop() {
            if b & 0xC0 != 0x80 {
                break;
            }
        }
    }

    /// The PIN, moved out (not copied) into a [`Secret`].
    fn take(&mut self) -> Secret {
        Secret::new(std::mem::take(&mut *self.pin))
    }
}

/// A question before a write.
#[derive(Debug)]
pub struct Confirm {
    pub question: String,
}

#[derive(Debug)]
pub struct App {
    pub screen: Screen,
    /// `--write` was given.
    pub write: bool,
    /// Colours (off with `NO_COLOR`).
    pub color: bool,
    pub people: People,
    pub plan: PlanScreen,
    pub trust: TrustScreen,
    pub keys: KeysScreen,
    pub audit: AuditScreen,
    /// The PIN dialog, while open.
    pub pin: Option<PinDialog>,
    pub help: Option<usize>,
    /// A message over the screen (errors in the directory's words), dismissed with Esc.
    pub message: Option<String>,
    pub confirm: Option<Confirm>,
    /// The command palette's line, while open.
    pub palette: Option<String>,
    /// Spinner frame, advanced by the runner's tick while work is pending.
    pub tick: usize,
    /// Rows the list shows (set by the drawing code from the terminal size).
    pub page: usize,
    pub quit: bool,
}

impl App {
    pub fn new(write: bool, color: bool, has_file: bool) -> Self {
        Self {
            screen: Screen::People,
            write,
            color,
            people: People {
                loading: true,
                extent: Extent::Nothing,
                rows: Vec::new(),
                shown: Vec::new(),
                filter: String::new(),
                typing: false,
                sort: Sort::Address,
                selected: 0,
                offset: 0,
                detail: None,
                haystack: Vec::new(),
                starts: Vec::new(),
            },
            plan: PlanScreen {
                view: if has_file {
                    PlanView::Loading
                } else {
                    PlanView::NoFile
                },
                plan: None,
                items: Vec::new(),
                selected: 0,
                offset: 0,
            },
            trust: TrustScreen {
                load: Load::NotYet,
                dirs: Vec::new(),
                selected: 0,
                offset: 0,
            },
            keys: KeysScreen {
                stores: Vec::new(),
                selected: 0,
                offset: 0,
            },
            audit: AuditScreen {
                load: Load::NotYet,
                store: String::new(),
                rows: Vec::new(),
                shown: Vec::new(),
                filter: String::new(),
                typing: false,
                selected: 0,
                offset: 0,
            },
            pin: None,
            help: None,
            message: None,
            confirm: None,
            palette: None,
            tick: 0,
            page: 10,
            quit: false,
        }
    }

    /// The key stores the Keys screen lists: `(name, KEYREF)`, from the configuration.
    pub fn with_key_stores(mut self, stores: Vec<(String, String)>) -> Self {
        self.keys.stores = stores
            .into_iter()
            .map(|(name, reference)| KeyStoreRow {
                name,
                reference,
                state: KeysState::NotOpened,
            })
            .collect();
        self
    }

    /// The tasks to start with.
    pub fn start(&self) -> Vec<Task> {
        let mut t = vec![Task::LoadPeople {
            first: Some(FIRST_PEOPLE),
        }];
        if matches!(self.plan.view, PlanView::Loading) {
            t.push(Task::LoadPlan);
        }
        t
    }

    /// Whether anything is pending (the spinner turns).
    pub fn busy(&self) -> Option<&'static str> {
        if self.people.loading {
            Some("people…")
        } else if matches!(self.people.detail, Some((_, Detail::Loading))) {
            Some("certificates…")
        } else if matches!(self.plan.view, PlanView::Loading) {
            Some("planning…")
        } else if matches!(self.plan.view, PlanView::Applying { .. }) {
            Some("applying…")
        } else if self.trust.load == Load::Loading {
            Some("trust chains…")
        } else if self.audit.load == Load::Loading {
            Some("audit log…")
        } else if self
            .keys
            .stores
            .iter()
            .any(|s| matches!(s.state, KeysState::Opening))
        {
            Some("key store…")
        } else {
            None
        }
    }

    /// The context whose keys apply now, innermost first.
    pub fn context(&self) -> Context {
        if self.message.is_some() {
            Context::Message
        } else if self.pin.is_some() {
            Context::Pin
        } else if self.confirm.is_some() {
            Context::Confirm
        } else if self.help.is_some() {
            Context::Help
        } else {
            match self.screen {
                Screen::People if self.people.typing => Context::Filter,
                Screen::People => Context::People,
                Screen::Plan if matches!(self.plan.view, PlanView::Applying { .. }) => {
                    Context::Applying
                }
                Screen::Plan => Context::Plan,
                Screen::Trust => Context::Trust,
                Screen::Keys => Context::Keys,
                Screen::Audit if self.audit.typing => Context::Filter,
                Screen::Audit => Context::Audit,
            }
        }
    }

    /// A key pressed.
    pub fn key(&mut self, ev: KeyEvent) -> Vec<Task> {
        let key = Key::of(&ev);
        if let Some(line) = &mut self.palette {
            match key.code {
                KeyCode::Esc => self.palette = None,
                KeyCode::Enter => {
                    let line = std::mem::take(line);
                    self.palette = None;
                    return self.command(&line);
                }
                KeyCode::Backspace => {
                    line.pop();
                }
                KeyCode::Char(c) if !key.ctrl => line.push(c),
                _ => {}
            }
            return Vec::new();
        }
        let context = self.context();
        let found = keymap::action(context, key).or(match context {
            // Overlays own the keys: only their own bindings and Ctrl-C work.
            Context::Message
            | Context::Confirm
            | Context::Help
            | Context::Filter
            | Context::Pin => {
                keymap::action(Context::Global, key).filter(|a| *a == Action::Quit && key.ctrl)
            }
            _ => keymap::action(Context::Global, key),
        });
        match found {
            Some(a) => self.act(a),
            None => {
                match context {
                    Context::Filter => self.filter_key(key),
                    Context::Pin => self.pin_key(key),
                    _ => {}
                }
                Vec::new()
            }
        }
    }

    fn filter_key(&mut self, key: Key) {
        let audit = self.screen == Screen::Audit;
        match key.code {
            KeyCode::Backspace => {
                if audit {
                    self.audit.filter.pop();
                    self.refilter_audit(false);
                } else {
                    self.people.filter.pop();
                    self.refilter(false);
                }
            }
            KeyCode::Char(c) if !key.ctrl => {
                if audit {
                    self.audit.filter.push(c);
                    self.refilter_audit(true);
                } else {
                    self.people.filter.push(c);
                    self.refilter(true);
                }
            }
            _ => {}
        }
    }

    /// A key typed into the PIN dialog: kept, never shown.
    fn pin_key(&mut self, key: Key) {
        let Some(pin) = &mut self.pin else { return };
        match key.code {
            KeyCode::Backspace => pin.pop(),
            KeyCode::Char(c) if !key.ctrl => pin.push(c),
            _ => {}
        }
    }

    /// A palette command.
    fn command(&mut self, line: &str) -> Vec<Task> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["people"] | ["1"] => self.act(Action::Screen(0)),
            ["plan"] | ["2"] => self.act(Action::Screen(1)),
            ["trust"] | ["3"] => self.act(Action::Screen(2)),
            ["keys"] | ["4"] => self.act(Action::Screen(3)),
            ["audit"] | ["5"] => self.act(Action::Screen(4)),
            ["open", reference] => self.open_reference(reference),
            ["apply"] => self.act(Action::Apply),
            ["help"] => self.act(Action::Help),
            ["q"] | ["quit"] => self.act(Action::Quit),
            ["sort", how] => {
                let sort = match *how {
                    "address" => Sort::Address,
                    "status" => Sort::Status,
                    "expiry" => Sort::Expiry,
                    other => {
                        self.message =
                            Some(format!("sort {other}: sort by address, status or expiry"));
                        return Vec::new();
                    }
                };
                self.set_sort(sort);
                Vec::new()
            }
            [] => Vec::new(),
            _ => {
                self.message = Some(format!("{line}: not a command ({})", keymap::COMMANDS));
                Vec::new()
            }
        }
    }

    /// Runs an action.
    pub fn act(&mut self, action: Action) -> Vec<Task> {
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = Some(0),
            Action::Palette => self.palette = Some(String::new()),
            Action::Dismiss => {
                if self.message.is_some() {
                    self.message = None;
                } else {
                    self.help = None;
                }
            }
            Action::NextScreen | Action::PrevScreen => {
                let i = SCREENS.iter().position(|s| *s == self.screen).unwrap_or(0);
                let n = SCREENS.len();
                let next = if action == Action::NextScreen {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                return self.show(SCREENS[next]);
            }
            Action::Screen(i) => {
                if let Some(s) = SCREENS.get(i) {
                    return self.show(*s);
                }
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page.max(1) as isize)),
            Action::PageDown => self.move_by(self.page.max(1) as isize),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::Filter => match self.screen {
                Screen::Audit => self.audit.typing = true,
                _ => self.people.typing = true,
            },
            Action::FilterDone => match self.screen {
                Screen::Audit => self.audit.typing = false,
                _ => self.people.typing = false,
            },
            Action::FilterClear => match self.screen {
                Screen::Audit => {
                    self.audit.typing = false;
                    self.audit.filter.clear();
                    self.refilter_audit(false);
                }
                _ => {
                    self.people.typing = false;
                    self.people.filter.clear();
                    self.refilter(false);
                }
            },
            Action::Sort => {
                let next = match self.people.sort {
                    Sort::Address => Sort::Status,
                    Sort::Status => Sort::Expiry,
                    Sort::Expiry => Sort::Address,
                };
                self.set_sort(next);
            }
            Action::Open if self.screen == Screen::Keys => {
                return self.list_keys(self.keys.selected, None);
            }
            Action::Open => {
                if let Some(row) = self.selected_person() {
                    let address = row.address.clone();
                    self.people.detail = Some((address.clone(), Detail::Loading));
                    return vec![Task::Lookup { address }];
                }
            }
            Action::Refresh => match self.screen {
                Screen::People => {
                    self.people.loading = true;
                    // A whole list stays on screen while it is read again.
                    let first = (self.people.extent != Extent::All).then_some(FIRST_PEOPLE);
                    return vec![Task::LoadPeople { first }];
                }
                Screen::Plan => {
                    if matches!(self.plan.view, PlanView::NoFile) {
                        self.message = Some(NO_FILE.into());
                    } else {
                        self.plan.view = PlanView::Loading;
                        return vec![Task::LoadPlan];
                    }
                }
                Screen::Trust => {
                    self.trust.load = Load::Loading;
                    return vec![Task::LoadTrust];
                }
                Screen::Audit => {
                    self.audit.load = Load::Loading;
                    return vec![Task::LoadAudit];
                }
                Screen::Keys => return self.list_keys(self.keys.selected, None),
            },
            Action::OpenReference => self.palette = Some("open ".into()),
            Action::Unlock => {
                if let Some(mut pin) = self.pin.take() {
                    let secret = pin.take();
                    return self.list_keys(pin.store, Some(secret));
                }
            }
            Action::CancelPin => {
                if let Some(pin) = self.pin.take() {
                    // Dropping the dialog wipes what was typed.
                    if let Some(s) = self.keys.stores.get_mut(pin.store) {
                        s.state = KeysState::Locked(pin.hint.clone());
                    }
                }
            }
            Action::Toggle => {
                if matches!(self.plan.view, PlanView::Review)
                    && let Some(item) = self.plan.items.get_mut(self.plan.selected)
                {
                    item.approved = !item.approved;
                    self.move_by(1);
                }
            }
            Action::ApproveAll | Action::SkipAll => {
                if matches!(self.plan.view, PlanView::Review) {
                    for i in &mut self.plan.items {
                        i.approved = action == Action::ApproveAll;
                    }
                }
            }
            Action::Apply => self.ask_apply(),
            Action::Yes => {
                self.confirm = None;
                if let Some(plan) = self.approved_plan() {
                    self.plan.view = PlanView::Applying {
                        progress: None,
                        finished: Vec::new(),
                        cancelled: false,
                    };
                    return vec![Task::Apply(Box::new(plan))];
                }
            }
            Action::No => self.confirm = None,
            Action::CancelApply => {
                if let PlanView::Applying { cancelled, .. } = &mut self.plan.view {
                    *cancelled = true;
                    return vec![Task::CancelApply];
                }
            }
        }
        Vec::new()
    }

    /// Switches screens; a screen's data is read the first time it shows.
    fn show(&mut self, screen: Screen) -> Vec<Task> {
        self.screen = screen;
        match screen {
            Screen::Trust if self.trust.load == Load::NotYet => {
                self.trust.load = Load::Loading;
                vec![Task::LoadTrust]
            }
            Screen::Audit if self.audit.load == Load::NotYet => {
                self.audit.load = Load::Loading;
                vec![Task::LoadAudit]
            }
            _ => Vec::new(),
        }
    }

    /// Lists a key store's keys (the PIN, when the dialog took one).
    fn list_keys(&mut self, store: usize, secret: Option<Secret>) -> Vec<Task> {
        let Some(row) = self.keys.stores.get_mut(store) else {
            self.message = Some(NO_KEY_STORE.into());
            return Vec::new();
        };
        if matches!(row.state, KeysState::Opening) {
            return Vec::new();
        }
        row.state = KeysState::Opening;
        vec![Task::ListKeys {
            store,
            reference: row.reference.clone(),
            secret,
        }]
    }

    /// `:open KEYREF`: a key store the configuration does not name.
    fn open_reference(&mut self, reference: &str) -> Vec<Task> {
        let store = match self
            .keys
            .stores
            .iter()
            .position(|s| s.reference == reference)
        {
            Some(i) => i,
            None => {
                self.keys.stores.push(KeyStoreRow {
                    name: "(opened)".into(),
                    reference: reference.to_string(),
                    state: KeysState::NotOpened,
                });
                self.keys.stores.len() - 1
            }
        };
        self.screen = Screen::Keys;
        self.keys.selected = store;
        self.list_keys(store, None)
    }

    fn ask_apply(&mut self) {
        if self.screen != Screen::Plan {
            self.screen = Screen::Plan;
        }
        match &self.plan.view {
            PlanView::NoFile => {
                self.message = Some(NO_FILE.into());
                return;
            }
            PlanView::Review => {}
            _ => return,
        }
        if !self.write {
            self.message = Some(
                "read-only: nothing is changed. Start smimekit-tui with --write to apply changes."
                    .into(),
            );
            return;
        }
        let approved = self.plan.items.iter().filter(|i| i.approved).count();
        if approved == 0 {
            self.message = Some("No change is approved: approve some with Space first.".into());
            return;
        }
        let dirs: Vec<String> = self
            .approved_plan()
            .map(|p| {
                p.directories
                    .iter()
                    .filter(|d| d.trust.is_some() || !d.people.is_empty())
                    .map(|d| d.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let skipped = self.plan.items.len() - approved;
        let mut question = format!(
            "Apply {approved} approved change{} ({skipped} skipped)",
            if approved == 1 { "" } else { "s" }
        );
        if !dirs.is_empty() {
            question.push_str(&format!(" to {}", dirs.join(", ")));
        }
        question.push('?');
        self.confirm = Some(Confirm { question });
    }

    /// The plan holding only the approved changes (what `a` applies).
    pub fn approved_plan(&self) -> Option<Plan> {
        let mut plan = self.plan.plan.clone()?;
        let approved = |at: &ItemRef| self.plan.items.iter().any(|i| i.approved && i.at == *at);
        let mut i = 0;
        plan.issue.retain(|_| {
            i += 1;
            approved(&ItemRef::Issue(i - 1))
        });
        for (d, dir) in plan.directories.iter_mut().enumerate() {
            if dir.trust.is_some() && !approved(&ItemRef::Trust { dir: d }) {
                dir.trust = None;
            }
            let mut p = 0;
            dir.people.retain_mut(|person| {
                let this = p;
                p += 1;
                if person.changes.is_empty() {
                    return true;
                }
                let mut c = 0;
                person.changes.retain(|_| {
                    c += 1;
                    approved(&ItemRef::Change {
                        dir: d,
                        person: this,
                        change: c - 1,
                    })
                });
                // A person whose every change is skipped is left alone (no contact created).
                !person.changes.is_empty()
            });
        }
        Some(plan)
    }

    /// A result from the service.
    pub fn message(&mut self, msg: Msg) -> Vec<Task> {
        match msg {
            // Late for a whole list already in (a refresh's first part): dropped.
            Msg::PeopleFirst(_) if self.people.extent == Extent::All => {}
            Msg::PeopleFirst(rows) => {
                self.people.extent = Extent::First;
                self.replace_people(rows);
            }
            Msg::People(Ok(rows)) => {
                self.people.loading = false;
                self.people.extent = Extent::All;
                self.replace_people(rows);
            }
            Msg::People(Err(e)) => {
                self.people.loading = false;
                self.message = Some(format!("Reading people: {}", e.message));
            }
            Msg::Lookup { address, result } => {
                let current = matches!(&self.people.detail, Some((a, _)) if *a == address);
                match result {
                    Ok(found) if current => {
                        self.people.detail = Some((address, Detail::Loaded(found)));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if current {
                            self.people.detail = None;
                        }
                        self.message = Some(format!("Looking up {address}: {}", e.message));
                    }
                }
            }
            Msg::Plan(Ok(plan)) => {
                self.plan.items = items_of(&plan);
                self.plan.plan = Some(*plan);
                self.plan.selected = 0;
                self.plan.offset = 0;
                self.plan.view = PlanView::Review;
            }
            Msg::Plan(Err(e)) => {
                self.plan.view = PlanView::Review;
                self.message = Some(format!("Planning: {}", e.message));
            }
            Msg::Progress(ev) => {
                if let PlanView::Applying {
                    progress, finished, ..
                } = &mut self.plan.view
                {
                    if let Some(item) = &ev.current_item {
                        finished.push(item.clone());
                    }
                    *progress = Some(ev);
                }
            }
            Msg::Applied(Ok(report)) => {
                // The first failure is what the admin reads first.
                self.plan.selected = report
                    .steps
                    .iter()
                    .position(|s| s.status == "failed")
                    .unwrap_or(0);
                self.plan.offset = 0;
                self.plan.view = PlanView::Results(report);
            }
            Msg::Applied(Err(e)) => {
                self.plan.view = PlanView::Review;
                self.message = Some(format!("Apply: {}", e.message));
            }
            Msg::Trust(dirs) => {
                self.trust.load = Load::Loaded;
                self.trust.dirs = dirs
                    .into_iter()
                    .map(|(name, r)| {
                        let held = match r {
                            Ok(chain) => Held::Chain(chain),
                            Err(e) if e.kind == ErrorKind::Unsupported => Held::NotKept(e.message),
                            Err(e) => Held::Failed(e.message),
                        };
                        TrustDir { name, held }
                    })
                    .collect();
                let len = self.trust_rows().len();
                self.trust.selected = self.trust.selected.min(len.saturating_sub(1));
            }
            Msg::Audit(Ok(r)) => {
                self.audit.load = Load::Loaded;
                self.audit.store = r.store;
                self.audit.rows = r.rows;
                // The service gives the oldest first; the screen shows the newest first.
                self.audit.rows.reverse();
                self.refilter_audit(false);
            }
            Msg::Audit(Err(e)) => {
                self.audit.load = Load::Loaded;
                self.message = Some(format!("Reading the audit log: {}", e.message));
            }
            Msg::Keys { store, result } => {
                let Some(row) = self.keys.stores.get_mut(store) else {
                    return Vec::new();
                };
                match result {
                    Ok(keys) => row.state = KeysState::Listed(keys),
                    Err(e) => match e.kind {
                        ErrorKind::Locked {
                            object,
                            hint,
                            tries_left,
                        } => {
                            row.state = KeysState::Locked(hint.clone());
                            self.pin = Some(PinDialog::new(store, object, hint, tries_left));
                        }
                        _ => {
                            row.state = KeysState::Failed(e.message.clone());
                            self.message = Some(format!("Key store {}: {}", row.name, e.message));
                        }
                    },
                }
            }
        }
        Vec::new()
    }

    /// The Trust screen's lines: each directory, what it holds, what it lacks.
    pub fn trust_rows(&self) -> Vec<TrustRow> {
        let mut out = Vec::new();
        for (d, dir) in self.trust.dirs.iter().enumerate() {
            out.push(TrustRow::Directory(d));
            if let Held::Chain(chain) = &dir.held {
                out.extend((0..chain.len()).map(|c| TrustRow::Held { dir: d, cert: c }));
            }
            if let Against::Differs { add, .. } = self.against(&dir.name) {
                out.extend(
                    add.into_iter()
                        .map(|cert| TrustRow::Missing { dir: d, cert }),
                );
            }
        }
        out
    }

    /// A directory's trust chain against the organisation's, as the plan read it.
    pub fn against(&self, directory: &str) -> Against {
        let Some(plan) = &self.plan.plan else {
            return Against::NoPlan;
        };
        let Some(d) = plan.directories.iter().find(|d| d.name == directory) else {
            return Against::NotManaged;
        };
        if let Some(t) = &d.trust {
            return Against::Differs {
                add: t.add.clone(),
                remove: t.remove.iter().map(|c| c.thumbprint.clone()).collect(),
            };
        }
        if let Some(note) = &d.trust_note {
            return Against::Note(note.clone());
        }
        // The plan records the chain it read only where the deploy file manages one.
        if d.read.contains_key("#trust") {
            Against::Matches
        } else {
            Against::NotManaged
        }
    }

    pub fn selected_audit(&self) -> Option<&AuditLogRow> {
        self.audit
            .shown
            .get(self.audit.selected)
            .and_then(|i| self.audit.rows.get(*i))
    }

    /// Recomputes the audit rows shown (as [`App::refilter`] does for people).
    fn refilter_audit(&mut self, narrowed: bool) {
        let a = &mut self.audit;
        let needle = a.filter.to_lowercase();
        let matches = |r: &AuditLogRow| {
            needle.is_empty()
                || [
                    &r.address,
                    &r.directory,
                    &r.operation,
                    &r.actor,
                    &r.frontend,
                    &r.result,
                    &r.time,
                ]
                .iter()
                .any(|f| contains_lower(f, &needle))
        };
        if narrowed {
            let rows = &a.rows;
            a.shown.retain(|i| matches(&rows[*i]));
        } else {
            a.shown = (0..a.rows.len()).filter(|i| matches(&a.rows[*i])).collect();
        }
        if narrowed || a.filter.is_empty() {
            a.selected = 0;
            a.offset = 0;
        }
        a.selected = a.selected.min(a.shown.len().saturating_sub(1));
        a.offset = a.offset.min(a.selected);
    }

    pub fn selected_person(&self) -> Option<&PersonRow> {
        self.people
            .shown
            .get(self.people.selected)
            .and_then(|i| self.people.rows.get(*i))
    }

    fn set_sort(&mut self, sort: Sort) {
        self.people.sort = sort;
        let keep = self.selected_person().map(|r| r.address.clone());
        self.sort_rows();
        self.refilter(false);
        if let Some(a) = keep
            && let Some(pos) = self
                .people
                .shown
                .iter()
                .position(|i| self.people.rows[*i].address == a)
        {
            self.people.selected = pos;
            self.people.offset = pos.saturating_sub(self.page / 2);
        }
    }

    /// Puts `rows` in the list, sorted and filtered as the list is now; the selected person
    /// stays selected (and on the same line of the screen) when the new rows hold them.
    fn replace_people(&mut self, rows: Vec<PersonRow>) {
        let keep = self.selected_person().map(|r| r.address.clone());
        let line = self.people.selected.saturating_sub(self.people.offset);
        self.people.rows = rows;
        self.sort_rows();
        self.refilter(false);
        if let Some(a) = keep
            && let Some(pos) = self
                .people
                .shown
                .iter()
                .position(|i| self.people.rows[*i].address == a)
        {
            self.people.selected = pos;
            self.people.offset = pos.saturating_sub(line);
        }
    }

    fn sort_rows(&mut self) {
        let rows = &mut self.people.rows;
        match self.people.sort {
            Sort::Address => rows.sort_by(|a, b| a.address.cmp(&b.address)),
            Sort::Status => rows.sort_by(|a, b| {
                status_rank(a.status)
                    .cmp(&status_rank(b.status))
                    .then_with(|| a.address.cmp(&b.address))
            }),
            // Earliest first; nobody's expiry (no valid certificate) last.
            Sort::Expiry => rows.sort_by(|a, b| {
                a.earliest_expiry_unix
                    .unwrap_or(i64::MAX)
                    .cmp(&b.earliest_expiry_unix.unwrap_or(i64::MAX))
                    .then_with(|| a.address.cmp(&b.address))
            }),
        }
        // The filter's index follows the rows' order.
        let p = &mut self.people;
        p.haystack.clear();
        p.starts.clear();
        for r in &p.rows {
            p.starts.push(p.haystack.len());
            p.haystack
                .extend(r.address.bytes().map(|b| b.to_ascii_lowercase()));
            p.haystack.push(0);
        }
    }

    /// Recomputes the rows shown. `narrowed`: the filter only grew, so only the rows shown
    /// now can match (the common keystroke scans the last result, not everyone).
    fn refilter(&mut self, narrowed: bool) {
        let p = &mut self.people;
        let needle = p.filter.to_lowercase();
        if needle.is_empty() {
            p.shown = (0..p.rows.len()).collect();
        } else if narrowed && p.shown.len() <= NARROW_IN_PLACE {
            let rows = &p.rows;
            p.shown
                .retain(|i| contains_lower(&rows[*i].address, &needle));
        } else {
            p.shown = search(&p.haystack, &p.starts, needle.as_bytes());
        }
        p.selected = p.selected.min(p.shown.len().saturating_sub(1));
        if narrowed || p.filter.is_empty() {
            p.selected = 0;
            p.offset = 0;
        }
        p.offset = p.offset.min(p.selected);
    }

    fn move_by(&mut self, delta: isize) {
        let page = self.page.max(1);
        let (selected, offset, len) = match self.screen {
            Screen::People => (
                &mut self.people.selected,
                &mut self.people.offset,
                self.people.shown.len(),
            ),
            Screen::Plan => {
                let len = match &self.plan.view {
                    PlanView::Results(r) => r.steps.len(),
                    _ => self.plan.items.len(),
                };
                (&mut self.plan.selected, &mut self.plan.offset, len)
            }
            Screen::Trust => {
                let len = self.trust_rows().len();
                (&mut self.trust.selected, &mut self.trust.offset, len)
            }
            Screen::Keys => (
                &mut self.keys.selected,
                &mut self.keys.offset,
                self.keys.stores.len(),
            ),
            Screen::Audit => (
                &mut self.audit.selected,
                &mut self.audit.offset,
                self.audit.shown.len(),
            ),
        };
        if self.help.is_some() {
            let h = self.help.get_or_insert(0);
            *h = h
                .saturating_add_signed(delta)
                .min(keymap::help_lines().len());
            return;
        }
        if len == 0 {
            *selected = 0;
            *offset = 0;
            return;
        }
        *selected = selected.saturating_add_signed(delta).min(len - 1);
        if *selected < *offset {
            *offset = *selected;
        } else if *selected >= *offset + page {
            *offset = *selected + 1 - page;
        }
    }
}

const NO_KEY_STORE: &str = "No key store is configured: add [keystore.NAME] to the configuration, or open one with :open KEYREF (a .p12 file, a pkcs11: URI).";

const NO_FILE: &str =
    "No deploy file: start smimekit-tui with --file deploy.toml to review a plan.";

fn status_rank(s: PersonStatus) -> u8 {
    match s {
        PersonStatus::NotReady => 0,
        PersonStatus::Expiring => 1,
        PersonStatus::Ready => 2,
    }
}

/// Below this many rows shown, a longer filter checks them one by one; above it, the
/// filter searches the index (one pass over every address).
const NARROW_IN_PLACE: usize = 2_000;

/// The rows (indices into the rows `starts` indexes) whose address holds `needle`, in order:
/// `haystack` is searched once, skipping to the next address after each match.
fn search(haystack: &[u8], starts: &[usize], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.contains(&0) {
        return out;
    }
    let finder = memchr::memmem::Finder::new(needle);
    let (mut at, mut row) = (0, 0);
    while let Some(found) = finder.find(&haystack[at..]) {
        let pos = at + found;
        // A match holds no NUL, so it lies in the address starting last before it; matches
        // only move forward, and so does the row.
        while starts.get(row + 1).is_some_and(|s| *s <= pos) {
            row += 1;
        }
        out.push(row);
        row += 1;
        match starts.get(row) {
            Some(s) => at = *s,
            None => break,
        }
    }
    out
}

/// Whether `hay` contains `needle` (already lower case), ignoring ASCII case, without
/// allocating (addresses are mostly ASCII; others compare as they are).
fn contains_lower(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.len() <= h.len()
        && h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// The reviewable changes of a plan, in the order the plan text shows them.
pub fn items_of(plan: &Plan) -> Vec<PlanItem> {
    let mut items = Vec::new();
    for i in 0..plan.issue.len() {
        items.push(ItemRef::Issue(i));
    }
    for (d, dir) in plan.directories.iter().enumerate() {
        if dir.trust.is_some() {
            items.push(ItemRef::Trust { dir: d });
        }
        for (p, person) in dir.people.iter().enumerate() {
            for c in 0..person.changes.len() {
                items.push(ItemRef::Change {
                    dir: d,
                    person: p,
                    change: c,
                });
            }
        }
    }
    items
        .into_iter()
        .map(|at| PlanItem { at, approved: true })
        .collect()
}

/// One line naming a plan item: directory, target, what.
pub fn item_text(plan: &Plan, at: &ItemRef) -> (String, String, String) {
    match at {
        ItemRef::Issue(i) => {
            let s = &plan.issue[*i];
            let what = match &s.replaces {
                Some(_) => format!("renew with CA {}", s.ca),
                None => format!("issue with CA {}", s.ca),
            };
            (s.directories.join(","), s.address.clone(), what)
        }
        ItemRef::Trust { dir } => {
            let d = &plan.directories[*dir];
            let (add, remove) = d
                .trust
                .as_ref()
                .map_or((0, 0), |t| (t.add.len(), t.remove.len()));
            (
                d.name.clone(),
                "trust chain".into(),
                format!("upload (+{add} -{remove})"),
            )
        }
        ItemRef::Change {
            dir,
            person,
            change,
        } => {
            let d = &plan.directories[*dir];
            let p = &d.people[*person];
            let what = match &p.changes[*change] {
                ChangeAction::Add { certificate } => format!("+ add {}", certificate.subject),
                ChangeAction::Remove { certificate, .. } => {
                    format!("- remove {}", certificate.subject)
                }
            };
            (d.name.clone(), p.address.clone(), what)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index search finds exactly the rows a check of each address finds, in order.
    #[test]
    fn search_finds_what_checking_each_address_finds() {
        let addresses = [
            "anna@example.org",
            "Bob.Banana@Example.ORG",
            "bb@b.b",
            "zoë@exämple.org",
            "user000010@bench.example",
            "a",
        ];
        let mut haystack = Vec::new();
        let mut starts = Vec::new();
        for a in addresses {
            starts.push(haystack.len());
            haystack.extend(a.bytes().map(|b| b.to_ascii_lowercase()));
            haystack.push(0);
        }
        for needle in [
            "a",
            "b",
            "an",
            "ana",
            "bb",
            "b.b",
            "@",
            "org",
            "ä",
            "zoë",
            "0010@",
            "e",
            "x",
            "a@",
            "nothing",
            "anna@example.org.",
            "user000010@bench.example",
        ] {
            let naive: Vec<usize> = (0..addresses.len())
                .filter(|i| contains_lower(addresses[*i], needle))
                .collect();
            assert_eq!(
                search(&haystack, &starts, needle.as_bytes()),
                naive,
                "{needle:?}"
            );
        }
        // A NUL never matches across two addresses.
        assert!(search(&haystack, &starts, b"org\0").is_empty());
    }
}
