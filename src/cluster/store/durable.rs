//! The durable log behind a [`super::Store`]: a redb database with one table
//! of objects (key `resource/namespace/name`, value the object's JSON) and the
//! latest resourceVersion. redb commits are crash-safe (copy-on-write B-trees
//! with checksummed commit slots), so an acknowledged batch survives
//! `kill -9` and power loss, and a torn batch is never seen.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{ObjectKey, StoredObject};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RV: &str = "resourceVersion";
/// The file inside the data directory.
const FILE: &str = "store.redb";

/// The durable log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// Creating the data directory failed.
    #[error("cannot create data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// redb refused to open the file (for example another server has it open).
    #[error("cannot open {path}: {source} (is another gameops server using this --data-dir?)")]
    Open {
        /// The database file.
        path: String,
        /// Why.
        source: redb::DatabaseError,
    },
    /// A read or write failed.
    #[error("{0}")]
    Io(String),
    /// A stored record is not what gameops wrote.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn io(e: impl std::fmt::Display) -> DurableError {
    DurableError::Io(e.to_string())
}

/// An open durable log.
pub struct Log {
    db: Database,
}

/// What opening a log finds: the log, its latest resourceVersion and every
/// stored object.
pub struct Opened {
    /// The open log.
    pub log: Log,
    /// The latest committed resourceVersion.
    pub rv: u64,
    /// Every stored object.
    pub objects: Vec<(ObjectKey, StoredObject)>,
}

/// The object's table key.
pub fn encode_key(key: &ObjectKey) -> String {
    format!("{}/{}/{}", key.resource, key.namespace, key.name)
}

fn decode_key(raw: &str, resources: &[&'static str]) -> Option<ObjectKey> {
    let mut parts = raw.splitn(3, '/');
    let resource = parts.next()?;
    let resource = resources.iter().find(|r| **r == resource)?;
    Some(ObjectKey {
        resource,
        namespace: parts.next()?.to_owned(),
        name: parts.next()?.to_owned(),
    })
}

impl Log {
    /// Opens or creates the log in `dir`, returning it with the latest
    /// resourceVersion and every stored object.
    /// `resources` lists every resource the store may hold.
    pub fn open(dir: &Path, resources: &[&'static str]) -> Result<Opened, DurableError> {
        crate::cluster::private_dir(dir).map_err(|source| DurableError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(FILE);
        let db = Database::create(&path).map_err(|source| DurableError::Open {
            path: path.display().to_string(),
            source,
        })?;
        crate::cluster::private_file(&path).map_err(|source| DurableError::Dir {
            path: path.display().to_string(),
            source,
        })?;
        let read = db.begin_read().map_err(io)?;
        let rv = match read.open_table(META) {
            Ok(meta) => meta.get(RV).map_err(io)?.map(|v| v.value()).unwrap_or(0),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(io(e)),
        };
        let mut objects = Vec::new();
        match read.open_table(OBJECTS) {
            Ok(table) => {
                for entry in table.iter().map_err(io)? {
                    let (k, v) = entry.map_err(io)?;
                    let raw = k.value();
                    let corrupt = |reason: String| DurableError::Corrupt {
                        key: raw.to_owned(),
                        reason,
                    };
                    let key = decode_key(raw, resources)
                        .ok_or_else(|| corrupt("unknown resource".into()))?;
                    let json = v.value();
                    let value: serde_json::Value =
                        serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
                    let object_rv = value
                        .pointer("/metadata/resourceVersion")
                        .and_then(|v| v.as_str())
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt("no resourceVersion".into()))?;
                    let object = StoredObject::from_parts(object_rv, value, json);
                    objects.push((key, object));
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(io(e)),
        }
        drop(read);
        Ok(Opened {
            log: Self { db },
            rv,
            objects,
        })
    }

    /// Writes one batch atomically and durably: `puts` are (key, JSON) pairs,
    /// `None` JSON deletes; `rv` is the batch's last resourceVersion.
    pub fn commit<'a>(
        &self,
        changes: impl Iterator<Item = (String, Option<&'a [u8]>)>,
        rv: u64,
    ) -> Result<(), DurableError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(io)?;
            for (key, json) in changes {
                match json {
                    Some(json) => {
                        objects.insert(key.as_str(), json).map_err(io)?;
                    }
                    None => {
                        objects.remove(key.as_str()).map_err(io)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(io)?;
            meta.insert(RV, rv).map_err(io)?;
        }
        txn.commit().map_err(io)
    }
}
