//! The embedded RocksDB engine: a column family for each area of Roost (users, rooms, sync, and
//! the default family for server-wide values), each area's tables in it with their keys
//! prefixed by the table's name and a NUL byte.
//!
//! Why not a column family per table: RocksDB keeps about 80 KiB of state for each column
//! family (its memtable, version and statistics structures, striped mutexes), whether the table
//! holds one row or a million. With Roost's forty-odd tables that was 3.2 MiB of a small
//! server's footprint, more than a tenth of it, while no table has options of its own: they
//! share one write-ahead log, one block cache and one memtable budget. A family per area keeps
//! what families are for (an area whose data grows differently, the rooms' events, can be tuned
//! or compacted on its own) at a twelfth of the cost. A name prefix keeps each table's keys
//! together and in their own order, so prefix and range scans stay what they were, and a bound
//! derived from the prefix keeps every scan inside its table.
//!
//! Databases written with a column family per table (before this layout) are migrated when
//! opened: see [`migrate_table_families`].

use std::collections::HashMap;
use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, DB, DBCompressionType, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};

use super::engine::{Batch, BatchOp, Entry, KvEngine, StorageError};

/// RocksDB's own column family, which always exists.
pub const DEFAULT_FAMILY: &str = rocksdb::DEFAULT_COLUMN_FAMILY_NAME;

/// Ends a table's name in its keys' prefix. No table name contains it, so no table's prefix
/// starts another's.
const NAME_END: u8 = 0;

/// A column family and the tables kept in it.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub tables: &'static [&'static str],
}

impl Family {
    /// The default family holding `tables`: all a test of one module needs.
    pub const fn default_with(tables: &'static [&'static str]) -> Self {
        Self {
            name: DEFAULT_FAMILY,
            tables,
        }
    }
}

/// RocksDB, opened with every table Roost declares.
pub struct RocksEngine {
    db: DB,
    /// Each declared table's family; an operation on any other table is an error, not a silent
    /// new table.
    families: HashMap<&'static str, &'static str>,
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
    /// Open (creating if needed) the database at `path` with the given families and tables.
    pub fn open(
        path: &Path,
        families: &[Family],
        settings: &RocksSettings,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError::new(format!("{}: {e}", path.display())))?;
        let cache = Cache::new_lru_cache(settings.cache_bytes.max(1 << 20));
        let mut block = BlockBasedOptions::default();
        block.set_block_cache(&cache);
        block.set_bloom_filter(10.0, false);
        let mut opts = Options::default();
        opts.set_block_based_table_factory(&block);
        // A family's memtable may take half the budget; RocksDB flushes the largest once all
        // of them together reach it.
        opts.set_write_buffer_size((settings.write_buffer_bytes / 2).max(1 << 20));
        opts.set_max_write_buffer_number(2);
        opts.set_db_write_buffer_size(settings.write_buffer_bytes);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(5);

        let mut table_families = HashMap::new();
        for family in families {
            for &table in family.tables {
                if let Some(other) = table_families.insert(table, family.name) {
                    return Err(StorageError::new(format!(
                        "table {table} declared in both {other} and {}",
                        family.name
                    )));
                }
            }
        }
        let declared: Vec<&str> = families
            .iter()
            .map(|f| f.name)
            .filter(|&name| name != DEFAULT_FAMILY)
            .collect();
        let legacy: Vec<String> = DB::list_cf(&opts, path)
            .unwrap_or_default()
            .into_iter()
            .filter(|name| name != DEFAULT_FAMILY && !declared.contains(&name.as_str()))
            .collect();
        // The default family is always there, but only a family named here gets a handle.
        let to_open = std::iter::once(DEFAULT_FAMILY)
            .chain(declared.iter().copied())
            .map(str::to_string)
            .chain(legacy.clone());
        let mut db = DB::open_cf(&opts, path, to_open).map_err(to_err)?;
        migrate_table_families(&mut db, &legacy, &table_families)?;
        Ok(Self {
            db,
            families: table_families,
            sync_writes: settings.sync_writes,
        })
    }

    /// `table`'s column family.
    fn family(&self, table: &'static str) -> Result<&ColumnFamily, StorageError> {
        let name = self
            .families
            .get(table)
            .ok_or_else(|| StorageError::new(format!("unknown table {table}")))?;
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::new(format!("column family {name} is not open")))
    }

    /// `key` of `table` as stored, and the family it is stored in.
    fn locate(
        &self,
        table: &'static str,
        key: &[u8],
    ) -> Result<(&ColumnFamily, Vec<u8>), StorageError> {
        Ok((self.family(table)?, stored_key(table, key)))
    }
}

/// `key` of `table` as its family stores it: the table's name, [`NAME_END`], the key.
fn stored_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(table.len() + 1 + key.len());
    stored.extend_from_slice(table.as_bytes());
    stored.push(NAME_END);
    stored.extend_from_slice(key);
    stored
}

