//! How database failures become [`StoreError`]s: what retrying can fix
//! (the server is down, restarting, out of connections, or no pooled
//! connection came free in time) is `Unavailable`; anything else is a bug
//! and `Internal`. Constraint violations never get here: the store turns
//! them into `AlreadyExists` where it knows which key collided.

use std::time::Duration;

use deadpool_postgres::PoolError;
use resource_store::StoreError;

/// A failed statement or connection.
pub fn db_error(err: tokio_postgres::Error) -> StoreError {
    match err.code() {
        Some(state) => {
            let code = state.code();
            // 08: connection exception; 57P01-57P03: admin/crash shutdown,
            // cannot connect now (starting up); 53300: too many connections;
            // 40001/40P01: serialization failure/deadlock (retry).
            let transient = code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "40001"
                || code == "40P01";
            if transient {
                StoreError::Unavailable(format!("database: {err}"))
            } else {
                StoreError::Internal(format!("database: {err}"))
            }
        }
        // No SQLSTATE: a value that does not convert (our bug), or the
        // connection broke, could not be made or timed out. tokio-postgres
        // only tells them apart in its message.
        None => {
            let message = err.to_string();
            if message.starts_with("error serializing")
                || message.starts_with("error deserializing")
            {
                StoreError::Internal(format!("database values: {message}"))
            } else {
                StoreError::Unavailable(format!("database connection: {message}"))
            }
        }
    }
}

/// A pool that gave no connection: `timeout` is the configured wait.
pub fn pool_error(err: PoolError, timeout: Duration) -> StoreError {
    match err {
        PoolError::Backend(err) => db_error(err),
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no database connection within {}",
            humantime::format_duration(timeout)
        )),
        other => StoreError::Unavailable(format!("database pool: {other}")),
    }
}

/// A stored record that does not decode: the data is corrupt or the schema
/// changed incompatibly.
pub fn decode_error(err: prost::DecodeError) -> StoreError {
    StoreError::Internal(format!("stored record does not decode: {err}"))
}

pub fn invalid_prefix(prefix: &str) -> StoreError {
    StoreError::Internal(format!(
        "id prefix {prefix:?} must be lower-case ASCII letters and digits"
    ))
}
