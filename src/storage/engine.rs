//! The engine interface: what Roost needs from an ordered key-value store, and nothing more.

/// A failure inside the storage engine (I/O, corruption, a value that does not decode).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

impl StorageError {
    pub fn new(cause: impl std::fmt::Display) -> Self {
        Self(cause.to_string())
    }
}

/// One write operation inside a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        table: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: &'static str,
        key: Vec<u8>,
    },
}

/// A set of writes applied atomically: after a crash either all of them are there or none.
/// Every multi-key write in Roost goes through one batch.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, table: &'static str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            table,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, table: &'static str, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete {
            table,
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }
}

/// A key and its value, as returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The ordered key-value interface. Keys within a table are ordered bytewise.
///
/// Scans return owned vectors bounded by `limit`, which keeps the trait object-safe and makes
/// every caller state how much it is prepared to read.
pub trait KvEngine: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Apply every operation of `batch` atomically.
    fn write(&self, batch: Batch) -> Result<(), StorageError>;

    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    fn scan_prefix(
        &self,
        table: &'static str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError>;

    /// Entries with `start <= key < end` (no upper bound when `end` is `None`), ascending, or
    /// descending from just below `end` when `reverse` is set; at most `limit`.
    fn scan_range(
        &self,
        table: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError>;
}