/// Move each table of the older layout, a column family per table, into its family under its
/// name's prefix (into the default family if no family declares it any more: nothing stored is
/// lost), then drop its column family. Runs before the database serves anything. Copying is
/// idempotent, so a crash part-way leaves the old family in place and the next open copies it
/// again; the copies reach disk (the log is synced) before any old family is dropped.
fn migrate_table_families(
    db: &mut DB,
    old_families: &[String],
    table_families: &HashMap<&'static str, &'static str>,
) -> Result<(), StorageError> {
    const BATCH_BYTES: usize = 4 << 20;
    for table in old_families {
        let source = db
            .cf_handle(table)
            .ok_or_else(|| StorageError::new(format!("column family {table} did not open")))?;
        let target_name = table_families
            .get(table.as_str())
            .copied()
            .unwrap_or(DEFAULT_FAMILY);
        let target = db.cf_handle(target_name).ok_or_else(|| {
            StorageError::new(format!("column family {target_name} did not open"))
        })?;
        let mut batch = WriteBatch::default();
        let mut moved = 0usize;
        for item in db.iterator_cf(source, IteratorMode::Start) {
            let (key, value) = item.map_err(to_err)?;
            batch.put_cf(target, stored_key(table, &key), value);
            moved += 1;
            if batch.size_in_bytes() >= BATCH_BYTES {
                db.write(std::mem::take(&mut batch)).map_err(to_err)?;
            }
        }
        db.write(batch).map_err(to_err)?;
        tracing::info!(%table, family = target_name, rows = moved, "moved table into its family");
    }
    if old_families.is_empty() {
        return Ok(());
    }
    db.flush_wal(true).map_err(to_err)?;
    for table in old_families {
        db.drop_cf(table).map_err(to_err)?;
    }
    Ok(())
}

impl KvEngine for RocksEngine {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let (family, stored) = self.locate(table, key)?;
        self.db.get_cf(family, stored).map_err(to_err)
    }

    fn write(&self, batch: Batch) -> Result<(), StorageError> {
        let mut wb = WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { table, key, value } => {
                    let (family, stored) = self.locate(table, &key)?;
                    wb.put_cf(family, stored, value)
                }
                BatchOp::Delete { table, key } => {
                    let (family, stored) = self.locate(table, &key)?;
                    wb.delete_cf(family, stored)
                }
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
        let (family, lower) = self.locate(table, start)?;
        // Without an end of its own, a scan ends where the table does.
        let upper = match end {
            Some(end) => stored_key(table, end),
            None => super::keys::prefix_end(&stored_key(table, &[]))
                .expect("a table's prefix ends in NAME_END, below 0xFF"),
        };
        let skip = table.len() + 1;
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(lower);
        opts.set_iterate_upper_bound(upper);
        let mode = if reverse {
            IteratorMode::End
        } else {
            IteratorMode::Start
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(family, opts, mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(to_err)?;
            out.push((k[skip..].to_vec(), v.into_vec()));
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
        RocksEngine::open(
            dir,
            &[Family::default_with(&["t1", "t2"])],
            &RocksSettings::for_tests(),
        )
        .unwrap()
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

    #[test]
    fn a_table_scan_never_reaches_another_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = RocksEngine::open(
            dir.path(),
            &[
                Family::default_with(&["t", "tt"]),
                Family {
                    name: "area:u",
                    tables: &["u"],
                },
            ],
            &RocksSettings::for_tests(),
        )
        .unwrap();
        let mut b = Batch::new();
        for table in ["t", "tt", "u"] {
            b.put(table, vec![], table);
            b.put(table, vec![0xFF; 3], table);
        }
        db.write(b).unwrap();
        for table in ["t", "tt", "u"] {
            for reverse in [false, true] {
                let rows = db.scan_range(table, &[], None, reverse, 100).unwrap();
                let values: Vec<_> = rows.iter().map(|(_, v)| v.as_slice()).collect();
                assert_eq!(values, [table.as_bytes(); 2], "{table}, reverse {reverse}");
                let keys: Vec<_> = rows.iter().map(|(k, _)| k.len()).collect();
                let expected = if reverse { [3, 0] } else { [0, 3] };
                assert_eq!(keys, expected, "keys come back without the table's prefix");
            }
        }
    }

    #[test]
    fn a_database_with_a_column_family_per_table_is_moved_into_the_families() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let old = DB::open_cf(&opts, dir.path(), ["t1", "t2", "retired"]).unwrap();
            for (cf, n) in [("t1", 3u8), ("t2", 1), ("retired", 2)] {
                let handle = old.cf_handle(cf).unwrap();
                for i in 0..n {
                    old.put_cf(handle, [b'k', i], format!("{cf}-{i}")).unwrap();
                }
            }
        }
        let families = [
            Family::default_with(&["t1"]),
            Family {
                name: "area:t2",
                tables: &["t2"],
            },
        ];
        for _ in 0..2 {
            let db = RocksEngine::open(dir.path(), &families, &RocksSettings::for_tests()).unwrap();
            let t1 = db.scan_prefix("t1", b"k", 10).unwrap();
            assert_eq!(t1.len(), 3);
            assert_eq!(t1[2], (b"k\x02".to_vec(), b"t1-2".to_vec()));
            assert_eq!(db.get("t2", b"k\x00").unwrap(), Some(b"t2-0".to_vec()));
            assert!(
                db.get("retired", b"k\x00").is_err(),
                "a table no family declares is not served"
            );
            let retired = db.db.iterator_cf(
                db.db.cf_handle(DEFAULT_FAMILY).unwrap(),
                IteratorMode::Start,
            );
            let kept: Vec<_> = retired
                .map(|item| item.unwrap().0.into_vec())
                .filter(|key| key.starts_with(b"retired\x00"))
                .collect();
            assert_eq!(
                kept,
                [b"retired\x00k\x00".to_vec(), b"retired\x00k\x01".to_vec()],
                "but kept"
            );
            drop(db);
            let on_disk = DB::list_cf(&Options::default(), dir.path()).unwrap();
            assert_eq!(
                on_disk,
                ["default", "area:t2"],
                "the old column families are dropped"
            );
        }
    }
}
