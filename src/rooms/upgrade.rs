//! Room upgrades (client-server API §"Room upgrades"): a new room of the new version with the
//! old room's important state, a tombstone in the old room pointing to it, the old room
//! restricted, and local aliases moved over.

use ruma::{OwnedRoomId, RoomAliasId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::Rooms;
use super::pipeline::rules_of;
use crate::error::{Error, Result};
use crate::events::PduTemplate;

/// State carried over to the new room (besides power levels, handled separately).
const CARRIED_STATE: &[&str] = &[
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.pinned_events",
];

impl Rooms {
    pub async fn upgrade(
        &self,
        room_id: &RoomId,
        user: &UserId,
        new_version: &RoomVersionId,
    ) -> Result<OwnedRoomId> {
        let new_rules = rules_of(new_version)?;
        let room = self
            .room(room_id)?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        if self.membership(room.short, user)?.as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        if !self.can_send_state(room_id, user, "m.room.tombstone")? {
            return Err(Error::forbidden(
                "You don't have permission to upgrade this room",
            ));
        }

        let old_create = self
            .current_state_event(room.short, "m.room.create", "")?
            .ok_or_else(|| Error::internal("room without create event"))?
            .content_json();
        let mut create = Map::new();
        if let Some(room_type) = old_create.get("type") {
            create.insert("type".into(), room_type.clone());
        }
        let last_event = self
            .timeline_page(room.short, u64::MAX, true, 1)?
            .into_iter()
            .next()
            .map(|e| e.pdu.event_id.to_string());
        let mut predecessor = json!({ "room_id": room_id });
        if !new_rules.authorization.room_create_event_id_as_room_id
            && let Some(event_id) = last_event
        {
            predecessor["event_id"] = event_id.into();
        }
        create.insert("predecessor".into(), predecessor);
        create.insert("room_version".into(), new_version.as_str().into());
        if !new_rules.authorization.use_room_create_sender {
            create.insert("creator".into(), user.as_str().into());
        }

        // Power levels: the old ones, with the upgrader able to set up the new room (v1-v11),
        // or without creators listed (v12, where creators are privileged and may not be).
        let old_power = self
            .current_state_event(room.short, "m.room.power_levels", "")?
            .map(|p| p.content_json());
        let mut power = old_power.clone().unwrap_or_else(|| json!({}));
        if !power["users"].is_object() {
            power["users"] = json!({});
        }
        if new_rules.authorization.explicitly_privilege_room_creators {
            if let Some(users) = power["users"].as_object_mut() {
                users.remove(user.as_str());
            }
        } else {
            power["users"][user.as_str()] = 100.into();
        }

        let mut member = Map::new();
        member.insert("membership".into(), "join".into());
        let mut events = vec![
            PduTemplate::state("m.room.member", user.as_str(), Value::Object(member)),
            PduTemplate::state("m.room.power_levels", "", power),
        ];
        for kind in CARRIED_STATE {
            if let Some(pdu) = self.current_state_event(room.short, kind, "")? {
                events.push(PduTemplate::state(kind, "", pdu.content_json()));
            }
        }
        let canonical = self
            .current_state_event(room.short, "m.room.canonical_alias", "")?
            .map(|p| p.content_json());

        let new_room = self
            .create_room_with(new_version, user, Value::Object(create), events)
            .await?;

        // Local aliases now lead to the new room, and the canonical alias moves with them.
        for alias in self.local_aliases(room_id)? {
            let alias = RoomAliasId::parse(&alias).map_err(Error::internal)?;
            let creator = self
                .alias_record(&alias)?
                .map(|r| r.creator)
                .unwrap_or_else(|| user.to_string());
            self.delete_alias(&alias)?;
            let creator = ruma::OwnedUserId::try_from(creator).unwrap_or_else(|_| user.to_owned());
            self.create_alias(&alias, &new_room, &creator)?;
        }
        if let Some(canonical) = canonical {
            self.append(
                &new_room,
                user,
                PduTemplate::state("m.room.canonical_alias", "", canonical),
            )
            .await?;
        }

        let tombstone =
            json!({ "body": "This room has been replaced", "replacement_room": new_room });
        self.append(
            room_id,
            user,
            PduTemplate::state("m.room.tombstone", "", tombstone),
        )
        .await?;

        // Restrict the old room: nobody below moderator may talk or invite any more.
        if let Some(mut old) = old_power {
            let users_default = old["users_default"].as_i64().unwrap_or(0);
            let restricted = std::cmp::max(50, users_default + 1);
            old["events_default"] = restricted.into();
            old["invite"] = restricted.into();
            self.append(
                room_id,
                user,
                PduTemplate::state("m.room.power_levels", "", old),
            )
            .await?;
        }
        Ok(new_room)
    }
}
