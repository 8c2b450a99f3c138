//! Model-based tests of [`Table`]: random operation sequences, replayed
//! against a naive model one at a time, and run from many threads at once
//! against the invariants: unique keys stay unique (case-insensitively for
//! the email-like key), the indexes match the records exactly, and no update
//! is lost. Deterministic: every run uses the same seeds, and a failure names
//! its seed.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use super::*;

/// A record with two unique keys, like a customer's email (compared
/// case-insensitively) and a product's SKU (compared as is), a group like a
/// product category, and a counter that updates increment.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rec {
    id: String,
    email: String,
    sku: String,
    group: String,
    counter: u64,
    created: Option<Timestamp>,
    updated: Option<Timestamp>,
}

struct Recs;

impl Schema for Recs {
    type Record = Rec;
    const ID_PREFIX: &'static str = "rec";
    const RESOURCE_TYPE: &'static str = "demo.v1.Rec";
    fn id(r: &Rec) -> &str {
        &r.id
    }
    fn set_id(r: &mut Rec, id: String) {
        r.id = id;
    }
    fn set_create_time(r: &mut Rec, t: Timestamp) {
        r.created = Some(t);
    }
    fn set_update_time(r: &mut Rec, t: Timestamp) {
        r.updated = Some(t);
    }
    fn unique_keys(r: &Rec) -> Vec<(&'static str, String)> {
        vec![
            ("rec.email", r.email.to_lowercase()),
            ("rec.sku", r.sku.clone()),
        ]
    }
    fn group(r: &Rec) -> Option<&str> {
        Some(&r.group)
    }
}

/// xorshift64*: enough randomness for picking operations, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Few distinct values, so operations collide often.
fn email(rng: &mut Rng) -> String {
    let name = format!("user{}@example.org", rng.below(8));
    // Random case: User3@Example.org and user3@example.org are the same email.
    name.chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn sku(rng: &mut Rng) -> String {
    format!("SKU-{}", rng.below(8))
}

fn group(rng: &mut Rng) -> String {
    ["a", "b", "c"][rng.below(3) as usize].to_owned()
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        email: String,
        sku: String,
        group: String,
    },
    /// Increment the counter and optionally move keys/group.
    Update {
        seq: u64,
        email: Option<String>,
        sku: Option<String>,
        group: Option<String>,
    },
    Delete {
        seq: u64,
    },
}

fn op(rng: &mut Rng, max_seq: u64) -> Op {
    let seq = rng.below(max_seq) + 1;
    match rng.below(10) {
        0..=3 => Op::Create {
            email: email(rng),
            sku: sku(rng),
            group: group(rng),
        },
        4..=7 => Op::Update {
            seq,
            email: (rng.below(3) == 0).then(|| email(rng)),
            sku: (rng.below(3) == 0).then(|| sku(rng)),
            group: (rng.below(3) == 0).then(|| group(rng)),
        },
        _ => Op::Delete { seq },
    }
}

/// What an operation returned, comparable with the model's answer.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Rec),
    NotFound,
    Exists {
        field: &'static str,
        existing_id: String,
    },
}

fn outcome(result: Result<Rec, StoreError>) -> Outcome {
    match result {
        Ok(mut rec) => {
            // Timestamps are the store's business; the model ignores them.
            (rec.created, rec.updated) = (None, None);
            Outcome::Ok(rec)
        }
        Err(StoreError::NotFound { .. }) => Outcome::NotFound,
        Err(StoreError::AlreadyExists {
            field, existing_id, ..
        }) => Outcome::Exists { field, existing_id },
        Err(other) => panic!("the in-memory table cannot fail with {other:?}"),
    }
}

fn apply(table: &Table<Recs>, op: &Op) -> Outcome {
    outcome(match op.clone() {
        Op::Create { email, sku, group } => table.create(Rec {
            email,
            sku,
            group,
            ..Rec::default()
        }),
        Op::Update {
            seq,
            email,
            sku,
            group,
        } => table.update(&Table::<Recs>::format_id(seq), |r| {
            r.counter += 1;
            if let Some(email) = email {
                r.email = email;
            }
            if let Some(sku) = sku {
                r.sku = sku;
            }
            if let Some(group) = group {
                r.group = group;
            }
            Ok::<_, StoreError>(())
        }),
        Op::Delete { seq } => table.delete(&Table::<Recs>::format_id(seq)),
    })
}

/// The obviously right version: a map scanned linearly.
#[derive(Default)]
struct Model {
    last_seq: u64,
    rows: BTreeMap<u64, Rec>,
}

impl Model {
    fn conflict(&self, rec: &Rec, this: Option<u64>) -> Option<Outcome> {
        for (field, value) in Recs::unique_keys(rec) {
            for (&seq, other) in &self.rows {
                if Some(seq) != this && Recs::unique_keys(other).contains(&(field, value.clone())) {
                    let existing_id = Table::<Recs>::format_id(seq);
                    return Some(Outcome::Exists { field, existing_id });
                }
            }
        }
        None
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op.clone() {
            Op::Create { email, sku, group } => {
                let mut rec = Rec {
                    email,
                    sku,
                    group,
                    ..Rec::default()
                };
                if let Some(conflict) = self.conflict(&rec, None) {
                    return conflict;
                }
                self.last_seq += 1;
                rec.id = Table::<Recs>::format_id(self.last_seq);
                self.rows.insert(self.last_seq, rec.clone());
                Outcome::Ok(rec)
            }
            Op::Update {
                seq,
                email,
                sku,
                group,
            } => {
                let Some(old) = self.rows.get(&seq) else {
                    return Outcome::NotFound;
                };
                let mut new = old.clone();
                new.counter += 1;
                new.email = email.unwrap_or(new.email);
                new.sku = sku.unwrap_or(new.sku);
                new.group = group.unwrap_or(new.group);
                if let Some(conflict) = self.conflict(&new, Some(seq)) {
                    return conflict;
                }
                self.rows.insert(seq, new.clone());
                Outcome::Ok(new)
            }
            Op::Delete { seq } => match self.rows.remove(&seq) {
                Some(old) => Outcome::Ok(old),
                None => Outcome::NotFound,
            },
        }
    }
}

