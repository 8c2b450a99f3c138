//! The one place a [`CrudError`] becomes a `tonic::Status`, with
//! `google.rpc` details (AIP-193), for every resource service.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{crud::CrudError, validate::Violations};

/// Error domain in `google.rpc.ErrorInfo`.
pub const ERROR_DOMAIN: &str = "envoy-poc.example.com";

impl From<CrudError> for Status {
    fn from(err: CrudError) -> Self {
        match err {
            CrudError::Invalid(violations) => invalid_argument(&violations),
            CrudError::NotFound { resource_type, id } => not_found(resource_type, &id),
            CrudError::AlreadyExists {
                resource_type,
                field,
                value,
                existing_id,
            } => already_exists(resource_type, field, &value, &existing_id),
            CrudError::Aborted {
                resource_type,
                id,
                etag,
            } => aborted(resource_type, &id, &etag),
            CrudError::Unavailable(message) => {
                // The message names the cause (database down, pool exhausted);
                // the client only learns to retry.
                tracing::warn!(%message, "store unavailable");
                Status::unavailable(format!("storage temporarily unavailable: {message}"))
            }
            CrudError::Internal(message) => {
                tracing::error!(%message, "store failure");
                Status::internal("internal storage error")
            }
        }
    }
}

/// INVALID_ARGUMENT with a `BadRequest` listing every field violation.
fn invalid_argument(violations: &Violations) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        ErrorDetails::with_bad_request(violations.to_field_violations()),
    )
}

/// NOT_FOUND with a `ResourceInfo`.
fn not_found(resource_type: &str, id: &str) -> Status {
    Status::with_error_details(
        Code::NotFound,
        format!("{resource_type} {id:?} not found"),
        ErrorDetails::with_resource_info(resource_type, id, "", "no such resource"),
    )
}

/// ABORTED (AIP-154: a stale etag) with an `ErrorInfo` (`ETAG_MISMATCH`)
/// and the `ResourceInfo` of the record: read it again and retry.
fn aborted(resource_type: &str, id: &str, etag: &str) -> Status {
    let mut details = ErrorDetails::with_resource_info(
        resource_type,
        id,
        "",
        "changed since it was read; get it again and retry with its new etag",
    );
    let metadata = HashMap::from([("etag".to_owned(), etag.to_owned())]);
    details.set_error_info("ETAG_MISMATCH", ERROR_DOMAIN, metadata);
    Status::with_error_details(
        Code::Aborted,
        format!("{resource_type} {id:?} has changed since it was read (etag {etag:?} is stale)"),
        details,
    )
}

/// The `ErrorInfo` reason clients match on when `field` (a request path such
/// as `customer.email`) is taken: `EMAIL_ALREADY_EXISTS`.
pub fn already_exists_reason(field: &str) -> String {
    let name = field.rsplit('.').next().unwrap_or(field);
    format!("{}_ALREADY_EXISTS", name.to_uppercase())
}

/// ALREADY_EXISTS with a `ResourceInfo` naming the existing resource and an
/// `ErrorInfo` whose reason (e.g. `EMAIL_ALREADY_EXISTS`) clients can match on.
fn already_exists(resource_type: &str, field: &str, value: &str, existing_id: &str) -> Status {
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
    details.set_error_info(already_exists_reason(field), ERROR_DOMAIN, metadata);
    Status::with_error_details(
        Code::AlreadyExists,
        format!("{field} {value:?} is already used by {existing_id}"),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_published_ones() {
        assert_eq!(
            already_exists_reason("customer.email"),
            "EMAIL_ALREADY_EXISTS"
        );
        assert_eq!(already_exists_reason("product.sku"), "SKU_ALREADY_EXISTS");
    }

    #[test]
    fn every_error_keeps_its_code_message_and_details() {
        let status = Status::from(CrudError::Invalid(Violations::one("id", "is required")));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid request: id: is required");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["id"]);

        let status = Status::from(CrudError::NotFound {
            resource_type: "thing.v1.Thing",
            id: "nope".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), r#"thing.v1.Thing "nope" not found"#);
        let info = status.get_details_resource_info().expect("ResourceInfo");
        assert_eq!(
            (info.resource_type.as_str(), info.resource_name.as_str()),
            ("thing.v1.Thing", "nope")
        );

        let status = Status::from(CrudError::AlreadyExists {
            resource_type: "thing.v1.Thing",
            field: "thing.code",
            value: "A1".into(),
            existing_id: "thg_000001".into(),
        });
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            r#"thing.code "A1" is already used by thg_000001"#
        );
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "CODE_ALREADY_EXISTS");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["field"], "thing.code");
        assert_eq!(info.metadata["value"], "A1");
        let info = status.get_details_resource_info().expect("ResourceInfo");
        assert_eq!(info.resource_name, "thg_000001");
        assert_eq!(info.description, r#"thing.code "A1" is already used"#);

        let status = Status::from(CrudError::Aborted {
            resource_type: "thing.v1.Thing",
            id: "thg_000001".into(),
            etag: "v1".into(),
        });
        assert_eq!(status.code(), Code::Aborted);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "ETAG_MISMATCH");
        assert_eq!(info.metadata["etag"], "v1");

        let status = Status::from(CrudError::Unavailable("database down".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("database down"), "{status:?}");
        let status = Status::from(CrudError::Internal("bad SQL".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SQL"), "no internals leak");
    }
}
