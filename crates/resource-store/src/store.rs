//! The store interface every backend implements ([`Store`]), what a backend
//! needs to know about a resource ([`Schema`]), and the in-memory backend
//! ([`Table`]): records ordered by server-assigned id, unique indexes and an
//! optional secondary (group) index, all behind one lock so they never drift
//! apart.
//!
//! Ids are `<prefix>_<counter>` (e.g. `cus_000042`): the counter only grows, so
//! ids sort in creation order and listing is a range scan that costs
//! O(page + log n), also when filtered by group. Every backend orders by that
//! counter, so keyset paging (`after` an id) means the same everywhere.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ops::Bound,
    sync::{PoisonError, RwLock},
    time::SystemTime,
};

use prost_types::Timestamp;

use crate::validate::Violations;

/// How a store sees its records.
pub trait Schema: Send + Sync + 'static {
    type Record: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// Id prefix, e.g. `cus`: lower-case ASCII letters and digits (backends
    /// use it to name their storage).
    const ID_PREFIX: &'static str;
    /// Resource type for error details, e.g. `customer.v1.Customer`.
    const RESOURCE_TYPE: &'static str;

    fn id(record: &Self::Record) -> &str;
    fn set_id(record: &mut Self::Record, id: String);
    fn set_create_time(record: &mut Self::Record, time: Timestamp);
    fn set_update_time(record: &mut Self::Record, time: Timestamp);
    /// Values that must be unique across the table, as (field path, normalized value).
    fn unique_keys(record: &Self::Record) -> Vec<(&'static str, String)>;
    /// Secondary index key (e.g. the product category); `None` for no index.
    fn group(_record: &Self::Record) -> Option<&str> {
        None
    }
    /// The record's AIP-154 etag (empty when the resource has none).
    fn etag(_record: &Self::Record) -> &str {
        ""
    }
    /// Sets the etag a store computed from the record's version.
    fn set_etag(_record: &mut Self::Record, _etag: String) {}
}

/// Renders a sequence number as an id of `S`.
pub fn format_id<S: Schema>(seq: u64) -> String {
    format!("{}_{seq:06}", S::ID_PREFIX)
}

/// Parses an id of `S` back into its sequence number; only canonical
/// renderings are accepted, so every record has exactly one id.
pub fn parse_id<S: Schema>(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(S::ID_PREFIX)?.strip_prefix('_')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = digits.parse().ok()?;
    (format_id::<S>(seq) == id).then_some(seq)
}

/// The etag of a record version: opaque to clients, it only has to change
/// whenever the record does.
pub fn format_etag(version: u64) -> String {
    format!("v{version}")
}

/// Store-level failures; the standard methods turn them into
/// [`crate::CrudError`], which knows the resource type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no record with id {id:?}")]
    NotFound { id: String },
    #[error("{field} {value:?} is already used by {existing_id}")]
    AlreadyExists {
        field: &'static str,
        value: String,
        existing_id: String,
    },
    /// An update's change refused the new record (it would be invalid).
    #[error("invalid change: {0}")]
    Invalid(Violations),
    /// An update named an etag that is not the record's current one.
    #[error("record {id:?} has changed: etag {etag:?} is not the current one")]
    EtagMismatch { id: String, etag: String },
    /// The backend cannot be reached now (e.g. the database is down or no
    /// connection became free in time); retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed in a way retrying will not fix (a bug).
    #[error("store failure: {0}")]
    Internal(String),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<R> {
    pub items: Vec<R>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// What an update does to a copy of the current record (which carries its
/// current etag); an error leaves the record unchanged.
pub type Change<'a, R> = &'a mut (dyn FnMut(&mut R) -> Result<(), StoreError> + Send);

/// The one store interface: the standard methods ([`crate::Crud`]) and the
/// services only see this, whichever backend is behind it (the in-memory
/// [`Table`], PostgreSQL in the `postgres-store` crate).
///
/// Every backend behaves the same: ids from [`format_id`] in creation
/// order, timestamps and etags set by the store, unique keys enforced
/// atomically with the write, listing in id order after an id that need not
/// exist any more.
#[async_trait::async_trait]
pub trait Store<S: Schema>: Send + Sync + std::fmt::Debug {
    /// Inserts `record` with a new id, both timestamps set to now and a fresh etag.
    async fn create(&self, record: S::Record) -> Result<S::Record, StoreError>;
    async fn get(&self, id: &str) -> Result<S::Record, StoreError>;
    /// Applies `change` to a copy of the record and stores it if `change`
    /// succeeds and the unique keys stay unique, all atomically; update_time
    /// becomes now and the etag changes. The id and create_time are kept
    /// whatever `change` does to them.
    async fn update(
        &self,
        id: &str,
        change: Change<'_, S::Record>,
    ) -> Result<S::Record, StoreError>;
    /// Removes the record and returns it.
    async fn delete(&self, id: &str) -> Result<S::Record, StoreError>;
    /// Up to `limit` records after id `after` (exclusive), in id order; with
    /// `group`, only records in that group. `after` need not exist any more;
    /// an id that does not parse means "from the start".
    async fn list(
        &self,
        after: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Page<S::Record>, StoreError>;
    /// How many records there are.
    async fn len(&self) -> Result<usize, StoreError>;
    async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }
    /// Inserts `records` (made only when needed) if and only if the store is
    /// empty, once even when several replicas start at the same time; a
    /// record that conflicts is logged and skipped. Returns how many were
    /// inserted.
    async fn seed_if_empty(
        &self,
        records: Box<dyn FnOnce() -> Vec<S::Record> + Send>,
    ) -> Result<usize, StoreError>;
}

#[derive(Debug)]
struct Inner<R> {
    last_seq: u64,
    /// Versions count over the whole table, so an etag is never reused.
    last_version: u64,
    rows: BTreeMap<u64, R>,
    unique: HashMap<(&'static str, String), u64>,
    groups: BTreeSet<(String, u64)>,
}

/// See the module docs.
pub struct Table<S: Schema> {
    inner: RwLock<Inner<S::Record>>,
}

impl<S: Schema> std::fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("resource", &S::RESOURCE_TYPE)
            .field("records", &self.len())
            .finish()
    }
}

