//! The behaviour every [`Store`] backend must show, as test bodies over a
//! fresh, empty store of [`Things`]. A backend's test suite instantiates them
//! all with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! async fn fresh() -> Arc<dyn Store<Things>> { /* a new, empty store */ }
//! resource_store::conformance_tests!(fresh);
//! ```
//!
//! This is test code compiled into the library (behind the `conformance`
//! feature) so that other crates can run it: it panics on failure.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use prost_types::{FieldMask, Timestamp};

use crate::{
    crud::{Crud, CrudError, Resource},
    mask::UpdateMask,
    paging::PageTokens,
    store::{Page, Schema, Store, StoreError, parse_id},
    validate::{self, Violations},
};

/// The test resource: a unique code (case-insensitive), a group (`kind`),
/// a free-text note, timestamps and an etag.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Thing {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub kind: String,
    #[prost(string, tag = "4")]
    pub note: String,
    #[prost(message, optional, tag = "5")]
    pub created: Option<Timestamp>,
    #[prost(message, optional, tag = "6")]
    pub updated: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub etag: String,
}

/// [`Schema`] and [`Resource`] of [`Thing`]: ids `thg_…`.
#[derive(Debug)]
pub struct Things;

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
    fn etag(r: &Thing) -> &str {
        &r.etag
    }
    fn set_etag(r: &mut Thing, etag: String) {
        r.etag = etag;
    }
}

impl Resource for Things {
    const FIELD: &'static str = "thing";
    const UPDATABLE: &'static [&'static str] = &["code", "kind", "note"];

    fn validate(r: &Thing) -> Violations {
        let mut v = Violations::new();
        v.check("thing.code", validate::required(&r.code));
        v
    }

    fn apply(current: &mut Thing, patch: &Thing, mask: &UpdateMask) {
        if mask.includes("code", !patch.code.is_empty()) {
            current.code.clone_from(&patch.code);
        }
        if mask.includes("kind", !patch.kind.is_empty()) {
            current.kind.clone_from(&patch.kind);
        }
        if mask.includes("note", !patch.note.is_empty()) {
            current.note.clone_from(&patch.note);
        }
    }
}

/// The store every test gets.
pub type ThingStore = Arc<dyn Store<Things>>;

const TOKENS: PageTokens = PageTokens::new("demo.v1.ListThings");

pub fn thing(code: &str, kind: &str) -> Thing {
    Thing {
        code: code.into(),
        kind: kind.into(),
        ..Thing::default()
    }
}

fn ids(page: &Page<Thing>) -> Vec<&str> {
    page.items.iter().map(|t| t.id.as_str()).collect()
}

async fn set_code(store: &ThingStore, id: &str, code: &str) -> Result<Thing, StoreError> {
    let code = code.to_owned();
    store
        .update(id, &mut |t: &mut Thing| {
            t.code.clone_from(&code);
            Ok(())
        })
        .await
}

/// Instantiates every conformance test as a `#[tokio::test]` over the
/// stores `$fresh()` returns (an async fn giving a new, empty
/// `Arc<dyn Store<Things>>` per call).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            ids_sort_in_creation_order_and_parse_strictly,
            unique_keys_on_create_update_delete,
            update_keeps_id_and_create_time_and_changes_the_etag,
            list_pages_and_groups,
            list_page_walks_everything_once_with_tokens,
            concurrent_duplicate_creates_exactly_one_wins,
            keyset_paging_survives_concurrent_inserts_and_deletes,
            update_masks_select_and_clear_fields,
            sql_metacharacters_round_trip_literally,
            etag_guards_updates,
            seed_only_fills_an_empty_store,
        );
    };
    (@each $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::conformance::$name($fresh().await).await;
            }
        )*
    };
}

