//! The product service's domain error and its one mapping onto gRPC status.

use service_runtime::{crud::CrudError, status, store::StoreError, validate::Violations};
use tonic::Status;

use crate::store::RESOURCE_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The request is malformed; every violated field is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("product {id:?} not found")]
    NotFound { id: String },
    #[error("SKU {sku:?} is already used by {existing_id}")]
    SkuTaken { sku: String, existing_id: String },
}

impl From<CrudError> for ProductError {
    fn from(err: CrudError) -> Self {
        match err {
            CrudError::Invalid(violations) => Self::Invalid(violations),
            CrudError::Store(StoreError::NotFound { id }) => Self::NotFound { id },
            CrudError::Store(StoreError::AlreadyExists {
                value, existing_id, ..
            }) => Self::SkuTaken {
                sku: value,
                existing_id,
            },
        }
    }
}

/// The one place product errors become gRPC statuses.
impl From<ProductError> for Status {
    fn from(err: ProductError) -> Self {
        match err {
            ProductError::Invalid(violations) => status::invalid_argument(&violations),
            ProductError::NotFound { id } => status::not_found(RESOURCE_TYPE, &id),
            ProductError::SkuTaken { sku, existing_id } => status::already_exists(
                RESOURCE_TYPE,
                "SKU_ALREADY_EXISTS",
                "product.sku",
                &sku,
                &existing_id,
            ),
        }
    }
}
