//! The server's ed25519 signing key: generated on first start, stored, stable across restarts.
//! Served (self-signed) at `GET /_matrix/key/v2/server`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::CanonicalJsonObject;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::storage::{Batch, KvEngine, META};
use crate::util::{now_ms, random_alphanumeric};

const KEY_PKCS8: &[u8] = b"signing_key_pkcs8";
const KEY_VERSION: &[u8] = b"signing_key_version";
/// How long other servers may cache our key.
const VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

pub struct ServerKey {
    server_name: String,
    pair: Ed25519KeyPair,
}

impl ServerKey {
    /// Load the stored key, or generate and store one (first start).
    pub fn load_or_generate(db: &Arc<dyn KvEngine>, server_name: &str) -> Result<Self> {
        let (pkcs8, version) = match (db.get(META, KEY_PKCS8)?, db.get(META, KEY_VERSION)?) {
            (Some(k), Some(v)) => (k, String::from_utf8(v).map_err(Error::internal)?),
            _ => {
                let pkcs8 = Ed25519KeyPair::generate().to_vec();
                let version = format!("a_{}", random_alphanumeric(4));
                let mut batch = Batch::new();
                batch.put(META, KEY_PKCS8.to_vec(), pkcs8.clone());
                batch.put(META, KEY_VERSION.to_vec(), version.clone().into_bytes());
                db.write(batch)?;
                tracing::info!(key_id = %format!("ed25519:{version}"), "generated server signing key");
                (pkcs8, version)
            }
        };
        let pair = Ed25519KeyPair::from_der(&pkcs8, version).map_err(Error::internal)?;
        Ok(Self {
            server_name: server_name.to_owned(),
            pair,
        })
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }

    /// `ed25519:<version>`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair.version())
    }

    pub fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.pair.public_key())
    }

    /// The signed response of `GET /_matrix/key/v2/server`.
    pub fn server_keys_response(&self) -> Result<Value> {
        let body = json!({
            "server_name": self.server_name,
            "valid_until_ts": now_ms() + VALIDITY_MS,
            "verify_keys": { self.key_id(): { "key": self.public_key_base64() } },
            "old_verify_keys": {},
        });
        let mut object: CanonicalJsonObject =
            serde_json::from_value(body).map_err(Error::internal)?;
        ruma::signatures::sign_json(&self.server_name, &self.pair, &mut object)
            .map_err(Error::internal)?;
        serde_json::to_value(object).map_err(Error::internal)
    }

    /// The public key map for verifying our own signatures.
    pub fn public_key_map(&self) -> ruma::signatures::PublicKeyMap {
        let mut keys = BTreeMap::new();
        keys.insert(
            self.key_id(),
            ruma::serde::Base64::new(self.pair.public_key().to_vec()),
        );
        let mut map = BTreeMap::new();
        map.insert(self.server_name.clone(), keys);
        map
    }
}