impl<S: Schema> Default for Table<S> {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

impl<S: Schema> Table<S> {
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(Inner {
                last_seq: 0,
                last_version: 0,
                rows: BTreeMap::new(),
                unique: HashMap::new(),
                groups: BTreeSet::new(),
            }),
        }
    }

    /// Renders a sequence number as an id.
    pub fn format_id(seq: u64) -> String {
        format_id::<S>(seq)
    }

    fn parse_id(id: &str) -> Option<u64> {
        parse_id::<S>(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<S::Record>> {
        // A panic while holding the lock cannot leave the maps half-updated:
        // every mutation checks first and then applies infallibly.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<S::Record>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.read().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts seed records, logging (not failing on) any that conflict.
    pub fn seed(&self, records: impl IntoIterator<Item = S::Record>) {
        for record in records {
            if let Err(err) = self.create(record) {
                tracing::warn!(%err, "skipping seed record");
            }
        }
    }

    /// Inserts `record` with a new id and both timestamps set to now.
    pub fn create(&self, mut record: S::Record) -> Result<S::Record, StoreError> {
        let mut inner = self.write();
        let keys = S::unique_keys(&record);
        check_unique::<S>(&inner, &keys, None)?;
        inner.last_seq += 1;
        let seq = inner.last_seq;
        let time = now();
        S::set_id(&mut record, Self::format_id(seq));
        S::set_create_time(&mut record, time);
        S::set_update_time(&mut record, time);
        inner.last_version += 1;
        S::set_etag(&mut record, format_etag(inner.last_version));
        for key in keys {
            inner.unique.insert(key, seq);
        }
        if let Some(group) = S::group(&record) {
            inner.groups.insert((group.to_owned(), seq));
        }
        inner.rows.insert(seq, record.clone());
        Ok(record)
    }

    pub fn get(&self, id: &str) -> Result<S::Record, StoreError> {
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let seq = Self::parse_id(id).ok_or_else(not_found)?;
        self.read().rows.get(&seq).cloned().ok_or_else(not_found)
    }

    /// Applies `change` to a copy of the record and stores it if `change`
    /// succeeds and the unique keys stay unique; update_time becomes now.
    /// The id and create_time are kept whatever `change` does to them.
    pub fn update<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut S::Record) -> Result<(), E>,
    ) -> Result<S::Record, E> {
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let seq = Self::parse_id(id).ok_or_else(not_found)?;
        let mut inner = self.write();
        let old = inner.rows.get(&seq).ok_or_else(not_found)?.clone();
        let mut new = old.clone();
        change(&mut new)?;
        S::set_id(&mut new, id.to_owned());
        let keys = S::unique_keys(&new);
        check_unique::<S>(&inner, &keys, Some(seq))?;
        S::set_update_time(&mut new, now());
        inner.last_version += 1;
        S::set_etag(&mut new, format_etag(inner.last_version));
        // From here on nothing fails: swap the index entries and the row.
        for key in S::unique_keys(&old) {
            inner.unique.remove(&key);
        }
        for key in keys {
            inner.unique.insert(key, seq);
        }
        if let Some(group) = S::group(&old) {
            inner.groups.remove(&(group.to_owned(), seq));
        }
        if let Some(group) = S::group(&new) {
            inner.groups.insert((group.to_owned(), seq));
        }
        inner.rows.insert(seq, new.clone());
        Ok(new)
    }

    pub fn delete(&self, id: &str) -> Result<S::Record, StoreError> {
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let seq = Self::parse_id(id).ok_or_else(not_found)?;
        let mut inner = self.write();
        let old = inner.rows.remove(&seq).ok_or_else(not_found)?;
        for key in S::unique_keys(&old) {
            inner.unique.remove(&key);
        }
        if let Some(group) = S::group(&old) {
            inner.groups.remove(&(group.to_owned(), seq));
        }
        Ok(old)
    }

    /// Up to `limit` records after id `after` (exclusive), in id order; with
    /// `group`, only records in that group. `after` need not exist any more.
    pub fn list(&self, after: Option<&str>, group: Option<&str>, limit: usize) -> Page<S::Record> {
        // Ids that do not parse cannot come from a (MAC-checked) page token;
        // treat them like "from the start".
        let start = match after.and_then(Self::parse_id) {
            Some(seq) => Bound::Excluded(seq),
            None => Bound::Unbounded,
        };
        let inner = self.read();
        let mut items: Vec<S::Record> = match group {
            None => inner
                .rows
                .range((start, Bound::Unbounded))
                .map(|(_, r)| r.clone())
                .take(limit + 1)
                .collect(),
            Some(group) => {
                let from = match start {
                    Bound::Excluded(seq) => Bound::Excluded((group.to_owned(), seq)),
                    _ => Bound::Included((group.to_owned(), 0)),
                };
                inner
                    .groups
                    .range((from, Bound::Unbounded))
                    .take_while(|(g, _)| g == group)
                    .filter_map(|(_, seq)| inner.rows.get(seq).cloned())
                    .take(limit + 1)
                    .collect()
            }
        };
        let has_more = items.len() > limit;
        items.truncate(limit);
        Page { items, has_more }
    }
}

