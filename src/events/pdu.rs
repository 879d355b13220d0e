//! PDUs: building and signing new ones, and a parsed view of stored ones.

use ruma::events::TimelineEventType;
use ruma::room_version_rules::{EventsReferenceFormatVersion, RoomVersionRules};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
};
use serde_json::value::RawValue as RawJsonValue;
use serde_json::{Map, Value};

use super::ServerKey;
use crate::error::{Error, ErrorKind, Result};
use crate::util::{now_ms, random_alphanumeric};

/// What a new event says; the pipeline adds the DAG fields, hashes and signs it.
#[derive(Debug, Clone)]
pub struct PduTemplate {
    pub kind: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// For `m.room.redaction` in room versions before 11 (top-level `redacts`).
    pub redacts: Option<OwnedEventId>,
}

impl PduTemplate {
    pub fn state(kind: &str, state_key: &str, content: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            state_key: Some(state_key.to_owned()),
            content,
            redacts: None,
        }
    }

    pub fn message(kind: &str, content: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            state_key: None,
            content,
            redacts: None,
        }
    }
}

/// A stored (or just built) PDU: the signed canonical JSON plus the fields the pipeline, the
/// auth rules and the client API read.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    /// Shared, so cached events are handed out without copying.
    pub content: std::sync::Arc<RawJsonValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    pub rejected: bool,
    /// The complete signed PDU.
    /// Shared, so cached events are handed out without copying.
    pub json: std::sync::Arc<CanonicalJsonObject>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_json(message)
}

/// Event references are plain ids (v3+) or `[id, {hashes}]` pairs (v1, v2).
fn parse_refs(value: Option<&CanonicalJsonValue>) -> Result<Vec<OwnedEventId>> {
    let Some(CanonicalJsonValue::Array(items)) = value else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let id = match item {
                CanonicalJsonValue::String(s) => s.as_str(),
                CanonicalJsonValue::Array(pair) => match pair.first() {
                    Some(CanonicalJsonValue::String(s)) => s.as_str(),
                    _ => return Err(bad("malformed event reference")),
                },
                _ => return Err(bad("malformed event reference")),
            };
            EventId::parse(id).map_err(|_| bad("malformed event id in reference"))
        })
        .collect()
}

fn get_str<'a>(json: &'a CanonicalJsonObject, key: &str) -> Option<&'a str> {
    match json.get(key) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

impl Pdu {
    /// The user an `m.room.member` event is about (its state key); `None` for any other event.
    pub fn member_target(&self) -> Option<&str> {
        self.state_key
            .as_deref()
            .filter(|_| self.kind == ruma::events::TimelineEventType::RoomMember)
    }

