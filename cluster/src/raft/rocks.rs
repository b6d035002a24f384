//! The production [`Store`]: one RocksDB per node, with a column family per table.

use std::io;
use std::path::Path;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options};

use super::store::{Batch, Durability, Family, Op, Store};

pub struct RocksStore {
    db: DB,
}

fn io_error(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<Self, rocksdb::Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let families = Family::ALL
            .into_iter()
            .map(|f| ColumnFamilyDescriptor::new(f.name(), Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&opts, path, families)?,
        })
    }

    fn cf(&self, family: Family) -> &ColumnFamily {
        self.db
            .cf_handle(family.name())
            .expect("the database is opened with every family")
    }
}

impl Store for RocksStore {
    fn get(&self, family: Family, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(family), key).map_err(io_error)
    }

    fn write(&self, batch: Batch, durability: Durability) -> io::Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.0 {
            match op {
                Op::Put { family, key, value } => wb.put_cf(self.cf(family), key, value),
                Op::DeleteRange { family, from, to } => {
                    wb.delete_range_cf(self.cf(family), from, to)
                }
            }
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(durability == Durability::Synced);
        self.db.write_opt(wb, &opts).map_err(io_error)
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> io::Result<()> {
        let mode = IteratorMode::From(start, Direction::Forward);
        for item in self.db.iterator_cf(self.cf(family), mode) {
            let (key, value) = item.map_err(io_error)?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn last(&self, family: Family) -> io::Result<Option<Vec<u8>>> {
        match self
            .db
            .iterator_cf(self.cf(family), IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => Ok(Some(item.map_err(io_error)?.1.to_vec())),
        }
    }
}
