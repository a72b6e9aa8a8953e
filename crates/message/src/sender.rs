//! The message's sender, as a signature verdict needs it: the `From:` address, and the
//! `Sender:` one when present, compared with the addresses the signer's certificate vouches for
//! (what Thunderbird and Outlook check before they call a signature good).
//!
//! Deliberately strict: a header that holds several addresses, a group, or anything that does
//! not read as exactly one `local@domain` never matches, so no parser difference between us and
//! the reader's mail client can make a forged sender look signed. Display names are not
//! compared (they are not addresses).

use crate::mime::Entity;

/// The sender addresses of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Senders {
    /// The message names no sender (raw CMS, an entity without `From:`): nothing to compare.
    #[default]
    Unknown,
    /// `From:` and (when present) `Sender:`, each exactly one address.
    Addresses(Vec<String>),
    /// A `From:` or `Sender:` that cannot match any certificate: several addresses, several
    /// fields, or an unparsable value; the text says what was found.
    Unmatchable(String),
}

impl Senders {
    /// The senders named by a message's top-level header.
    pub fn of(entity: &Entity<'_>) -> Self {
        let from: Vec<&str> = entity.header_all("From").collect();
        let sender: Vec<&str> = entity.header_all("Sender").collect();
        Self::from_fields(&from, &sender)
    }

    /// The senders named by the values of every `From:` and `Sender:` field.
    pub fn from_fields(from: &[&str], sender: &[&str]) -> Self {
        if from.is_empty() {
            return Senders::Unknown;
        }
        let mut addresses = Vec::new();
        for (name, values) in [("From", from), ("Sender", sender)] {
            match values {
                [] => {}
                [value] => match single_address(value) {
                    Some(a) => {
                        if !addresses
                            .iter()
                            .any(|x: &String| x.eq_ignore_ascii_case(&a))
                        {
                            addresses.push(a);
                        }
                    }
                    None => {
                        return Senders::Unmatchable(format!(
                            "{name}: {}",
                            value.trim().chars().take(200).collect::<String>()
                        ));
                    }
                },
                _ => {
                    return Senders::Unmatchable(format!("{} {name}: header fields", values.len()));
                }
            }
        }
        Senders::Addresses(addresses)
    }

    /// Compares the senders with a certificate's addresses: `None` when there is nothing to
    /// compare, `Some(Ok(()))` when every sender address is among them, `Some(Err(sender))`
    /// naming the first one that is not (or the header that cannot match).
    pub fn check(&self, certificate_addresses: &[String]) -> Option<Result<(), String>> {
        match self {
            Senders::Unknown => None,
            Senders::Unmatchable(what) => Some(Err(what.clone())),
            Senders::Addresses(addrs) => Some(
                match addrs.iter().find(|a| {
                    !certificate_addresses
                        .iter()
                        .any(|c| c.trim().eq_ignore_ascii_case(a))
                }) {
                    Some(missing) => Err(missing.clone()),
                    None => Ok(()),
                },
            ),
        }
    }
}

/// The one address of a header value (`a@b`, `Name <a@b>`, `"Doe, J." <a@b> (comment)`), or
/// `None` when it holds no address, several, a group, or something else.
fn single_address(value: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut comment, mut angle) = (false, false, 0usize, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if comment == 0 {
                current.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                if angle {
                    return None;
                }
                angle = true;
                current.push(c);
            }
            '>' if !quoted => {
                if !angle {
                    return None;
                }
                angle = false;
                current.push(c);
            }
            // A group (`team: a@b, c@d;`) is not one mailbox.
            ':' | ';' if !quoted && !angle => return None,
            ',' if !quoted && !angle => parts.push(std::mem::take(&mut current)),
            _ if quoted => {
                // A display name's text: kept out of the address.
            }
            _ => current.push(c),
        }
    }
    if quoted || comment > 0 || angle || escaped {
        return None;
    }
    parts.push(current);
    let parts: Vec<&str> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    let [mailbox] = parts.as_slice() else {
        return None;
    };
    let address = match (mailbox.find('<'), mailbox.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            // Nothing may follow the angle address.
            if !mailbox[b + 1..].trim().is_empty() || mailbox[..a].contains('@') {
                return None;
            }
            mailbox[a + 1..b].trim()
        }
        (None, None) => mailbox,
        _ => return None,
    };
    // A source route (`<@relay:a@b>`) was refused with ':' above only outside the brackets.
    let valid = address.matches('@').count() == 1
        && !address.starts_with('@')
        && !address.ends_with('@')
        && address
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[],;:\\\"".contains(c));
    valid.then(|| address.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_field() {
        let ok = |v: &str, want: &str| assert_eq!(single_address(v).as_deref(), Some(want), "{v}");
        ok("alice@example.org", "alice@example.org");
        ok(" Alice <alice@example.org> ", "alice@example.org");
        ok("\"Doe, Alice\" <alice@example.org>", "alice@example.org");
        ok("alice@example.org (Alice, at work)", "alice@example.org");
        ok(
            "=?utf-8?q?Al=C3=AFce?= <alice@example.org>",
            "alice@example.org",
        );
        for bad in [
            "",
            "Alice",
            "alice@example.org, ceo@example.org",
            "Alice <alice@example.org>, <ceo@example.org>",
            "team: alice@example.org;",
            "team:;",
            "<alice@example.org> <ceo@example.org>",
            "ceo@example.org <alice@example.org>",
            "<alice@example.org",
            "alice@@example.org",
            "\"unterminated <alice@example.org>",
            "<@relay.example:alice@example.org>",
            "alice@example.org\u{0}",
        ] {
            assert_eq!(single_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn from_and_sender_both_count() {
        let certs = vec!["Alice@Example.org".to_string()];
        let s = Senders::from_fields(&["Alice <alice@example.org>"], &[]);
        assert_eq!(s.check(&certs), Some(Ok(())));
        let s = Senders::from_fields(&["alice@example.org"], &["secretary@example.org"]);
        assert_eq!(s.check(&certs), Some(Err("secretary@example.org".into())));
        let s = Senders::from_fields(&["ceo@example.org"], &[]);
        assert_eq!(s.check(&certs), Some(Err("ceo@example.org".into())));
        // Several From fields, or several addresses in one, never match.
        let s = Senders::from_fields(&["alice@example.org", "alice@example.org"], &[]);
        assert!(matches!(s.check(&certs), Some(Err(_))));
        let s = Senders::from_fields(&["alice@example.org, alice@example.org"], &[]);
        assert!(matches!(s.check(&certs), Some(Err(_))));
        assert_eq!(Senders::from_fields(&[], &["x@y"]).check(&certs), None);
    }
}
