//! Preparing redactions sent by clients, whether through `/redact` or as `m.room.redaction`
//! through `/send`: the same checks and the same event shape for both.

use ruma::{EventId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value};

use super::Rooms;
use super::pipeline::rules_of;
use crate::error::{Error, Result};
use crate::events::PduTemplate;

impl Rooms {
    /// The `m.room.redaction` to send for `target`, with `content` (reason, …). Refused when the
    /// target is an event of another room, or someone else's event and the sender lacks the
    /// room's `redact` power. `redacts` goes into the content from room version 11 and at the
    /// top level before it.
    pub fn redaction_template(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &EventId,
        mut content: Map<String, Value>,
    ) -> Result<PduTemplate> {
        let room = self
            .room(room_id)?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        if let Some(event) = self.pdu(target)? {
            if event.room_id != room_id {
                return Err(Error::not_found("Event not found in this room"));
            }
            if event.sender != sender && !self.has_power(room_id, sender, "redact")? {
                return Err(Error::forbidden(
                    "You don't have permission to redact this event",
                ));
            }
        }
        let version = RoomVersionId::try_from(room.version.as_str()).map_err(Error::internal)?;
        let rules = rules_of(&version)?;
        let mut template = PduTemplate::message("m.room.redaction", Value::Null);
        if rules.redaction.keep_room_redaction_redacts {
            content.insert("redacts".into(), target.as_str().into());
        } else {
            content.remove("redacts");
            template.redacts = Some(target.to_owned());
        }
        template.content = Value::Object(content);
        Ok(template)
    }
}
