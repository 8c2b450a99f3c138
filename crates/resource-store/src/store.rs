//! A thread-safe in-memory table: records ordered by server-assigned id,
//! unique indexes and an optional secondary (group) index, all behind one lock
//! so they never drift apart.
//!
//! Ids are `<prefix>_<counter>` (e.g. `cus_000042`): the counter only grows, so
//! ids sort in creation order and listing is a range scan that costs
//! O(page + log n), also when filtered by group.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ops::Bound,
    sync::{PoisonError, RwLock},
    time::SystemTime,
};

use prost_types::Timestamp;

use crate::{paging::PageTokens, validate::Violations};

/// How a [`Table`] sees its records.
pub trait Schema: Send + Sync + 'static {
    type Record: Clone + Send + Sync + 'static;
    /// Id prefix, e.g. `cus`.
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
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<R> {
    pub items: Vec<R>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

#[derive(Debug)]
struct Inner<R> {
    last_seq: u64,
    rows: BTreeMap<u64, R>,
    unique: HashMap<(&'static str, String), u64>,
    groups: BTreeSet<(String, u64)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Table<S: Schema> {
    inner: RwLock<Inner<S::Record>>,
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
                rows: BTreeMap::new(),
                unique: HashMap::new(),
                groups: BTreeSet::new(),
            }),
        }
    }

    /// Renders a sequence number as an id.
    pub fn format_id(seq: u64) -> String {
        format!("{}_{seq:06}", S::ID_PREFIX)
    }

    /// Parses an id back into its sequence number; only canonical renderings
    /// are accepted, so every record has exactly one id.
    fn parse_id(id: &str) -> Option<u64> {
        let digits = id.strip_prefix(S::ID_PREFIX)?.strip_prefix('_')?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = digits.parse().ok()?;
        (Self::format_id(seq) == id).then_some(seq)
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

    /// One page of a list request (AIP-158): validates `page_size` and
    /// `page_token` (a token is only valid with the `group` filter it was
    /// issued for) and returns the records plus the next page token, empty on
    /// the last page.
    pub fn list_page(
        &self,
        tokens: &PageTokens,
        page_size: i32,
        page_token: &str,
        group: Option<&str>,
    ) -> Result<(Vec<S::Record>, String), Violations> {
        let filter = group.unwrap_or_default();
        let request = tokens.request(page_size, page_token, filter)?;
        let page = self.list(request.after.as_deref(), group, request.size);
        let next = tokens.next(page.has_more, page.items.last().map(S::id), filter);
        Ok((page.items, next))
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
    use std::sync::Arc;

    use super::*;

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Thing {
        id: String,
        code: String,
        kind: String,
        created: Option<Timestamp>,
        updated: Option<Timestamp>,
    }

    struct Things;

    impl Schema for Things {
        type Record = Thing;
        const ID_PREFIX: &'static str = "thg";
        const RESOURCE_TYPE: &'static str = "demo.v1.Thing";
        fn id(r: &Thing) -> &str {
            &r.id
        }
        fn set_id(r: &mut Thing, id: String) {
            r.id = id;
        }
        fn set_create_time(r: &mut Thing, t: Timestamp) {
            r.created = Some(t);
        }
        fn set_update_time(r: &mut Thing, t: Timestamp) {
            r.updated = Some(t);
        }
        fn unique_keys(r: &Thing) -> Vec<(&'static str, String)> {
            vec![("thing.code", r.code.to_lowercase())]
        }
        fn group(r: &Thing) -> Option<&str> {
            Some(&r.kind)
        }
    }

    fn thing(code: &str, kind: &str) -> Thing {
        Thing {
            code: code.into(),
            kind: kind.into(),
            ..Thing::default()
        }
    }

    fn ids(page: &Page<Thing>) -> Vec<&str> {
        page.items.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn ids_sort_in_creation_order_and_parse_strictly() {
        let table = Table::<Things>::new();
        let a = table.create(thing("a", "x")).expect("created");
        assert_eq!(a.id, "thg_000001");
        assert!(a.created.is_some() && a.created == a.updated);
        assert_eq!(Table::<Things>::parse_id("thg_1234567"), Some(1_234_567));
        for bad in ["thg_1", "thg_00000x", "prd_000001", "", "thg_+00001"] {
            assert_eq!(Table::<Things>::parse_id(bad), None, "{bad}");
        }
        assert_eq!(
            table.get("thg_1"),
            Err(StoreError::NotFound { id: "thg_1".into() })
        );
    }

    #[test]
    fn unique_keys_on_create_update_delete() {
        let table = Table::<Things>::new();
        let a = table.create(thing("ABC", "x")).expect("created");
        let b = table.create(thing("def", "x")).expect("created");
        let dup = table.create(thing("abc", "y")).expect_err("duplicate");
        assert!(
            matches!(dup, StoreError::AlreadyExists { field: "thing.code", ref existing_id, .. } if *existing_id == a.id)
        );

        // Updating b to a's code conflicts and leaves b untouched.
        let err = table
            .update(&b.id, |t| {
                t.code = "Abc".into();
                Ok::<_, StoreError>(())
            })
            .expect_err("conflict");
        assert!(matches!(err, StoreError::AlreadyExists { .. }));
        assert_eq!(table.get(&b.id).expect("exists").code, "def");

        // Keeping its own code is fine; freeing a code makes it reusable.
        table
            .update(&a.id, |t| {
                t.code = "abc".into();
                Ok::<_, StoreError>(())
            })
            .expect("own key");
        table
            .update(&a.id, |t| {
                t.code = "xyz".into();
                Ok::<_, StoreError>(())
            })
            .expect("new key");
        table
            .create(thing("ABC", "z"))
            .expect("old code free again");
        table.delete(&b.id).expect("deleted");
        table
            .create(thing("DEF", "z"))
            .expect("deleted code free again");
        assert_eq!(
            table.delete(&b.id),
            Err(StoreError::NotFound { id: b.id.clone() })
        );
    }

    #[test]
    fn update_keeps_id_and_create_time() {
        let table = Table::<Things>::new();
        let a = table.create(thing("a", "x")).expect("created");
        let updated = table
            .update(&a.id, |t| {
                t.id = "thg_999999".into();
                t.kind = "y".into();
                Ok::<_, StoreError>(())
            })
            .expect("updated");
        assert_eq!(updated.id, a.id);
        assert_eq!(updated.created, a.created);
        assert_eq!(table.list(None, Some("y"), 10).items, vec![updated.clone()]);
        assert!(table.list(None, Some("x"), 10).items.is_empty());
        let failed: Result<Thing, StoreError> = table.update(&a.id, |_| {
            Err(StoreError::NotFound {
                id: "sentinel".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(
            table.get(&a.id).expect("exists"),
            updated,
            "failed change is not stored"
        );
    }

    #[test]
    fn list_pages_and_groups() {
        let table = Table::<Things>::new();
        for i in 0..10 {
            table
                .create(thing(
                    &format!("c{i}"),
                    if i % 2 == 0 { "even" } else { "odd" },
                ))
                .expect("created");
        }
        let first = table.list(None, None, 4);
        assert_eq!(
            ids(&first),
            ["thg_000001", "thg_000002", "thg_000003", "thg_000004"]
        );
        assert!(first.has_more);
        let last = table.list(Some("thg_000008"), None, 4);
        assert_eq!(ids(&last), ["thg_000009", "thg_000010"]);
        assert!(!last.has_more);
        let exact = table.list(Some("thg_000006"), None, 4);
        assert!(!exact.has_more, "no empty trailing page");

        let odd = table.list(None, Some("odd"), 3);
        assert_eq!(ids(&odd), ["thg_000002", "thg_000004", "thg_000006"]);
        assert!(odd.has_more);
        let odd2 = table.list(Some("thg_000006"), Some("odd"), 3);
        assert_eq!(ids(&odd2), ["thg_000008", "thg_000010"]);
        assert!(!odd2.has_more);
        // Resuming after a deleted id still works.
        table.delete("thg_000008").expect("deleted");
        assert_eq!(
            ids(&table.list(Some("thg_000008"), Some("odd"), 3)),
            ["thg_000010"]
        );
        assert!(table.list(None, Some("none"), 3).items.is_empty());
    }

    #[test]
    fn list_page_walks_everything_once_with_tokens() {
        let table = Table::<Things>::new();
        for i in 0..25 {
            table
                .create(thing(&format!("c{i}"), if i % 3 == 0 { "a" } else { "b" }))
                .expect("created");
        }
        let tokens = PageTokens::new("demo.v1.ListThings");
        for (group, expected) in [(None, 25), (Some("a"), 9), (Some("b"), 16)] {
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let (items, next) = table.list_page(&tokens, 4, &token, group).expect("page");
                seen.extend(items.into_iter().map(|t| t.id));
                if next.is_empty() {
                    break;
                }
                token = next;
            }
            let mut dedup = seen.clone();
            dedup.dedup();
            assert_eq!((seen.len(), dedup.len()), (expected, expected), "{group:?}");
        }
        let (_, token) = table.list_page(&tokens, 2, "", Some("a")).expect("page");
        let err = table
            .list_page(&tokens, 2, &token, Some("b"))
            .expect_err("other filter");
        assert_eq!(err.fields(), ["page_token"]);
        let err = table
            .list_page(&tokens, -1, "", None)
            .expect_err("negative");
        assert_eq!(err.fields(), ["page_size"]);
    }

    #[test]
    fn concurrent_creates_keep_unique_index_consistent() {
        let table = Arc::new(Table::<Things>::new());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    (0..200)
                        .filter(|i| {
                            table
                                .create(thing(&format!("code{}", (i + t) % 100), "k"))
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let created: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
        assert_eq!(created, 100, "each code exactly once");
        assert_eq!(table.len(), 100);
        assert_eq!(table.read().unique.len(), 100);
        assert_eq!(table.read().groups.len(), 100);
    }
}
