//! [`PgStore`]: resource-store's [`Store`] on PostgreSQL, generic over the
//! [`Schema`] (records stored as protobuf bytes; see the migration for the
//! tables).

use std::{collections::HashMap, marker::PhantomData, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use prost::Message;
use prost_types::Timestamp;
use resource_store::{
    Schema, Store, StoreError,
    store::{Change, Page, format_etag, format_id, parse_id},
};
use sha2::{Digest, Sha256};
use tokio_postgres::{NoTls, Row};

use crate::{
    error::{db_error, decode_error, pool_error},
    migrate,
};

/// How to reach the database and how long to wait for it.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` or `host=/run/pg user=app dbname=app`.
    pub url: String,
    /// Most connections the pool opens.
    pub pool_size: usize,
    /// Longest wait for a pooled connection, for connecting and for
    /// checking a connection before reuse.
    pub connect_timeout: Duration,
    /// Longest a whole store operation may take before it fails UNAVAILABLE
    /// (keep it below the request timeout so callers see why).
    pub operation_timeout: Duration,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("cannot prepare the database: {0}")]
    Store(#[from] StoreError),
}

/// See the module docs.
pub struct PgStore<S> {
    pool: Pool,
    sequence: String,
    options: PgOptions,
    schema: PhantomData<fn() -> S>,
}

impl<S: Schema> std::fmt::Debug for PgStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("PgStore")
            .field("resource", &S::RESOURCE_TYPE)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Seed records per statement.
const SEED_CHUNK: usize = 1000;

/// A page of a kind's records after a sequence number, in order: $1 the
/// kind, $2 the last seq of the previous page (0 for the first), $3 the
/// rows wanted (the page size plus one, to know whether another follows).
/// Public so the bench can EXPLAIN the statement the store runs, not a copy.
pub const LIST_PAGE_SQL: &str =
    "SELECT version, record FROM records WHERE kind = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// The same page within one group ($4 the group's digest).
pub const LIST_GROUP_PAGE_SQL: &str = "SELECT version, record FROM records \
     WHERE kind = $1 AND grp = $4 AND seq > $2 ORDER BY seq LIMIT $3";

fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// The `seq` column of id `id`, if it is one of `S`'s.
fn seq_of<S: Schema>(id: &str) -> Option<i64> {
    parse_id::<S>(id).and_then(|seq| i64::try_from(seq).ok())
}

fn seq_to_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or_default()
}

