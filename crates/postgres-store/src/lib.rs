//! The PostgreSQL backend of `resource-store`'s [`Store`] interface
//! ([`PgStore`]: tokio-postgres with a deadpool pool, embedded migrations
//! applied under `pg_advisory_lock`), and the choice between it and the
//! in-memory table ([`open`], from `--database-url`).
//!
//! The database owns the constraints: a unique key is a primary-key row,
//! so concurrent creates of one e-mail or SKU end with exactly one winner
//! whichever replica they reach. Ids come from one sequence per resource
//! kind, shared by every replica, and keep the in-memory format
//! (`cus_000042`), so paging is keyset paging on the id's number. See
//! `docs/storage.md`.

pub mod error;
pub mod migrate;
pub mod store;

use std::{sync::Arc, time::Duration};

use clap::Args;
use prost::Message;
use resource_store::{
    Schema, Store, Table,
    paging::{PageTokenArgs, PageTokenKey, PageTokenKeyError},
};

pub use store::{OpenError, PgOptions, PgStore};

/// The storage flags of a service binary (with the runtime's
/// `PREFIX_DATABASE_*` environment fallbacks).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string (`postgres://user:pass@host:5432/db` or
    /// `host=... user=... dbname=...`); without one, records live in memory.
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most database connections this process opens.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub database_pool_size: u64,
    /// Longest wait for a database connection (connect, or a free pooled
    /// one); past it a request fails UNAVAILABLE. Half a second: a connect
    /// on the same host or cluster takes milliseconds, and a caller must
    /// hear UNAVAILABLE within a second when the database is gone (issue
    /// #12), also where connects hang rather than being refused.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub database_connect_timeout: Duration,
    /// Longest one store operation may take; past it the request fails
    /// UNAVAILABLE (keep it below --request-timeout).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub database_operation_timeout: Duration,
}

impl Default for DatabaseArgs {
    fn default() -> Self {
        Self {
            database_url: None,
            database_pool_size: 16,
            database_connect_timeout: Duration::from_millis(500),
            database_operation_timeout: Duration::from_secs(4),
        }
    }
}

impl DatabaseArgs {
    /// In-memory args with `url` set.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            database_url: Some(url.into()),
            ..Self::default()
        }
    }

    /// The PostgreSQL options, when a URL is set.
    pub fn options(&self) -> Option<PgOptions> {
        self.database_url.as_ref().map(|url| PgOptions {
            url: url.clone(),
            pool_size: usize::try_from(self.database_pool_size).unwrap_or(16),
            connect_timeout: self.database_connect_timeout,
            operation_timeout: self.database_operation_timeout,
        })
    }
}

/// The service binaries' own flags: what to seed, where records live and
/// the key their page tokens are signed with.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub seed: resource_store::SeedArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub page_tokens: PageTokenArgs,
}

/// Why a service binary could not start serving its resource.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    PageTokenKey(#[from] PageTokenKeyError),
    #[error(transparent)]
    Store(#[from] OpenError),
}

impl StoreArgs {
    /// The page-token key (`--page-token-key-file`, else the development
    /// key); logs which, since replicas with different keys reject each
    /// other's tokens.
    pub fn page_token_key(&self) -> Result<PageTokenKey, PageTokenKeyError> {
        let key = self.page_tokens.key()?;
        if key.is_development() {
            tracing::info!(
                "page tokens signed with the built-in development key (no --page-token-key-file)"
            );
        } else {
            tracing::info!("page tokens signed with the key from --page-token-key-file");
        }
        Ok(key)
    }
}

/// The store `args` select (PostgreSQL with a URL, else in memory), seeded
/// with `seed`'s records if it is empty (on PostgreSQL: once, under a lock,
/// whichever replica gets there first).
pub async fn open<S>(
    args: &DatabaseArgs,
    seed: Box<dyn FnOnce() -> Vec<S::Record> + Send>,
) -> Result<Arc<dyn Store<S>>, OpenError>
where
    S: Schema,
    S::Record: Message + Default,
{
    let store: Arc<dyn Store<S>> = match args.options() {
        None => Arc::new(Table::<S>::new()),
        Some(options) => Arc::new(PgStore::<S>::open(options).await?),
    };
    let seeded = store.seed_if_empty(seed).await?;
    let records = store.len().await?;
    tracing::info!(
        resource = S::RESOURCE_TYPE,
        backend = if args.database_url.is_some() {
            "postgresql"
        } else {
            "memory"
        },
        seeded,
        records,
        "store ready"
    );
    Ok(store)
}
