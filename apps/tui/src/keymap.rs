//! The one keymap: every key, the action it runs and where (its context). Key handling, the
//! help screen (`?`) and the status bar are all read from [`KEYMAP`]; nothing else binds keys.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. Overlays (help, a message, a confirmation, the filter and palette
/// lines) take keys before the screen; [`Context::Global`] comes last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Global,
    People,
    Plan,
    /// The Plan screen while an apply runs.
    Applying,
    Trust,
    Keys,
    Audit,
    /// Typing a filter (People, Audit).
    Filter,
    /// The PIN dialog: what is typed is kept, never shown.
    Pin,
    /// A yes/no question.
    Confirm,
    /// A message shown over the screen.
    Message,
    Help,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "everywhere",
            Self::People => "People",
            Self::Plan => "Plan",
            Self::Applying => "Plan, applying",
            Self::Trust => "Trust",
            Self::Keys => "Keys",
            Self::Audit => "Audit",
            Self::Filter => "filter line",
            Self::Pin => "PIN dialog",
            Self::Confirm => "confirmation",
            Self::Message => "message",
            Self::Help => "help",
        }
    }
}

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Palette,
    NextScreen,
    PrevScreen,
    /// 0-based screen number.
    Screen(usize),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Filter,
    /// Keep the filter and leave the filter line.
    FilterDone,
    /// Clear the filter and leave the filter line.
    FilterClear,
    Sort,
    Open,
    Refresh,
    Toggle,
    ApproveAll,
    SkipAll,
    Apply,
    CancelApply,
    Yes,
    No,
    Dismiss,
    /// Open a key store by KEYREF (the palette's `open`).
    OpenReference,
    /// Unlock with the PIN typed.
    Unlock,
    /// Close the PIN dialog, forgetting what was typed.
    CancelPin,
}

/// A key: a code and whether Ctrl is held (Shift is in the character itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    pub fn of(ev: &KeyEvent) -> Self {
        Self {
            code: ev.code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
        }
    }

    /// How help and the status bar name the key.
    pub fn name(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl { format!("C-{base}") } else { base }
    }
}

/// One row of the keymap.
#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub context: Context,
    /// What help says.
    pub help: &'static str,
    /// Its word in the status bar of its context ("": not shown there).
    pub status: &'static str,
}

const fn b(
    keys: &'static [Key],
    action: Action,
    context: Context,
    help: &'static str,
    status: &'static str,
) -> Binding {
    Binding {
        keys,
        action,
        context,
        help,
        status,
    }
}

use Action as A;
use Context as C;

