//! Serving events to clients: the client format, `unsigned.age`, and redactions applied.

use ruma::RoomVersionId;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Rooms;
use super::pipeline::rules_of;
use super::tables::{EVENT_TXNS, REDACTIONS};
use crate::error::{Error, Result};
use crate::events::Pdu;
use crate::storage::keys::KeyBuilder;
use crate::users::Identity;
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

    /// `pdu` in the client format with `unsigned.age` only (for events nested inside another
    /// event's `unsigned`).
    pub fn plain_client_event(&self, pdu: &Pdu) -> Value {
        let mut event = pdu.to_client_event();
        event["unsigned"] =
            json!({ "age": now_ms().saturating_sub(u64::from(pdu.origin_server_ts.0)) });
        event
    }

    /// `pdu` as a client sees it, without a particular viewer.
    pub fn client_event(&self, pdu: &Pdu) -> Result<Value> {
        self.client_event_for(pdu, None)
    }

    /// The sending device (only) learns which of its transactions `pdu` was.
    fn transaction_of(&self, pdu: &Pdu, viewer: Option<&Identity>) -> Result<Option<String>> {
        let Some(viewer) = viewer.filter(|v| v.user_id == pdu.sender) else {
            return Ok(None);
        };
        let key = KeyBuilder::new().str(pdu.event_id.as_str()).build();
        Ok(EVENT_TXNS
            .get(&*self.db, &key)?
            .filter(|txn| txn.device_id == viewer.device_id.as_str())
            .map(|txn| txn.txn_id))
    }

    /// The annotation epoch now (see `annotations.rs`): read it before serving events to know
    /// with [`Self::was_plain_at`] whether they were plain throughout.
    pub fn annotation_epoch(&self) -> u64 {
        self.annotations.epoch()
    }

    /// Whether `pdu` was known, at annotation epoch `epoch`, to have no redaction and no
    /// relations: then its client form is the same for every viewer (but the transaction id
    /// its sender's device gets).
    pub fn was_plain_at(&self, pdu: &Pdu, epoch: u64) -> bool {
        self.annotations.plain_form(pdu, epoch).is_some()
    }

    /// [`Self::client_event_for`] serialised. An event known to be plain (the usual case, see
    /// `annotations.rs`) is its client form, made once, with this moment's `unsigned` appended:
    /// under fan-out one serialisation serves every reader.
    pub fn client_event_json(&self, pdu: &Pdu, viewer: Option<&Identity>) -> Result<Box<RawValue>> {
        let epoch = self.annotations.epoch();
        let Some(open) = self.annotations.plain_form(pdu, epoch) else {
            return serde_json::value::to_raw_value(&self.client_event_for(pdu, viewer)?)
                .map_err(Error::internal);
        };
        let age = now_ms().saturating_sub(u64::from(pdu.origin_server_ts.0));
        let mut json = String::with_capacity(open.len() + 48);
        json.push_str(&open);
        json.push_str(",\"unsigned\":{\"age\":");
        json.push_str(&age.to_string());
        if let Some(txn_id) = self.transaction_of(pdu, viewer)? {
            json.push_str(",\"transaction_id\":");
            json.push_str(&serde_json::to_string(&txn_id).map_err(Error::internal)?);
        }
        json.push_str("}}");
        RawValue::from_string(json).map_err(Error::internal)
    }

    /// `pdu` as `viewer` sees it: the client-server event format with `unsigned.age` and the
    /// aggregations of related events (`unsigned.m.relations`); a redacted event has its content
    /// stripped by its room version's redaction rules and `unsigned.redacted_because`.
    pub fn client_event_for(&self, pdu: &Pdu, viewer: Option<&Identity>) -> Result<Value> {
        // Read before the lookups: an entry is only as new as the epoch it was found at.
        let epoch = self.annotations.epoch();
        let known_plain = self.annotations.plain_form(pdu, epoch).is_some();
        let redaction = if known_plain {
            None
        } else {
            self.redacted_by(pdu)?
        };
        let Some(redaction) = redaction else {
            let mut event = self.plain_client_event(pdu);
            if !known_plain {
                match self.aggregations(pdu, viewer.map(|v| &*v.user_id))? {
                    Some(relations) => event["unsigned"]["m.relations"] = relations,
                    None => self.annotations.remember_plain(pdu, epoch),
                }
            }
            if let Some(txn_id) = self.transaction_of(pdu, viewer)? {
                event["unsigned"]["transaction_id"] = txn_id.into();
            }
            return Ok(event);
        };
        let room = self
            .room(&pdu.room_id)?
            .ok_or_else(|| Error::internal("event of unknown room"))?;
        let version = RoomVersionId::try_from(room.version.as_str()).map_err(Error::internal)?;
        let rules = rules_of(&version)?;
        let redacted = ruma::canonical_json::redact((*pdu.json).clone(), &rules.redaction, None)
            .map_err(Error::internal)?;
        let redacted = Pdu::from_json(pdu.event_id.clone(), pdu.room_id.clone(), redacted)?;
        let mut event = self.plain_client_event(&redacted);
        event["unsigned"]["redacted_because"] = self.plain_client_event(&redaction);
        Ok(event)
    }
}
