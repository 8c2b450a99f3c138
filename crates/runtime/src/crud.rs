//! The standard methods (AIP-131..135) over a [`Table`], shared by every
//! resource: request validation, update-mask handling and store calls. A
//! service only describes its resource ([`Resource`]) and maps [`CrudError`]
//! into its own domain error.

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

/// Why a standard method failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrudError {
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Violations> for CrudError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

fn required_resource<R>(record: Option<R>, field: &str) -> Result<R, Violations> {
    record.ok_or_else(|| Violations::one(field, "is required"))
}

impl<S: Resource> Table<S> {
    /// Get: `id` must be non-empty and exist.
    pub fn get_checked(&self, id: &str) -> Result<S::Record, CrudError> {
        Violations::one_if("id", validate::required(id))?;
        Ok(self.get(id)?)
    }

    /// Create: the resource is required and valid; id and timestamps in the
    /// request are ignored.
    pub fn create_checked(&self, record: Option<S::Record>) -> Result<S::Record, CrudError> {
        let mut record = required_resource(record, S::FIELD)?;
        S::normalize(&mut record);
        S::validate(&record).into_result()?;
        Ok(self.create(record)?)
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
                .map_err(CrudError::Invalid)
        })
    }

    /// Delete: `id` must be non-empty and exist (a second delete is NOT_FOUND).
    pub fn delete_checked(&self, id: &str) -> Result<(), CrudError> {
        Violations::one_if("id", validate::required(id))?;
        self.delete(id)?;
        Ok(())
    }
}