/// The keymap. Order matters only for display: help lists it as written.
pub const KEYMAP: &[Binding] = &[
    b(
        &[ch('y'), code(KeyCode::Enter)],
        A::Yes,
        C::Confirm,
        "yes, go ahead",
        "yes",
    ),
    b(
        &[ch('n'), code(KeyCode::Esc)],
        A::No,
        C::Confirm,
        "no, change nothing",
        "no",
    ),
    b(
        &[code(KeyCode::Esc), code(KeyCode::Enter)],
        A::Dismiss,
        C::Message,
        "dismiss the message",
        "dismiss",
    ),
    b(
        &[code(KeyCode::Esc), ch('?'), ch('q')],
        A::Dismiss,
        C::Help,
        "close help",
        "close",
    ),
    b(
        &[ch('k'), code(KeyCode::Up)],
        A::Up,
        C::Help,
        "scroll up",
        "",
    ),
    b(
        &[ch('j'), code(KeyCode::Down)],
        A::Down,
        C::Help,
        "scroll down",
        "",
    ),
    b(
        &[code(KeyCode::Enter)],
        A::Unlock,
        C::Pin,
        "unlock with the PIN typed",
        "unlock",
    ),
    b(
        &[code(KeyCode::Esc)],
        A::CancelPin,
        C::Pin,
        "cancel; what was typed is wiped",
        "cancel",
    ),
    b(
        &[code(KeyCode::Enter)],
        A::FilterDone,
        C::Filter,
        "keep the filter",
        "keep",
    ),
    b(
        &[code(KeyCode::Esc)],
        A::FilterClear,
        C::Filter,
        "clear the filter",
        "clear",
    ),
    b(
        &[code(KeyCode::Up)],
        A::Up,
        C::Filter,
        "previous person",
        "",
    ),
    b(
        &[code(KeyCode::Down)],
        A::Down,
        C::Filter,
        "next person",
        "",
    ),
    b(
        &[ch('c'), code(KeyCode::Esc)],
        A::CancelApply,
        C::Applying,
        "cancel the apply (between items)",
        "cancel",
    ),
    b(
        &[ch('/')],
        A::Filter,
        C::People,
        "filter by address, as you type",
        "filter",
    ),
    b(
        &[ch('/')],
        A::Filter,
        C::Audit,
        "filter by address, directory, operation, actor, result",
        "filter",
    ),
    b(
        &[ch('r')],
        A::Refresh,
        C::Audit,
        "read the audit log again",
        "reload",
    ),
    b(
        &[ch('r')],
        A::Refresh,
        C::Trust,
        "read the directories' trust chains again",
        "reload",
    ),
    b(
        &[code(KeyCode::Enter), ch('r')],
        A::Open,
        C::Keys,
        "list the store's keys (asks for the PIN when locked)",
        "list keys",
    ),
    b(
        &[ch('o')],
        A::OpenReference,
        C::Keys,
        "open another key store by KEYREF",
        "open",
    ),
    b(
        &[ch('s')],
        A::Sort,
        C::People,
        "sort by address, status, expiry",
        "sort",
    ),
    b(
        &[code(KeyCode::Enter)],
        A::Open,
        C::People,
        "read the person's certificates",
        "certificates",
    ),
    b(
        &[ch('r')],
        A::Refresh,
        C::People,
        "reload people from the store",
        "",
    ),
    b(
        &[ch(' ')],
        A::Toggle,
        C::Plan,
        "approve or skip the change",
        "approve/skip",
    ),
    b(
        &[ch('A')],
        A::ApproveAll,
        C::Plan,
        "approve every change",
        "",
    ),
    b(&[ch('S')], A::SkipAll, C::Plan, "skip every change", ""),
    b(
        &[ch('a')],
        A::Apply,
        C::Plan,
        "apply the approved changes (--write)",
        "apply",
    ),
    b(
        &[ch('r')],
        A::Refresh,
        C::Plan,
        "plan again from the deploy file",
        "re-plan",
    ),
    b(&[ch('k'), code(KeyCode::Up)], A::Up, C::Global, "up", ""),
    b(
        &[ch('j'), code(KeyCode::Down)],
        A::Down,
        C::Global,
        "down",
        "",
    ),
    b(
        &[ctrl('u'), code(KeyCode::PageUp)],
        A::PageUp,
        C::Global,
        "page up",
        "",
    ),
    b(
        &[ctrl('d'), code(KeyCode::PageDown)],
        A::PageDown,
        C::Global,
        "page down",
        "",
    ),
    b(
        &[ch('g'), code(KeyCode::Home)],
        A::Top,
        C::Global,
        "first row",
        "",
    ),
    b(
        &[ch('G'), code(KeyCode::End)],
        A::Bottom,
        C::Global,
        "last row",
        "",
    ),
    b(
        &[code(KeyCode::Tab), ch('l'), code(KeyCode::Right)],
        A::NextScreen,
        C::Global,
        "next screen",
        "screens",
    ),
    b(
        &[code(KeyCode::BackTab), ch('h'), code(KeyCode::Left)],
        A::PrevScreen,
        C::Global,
        "previous screen",
        "",
    ),
    b(&[ch('1')], A::Screen(0), C::Global, "People", ""),
    b(&[ch('2')], A::Screen(1), C::Global, "Plan", ""),
    b(&[ch('3')], A::Screen(2), C::Global, "Trust chain", ""),
    b(&[ch('4')], A::Screen(3), C::Global, "Keys", ""),
    b(&[ch('5')], A::Screen(4), C::Global, "Audit log", ""),
    b(&[ch(':')], A::Palette, C::Global, "command palette", ""),
    b(&[ch('?')], A::Help, C::Global, "help", "help"),
    b(&[ch('q'), ctrl('c')], A::Quit, C::Global, "quit", "quit"),
];

