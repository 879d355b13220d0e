//! The embedded RocksDB engine: one column family per table.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};

use super::engine::{Batch, BatchOp, Entry, KvEngine, StorageError};

/// RocksDB, opened with every table Roost declares.
pub struct RocksEngine {
    db: DB,
    sync_writes: bool,
}

/// Tuning knobs taken from the config.
#[derive(Debug, Clone)]
pub struct RocksSettings {
    /// Shared LRU block cache, in bytes.
    pub cache_bytes: usize,
    /// Budget for all memtables together, in bytes.
    pub write_buffer_bytes: usize,
    /// `fsync` the WAL on every write. Off: a process crash loses nothing (the WAL is in the OS
    /// page cache); only a power loss can. On: power-loss safe, slower.
    pub sync_writes: bool,
}

fn to_err(e: rocksdb::Error) -> StorageError {
    StorageError::new(e)
}

impl RocksEngine {
    /// Open (creating if needed) the database at `path` with the given tables. Column families
    /// that exist on disk but are no longer declared are opened too, so nothing is dropped.
    pub fn open(
        path: &Path,
        tables: &[&'static str],
        settings: &RocksSettings,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError::new(format!("{}: {e}", path.display())))?;
        let cache = Cache::new_lru_cache(settings.cache_bytes.max(1 << 20));
        let mut block = BlockBasedOptions::default();
        block.set_block_cache(&cache);
        block.set_bloom_filter(10.0, false);
        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&block);
        // Many small tables: small memtables each, under one shared budget below.
        cf_opts.set_write_buffer_size(4 << 20);
        cf_opts.set_max_write_buffer_number(2);
        cf_opts.set_compression_type(DBCompressionType::Lz4);
        cf_opts.set_bottommost_compression_type(DBCompressionType::Zstd);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(5);
        // All memtables together stay within this; RocksDB flushes the largest when it's hit.
        db_opts.set_db_write_buffer_size(settings.write_buffer_bytes);

        let mut names: Vec<String> = tables.iter().map(|s| s.to_string()).collect();
        if let Ok(existing) = DB::list_cf(&db_opts, path) {
            for name in existing {
                if name != "default" && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let descriptors = names
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(to_err)?;
        Ok(Self {
            db,
            sync_writes: settings.sync_writes,
        })
    }

    fn cf(&self, table: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(table)
            .ok_or_else(|| StorageError::new(format!("unknown table {table}")))
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(table)?, key).map_err(to_err)
    }

    fn write(&self, batch: Batch) -> Result<(), StorageError> {
        let mut wb = WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { table, key, value } => wb.put_cf(self.cf(table)?, key, value),
                BatchOp::Delete { table, key } => wb.delete_cf(self.cf(table)?, key),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        self.db.write_opt(wb, &opts).map_err(to_err)
    }

    fn scan_prefix(
        &self,
        table: &'static str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let end = super::keys::prefix_end(prefix);
        self.scan_range(table, prefix, end.as_deref(), false, limit)
    }

    fn scan_range(
        &self,
        table: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(start.to_vec());
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let mode = if reverse {
            IteratorMode::End
        } else {
            IteratorMode::Start
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(self.cf(table)?, opts, mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(to_err)?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }
}

/// Small caches for unit tests' throwaway databases.
#[cfg(test)]
impl RocksSettings {
    pub fn for_tests() -> Self {
        Self {
            cache_bytes: 8 << 20,
            write_buffer_bytes: 8 << 20,
            sync_writes: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::keys::KeyBuilder;

    fn open(dir: &Path) -> RocksEngine {
        RocksEngine::open(dir, &["t1", "t2"], &RocksSettings::for_tests()).unwrap()
    }

    #[test]
    fn batch_is_atomic_across_tables_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let mut b = Batch::new();
            b.put("t1", b"k".to_vec(), b"v1".to_vec());
            b.put("t2", b"k".to_vec(), b"v2".to_vec());
            db.write(b).unwrap();
            let mut bad = Batch::new();
            bad.put("t1", b"x".to_vec(), b"y".to_vec());
            bad.put("no_such_table", b"x".to_vec(), b"y".to_vec());
            assert!(db.write(bad).is_err());
            assert_eq!(
                db.get("t1", b"x").unwrap(),
                None,
                "a failed batch writes nothing"
            );
        }
        let db = open(dir.path());
        assert_eq!(db.get("t1", b"k").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(db.get("t2", b"k").unwrap(), Some(b"v2".to_vec()));
    }

    #[test]
    fn scans_respect_prefix_range_direction_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let mut b = Batch::new();
        for user in ["@a:x", "@ab:x", "@b:x"] {
            for n in [1u64, 2, 300] {
                b.put(
                    "t1",
                    KeyBuilder::new().str(user).u64(n).build(),
                    n.to_string(),
                );
            }
        }
        db.write(b).unwrap();
        let prefix = KeyBuilder::new().str("@a:x").build();
        let rows = db.scan_prefix("t1", &prefix, 100).unwrap();
        let values: Vec<_> = rows
            .iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect();
        assert_eq!(values, ["1", "2", "300"], "only @a:x, in numeric order");

        let start = KeyBuilder::new().str("@a:x").u64(2).build();
        let end = crate::storage::keys::prefix_end(&prefix).unwrap();
        let rev = db.scan_range("t1", &start, Some(&end), true, 100).unwrap();
        let values: Vec<_> = rev
            .iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect();
        assert_eq!(values, ["300", "2"]);
        assert_eq!(db.scan_prefix("t1", &prefix, 2).unwrap().len(), 2);
    }
}
