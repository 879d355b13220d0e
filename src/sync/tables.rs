//! Tables owned by the sync module: receipts, to-device messages, presence.
//!
//! `‖` ends a string component; `u64` is big-endian (see [`crate::storage::keys`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::Table;

/// `room_id‖ receipt type‖ user_id‖ thread id or ""‖ → ReceiptRecord`: the latest receipt.
pub const RECEIPTS: Table<ReceiptRecord> = Table::new("receipts");
/// `room_id‖ stream_pos u64 → ReceiptChange`: which receipt changed when, for sync.
pub const RECEIPT_CHANGES: Table<ReceiptChange> = Table::new("receipt_changes");
/// `user_id‖ device_id‖ stream_pos u64 → ToDeviceMessage`: a device's inbox, deleted once the
/// device syncs past the position.
pub const TO_DEVICE: Table<ToDeviceMessage> = Table::new("to_device");
/// `user_id‖ device_id‖ txn_id‖ → ()`: to-device sends already done (idempotency).
pub const TO_DEVICE_TXNS: Table<()> = Table::new("to_device_txns");
/// `user_id‖ → PresenceRecord`.
pub const PRESENCE: Table<PresenceRecord> = Table::new("presence");
/// `stream_pos u64 → user_id`: whose presence changed when.
pub const PRESENCE_CHANGES: Table<String> = Table::new("presence_changes");

pub const ALL: &[&str] = &[
    RECEIPTS.name,
    RECEIPT_CHANGES.name,
    TO_DEVICE.name,
    TO_DEVICE_TXNS.name,
    PRESENCE.name,
    PRESENCE_CHANGES.name,
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub event_id: String,
    pub ts: u64,
    pub stream_pos: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptChange {
    pub receipt_type: String,
    pub user_id: String,
    /// Empty for an unthreaded receipt.
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToDeviceMessage {
    pub sender: String,
    pub event_type: String,
    pub content: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// `online`, `unavailable` or `offline`, as last set.
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ms: u64,
    pub stream_pos: u64,
}