#[async_trait::async_trait]
impl<S: Schema> Store<S> for Table<S> {
    async fn create(&self, record: S::Record) -> Result<S::Record, StoreError> {
        Table::create(self, record)
    }

    async fn get(&self, id: &str) -> Result<S::Record, StoreError> {
        Table::get(self, id)
    }

    async fn update(
        &self,
        id: &str,
        change: Change<'_, S::Record>,
    ) -> Result<S::Record, StoreError> {
        Table::update(self, id, change)
    }

    async fn delete(&self, id: &str) -> Result<S::Record, StoreError> {
        Table::delete(self, id)
    }

    async fn list(
        &self,
        after: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Page<S::Record>, StoreError> {
        Ok(Table::list(self, after, group, limit))
    }

    async fn len(&self) -> Result<usize, StoreError> {
        Ok(Table::len(self))
    }

    async fn seed_if_empty(
        &self,
        records: Box<dyn FnOnce() -> Vec<S::Record> + Send>,
    ) -> Result<usize, StoreError> {
        if !self.is_empty() {
            return Ok(0);
        }
        let before = self.len();
        self.seed(records());
        Ok(self.len() - before)
    }
}

fn check_unique<S: Schema>(
    inner: &Inner<S::Record>,
    keys: &[(&'static str, String)],
    this: Option<u64>,
) -> Result<(), StoreError> {
    for (field, value) in keys {
        if let Some(&existing) = inner.unique.get(&(*field, value.clone()))
            && Some(existing) != this
        {
            return Err(StoreError::AlreadyExists {
                field,
                value: value.clone(),
                existing_id: Table::<S>::format_id(existing),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod tests {
    //! The in-memory backend against the behaviour every backend shares.
    use std::sync::Arc;

    use super::*;
    use crate::conformance::Things;

    async fn fresh() -> Arc<dyn Store<Things>> {
        Arc::new(Table::<Things>::new())
    }

    crate::conformance_tests!(fresh);
}
