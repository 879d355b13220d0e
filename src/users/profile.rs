//! Profiles: `displayname`, `avatar_url`, `m.tz` and custom fields (spec v1.16 §Profiles).

use std::sync::Arc;

use ruma::UserId;
use serde_json::{Map, Value};

use super::tables::PROFILE;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::keys::{KeyBuilder, KeyReader};
use crate::storage::{Batch, KvEngine};

/// The spec's cap on a whole profile, serialised.
pub const MAX_PROFILE_BYTES: usize = 64 * 1024;
/// The spec's cap on a field name.
pub const MAX_KEY_BYTES: usize = 255;

pub struct Profiles {
    db: Arc<dyn KvEngine>,
}

fn field_key(user_id: &UserId, field: &str) -> Vec<u8> {
    KeyBuilder::new().str(user_id.as_str()).str(field).build()
}

/// Whether `name` is a field a client may set: the spec's known keys or a namespaced custom key.
pub fn validate_field_name(name: &str) -> Result<()> {
    if name.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorKind::KeyTooLarge,
            "Profile key is longer than 255 bytes",
        ));
    }
    let known = matches!(name, "displayname" | "avatar_url" | "m.tz");
    let segment_ok = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let custom = name.contains('.') && name.split('.').all(segment_ok);
    if known || custom {
        Ok(())
    } else {
        Err(Error::invalid_param("Invalid profile key"))
    }
}

/// Type rules for the fields the spec defines.
fn validate_value(field: &str, value: &Value) -> Result<()> {
    match field {
        "displayname" | "m.tz" if !value.is_string() && !value.is_null() => {
            Err(Error::bad_json(format!("{field} must be a string")))
        }
        "avatar_url" => match value {
            Value::Null => Ok(()),
            Value::String(s) if s.is_empty() || s.starts_with("mxc://") => Ok(()),
            _ => Err(Error::bad_json("avatar_url must be an mxc:// URI")),
        },
        _ => Ok(()),
    }
}

impl Profiles {
    pub fn new(db: Arc<dyn KvEngine>) -> Self {
        Self { db }
    }

    /// The whole profile as a JSON object (empty when nothing is set).
    pub fn get_all(&self, user_id: &UserId) -> Result<Map<String, Value>> {
        let prefix = KeyBuilder::new().str(user_id.as_str()).build();
        let mut out = Map::new();
        for (key, value) in PROFILE.scan_prefix(&*self.db, &prefix, usize::MAX)? {
            let mut reader = KeyReader::new(&key);
            reader.str();
            if let Some(field) = reader.str() {
                out.insert(field, value);
            }
        }
        Ok(out)
    }

    pub fn get(&self, user_id: &UserId, field: &str) -> Result<Option<Value>> {
        Ok(PROFILE.get(&*self.db, &field_key(user_id, field))?)
    }

    /// Set one field, enforcing field rules and the 64 KiB profile cap.
    pub fn set(&self, user_id: &UserId, field: &str, value: Value) -> Result<()> {
        validate_field_name(field)?;
        validate_value(field, &value)?;
        let mut profile = self.get_all(user_id)?;
        profile.insert(field.to_owned(), value.clone());
        if serde_json::to_vec(&profile).map_err(Error::internal)?.len() > MAX_PROFILE_BYTES {
            return Err(Error::new(
                ErrorKind::ProfileTooLarge,
                "Profile would exceed 64 KiB",
            ));
        }
        let mut batch = Batch::new();
        PROFILE.put(&mut batch, field_key(user_id, field), &value);
        Ok(self.db.write(batch)?)
    }

    pub fn delete(&self, user_id: &UserId, field: &str) -> Result<()> {
        validate_field_name(field)?;
        let mut batch = Batch::new();
        PROFILE.delete(&mut batch, field_key(user_id, field));
        Ok(self.db.write(batch)?)
    }

    /// Remove every field, into `batch` (deactivation with `erase`, and display name and avatar
    /// always, as the spec asks of deactivated accounts).
    pub fn clear_into(&self, user_id: &UserId, batch: &mut Batch) -> Result<()> {
        for field in self.get_all(user_id)?.keys() {
            PROFILE.delete(batch, field_key(user_id, field));
        }
        Ok(())
    }
}
