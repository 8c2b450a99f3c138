//! The behaviour every store backend shares, on PostgreSQL: each test gets
//! a fresh database on this binary's throwaway server.
// Test helpers outside #[test] fns may fail loudly too.
#![allow(clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use postgres_store::{PgOptions, PgStore};
use resource_store::{Store, conformance::Things};

async fn fresh() -> Arc<dyn Store<Things>> {
    let url = tokio::task::spawn_blocking(|| {
        service_testing::postgres::shared()
            .expect("PostgreSQL starts")
            .create_database()
            .expect("database created")
    })
    .await
    .expect("task");
    let options = PgOptions {
        url,
        pool_size: 8,
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(10),
    };
    Arc::new(PgStore::<Things>::open(options).await.expect("store opens"))
}

resource_store::conformance_tests!(fresh);