/// The action for a key in a context, or `None` (then the caller tries the next context).
pub fn action(context: Context, key: Key) -> Option<Action> {
    KEYMAP
        .iter()
        .find(|b| b.context == context && b.keys.contains(&key))
        .map(|b| b.action)
}

/// The status-bar hints of a context and the global ones: `key action` pairs.
pub fn hints(context: Context) -> Vec<(String, &'static str)> {
    let mut out: Vec<_> = KEYMAP
        .iter()
        .filter(|b| !b.status.is_empty() && b.context == context)
        .map(|b| (b.keys[0].name(), b.status))
        .collect();
    if !matches!(
        context,
        C::Confirm | C::Message | C::Help | C::Filter | C::Pin
    ) {
        out.extend(
            KEYMAP
                .iter()
                .filter(|b| !b.status.is_empty() && b.context == C::Global)
                .map(|b| (b.keys[0].name(), b.status)),
        );
    }
    out
}

/// The help text: one line per binding, grouped by context.
pub fn help_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let order = [
        C::Global,
        C::People,
        C::Filter,
        C::Plan,
        C::Applying,
        C::Trust,
        C::Keys,
        C::Pin,
        C::Audit,
        C::Confirm,
        C::Message,
        C::Help,
    ];
    for context in order {
        lines.push(format!("{}:", context.name()));
        for b in KEYMAP.iter().filter(|b| b.context == context) {
            let keys: Vec<String> = b.keys.iter().map(Key::name).collect();
            lines.push(format!("  {:<18} {}", keys.join(" "), b.help));
        }
    }
    lines.push(String::new());
    lines.push(format!(": commands: {COMMANDS}"));
    lines
}

/// The keymap as a Markdown table (key, action, where), for README's section on the console;
/// a test keeps README equal to it.
pub fn markdown() -> String {
    let mut out = String::from("| keys | action | where |\n|---|---|---|\n");
    for b in KEYMAP {
        let keys: Vec<String> = b
            .keys
            .iter()
            .map(|k| format!("`{}`", k.name().replace('|', "\\|")))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            keys.join(" "),
            b.help,
            b.context.name()
        ));
    }
    out.push_str(&format!("\nThe command palette (`:`): {COMMANDS}.\n"));
    out
}

/// The command palette's commands, as help and its error message name them.
pub const COMMANDS: &str =
    "people, plan, trust, keys, audit, open KEYREF, sort address|status|expiry, apply, help, quit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.context == b.context {
                    for k in a.keys {
                        assert!(
                            !b.keys.contains(k),
                            "{} bound twice in {:?}",
                            k.name(),
                            a.context
                        );
                    }
                }
            }
        }
    }

    /// README's keys table is [`markdown`]; `SMIMEKIT_BLESS=1` rewrites it.
    #[test]
    fn readme_shows_the_keymap() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (begin, end) = (
            "<!-- keymap:begin (generated from apps/tui/src/keymap.rs; SMIMEKIT_BLESS=1 cargo test -p smimekit-tui keymap) -->\n",
            "<!-- keymap:end -->",
        );
        let generated = markdown();
        let at = text.find(begin).map(|b| b + begin.len());
        let current = at.and_then(|a| text[a..].find(end).map(|e| &text[a..a + e]));
        if current == Some(generated.as_str()) {
            return;
        }
        match (at, std::env::var_os("SMIMEKIT_BLESS")) {
            (Some(a), Some(_)) => {
                let Some(e) = text[a..].find(end) else {
                    panic!("README.md: {begin:?} without {end:?}");
                };
                let new = format!("{}{generated}{}", &text[..a], &text[a + e..]);
                std::fs::write(path, new).expect("README.md written");
            }
            _ => panic!(
                "README.md's keys of smimekit-tui are out of date with KEYMAP: run SMIMEKIT_BLESS=1 cargo test -p smimekit-tui keymap"
            ),
        }
    }

    #[test]
    fn vim_keys_and_arrows_both_move() {
        assert_eq!(action(C::Global, ch('j')), Some(A::Down));
        assert_eq!(action(C::Global, code(KeyCode::Down)), Some(A::Down));
        assert_eq!(action(C::Global, ctrl('c')), Some(A::Quit));
        assert_eq!(action(C::People, ch('j')), None);
    }
}
