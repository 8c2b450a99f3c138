//! Client-side helpers for tests against a running server (ours or through
//! the gateway): error details, health and reflection over both protocols.

use tonic::{Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

/// Boxed error for test helpers.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;

/// The `BadRequest` field paths of `status`, in order.
pub fn violation_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|br| br.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Connects a channel to `endpoint` (e.g. `http://127.0.0.1:1234`).
pub async fn channel(endpoint: &str) -> Result<Channel, TestError> {
    Ok(Channel::from_shared(endpoint.to_owned())?.connect().await?)
}

/// `grpc.health.v1.Health/Check` for `service` (`""` is the whole server).
pub async fn health(channel: Channel, service: &str) -> Result<ServingStatus, TestError> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    Ok(response.status())
}

macro_rules! list_services {
    ($name:ident, $pb:path, $doc:literal) => {
        #[doc = $doc]
        pub async fn $name(channel: Channel) -> Result<Vec<String>, TestError> {
            use pb::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            use $pb as pb;
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut stream = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([request]))
                .await?
                .into_inner();
            let response = stream.message().await?.ok_or("no reflection response")?;
            match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                    names.sort();
                    Ok(names)
                }
                other => Err(format!("unexpected reflection response {other:?}").into()),
            }
        }
    };
}

list_services!(
    reflection_services_v1,
    tonic_reflection::pb::v1,
    "Services listed by `grpc.reflection.v1` (sorted)."
);
list_services!(
    reflection_services_v1alpha,
    tonic_reflection::pb::v1alpha,
    "Services listed by `grpc.reflection.v1alpha` (sorted; older grpcurl speaks only this)."
);