/// The table's indexes are exactly what its records imply, and no two
/// records share a unique key. One read lock: a consistent snapshot.
fn assert_consistent(table: &Table<Recs>, context: &str) {
    let inner = table.read();
    let mut unique = HashMap::new();
    let mut groups = std::collections::BTreeSet::new();
    for (&seq, rec) in &inner.rows {
        assert_eq!(rec.id, Table::<Recs>::format_id(seq), "{context}");
        for key in Recs::unique_keys(rec) {
            let clash = unique.insert(key.clone(), seq);
            assert!(clash.is_none(), "{context}: {key:?} held twice");
        }
        groups.insert((rec.group.clone(), seq));
    }
    assert_eq!(inner.unique, unique, "{context}: unique index");
    assert_eq!(inner.groups, groups, "{context}: group index");
    assert!(
        inner.rows.keys().all(|&seq| seq <= inner.last_seq),
        "{context}"
    );
}

#[test]
fn random_sequences_behave_like_the_model() {
    for seed in 0..64 {
        let mut rng = Rng::new(seed);
        let table = Table::<Recs>::new();
        let mut model = Model::default();
        for step in 0..300 {
            let op = op(&mut rng, model.last_seq + 2);
            let context = format!("seed {seed}, step {step}, {op:?}");
            assert_eq!(apply(&table, &op), model.apply(&op), "{context}");
            assert_consistent(&table, &context);
        }
        let listed: Vec<Rec> = table
            .list(None, None, usize::MAX - 1)
            .items
            .into_iter()
            .map(|mut r| {
                (r.created, r.updated) = (None, None);
                r
            })
            .collect();
        assert_eq!(
            listed,
            model.rows.into_values().collect::<Vec<_>>(),
            "seed {seed}"
        );
    }
}

#[test]
fn concurrent_random_operations_keep_the_invariants_and_lose_no_update() {
    const THREADS: u64 = 8;
    const OPS: usize = 1500;
    for seed in 0..4 {
        let table = Arc::new(Table::<Recs>::new());
        let done = Arc::new(AtomicBool::new(false));
        // A reader checking snapshots while the writers run.
        let checker = {
            let (table, done) = (Arc::clone(&table), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) {
                    assert_consistent(&table, &format!("seed {seed}, during"));
                    checks += 1;
                }
                checks
            })
        };
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    let mut rng = Rng::new(seed * 1000 + t);
                    // Successful increments per record, and the counters of
                    // the records this thread deleted.
                    let mut increments: HashMap<u64, u64> = HashMap::new();
                    let mut deleted: Vec<(u64, u64)> = Vec::new();
                    for _ in 0..OPS {
                        let max_seq = table.read().last_seq + 2;
                        let op = op(&mut rng, max_seq);
                        match (&op, apply(&table, &op)) {
                            (Op::Update { seq, .. }, Outcome::Ok(_)) => {
                                *increments.entry(*seq).or_default() += 1;
                            }
                            (Op::Delete { seq }, Outcome::Ok(old)) => {
                                deleted.push((*seq, old.counter))
                            }
                            _ => {}
                        }
                    }
                    (increments, deleted)
                })
            })
            .collect();
        let mut increments: HashMap<u64, u64> = HashMap::new();
        let mut final_counter: HashMap<u64, u64> = HashMap::new();
        for worker in workers {
            let (inc, deleted) = worker.join().expect("worker");
            for (seq, n) in inc {
                *increments.entry(seq).or_default() += n;
            }
            for (seq, counter) in deleted {
                assert!(
                    final_counter.insert(seq, counter).is_none(),
                    "seq {seq} deleted twice"
                );
            }
        }
        done.store(true, Ordering::Relaxed);
        let checks = checker.join().expect("checker");
        assert!(checks > 0);
        assert_consistent(&table, &format!("seed {seed}, after"));

        // Every successful update is in the record: in the live one, or in
        // the copy its delete returned.
        for (seq, rec) in table.read().rows.iter() {
            assert!(
                final_counter.insert(*seq, rec.counter).is_none(),
                "seq {seq} live and deleted"
            );
        }
        let created: HashSet<u64> = (1..=table.read().last_seq).collect();
        for (seq, n) in &increments {
            assert!(
                created.contains(seq),
                "seed {seed}: update of never-created {seq}"
            );
            assert_eq!(
                final_counter.get(seq),
                Some(n),
                "seed {seed}: lost update on {seq}"
            );
        }
        for (seq, counter) in &final_counter {
            assert_eq!(
                increments.get(seq).copied().unwrap_or(0),
                *counter,
                "seed {seed}: {seq}"
            );
        }
        // The run did exercise conflicts and churn.
        assert!(table.read().last_seq > 20, "seed {seed}: too few creates");
    }
}