pub async fn ids_sort_in_creation_order_and_parse_strictly(store: ThingStore) {
    let a = store.create(thing("a", "x")).await.expect("created");
    assert_eq!(a.id, "thg_000001");
    assert!(a.created.is_some() && a.created == a.updated);
    assert!(!a.etag.is_empty(), "the store sets an etag");
    let b = store.create(thing("b", "x")).await.expect("created");
    assert_eq!(b.id, "thg_000002");
    assert_eq!(parse_id::<Things>("thg_1234567"), Some(1_234_567));
    for bad in [
        "thg_1",
        "thg_00000x",
        "prd_000001",
        "",
        "thg_+00001",
        "thg_-00001",
    ] {
        assert_eq!(parse_id::<Things>(bad), None, "{bad}");
        assert_eq!(
            store.get(bad).await,
            Err(StoreError::NotFound { id: bad.into() }),
            "{bad}"
        );
    }
    assert_eq!(store.get(&a.id).await.expect("exists"), a);
    assert_eq!(store.len().await, Ok(2));
}

pub async fn unique_keys_on_create_update_delete(store: ThingStore) {
    let a = store.create(thing("ABC", "x")).await.expect("created");
    let b = store.create(thing("def", "x")).await.expect("created");
    let dup = store
        .create(thing("abc", "y"))
        .await
        .expect_err("duplicate");
    assert_eq!(
        dup,
        StoreError::AlreadyExists {
            field: "thing.code",
            value: "abc".into(),
            existing_id: a.id.clone()
        }
    );

    // Updating b to a's code conflicts and leaves b untouched.
    let err = set_code(&store, &b.id, "Abc").await.expect_err("conflict");
    assert!(
        matches!(err, StoreError::AlreadyExists { ref existing_id, .. } if *existing_id == a.id),
        "{err:?}"
    );
    assert_eq!(store.get(&b.id).await.expect("exists"), b);

    // Keeping its own code is fine; freeing a code makes it reusable.
    set_code(&store, &a.id, "abc").await.expect("own key");
    set_code(&store, &a.id, "xyz").await.expect("new key");
    store
        .create(thing("ABC", "z"))
        .await
        .expect("old code free again");
    store.delete(&b.id).await.expect("deleted");
    store
        .create(thing("DEF", "z"))
        .await
        .expect("deleted code free again");
    assert_eq!(
        store.delete(&b.id).await,
        Err(StoreError::NotFound { id: b.id.clone() })
    );
    assert_eq!(
        set_code(&store, &b.id, "q").await,
        Err(StoreError::NotFound { id: b.id.clone() })
    );
    assert_eq!(store.len().await, Ok(3));
}