    /// Parse a signed PDU. `event_id` and `room_id` are passed in because newer room versions
    /// derive them (the event id from the reference hash; in v12 the create event's room id from
    /// its own id).
    pub fn from_json(
        event_id: OwnedEventId,
        room_id: OwnedRoomId,
        json: CanonicalJsonObject,
    ) -> Result<Self> {
        let sender = get_str(&json, "sender").ok_or_else(|| bad("missing sender"))?;
        let sender = UserId::parse(sender).map_err(|_| bad("invalid sender"))?;
        let kind = get_str(&json, "type")
            .ok_or_else(|| bad("missing type"))?
            .into();
        let ts = match json.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(i)) => MilliSecondsSinceUnixEpoch(
                UInt::try_from(i64::from(*i)).map_err(|_| bad("negative origin_server_ts"))?,
            ),
            _ => return Err(bad("missing origin_server_ts")),
        };
        let content = json
            .get("content")
            .cloned()
            .unwrap_or(CanonicalJsonValue::Object(Default::default()));
        let content: std::sync::Arc<RawJsonValue> = serde_json::value::to_raw_value(&content)
            .map_err(Error::internal)?
            .into();
        let depth = match json.get("depth") {
            Some(CanonicalJsonValue::Integer(i)) => u64::try_from(i64::from(*i)).unwrap_or(0),
            _ => 0,
        };
        let redacts = get_str(&json, "redacts").and_then(|r| EventId::parse(r).ok());
        Ok(Self {
            event_id,
            room_id,
            sender,
            origin_server_ts: ts,
            kind,
            content,
            state_key: get_str(&json, "state_key").map(str::to_owned),
            prev_events: parse_refs(json.get("prev_events"))?,
            auth_events: parse_refs(json.get("auth_events"))?,
            redacts,
            depth,
            rejected: false,
            json: std::sync::Arc::new(json),
        })
    }

    /// Build, hash and sign a new PDU. `room_id` is none only for a v12 create event, whose room
    /// id is derived from its own reference hash. `prev` and `auth` are the referenced events.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        template: PduTemplate,
        room_id: Option<&RoomId>,
        rules: &RoomVersionRules,
        sender: &UserId,
        prev: &[&Pdu],
        auth: &[&Pdu],
        depth: u64,
        key: &ServerKey,
    ) -> Result<Self> {
        let mut json = CanonicalJsonObject::new();
        let content: CanonicalJsonValue = template
            .content
            .try_into()
            .map_err(|e| bad(format!("content is not canonical JSON: {e}")))?;
        json.insert("type".into(), template.kind.clone().into());
        json.insert("content".into(), content);
        json.insert("sender".into(), sender.as_str().into());
        json.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(int(now_ms())),
        );
        json.insert("depth".into(), CanonicalJsonValue::Integer(int(depth)));
        if let Some(state_key) = &template.state_key {
            json.insert("state_key".into(), state_key.clone().into());
        }
        if let Some(room_id) = room_id {
            json.insert("room_id".into(), room_id.as_str().into());
        }
        if let Some(redacts) = &template.redacts {
            json.insert("redacts".into(), redacts.as_str().into());
        }
        json.insert("prev_events".into(), references(prev, rules));
        json.insert("auth_events".into(), references(auth, rules));
        if rules.event_format.require_event_id {
            let id = format!("${}:{}", random_alphanumeric(18), key.server_name());
            json.insert("event_id".into(), id.into());
        }
        ruma::signatures::hash_and_sign_event(
            key.server_name(),
            key.pair(),
            &mut json,
            &rules.redaction,
        )
        .map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => {
                Error::new(ErrorKind::TooLarge, "Event is larger than 65536 bytes")
            }
            other => Error::internal(other),
        })?;
        ruma::state_res::check_pdu_format(&json, &rules.event_format).map_err(|e| {
            if e.contains("larger than") {
                Error::new(ErrorKind::TooLarge, "Event is larger than 65536 bytes")
            } else {
                bad(e)
            }
        })?;

        let event_id = match get_str(&json, "event_id") {
            Some(id) => EventId::parse(id).map_err(Error::internal)?,
            None => {
                let hash =
                    ruma::signatures::reference_hash(&json, rules).map_err(Error::internal)?;
                EventId::parse(format!("${hash}")).map_err(Error::internal)?
            }
        };
        let room_id = match room_id {
            Some(r) => r.to_owned(),
            // v12: the create event's room id is its event id with `!` for `$`.
            None => {
                RoomId::parse(format!("!{}", &event_id.as_str()[1..])).map_err(Error::internal)?
            }
        };
        Self::from_json(event_id, room_id, json)
    }

    /// [`Self::to_client_event`] serialised, without its closing brace, so that `unsigned`
    /// (which differs per reader and moment) can be appended to a form made once per event.
    pub fn client_event_open(&self) -> String {
        #[derive(serde::Serialize)]
        struct ClientEventRef<'a> {
            content: &'a RawJsonValue,
            event_id: &'a EventId,
            origin_server_ts: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            redacts: Option<&'a EventId>,
            room_id: &'a RoomId,
            sender: &'a UserId,
            #[serde(skip_serializing_if = "Option::is_none")]
            state_key: Option<&'a str>,
            #[serde(rename = "type")]
            kind: &'a TimelineEventType,
        }
        let mut json = serde_json::to_string(&ClientEventRef {
            content: &self.content,
            event_id: &self.event_id,
            origin_server_ts: u64::from(self.origin_server_ts.0),
            redacts: self.redacts.as_deref(),
            room_id: &self.room_id,
            sender: &self.sender,
            state_key: self.state_key.as_deref(),
            kind: &self.kind,
        })
        .unwrap_or_else(|_| "{}".to_owned());
        json.pop();
        json
    }

    /// The event in the client-server format (`ClientEvent`), without `unsigned`.
    pub fn to_client_event(&self) -> Value {
        let mut out = Map::new();
        out.insert("event_id".into(), self.event_id.as_str().into());
        out.insert("room_id".into(), self.room_id.as_str().into());
        out.insert("sender".into(), self.sender.as_str().into());
        out.insert("type".into(), self.kind.to_string().into());
        out.insert(
            "origin_server_ts".into(),
            u64::from(self.origin_server_ts.0).into(),
        );
        out.insert(
            "content".into(),
            serde_json::from_str(self.content.get()).unwrap_or(Value::Object(Map::new())),
        );
        if let Some(state_key) = &self.state_key {
            out.insert("state_key".into(), state_key.clone().into());
        }
        if let Some(redacts) = &self.redacts {
            out.insert("redacts".into(), redacts.as_str().into());
        }
        Value::Object(out)
    }

    /// The content as JSON.
    pub fn content_json(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Object(Map::new()))
    }
}

fn int(n: u64) -> ruma::Int {
    ruma::Int::try_from(n).unwrap_or(ruma::Int::MAX)
}

fn references(events: &[&Pdu], rules: &RoomVersionRules) -> CanonicalJsonValue {
    let items = events
        .iter()
        .map(|e| match rules.events_reference_format {
            EventsReferenceFormatVersion::V1 => {
                let hashes = e
                    .json
                    .get("hashes")
                    .cloned()
                    .unwrap_or(CanonicalJsonValue::Object(Default::default()));
                CanonicalJsonValue::Array(vec![e.event_id.as_str().into(), hashes])
            }
            _ => e.event_id.as_str().into(),
        })
        .collect();
    CanonicalJsonValue::Array(items)
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    /// What the PDU says: a v12 create event carries no room id (the room id is derived).
    fn room_id(&self) -> Option<&RoomId> {
        self.json.contains_key("room_id").then_some(&*self.room_id)
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawJsonValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use ruma::{event_id, room_id};

    use super::Pdu;

    #[test]
    fn the_spliceable_client_form_is_the_client_event() {
        let json = serde_json::json!({
            "type": "m.room.member",
            "state_key": "@bob:x",
            "sender": "@alice:x",
            "content": { "membership": "join", "displayname": "Bob \"B\" ✓" },
            "origin_server_ts": 1_700_000_000_000u64,
            "depth": 3,
            "room_id": "!r:x",
            "prev_events": [],
            "auth_events": [],
            "hashes": { "sha256": "x" },
            "signatures": {},
        });
        let object =
            ruma::canonical_json::try_from_json_map(json.as_object().cloned().unwrap()).unwrap();
        let pdu = Pdu::from_json(
            event_id!("$e").to_owned(),
            room_id!("!r:x").to_owned(),
            object,
        )
        .unwrap();
        let open = pdu.client_event_open();
        assert!(
            !open.ends_with('}'),
            "the closing brace is left for unsigned"
        );
        let spliced: serde_json::Value = serde_json::from_str(&format!("{open}}}")).unwrap();
        assert_eq!(spliced, pdu.to_client_event());
    }
}