impl<S> PgStore<S>
where
    S: Schema,
    S::Record: Message + Default,
{
    /// Connects, applies the embedded migrations under the advisory lock and
    /// creates `S`'s id sequence. Fails (never hangs) when the database
    /// cannot be reached within the connect timeout.
    pub async fn open(options: PgOptions) -> Result<Self, OpenError> {
        let sequence = migrate::sequence_name(S::ID_PREFIX)?;
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|err: tokio_postgres::Error| OpenError::InvalidUrl(err.to_string()))?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name(S::ID_PREFIX);
        }

        let bound = options.operation_timeout.max(options.connect_timeout * 3);
        let (mut client, connection) = timeout(bound, async {
            config.connect(NoTls).await.map_err(db_error)
        })
        .await?;
        let connection = tokio::spawn(connection);
        let applied = timeout(bound * 10, migrate::migrate(&mut client, &[S::ID_PREFIX])).await;
        drop(client);
        // The connection task ends once the client is gone.
        let _ = connection.await;
        applied?;

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection the server dropped (restart, kill) is closed
                // and replaced, so the store recovers without a restart.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| OpenError::Pool(err.to_string()))?;
        Ok(Self {
            pool,
            sequence,
            options,
            schema: PhantomData,
        })
    }

    /// A pooled connection within the connect timeout, all told. The pool's
    /// own timeouts bound each phase (waiting for a slot, recycling,
    /// connecting) separately, so a get could take two or three times as
    /// long: on the local cluster, with PostgreSQL gone, the kernel
    /// rate-limits kube-proxy's ICMP rejects, connects wait for SYN
    /// retransmits, and calls failed after 2-3 s instead of 1.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let limit = self.options.connect_timeout;
        match tokio::time::timeout(limit, self.pool.get()).await {
            Ok(got) => got.map_err(|err| pool_error(err, limit)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no database connection within {}",
                humantime::format_duration(limit)
            ))),
        }
    }

    /// Runs `op` within the operation timeout.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        timeout(self.options.operation_timeout, op).await
    }

    /// A stored row (`version`, `record`) as the record clients see.
    fn decode(row: &Row) -> Result<S::Record, StoreError> {
        let version: i64 = row.get(0);
        let bytes: &[u8] = row.get(1);
        let mut record = S::Record::decode(bytes).map_err(decode_error)?;
        S::set_etag(&mut record, format_etag(seq_to_u64(version)));
        Ok(record)
    }

    /// The id of the record holding unique key (`field`, `value`), if any.
    async fn owner(
        tx: &Transaction<'_>,
        field: &str,
        value: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = tx
            .query_opt(
                "SELECT seq FROM unique_keys WHERE kind = $1 AND field = $2 AND digest = $3",
                &[&S::ID_PREFIX, &field, &digest(value)],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Claims unique key (`field`, `value`) for `seq`; when another record
    /// holds it (committed, or committing concurrently: the insert waits for
    /// it), AlreadyExists names that record.
    async fn claim(
        tx: &Transaction<'_>,
        seq: i64,
        field: &'static str,
        value: &str,
    ) -> Result<(), StoreError> {
        let key = digest(value);
        // The holder may vanish between our insert and our look-up; then
        // the key is free and the next attempt takes it.
        for _ in 0..5 {
            let inserted = tx
                .execute(
                    "INSERT INTO unique_keys (kind, field, digest, value, seq)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&S::ID_PREFIX, &field, &key, &value.as_bytes(), &seq],
                )
                .await
                .map_err(db_error)?;
            if inserted == 1 {
                return Ok(());
            }
            if let Some(existing) = Self::owner(tx, field, value).await? {
                return Err(StoreError::AlreadyExists {
                    field,
                    value: value.to_owned(),
                    existing_id: format_id::<S>(seq_to_u64(existing)),
                });
            }
        }
        Err(StoreError::Unavailable(format!(
            "{field} {value:?} kept changing hands; retry"
        )))
    }

    /// Inserts `record` within `tx`: AlreadyExists before taking an id when
    /// a key is visibly taken (so failed creates do not use up ids, as in
    /// memory), and the database's verdict otherwise.
    async fn insert(
        tx: &Transaction<'_>,
        sequence: &str,
        mut record: S::Record,
    ) -> Result<S::Record, StoreError> {
        let keys = S::unique_keys(&record);
        for (field, value) in &keys {
            if let Some(existing) = Self::owner(tx, field, value).await? {
                return Err(StoreError::AlreadyExists {
                    field,
                    value: value.clone(),
                    existing_id: format_id::<S>(seq_to_u64(existing)),
                });
            }
        }
        let seq: i64 = tx
            .query_one(&format!("SELECT nextval('{sequence}')"), &[])
            .await
            .map_err(db_error)?
            .get(0);
        let time = now();
        S::set_id(&mut record, format_id::<S>(seq_to_u64(seq)));
        S::set_create_time(&mut record, time);
        S::set_update_time(&mut record, time);
        S::set_etag(&mut record, format_etag(1));
        let group = S::group(&record).map(digest);
        tx.execute(
            "INSERT INTO records (kind, seq, grp, version, record) VALUES ($1, $2, $3, 1, $4)",
            &[&S::ID_PREFIX, &seq, &group, &record.encode_to_vec()],
        )
        .await
        .map_err(db_error)?;
        for (field, value) in &keys {
            Self::claim(tx, seq, field, value).await?;
        }
        Ok(record)
    }

    async fn create_inner(&self, record: S::Record) -> Result<S::Record, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let record = Self::insert(&tx, &self.sequence, record).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    async fn get_inner(&self, seq: i64) -> Result<Option<S::Record>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT version, record FROM records WHERE kind = $1 AND seq = $2")
            .await
            .map_err(db_error)?;
        let row = client
            .query_opt(&statement, &[&S::ID_PREFIX, &seq])
            .await
            .map_err(db_error)?;
        row.as_ref().map(Self::decode).transpose()
    }

    async fn update_inner(
        &self,
        id: &str,
        seq: i64,
        change: Change<'_, S::Record>,
    ) -> Result<S::Record, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let row = tx
            .query_opt(
                "SELECT version, record FROM records WHERE kind = $1 AND seq = $2 FOR UPDATE",
                &[&S::ID_PREFIX, &seq],
            )
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::NotFound { id: id.to_owned() })?;
        let version: i64 = row.get(0);
        let old = Self::decode(&row)?;
        let mut new = old.clone();
        change(&mut new)?;
        S::set_id(&mut new, id.to_owned());
        let old_keys = S::unique_keys(&old);
        let new_keys = S::unique_keys(&new);
        for (field, value) in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            tx.execute(
                "DELETE FROM unique_keys
                 WHERE kind = $1 AND field = $2 AND digest = $3 AND seq = $4",
                &[&S::ID_PREFIX, field, &digest(value), &seq],
            )
            .await
            .map_err(db_error)?;
        }
        for (field, value) in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            Self::claim(&tx, seq, field, value).await?;
        }
        let version = version + 1;
        S::set_update_time(&mut new, now());
        S::set_etag(&mut new, format_etag(seq_to_u64(version)));
        let group = S::group(&new).map(digest);
        tx.execute(
            "UPDATE records SET grp = $3, version = $4, record = $5 WHERE kind = $1 AND seq = $2",
            &[&S::ID_PREFIX, &seq, &group, &version, &new.encode_to_vec()],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(new)
    }

    async fn delete_inner(&self, seq: i64) -> Result<Option<S::Record>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM records WHERE kind = $1 AND seq = $2 RETURNING version, record",
                &[&S::ID_PREFIX, &seq],
            )
            .await
            .map_err(db_error)?;
        row.as_ref().map(Self::decode).transpose()
    }

    async fn list_inner(
        &self,
        after: i64,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Page<S::Record>, StoreError> {
        let client = self.client().await?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = match group {
            None => {
                let statement = client
                    .prepare_cached(LIST_PAGE_SQL)
                    .await
                    .map_err(db_error)?;
                client
                    .query(&statement, &[&S::ID_PREFIX, &after, &fetch])
                    .await
            }
            Some(group) => {
                let statement = client
                    .prepare_cached(LIST_GROUP_PAGE_SQL)
                    .await
                    .map_err(db_error)?;
                client
                    .query(&statement, &[&S::ID_PREFIX, &after, &fetch, &digest(group)])
                    .await
            }
        }
        .map_err(db_error)?;
        let mut items = rows
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, has_more })
    }

    async fn len_inner(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM records WHERE kind = $1",
                &[&S::ID_PREFIX],
            )
            .await
            .map_err(db_error)?
            .get(0);
        Ok(usize::try_from(count).unwrap_or_default())
    }

    async fn seed_inner(
        &self,
        records: Box<dyn FnOnce() -> Vec<S::Record> + Send>,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // Replicas starting together queue here; the first seeds, the
        // others then find the table filled.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&migrate::SEED_LOCK, &S::ID_PREFIX],
        )
        .await
        .map_err(db_error)?;
        let filled: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM records WHERE kind = $1)",
                &[&S::ID_PREFIX],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if filled {
            return Ok(0);
        }
        // The table is empty and no other seeder can run: only conflicts
        // within the batch are possible, so they are settled here, and the
        // rows go in as a few large statements instead of one per record.
        let mut taken: HashMap<(&'static str, String), String> = HashMap::new();
        let mut kept = Vec::new();
        for record in records() {
            let keys = S::unique_keys(&record);
            if let Some((field, value)) = keys.iter().find(|k| taken.contains_key(*k)) {
                let err = StoreError::AlreadyExists {
                    field,
                    value: value.clone(),
                    existing_id: taken[&(*field, value.clone())].clone(),
                };
                tracing::warn!(%err, "skipping seed record");
                continue;
            }
            let seq = kept.len() + 1;
            for key in keys {
                taken.insert(key, format!("#{seq} of the seed"));
            }
            kept.push(record);
        }
        let count = i64::try_from(kept.len()).unwrap_or(i64::MAX);
        let mut seqs: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT nextval('{}') FROM generate_series(1, $1::bigint)",
                    self.sequence
                ),
                &[&count],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        seqs.sort_unstable();
        let time = now();
        for (chunk, chunk_seqs) in kept.chunks_mut(SEED_CHUNK).zip(seqs.chunks(SEED_CHUNK)) {
            let mut groups: Vec<Option<Vec<u8>>> = Vec::with_capacity(chunk.len());
            let mut bytes = Vec::with_capacity(chunk.len());
            let (mut fields, mut digests, mut values, mut owners) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (record, &seq) in chunk.iter_mut().zip(chunk_seqs) {
                S::set_id(record, format_id::<S>(seq_to_u64(seq)));
                S::set_create_time(record, time);
                S::set_update_time(record, time);
                S::set_etag(record, format_etag(1));
                groups.push(S::group(record).map(digest));
                bytes.push(record.encode_to_vec());
                for (field, value) in S::unique_keys(record) {
                    fields.push(field);
                    digests.push(digest(&value));
                    values.push(value.into_bytes());
                    owners.push(seq);
                }
            }
            tx.execute(
                "INSERT INTO records (kind, seq, grp, version, record)
                 SELECT $1, s, g, 1, r FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS t(s, g, r)",
                &[&S::ID_PREFIX, &chunk_seqs, &groups, &bytes],
            )
            .await
            .map_err(db_error)?;
            // A create on another replica racing the seed fails the seed
            // (a unique violation): the next start finds the table filled.
            tx.execute(
                "INSERT INTO unique_keys (kind, field, digest, value, seq)
                 SELECT $1, f, d, v, s
                 FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::bigint[]) AS t(f, d, v, s)",
                &[&S::ID_PREFIX, &fields, &digests, &values, &owners],
            )
            .await
            .map_err(db_error)?;
        }
        let inserted = kept.len();
        tx.commit().await.map_err(db_error)?;
        // Statistics for the bulk load now, not when autovacuum next looks:
        // until then the planner takes the tables for nearly empty and pages
        // with a bitmap scan and a sort of every row after the position
        // (measured: 27 buffers for the first page of 1005 rows, 3 for the
        // last) instead of the primary key's range scan.
        client
            .batch_execute("ANALYZE records, unique_keys")
            .await
            .map_err(db_error)?;
        Ok(inserted)
    }
}

