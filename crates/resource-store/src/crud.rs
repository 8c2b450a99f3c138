//! The standard methods (AIP-131..135) over a [`Table`], shared by every
//! resource: request validation, update-mask handling and store calls. A
//! service only describes its resource ([`Resource`]); failures are
//! [`CrudError`], which becomes a gRPC status in one place
//! ([`crate::status`]).

use prost_types::FieldMask;

use crate::{
    mask::UpdateMask,
    store::{Schema, StoreError, Table},
    validate::{self, Violations},
};

/// Fields the server sets; naming them in an update mask is invalid.
pub const OUTPUT_ONLY: &[&str] = &["id", "create_time", "update_time"];

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
        }
    }
}

/// What can go wrong inside an update: the store's own checks or the
/// validation of the changed record.
enum UpdateFailure {
    Store(StoreError),
    Invalid(Violations),
}

impl From<StoreError> for UpdateFailure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

fn required_resource<R>(record: Option<R>, field: &str) -> Result<R, Violations> {
    record.ok_or_else(|| Violations::one(field, "is required"))
}

impl<S: Resource> Table<S> {
    /// Get: `id` must be non-empty and exist.
    pub fn get_checked(&self, id: &str) -> Result<S::Record, CrudError> {
        Violations::one_if("id", validate::required(id))?;
        self.get(id).map_err(CrudError::store::<S>)
    }

    /// Create: the resource is required and valid; id and timestamps in the
    /// request are ignored.
    pub fn create_checked(&self, record: Option<S::Record>) -> Result<S::Record, CrudError> {
        let mut record = required_resource(record, S::FIELD)?;
        S::normalize(&mut record);
        S::validate(&record).into_result()?;
        self.create(record).map_err(CrudError::store::<S>)
    }

    /// Update (AIP-134): `patch.id` names the record; without a mask the
    /// patch's non-default fields are copied, with one exactly the listed
    /// fields. The result must be valid.
    pub fn update_checked(
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
        self.update(&id, |current| {
            S::apply(current, &patch, &mask);
            S::validate(current)
                .into_result()
                .map_err(UpdateFailure::Invalid)
        })
        .map_err(|failure| match failure {
            UpdateFailure::Store(err) => CrudError::store::<S>(err),
            UpdateFailure::Invalid(violations) => CrudError::Invalid(violations),
        })
    }

    /// Delete: `id` must be non-empty and exist (a second delete is NOT_FOUND).
    pub fn delete_checked(&self, id: &str) -> Result<(), CrudError> {
        Violations::one_if("id", validate::required(id))?;
        self.delete(id).map_err(CrudError::store::<S>)?;
        Ok(())
    }
}
