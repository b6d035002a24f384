//! An in-memory [`Store`] for simulation that fails like a disk: writes land in a
//! volatile view at once and reach the "platters" only with a synced write (which,
//! like a write-ahead log, carries every earlier write along). [`MemoryStore::crash`]
//! throws the volatile view away, as a power cut would.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::Mutex;

use super::store::{Batch, Durability, Family, Op, Store};

type Tables = BTreeMap<Family, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Default)]
pub struct MemoryStore(Mutex<Disk>);

#[derive(Default)]
struct Disk {
    durable: Tables,
    live: Tables,
    unsynced: Vec<Batch>,
}

fn apply(tables: &mut Tables, batch: &Batch) {
    for op in &batch.0 {
        match op {
            Op::Put { family, key, value } => {
                tables
                    .entry(*family)
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            Op::DeleteRange { family, from, to } => {
                let table = tables.entry(*family).or_default();
                let doomed: Vec<Vec<u8>> = table
                    .range::<[u8], _>((Bound::Included(&from[..]), Bound::Excluded(&to[..])))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    table.remove(&k);
                }
            }
        }
    }
}

impl MemoryStore {
    /// Loses every write not yet synced.
    pub fn crash(&self) {
        let mut disk = self.disk();
        disk.live = disk.durable.clone();
        disk.unsynced.clear();
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, family: Family, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .disk()
            .live
            .get(&family)
            .and_then(|t| t.get(key))
            .cloned())
    }

    fn write(&self, batch: Batch, durability: Durability) -> io::Result<()> {
        let mut disk = self.disk();
        apply(&mut disk.live, &batch);
        match durability {
            Durability::Buffered => disk.unsynced.push(batch),
            Durability::Synced => {
                let Disk {
                    durable, unsynced, ..
                } = &mut *disk;
                for earlier in unsynced.drain(..) {
                    apply(durable, &earlier);
                }
                apply(durable, &batch);
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> io::Result<()> {
        let disk = self.disk();
        if let Some(table) = disk.live.get(&family) {
            for (k, v) in table.range::<[u8], _>((Bound::Included(start), Bound::Unbounded)) {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn last(&self, family: Family) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .disk()
            .live
            .get(&family)
            .and_then(|t| t.values().next_back())
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Batch {
        let mut b = Batch::default();
        b.put(Family::Meta, key.as_bytes(), b"v".to_vec());
        b
    }

    #[test]
    fn a_crash_loses_only_unsynced_writes() {
        let store = MemoryStore::default();
        store.write(put("a"), Durability::Buffered).unwrap();
        store.write(put("b"), Durability::Synced).unwrap();
        store.write(put("c"), Durability::Buffered).unwrap();
        assert!(store.get(Family::Meta, b"c").unwrap().is_some());
        store.crash();
        // "a" was carried to disk by the synced write after it, like a WAL.
        assert!(store.get(Family::Meta, b"a").unwrap().is_some());
        assert!(store.get(Family::Meta, b"b").unwrap().is_some());
        assert!(store.get(Family::Meta, b"c").unwrap().is_none());
    }

    #[test]
    fn delete_range_excludes_its_end() {
        let store = MemoryStore::default();
        let mut b = Batch::default();
        for k in [1u8, 2, 3] {
            b.put(Family::Logs, [k], vec![k]);
        }
        b.delete_range(Family::Logs, [1u8], [3u8]);
        store.write(b, Durability::Synced).unwrap();
        let mut seen = Vec::new();
        store
            .scan(Family::Logs, &[0], &mut |k, _| {
                seen.push(k[0]);
                true
            })
            .unwrap();
        assert_eq!(seen, vec![3]);
        assert_eq!(store.last(Family::Logs).unwrap(), Some(vec![3]));
    }
}
