//! Building blocks for mapping a service's domain error onto `tonic::Status`
//! with `google.rpc` details (AIP-193). Each service calls these from its one
//! `From<ServiceError> for Status`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::validate::Violations;

/// Error domain in `google.rpc.ErrorInfo`.
pub const ERROR_DOMAIN: &str = "envoy-poc.example.com";

/// INVALID_ARGUMENT with a `BadRequest` listing every field violation.
pub fn invalid_argument(violations: &Violations) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        ErrorDetails::with_bad_request(violations.to_field_violations()),
    )
}

/// NOT_FOUND with a `ResourceInfo`.
pub fn not_found(resource_type: &str, id: &str) -> Status {
    Status::with_error_details(
        Code::NotFound,
        format!("{resource_type} {id:?} not found"),
        ErrorDetails::with_resource_info(resource_type, id, "", "no such resource"),
    )
}

/// ALREADY_EXISTS with a `ResourceInfo` naming the existing resource and an
/// `ErrorInfo` whose reason (e.g. `EMAIL_ALREADY_EXISTS`) clients can match on.
pub fn already_exists(
    resource_type: &str,
    reason: &str,
    field: &str,
    value: &str,
    existing_id: &str,
) -> Status {
    let mut details = ErrorDetails::with_resource_info(
        resource_type,
        existing_id,
        "",
        format!("{field} {value:?} is already used"),
    );
    let metadata = HashMap::from([
        ("field".to_owned(), field.to_owned()),
        ("value".to_owned(), value.to_owned()),
    ]);
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(
        Code::AlreadyExists,
        format!("{field} {value:?} is already used by {existing_id}"),
        details,
    )
}
