//! Events as federation PDUs: the server's signing key, building and signing PDUs for any room
//! version, and a parsed view of a stored PDU that ruma's auth rules can read.
//!
//! Every room event Roost creates is a complete PDU from the start (prev_events, auth_events,
//! depth, content hash, signature, event id per room version), so federation adds only
//! transport.

pub mod pdu;
pub mod signing_key;

pub use pdu::{Pdu, PduTemplate};
pub use signing_key::ServerKey;