pub async fn update_keeps_id_and_create_time_and_changes_the_etag(store: ThingStore) {
    let a = store.create(thing("a", "x")).await.expect("created");
    tokio::time::sleep(Duration::from_millis(2)).await;
    let updated = store
        .update(&a.id, &mut |t: &mut Thing| {
            t.id = "thg_999999".into();
            t.kind = "y".into();
            Ok(())
        })
        .await
        .expect("updated");
    assert_eq!(updated.id, a.id);
    assert_eq!(updated.created, a.created);
    assert_ne!(updated.updated, a.updated, "update_time moves");
    assert_ne!(updated.etag, a.etag, "etag changes with every write");
    assert_eq!(store.get(&a.id).await.expect("exists"), updated);
    assert_eq!(
        store.list(None, Some("y"), 10).await.expect("list").items,
        vec![updated.clone()]
    );
    assert!(
        store
            .list(None, Some("x"), 10)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let failed = store
        .update(&a.id, &mut |t: &mut Thing| {
            t.note = "never stored".into();
            Err(StoreError::Invalid(Violations::one("thing.note", "no")))
        })
        .await;
    assert_eq!(
        failed,
        Err(StoreError::Invalid(Violations::one("thing.note", "no")))
    );
    assert_eq!(
        store.get(&a.id).await.expect("exists"),
        updated,
        "failed change is not stored"
    );
    let deleted = store.delete(&a.id).await.expect("deleted");
    assert_eq!(deleted, updated, "delete returns the record");
}

pub async fn list_pages_and_groups(store: ThingStore) {
    for i in 0..10 {
        store
            .create(thing(
                &format!("c{i}"),
                if i % 2 == 0 { "even" } else { "odd" },
            ))
            .await
            .expect("created");
    }
    let list = |after: Option<&'static str>, group: Option<&'static str>, limit| {
        let store = Arc::clone(&store);
        async move { store.list(after, group, limit).await.expect("list") }
    };
    let first = list(None, None, 4).await;
    assert_eq!(
        ids(&first),
        ["thg_000001", "thg_000002", "thg_000003", "thg_000004"]
    );
    assert!(first.has_more);
    let last = list(Some("thg_000008"), None, 4).await;
    assert_eq!(ids(&last), ["thg_000009", "thg_000010"]);
    assert!(!last.has_more);
    let exact = list(Some("thg_000006"), None, 4).await;
    assert!(!exact.has_more, "no empty trailing page");
    assert_eq!(
        ids(&list(Some("garbage"), None, 2).await),
        ["thg_000001", "thg_000002"],
        "an unparsable id means from the start"
    );

    let odd = list(None, Some("odd"), 3).await;
    assert_eq!(ids(&odd), ["thg_000002", "thg_000004", "thg_000006"]);
    assert!(odd.has_more);
    let odd2 = list(Some("thg_000006"), Some("odd"), 3).await;
    assert_eq!(ids(&odd2), ["thg_000008", "thg_000010"]);
    assert!(!odd2.has_more);
    // Resuming after a deleted id still works.
    store.delete("thg_000008").await.expect("deleted");
    assert_eq!(
        ids(&list(Some("thg_000008"), Some("odd"), 3).await),
        ["thg_000010"]
    );
    assert!(list(None, Some("none"), 3).await.items.is_empty());
    assert!(
        list(None, Some("ODD"), 3).await.items.is_empty(),
        "exact match"
    );
    assert!(
        list(None, Some("od%"), 3).await.items.is_empty(),
        "no wildcards"
    );
    assert!(list(Some("thg_000010"), None, 3).await.items.is_empty());
}

pub async fn list_page_walks_everything_once_with_tokens(store: ThingStore) {
    for i in 0..25 {
        store
            .create(thing(&format!("c{i}"), if i % 3 == 0 { "a" } else { "b" }))
            .await
            .expect("created");
    }
    let crud = Crud::new(store, TOKENS);
    for (group, expected) in [(None, 25), (Some("a"), 9), (Some("b"), 16)] {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let (items, next) = crud.list(4, &token, group).await.expect("page");
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
    let (_, token) = crud.list(2, "", Some("a")).await.expect("page");
    let err = crud
        .list(2, &token, Some("b"))
        .await
        .expect_err("other filter");
    assert!(
        matches!(&err, CrudError::Invalid(v) if v.fields() == ["page_token"]),
        "{err:?}"
    );
    let err = crud.list(-1, "", None).await.expect_err("negative");
    assert!(
        matches!(&err, CrudError::Invalid(v) if v.fields() == ["page_size"]),
        "{err:?}"
    );
}

pub async fn concurrent_duplicate_creates_exactly_one_wins(store: ThingStore) {
    // 8 writers race over the same 50 codes (in different letter cases):
    // each code is created exactly once, every loser is told who won.
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut won = Vec::new();
                for i in 0..100_usize {
                    let n = (i + t * 7) % 50;
                    let code = if t % 2 == 0 {
                        format!("code{n}")
                    } else {
                        format!("CODE{n}")
                    };
                    match store.create(thing(&code, "k")).await {
                        Ok(created) => won.push(created.code.to_lowercase()),
                        Err(StoreError::AlreadyExists {
                            value, existing_id, ..
                        }) => {
                            assert_eq!(value, code.to_lowercase());
                            let winner = store.get(&existing_id).await.expect("winner exists");
                            assert_eq!(winner.code.to_lowercase(), value);
                        }
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won = Vec::new();
    for handle in handles {
        won.extend(handle.await.expect("task"));
    }
    let distinct: BTreeSet<_> = won.iter().cloned().collect();
    assert_eq!(
        (won.len(), distinct.len()),
        (50, 50),
        "each code exactly once"
    );
    assert_eq!(store.len().await, Ok(50));
    let all = store.list(None, None, 1000).await.expect("list");
    let codes: BTreeSet<_> = all.items.iter().map(|t| t.code.to_lowercase()).collect();
    assert_eq!(codes, distinct);
}

pub async fn keyset_paging_survives_concurrent_inserts_and_deletes(store: ThingStore) {
    let mut stable = BTreeSet::new();
    for i in 0..120 {
        let kind = if i % 2 == 0 { "stable" } else { "churn" };
        let created = store
            .create(thing(&format!("s{i}"), kind))
            .await
            .expect("created");
        if i % 2 == 0 {
            stable.insert(created.id);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let churn = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        let rounds = Arc::clone(&rounds);
        tokio::spawn(async move {
            let mut n = 0_u64;
            let mut deleted = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                rounds.store(n, Ordering::Relaxed);
                let created = store
                    .create(thing(&format!("churn{n}"), "churn"))
                    .await
                    .expect("created");
                // Delete an old churn record and the one just made, every other time.
                let old = format!("thg_{:06}", 2 * (n % 60) + 2);
                if store.delete(&old).await.is_ok() {
                    deleted += 1;
                }
                if n.is_multiple_of(2) {
                    store.delete(&created.id).await.expect("deleted");
                }
                tokio::task::yield_now().await;
            }
            (n, deleted)
        })
    };
    // The listing must overlap the churn: on a loaded machine the in-memory
    // store listed everything before the churn task first ran (CI: "churn
    // ran: 0 0"). Wait for it to be under way.
    while rounds.load(Ordering::Relaxed) < 5 {
        tokio::task::yield_now().await;
    }
    let crud = Crud::new(Arc::clone(&store), TOKENS);
    for group in [None, Some("stable")] {
        for _ in 0..3 {
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let (items, next) = crud.list(7, &token, group).await.expect("page");
                seen.extend(items.into_iter().map(|t| t.id));
                if next.is_empty() {
                    break;
                }
                token = next;
                tokio::task::yield_now().await;
            }
            let seqs: Vec<u64> = seen
                .iter()
                .map(|id| parse_id::<Things>(id).expect("id"))
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "strictly ascending, no duplicates"
            );
            let seen: BTreeSet<_> = seen.into_iter().collect();
            assert!(
                stable.is_subset(&seen),
                "every record present throughout is listed"
            );
            if group.is_some() {
                assert_eq!(seen, stable, "the filter holds");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (created, deleted) = churn.await.expect("churn task");
    assert!(created > 0 && deleted > 0, "churn ran: {created} {deleted}");
}

pub async fn update_masks_select_and_clear_fields(store: ThingStore) {
    let crud = Crud::new(store, TOKENS);
    let a = crud
        .create(Some(Thing {
            note: "first".into(),
            ..thing("m1", "x")
        }))
        .await
        .expect("created");
    let mask = |paths: &[&str]| FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    };
    // Without a mask only the set fields change.
    let patch = Thing {
        id: a.id.clone(),
        note: "second".into(),
        ..Thing::default()
    };
    let b = crud.update(Some(patch), None).await.expect("updated");
    assert_eq!(
        (b.code.as_str(), b.kind.as_str(), b.note.as_str()),
        ("m1", "x", "second")
    );
    // With one, listed fields are replaced (even cleared), others kept.
    let patch = Thing {
        id: a.id.clone(),
        code: "ignored".into(),
        ..Thing::default()
    };
    let c = crud
        .update(Some(patch), Some(&mask(&["note", "kind"])))
        .await
        .expect("updated");
    assert_eq!(
        (c.code.as_str(), c.kind.as_str(), c.note.as_str()),
        ("m1", "", "")
    );
    assert_eq!(crud.get(&a.id).await.expect("get"), c);
    // An update that would make the record invalid is refused, nothing stored.
    let patch = Thing {
        id: a.id.clone(),
        ..Thing::default()
    };
    let err = crud
        .update(Some(patch), Some(&mask(&["code"])))
        .await
        .expect_err("invalid");
    assert!(
        matches!(&err, CrudError::Invalid(v) if v.fields() == ["thing.code"]),
        "{err:?}"
    );
    let err = crud
        .update(Some(a.clone()), Some(&mask(&["etag", "nope"])))
        .await
        .expect_err("bad mask");
    assert!(
        matches!(&err, CrudError::Invalid(v) if v.fields() == ["update_mask.paths"; 2]),
        "{err:?}"
    );
    assert_eq!(crud.get(&a.id).await.expect("get"), c);
    let err = crud.get("thg_424242").await.expect_err("missing");
    assert!(matches!(err, CrudError::NotFound { .. }), "{err:?}");
    crud.delete(&a.id).await.expect("deleted");
    let err = crud.delete(&a.id).await.expect_err("second delete");
    assert!(matches!(err, CrudError::NotFound { .. }), "{err:?}");
}

pub async fn sql_metacharacters_round_trip_literally(store: ThingStore) {
    let nasty = [
        "O'Brien",
        "\"; DROP TABLE records; --",
        "' OR '1'='1",
        "100% _done_ \\ back\\slash",
        "$1 $$ dollar $$",
        "nul\0byte",
        "ünïcödé 🦀 ∑",
        "tab\tnew\nline",
        "E'\\x00'",
    ];
    let mut created = Vec::new();
    for (i, text) in nasty.iter().enumerate() {
        let t = store
            .create(Thing {
                note: (*text).to_owned(),
                ..thing(text, &format!("{text}{i}"))
            })
            .await
            .expect("created");
        assert_eq!((t.code.as_str(), t.note.as_str()), (*text, *text));
        created.push(t);
    }
    for (i, t) in created.iter().enumerate() {
        assert_eq!(&store.get(&t.id).await.expect("get"), t);
        let kind = format!("{}{i}", nasty[i]);
        let listed = store.list(None, Some(&kind), 10).await.expect("list");
        assert_eq!(listed.items, vec![t.clone()], "{kind:?}");
    }
    // Wildcards are not wildcards: "100%…" does not match a similar code.
    store
        .create(thing("100x _done_ \\ back\\slash", "k"))
        .await
        .expect("different code");
    let dup = store
        .create(thing("o'brien", "k"))
        .await
        .expect_err("same code, other case");
    assert!(matches!(dup, StoreError::AlreadyExists { .. }), "{dup:?}");
    assert_eq!(store.len().await, Ok(nasty.len() + 1));
}

pub async fn etag_guards_updates(store: ThingStore) {
    let crud = Crud::new(store, TOKENS);
    let a = crud.create(Some(thing("e1", "x"))).await.expect("created");
    // The current etag is accepted, and the write changes it.
    let patch = Thing {
        id: a.id.clone(),
        note: "one".into(),
        etag: a.etag.clone(),
        ..Thing::default()
    };
    let b = crud.update(Some(patch), None).await.expect("fresh etag");
    assert_ne!(b.etag, a.etag);
    // The old one is stale now: ABORTED, nothing stored.
    let stale = Thing {
        id: a.id.clone(),
        note: "two".into(),
        etag: a.etag.clone(),
        ..Thing::default()
    };
    let err = crud.update(Some(stale), None).await.expect_err("stale");
    assert_eq!(
        err,
        CrudError::Aborted {
            resource_type: "demo.v1.Thing",
            id: a.id.clone(),
            etag: a.etag.clone()
        }
    );
    assert_eq!(crud.get(&a.id).await.expect("get"), b);
    // Without an etag the last writer wins.
    let blind = Thing {
        id: a.id.clone(),
        kind: "y".into(),
        ..Thing::default()
    };
    let c = crud.update(Some(blind), None).await.expect("no etag");
    assert_eq!((c.note.as_str(), c.kind.as_str()), ("one", "y"));
    // Two writers with the same etag: exactly one wins.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let crud = crud.clone();
            let patch = Thing {
                id: c.id.clone(),
                note: format!("racer {i}"),
                etag: c.etag.clone(),
                ..Thing::default()
            };
            tokio::spawn(async move { crud.update(Some(patch), None).await })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(_) => wins += 1,
            Err(CrudError::Aborted { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer with the same etag wins");
}

pub async fn seed_only_fills_an_empty_store(store: ThingStore) {
    let seeded = store
        .seed_if_empty(Box::new(|| {
            vec![thing("s1", "a"), thing("S1", "a"), thing("s2", "b")]
        }))
        .await
        .expect("seeded");
    assert_eq!(seeded, 2, "the conflicting record is skipped");
    let again = store
        .seed_if_empty(Box::new(|| vec![thing("s3", "a")]))
        .await
        .expect("not seeded");
    assert_eq!(again, 0, "only an empty store is seeded");
    assert_eq!(store.len().await, Ok(2));
    let page = store.list(None, None, 10).await.expect("list");
    assert_eq!(ids(&page), ["thg_000001", "thg_000002"]);
}
