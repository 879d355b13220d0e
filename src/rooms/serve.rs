//! Serving events to clients: the client format, `unsigned.age`, and redactions applied.

use ruma::RoomVersionId;
use serde_json::{Value, json};

use super::Rooms;
use super::pipeline::rules_of;
use super::tables::REDACTIONS;
use crate::error::{Error, Result};
use crate::events::Pdu;
use crate::storage::keys::KeyBuilder;
use crate::util::now_ms;

impl Rooms {
    /// The redaction that redacted `pdu`, if any.
    pub fn redacted_by(&self, pdu: &Pdu) -> Result<Option<Pdu>> {
        let key = KeyBuilder::new().str(pdu.event_id.as_str()).build();
        match REDACTIONS.get(&*self.db, &key)? {
            Some(id) => self.pdu(&ruma::OwnedEventId::try_from(id).map_err(Error::internal)?),
            None => Ok(None),
        }
    }

    /// `pdu` as a client sees it: the client-server event format with `unsigned.age`; a
    /// redacted event has its content stripped by its room version's redaction rules and
    /// `unsigned.redacted_because`.
    pub fn client_event(&self, pdu: &Pdu) -> Result<Value> {
        let age = now_ms().saturating_sub(u64::from(pdu.origin_server_ts.0));
        let Some(redaction) = self.redacted_by(pdu)? else {
            let mut event = pdu.to_client_event();
            event["unsigned"] = json!({ "age": age });
            return Ok(event);
        };
        let room = self
            .room(&pdu.room_id)?
            .ok_or_else(|| Error::internal("event of unknown room"))?;
        let version = RoomVersionId::try_from(room.version.as_str()).map_err(Error::internal)?;
        let rules = rules_of(&version)?;
        let redacted = ruma::canonical_json::redact(pdu.json.clone(), &rules.redaction, None)
            .map_err(Error::internal)?;
        let redacted = Pdu::from_json(pdu.event_id.clone(), pdu.room_id.clone(), redacted)?;
        let mut event = redacted.to_client_event();
        let mut because = redaction.to_client_event();
        because["unsigned"] =
            json!({ "age": now_ms().saturating_sub(u64::from(redaction.origin_server_ts.0)) });
        event["unsigned"] = json!({ "age": age, "redacted_because": because });
        Ok(event)
    }
}
