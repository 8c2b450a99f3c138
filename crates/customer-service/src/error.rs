//! The customer service's domain error and its one mapping onto gRPC status.

use service_runtime::{crud::CrudError, status, store::StoreError, validate::Violations};
use tonic::Status;

use crate::store::RESOURCE_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The request is malformed; every violated field is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("customer {id:?} not found")]
    NotFound { id: String },
    #[error("email {email:?} is already used by {existing_id}")]
    EmailTaken { email: String, existing_id: String },
}

impl From<CrudError> for CustomerError {
    fn from(err: CrudError) -> Self {
        match err {
            CrudError::Invalid(violations) => Self::Invalid(violations),
            CrudError::Store(StoreError::NotFound { id }) => Self::NotFound { id },
            CrudError::Store(StoreError::AlreadyExists {
                value, existing_id, ..
            }) => Self::EmailTaken {
                email: value,
                existing_id,
            },
        }
    }
}

/// The one place customer errors become gRPC statuses.
impl From<CustomerError> for Status {
    fn from(err: CustomerError) -> Self {
        match err {
            CustomerError::Invalid(violations) => status::invalid_argument(&violations),
            CustomerError::NotFound { id } => status::not_found(RESOURCE_TYPE, &id),
            CustomerError::EmailTaken { email, existing_id } => status::already_exists(
                RESOURCE_TYPE,
                "EMAIL_ALREADY_EXISTS",
                "customer.email",
                &email,
                &existing_id,
            ),
        }
    }
}