async fn timeout<T>(
    limit: Duration,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "database did not answer within {}",
            humantime::format_duration(limit)
        )))
    })
}

#[async_trait::async_trait]
impl<S> Store<S> for PgStore<S>
where
    S: Schema,
    S::Record: Message + Default,
{
    async fn create(&self, record: S::Record) -> Result<S::Record, StoreError> {
        self.bounded(self.create_inner(record)).await
    }

    async fn get(&self, id: &str) -> Result<S::Record, StoreError> {
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let seq = seq_of::<S>(id).ok_or_else(not_found)?;
        self.bounded(self.get_inner(seq))
            .await?
            .ok_or_else(not_found)
    }

    async fn update(
        &self,
        id: &str,
        change: Change<'_, S::Record>,
    ) -> Result<S::Record, StoreError> {
        let seq = seq_of::<S>(id).ok_or_else(|| StoreError::NotFound { id: id.to_owned() })?;
        self.bounded(self.update_inner(id, seq, change)).await
    }

    async fn delete(&self, id: &str) -> Result<S::Record, StoreError> {
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let seq = seq_of::<S>(id).ok_or_else(not_found)?;
        self.bounded(self.delete_inner(seq))
            .await?
            .ok_or_else(not_found)
    }

    async fn list(
        &self,
        after: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Page<S::Record>, StoreError> {
        // As in memory: an id that does not parse means "from the start";
        // one beyond any possible seq leaves nothing after it.
        let after = match after.and_then(parse_id::<S>) {
            None => 0,
            Some(seq) => i64::try_from(seq).unwrap_or(i64::MAX),
        };
        self.bounded(self.list_inner(after, group, limit)).await
    }

    async fn len(&self) -> Result<usize, StoreError> {
        self.bounded(self.len_inner()).await
    }

    async fn seed_if_empty(
        &self,
        records: Box<dyn FnOnce() -> Vec<S::Record> + Send>,
    ) -> Result<usize, StoreError> {
        // Seeding many records takes longer than one request may.
        timeout(
            self.options.operation_timeout * 60,
            self.seed_inner(records),
        )
        .await
    }
}
