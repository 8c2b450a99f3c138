//! Embedded schema migrations, applied at startup under a session-level
//! `pg_advisory_lock` so replicas starting together migrate once.
//!
//! Applied versions are recorded in `schema_migrations`; each migration runs
//! in its own transaction (PostgreSQL DDL is transactional), so a crash
//! leaves the schema at a recorded version. The lock is taken on a
//! dedicated connection that is closed afterwards: even a failure midway
//! cannot leave it held.

use tokio_postgres::Client;

use crate::error::{db_error, invalid_prefix};
use resource_store::StoreError;

/// Key of the advisory lock around migrations and per-kind setup ("envoypoc").
pub const MIGRATION_LOCK: i64 = 0x656e_766f_7970_6f63;

/// First key of the per-kind advisory lock around seeding (the second is
/// the kind's hash).
pub const SEED_LOCK: i32 = 0x7365_6564;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order; append only.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "records",
    sql: include_str!("../migrations/0001_records.sql"),
}];

/// The id sequence of kind `prefix`; its name is safe to splice into SQL.
pub fn sequence_name(prefix: &str) -> Result<String, StoreError> {
    let valid = !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(format!("ids_{prefix}"))
    } else {
        Err(invalid_prefix(prefix))
    }
}

/// Applies the missing migrations and creates the id sequences of `kinds`,
/// all under the advisory lock. Returns the versions applied now.
pub async fn migrate(client: &mut Client, kinds: &[&str]) -> Result<Vec<i32>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    let result = migrate_locked(client, kinds).await;
    // Closing the connection would release the lock too; unlocking keeps a
    // reused connection clean.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn migrate_locked(client: &mut Client, kinds: &[&str]) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db_error)?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(migration.sql).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        applied.push(migration.version);
    }
    for kind in kinds {
        let sequence = sequence_name(kind)?;
        client
            .batch_execute(&format!("CREATE SEQUENCE IF NOT EXISTS {sequence}"))
            .await
            .map_err(db_error)?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_names_only_from_plain_prefixes() {
        assert_eq!(sequence_name("cus").as_deref(), Ok("ids_cus"));
        for bad in ["", "Cus", "c-s", "c s", "cus;drop", "ç"] {
            assert!(sequence_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(m.version).ok(), Some(i + 1), "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }
}
