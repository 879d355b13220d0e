//! Validation of what clients put into events, beyond the auth rules: the shapes of the state
//! types the spec defines, and rules that need the room (canonical aliases must point at it).

use ruma::events::{AnyStateEventContent, EventContentFromType};
use ruma::{RoomAliasId, RoomId};
use serde_json::{Map, Value};

use super::Rooms;
use crate::error::{Error, ErrorKind, Result};

/// Check state content a client sends. Known types must match the spec's schema (ruma's typed
/// contents); custom types may hold any object.
pub fn validate_state(
    rooms: &Rooms,
    room_id: &RoomId,
    kind: &str,
    state_key: &str,
    content: &Map<String, Value>,
) -> Result<()> {
    if kind == "m.room.canonical_alias" {
        // The spec names M_INVALID_PARAM for aliases that are not aliases.
        let aliases = content.get("alias").into_iter().chain(
            content
                .get("alt_aliases")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for alias in aliases.filter(|a| !a.is_null()) {
            if alias
                .as_str()
                .and_then(|a| RoomAliasId::parse(a).ok())
                .is_none()
            {
                return Err(Error::invalid_param(format!(
                    "{alias} is not a valid room alias"
                )));
            }
        }
    }
    // Empty content removes a state entry (a space child, a room name): nothing to check.
    if !content.is_empty() {
        let raw = serde_json::value::to_raw_value(content).map_err(Error::internal)?;
        AnyStateEventContent::from_parts(kind, &raw)
            .map_err(|e| Error::bad_json(format!("Invalid {kind} content: {e}")))?;
    }
    if kind == "m.room.canonical_alias" && state_key.is_empty() {
        let mut aliases: Vec<&str> = content
            .get("alias")
            .and_then(Value::as_str)
            .into_iter()
            .collect();
        if let Some(Value::Array(alt)) = content.get("alt_aliases") {
            aliases.extend(alt.iter().filter_map(Value::as_str));
        }
        for alias in aliases {
            let alias = RoomAliasId::parse(alias)
                .map_err(|_| Error::new(ErrorKind::BadAlias, "Invalid alias"))?;
            if alias.server_name() == rooms.server_name()
                && rooms.resolve_alias(&alias)?.as_deref() != Some(room_id)
            {
                return Err(Error::new(
                    ErrorKind::BadAlias,
                    format!("{alias} does not point to this room"),
                ));
            }
        }
    }
    Ok(())
}
