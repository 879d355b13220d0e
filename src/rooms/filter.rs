//! RoomEventFilter: which events a page of timeline (in `/messages`, `/context` or sync) may
//! carry.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::events::Pdu;

/// The parts of a RoomEventFilter that apply to a page of events.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    pub limit: Option<usize>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
}

/// Event-type patterns: `*` matches any run of characters.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == kind,
        Some((head, tail)) => {
            kind.len() >= head.len() + tail.len() && kind.starts_with(head) && {
                let rest = &kind[head.len()..];
                (0..=rest.len()).any(|i| rest.is_char_boundary(i) && type_matches(tail, &rest[i..]))
            }
        }
    }
}

impl EventFilter {
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        match raw {
            None => Ok(Self::default()),
            Some(raw) => serde_json::from_str(raw)
                .map_err(|e| Error::bad_json(format!("Invalid filter: {e}"))),
        }
    }

    /// Whether an event type passes `types` / `not_types` (for events without a sender, such
    /// as account data).
    pub fn allows_type(&self, kind: &str) -> bool {
        !self.not_types.iter().any(|p| type_matches(p, kind))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|p| type_matches(p, kind)))
    }

    /// Whether a sender passes `senders` / `not_senders`.
    pub fn allows_sender(&self, sender: &str) -> bool {
        !self.not_senders.iter().any(|s| s == sender)
            && self
                .senders
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == sender))
    }

    pub fn allows(&self, pdu: &Pdu) -> bool {
        let kind = pdu.kind.to_string();
        let sender = pdu.sender.as_str();
        if self.not_types.iter().any(|p| type_matches(p, &kind)) {
            return false;
        }
        if let Some(types) = &self.types
            && !types.iter().any(|p| type_matches(p, &kind))
        {
            return false;
        }
        if self.not_senders.iter().any(|s| s == sender) {
            return false;
        }
        if let Some(senders) = &self.senders
            && !senders.iter().any(|s| s == sender)
        {
            return false;
        }
        if let Some(wants_url) = self.contains_url {
            let has_url = pdu.content_json().get("url").is_some_and(|u| u.is_string());
            if has_url != wants_url {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::type_matches;

    #[test]
    fn wildcards_match_like_the_spec_says() {
        assert!(type_matches("m.room.*", "m.room.message"));
        assert!(type_matches("*", "anything"));
        assert!(type_matches("m.*.message", "m.room.message"));
        assert!(!type_matches("m.room.*", "m.reaction"));
        assert!(type_matches("m.reaction", "m.reaction"));
        assert!(!type_matches("m.reaction", "m.reactions"));
    }
}
