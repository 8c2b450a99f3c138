//! What both services share about their resources, apart from the server
//! (that is `service-runtime`, which knows nothing of resources or of `api`).
//!
//! [`store`] (the [`Store`] interface every backend implements, and the
//! in-memory backend: an ordered table with unique and group indexes),
//! [`crud`] (the standard methods over any store and [`CrudError`], their one error
//! type), [`status`] (the one mapping of that error onto `tonic::Status` with
//! `google.rpc` details), [`paging`] (page sizes, page tokens), [`mask`]
//! (update masks), [`validate`] (field checks) and [`seed`] (the
//! `--empty`/`--synthetic-records` flags a service adds to its command line).
//! With the `conformance` feature, [`conformance`] holds the behaviour tests
//! every backend must pass (run here on the in-memory table and in
//! `postgres-store` on PostgreSQL).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod crud;
pub mod mask;
pub mod paging;
pub mod seed;
pub mod status;
pub mod store;
pub mod validate;

pub use crud::{Crud, CrudError, Resource};
pub use seed::SeedArgs;
pub use store::{Schema, Store, StoreError, Table};
