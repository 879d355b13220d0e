//! `createRoom`: the spec's sequence of initial events, sent through the pipeline in one go.
//!
//! Order (client-server API §"Creation"): `m.room.create` (with `creation_content`), the
//! creator's join, `m.room.power_levels` (defaults, preset, then `power_level_content_override`),
//! `m.room.canonical_alias`, the preset's join rules / history visibility / guest access,
//! `initial_state` (which overrides preset events of the same type and key), name, topic, then
//! the invites.

use ruma::{OwnedRoomId, OwnedUserId, RoomAliasId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::Rooms;
use super::pipeline::rules_of;
use crate::error::{Error, Result};
use crate::events::PduTemplate;

/// What a client asked for, already parsed.
#[derive(Debug, Default)]
pub struct CreateRoom {
    pub version: Option<RoomVersionId>,
    pub preset: Option<Preset>,
    pub public: bool,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub alias_localpart: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    /// `(type, state_key, content)`.
    pub initial_state: Vec<(String, String, Value)>,
    pub creation_content: Map<String, Value>,
    pub power_level_override: Map<String, Value>,
    /// The creator's own member event content (display name, avatar).
    pub creator_member: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private_chat" => Some(Self::PrivateChat),
            "trusted_private_chat" => Some(Self::TrustedPrivateChat),
            "public_chat" => Some(Self::PublicChat),
            _ => None,
        }
    }
}

/// The spec's default power levels for a new room.
fn default_power_levels(creator: &UserId, creators_are_privileged: bool) -> Map<String, Value> {
    let mut users = Map::new();
    if !creators_are_privileged {
        users.insert(creator.to_string(), 100.into());
    }
    let content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    });
    match content {
        Value::Object(map) => map,
        _ => unreachable!("literal object"),
    }
}

impl Rooms {
    pub async fn create_room(&self, creator: &UserId, req: CreateRoom) -> Result<OwnedRoomId> {
        let version = req
            .version
            .clone()
            .unwrap_or_else(|| self.default_version().clone());
        let rules = rules_of(&version)?;
        let privileged_creators = rules.authorization.explicitly_privilege_room_creators;

        let alias = match &req.alias_localpart {
            Some(local) => {
                let alias = RoomAliasId::parse(format!("#{local}:{}", self.server_name()))
                    .map_err(|_| Error::invalid_param("Invalid room_alias_name"))?;
                if self.alias_record(&alias)?.is_some() {
                    return Err(Error::new(
                        crate::error::ErrorKind::RoomInUse,
                        "Room alias already taken",
                    ));
                }
                Some(alias)
            }
            None => None,
        };

        let mut create = req.creation_content.clone();
        create.insert("room_version".into(), version.as_str().into());
        if !rules.authorization.use_room_create_sender {
            create.insert("creator".into(), creator.as_str().into());
        }

        let preset = req.preset.unwrap_or(if req.public {
            Preset::PublicChat
        } else {
            Preset::PrivateChat
        });
        let mut power = default_power_levels(creator, privileged_creators);
        // trusted_private_chat gives invitees the creator's power: in rooms that privilege
        // creators (v12) by making them additional creators, elsewhere through power levels.
        if preset == Preset::TrustedPrivateChat && !req.invite.is_empty() {
            if rules.authorization.additional_room_creators {
                let mut extra: Vec<Value> = create
                    .get("additional_creators")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for invitee in &req.invite {
                    if !extra.iter().any(|e| e == invitee.as_str()) {
                        extra.push(invitee.as_str().into());
                    }
                }
                create.insert("additional_creators".into(), Value::Array(extra));
            } else if let Some(Value::Object(users)) = power.get_mut("users") {
                for invitee in &req.invite {
                    users.insert(invitee.to_string(), 100.into());
                }
            }
        }
        for (key, value) in &req.power_level_override {
            power.insert(key.clone(), value.clone());
        }

        let mut member = req.creator_member.clone();
        member.insert("membership".into(), "join".into());
        let mut events = vec![
            PduTemplate::state("m.room.member", creator.as_str(), Value::Object(member)),
            PduTemplate::state("m.room.power_levels", "", Value::Object(power)),
        ];
        if let Some(alias) = &alias {
            events.push(PduTemplate::state(
                "m.room.canonical_alias",
                "",
                json!({ "alias": alias }),
            ));
        }
        let (join_rule, guest_access) = match preset {
            Preset::PublicChat => ("public", "forbidden"),
            Preset::PrivateChat | Preset::TrustedPrivateChat => ("invite", "can_join"),
        };
        let preset_events = [
            ("m.room.join_rules", json!({ "join_rule": join_rule })),
            (
                "m.room.history_visibility",
                json!({ "history_visibility": "shared" }),
            ),
            (
                "m.room.guest_access",
                json!({ "guest_access": guest_access }),
            ),
        ];
        for (kind, content) in preset_events {
            let overridden = req
                .initial_state
                .iter()
                .any(|(t, k, _)| t == kind && k.is_empty());
            if !overridden {
                events.push(PduTemplate::state(kind, "", content));
            }
        }
        for (kind, state_key, content) in &req.initial_state {
            events.push(PduTemplate::state(kind, state_key, content.clone()));
        }
        if let Some(name) = &req.name {
            events.push(PduTemplate::state(
                "m.room.name",
                "",
                json!({ "name": name }),
            ));
        }
        if let Some(topic) = &req.topic {
            events.push(PduTemplate::state(
                "m.room.topic",
                "",
                json!({ "topic": topic }),
            ));
        }
        for invitee in &req.invite {
            let mut content = json!({ "membership": "invite" });
            if req.is_direct {
                content["is_direct"] = true.into();
            }
            events.push(PduTemplate::state(
                "m.room.member",
                invitee.as_str(),
                content,
            ));
        }

        let room_id = self
            .create_room_with(&version, creator, Value::Object(create), events)
            .await?;
        if let Some(alias) = &alias {
            self.create_alias(alias, &room_id, creator)?;
        }
        if req.public {
            self.set_published(&room_id, true)?;
        }
        Ok(room_id)
    }
}
