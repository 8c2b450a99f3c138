//! What both services share about their resources, apart from the server
//! (that is `service-runtime`, which knows nothing of resources or of `api`).
//!
//! [`store`] (ordered in-memory table with unique and group indexes),
//! [`crud`] (the standard methods over it and [`CrudError`], their one error
//! type), [`status`] (the one mapping of that error onto `tonic::Status` with
//! `google.rpc` details), [`paging`] (page sizes, page tokens), [`mask`]
//! (update masks), [`validate`] (field checks) and [`seed`] (the
//! `--empty`/`--synthetic-records` flags a service adds to its command line).

pub mod crud;
pub mod mask;
pub mod paging;
pub mod seed;
pub mod status;
pub mod store;
pub mod validate;

pub use crud::{CrudError, Resource};
pub use seed::SeedArgs;
pub use store::{Schema, Table};
