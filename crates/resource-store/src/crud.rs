//! The standard methods (AIP-131..135) over a [`Store`], shared by every
//! resource: request validation, update-mask handling and store calls. A
//! service only describes its resource ([`Resource`]); failures are
//! [`CrudError`], which becomes a gRPC status in one place
//! ([`crate::status`]).

use std::sync::Arc;

use prost_types::FieldMask;

use crate::{
    mask::UpdateMask,
    paging::PageTokens,
    store::{Schema, Store, StoreError},
    validate::{self, Violations},
};

/// Fields the server sets; naming them in an update mask is invalid. The
/// etag is sent back with an update to guard it, never updated itself.
pub const OUTPUT_ONLY: &[&str] = &["id", "create_time", "update_time", "etag"];

/// What the standard methods need to know about a resource.
pub trait Resource: Schema {
    /// Request field holding the resource, prefix of violation paths (`customer`).
    const FIELD: &'static str;
    /// Fields an update mask may name.
    const UPDATABLE: &'static [&'static str];

    /// Cleans up user input (e.g. trims) before validation and storage.
    fn normalize(_record: &mut Self::Record) {}
    /// Checks a complete record; paths are `<FIELD>.<field>`.
    fn validate(record: &Self::Record) -> Violations;
    /// Copies the fields `mask` selects from `patch` into `current`.
    fn apply(current: &mut Self::Record, patch: &Self::Record, mask: &UpdateMask);
}

/// Why a standard method failed: the one domain error of every resource
/// service, mapped onto `tonic::Status` once (`impl From<CrudError> for
/// Status` in [`crate::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrudError {
    /// The request is malformed; every violated field is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{resource_type} {id:?} not found")]
    NotFound {
        /// E.g. `customer.v1.Customer`.
        resource_type: &'static str,
        id: String,
    },
    #[error("{field} {value:?} is already used by {existing_id}")]
    AlreadyExists {
        resource_type: &'static str,
        /// The unique field's request path, e.g. `customer.email`.
        field: &'static str,
        value: String,
        existing_id: String,
    },
    /// An update's etag is stale: the record changed since it was read.
    #[error("{resource_type} {id:?} has changed since it was read (etag {etag:?} is stale)")]
    Aborted {
        resource_type: &'static str,
        id: String,
        etag: String,
    },
    /// The store cannot be reached now; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed unexpectedly.
    #[error("{0}")]
    Internal(String),
}

impl From<Violations> for CrudError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl CrudError {
    /// A store failure on a table of `S`.
    pub fn store<S: Schema>(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { id } => Self::NotFound {
                resource_type: S::RESOURCE_TYPE,
                id,
            },
            StoreError::AlreadyExists {
                field,
                value,
                existing_id,
            } => Self::AlreadyExists {
                resource_type: S::RESOURCE_TYPE,
                field,
                value,
                existing_id,
            },
            StoreError::Invalid(violations) => Self::Invalid(violations),
            StoreError::EtagMismatch { id, etag } => Self::Aborted {
                resource_type: S::RESOURCE_TYPE,
                id,
                etag,
            },
            StoreError::Unavailable(message) => Self::Unavailable(message),
            StoreError::Internal(message) => Self::Internal(message),
        }
    }
}

fn required_resource<R>(record: Option<R>, field: &str) -> Result<R, Violations> {
    record.ok_or_else(|| Violations::one(field, "is required"))
}

/// The standard methods of resource `S` over whichever [`Store`] backs it.
#[derive(Debug)]
pub struct Crud<S: Resource> {
    store: Arc<dyn Store<S>>,
    tokens: PageTokens,
}

impl<S: Resource> Clone for Crud<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            tokens: self.tokens.clone(),
        }
    }
}

impl<S: Resource> Crud<S> {
    /// `tokens` are the page tokens of the resource's list method.
    pub fn new(store: Arc<dyn Store<S>>, tokens: PageTokens) -> Self {
        Self { store, tokens }
    }

    /// The store behind the methods.
    pub fn store(&self) -> &Arc<dyn Store<S>> {
        &self.store
    }

    /// Get: `id` must be non-empty and exist.
    pub async fn get(&self, id: &str) -> Result<S::Record, CrudError> {
        Violations::one_if("id", validate::required(id))?;
        self.store.get(id).await.map_err(CrudError::store::<S>)
    }

    /// Create: the resource is required and valid; id, timestamps and etag
    /// in the request are ignored.
    pub async fn create(&self, record: Option<S::Record>) -> Result<S::Record, CrudError> {
        let mut record = required_resource(record, S::FIELD)?;
        S::normalize(&mut record);
        S::validate(&record).into_result()?;
        self.store
            .create(record)
            .await
            .map_err(CrudError::store::<S>)
    }

    /// Update (AIP-134): `patch.id` names the record; without a mask the
    /// patch's non-default fields are copied, with one exactly the listed
    /// fields. The result must be valid. A non-empty `patch.etag` must be the
    /// record's current etag (AIP-154), checked atomically with the write;
    /// without one the last writer wins, field by field.
    pub async fn update(
        &self,
        patch: Option<S::Record>,
        mask: Option<&FieldMask>,
    ) -> Result<S::Record, CrudError> {
        let mut patch = required_resource(patch, S::FIELD)?;
        S::normalize(&mut patch);
        let mut violations = Violations::new();
        let id = S::id(&patch).to_owned();
        violations.check(&format!("{}.id", S::FIELD), validate::required(&id));
        let mask = UpdateMask::parse(mask, S::UPDATABLE, OUTPUT_ONLY).unwrap_or_else(|v| {
            violations.extend(v);
            UpdateMask::Implicit
        });
        violations.into_result()?;
        let etag = S::etag(&patch).to_owned();
        let mut change = |current: &mut S::Record| {
            if !etag.is_empty() && S::etag(current) != etag {
                return Err(StoreError::EtagMismatch {
                    id: id.clone(),
                    etag: etag.clone(),
                });
            }
            S::apply(current, &patch, &mask);
            S::validate(current)
                .into_result()
                .map_err(StoreError::Invalid)
        };
        self.store
            .update(&id, &mut change)
            .await
            .map_err(CrudError::store::<S>)
    }

    /// Delete: `id` must be non-empty and exist (a second delete is NOT_FOUND).
    pub async fn delete(&self, id: &str) -> Result<(), CrudError> {
        Violations::one_if("id", validate::required(id))?;
        self.store.delete(id).await.map_err(CrudError::store::<S>)?;
        Ok(())
    }

    /// One page of a list request (AIP-158): validates `page_size` and
    /// `page_token` (a token is only valid with the `group` filter it was
    /// issued for) and returns the records plus the next page token, empty on
    /// the last page.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        group: Option<&str>,
    ) -> Result<(Vec<S::Record>, String), CrudError> {
        let filter = group.unwrap_or_default();
        let request = self.tokens.request(page_size, page_token, filter)?;
        let page = self
            .store
            .list(request.after.as_deref(), group, request.size)
            .await
            .map_err(CrudError::store::<S>)?;
        let next = self
            .tokens
            .next(page.has_more, page.items.last().map(S::id), filter);
        Ok((page.items, next))
    }
}
