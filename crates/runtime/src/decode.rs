//! Requests whose protobuf cannot be decoded are the caller's fault:
//! INVALID_ARGUMENT, not tonic's INTERNAL.
//!
//! tonic answers a request message it cannot decode with INTERNAL ("failed
//! to decode Protobuf message: ..."), which the gateway's transcoder turns
//! into HTTP 500. A REST caller reaches that with nothing more than invalid
//! UTF-8 in a path or query parameter (`GET /customers/%FF`: the transcoder
//! copies the byte into a protobuf `string`, which prost rejects), found by
//! the bad-input e2e tests. The decode error happens inside tonic before any
//! handler runs, so this wrapper rewrites that one status on the way out.
//! Everything else passes untouched.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;
use tonic::{Code, server::NamedService};
use tower::Service;

/// The prefix of the message tonic's codec gives a request it cannot decode.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// Wraps a generated service (`XxxServiceServer`) so that undecodable
/// request messages are INVALID_ARGUMENT.
#[derive(Clone, Debug)]
pub struct DecodeErrorsAreInvalidArgument<S>(pub S);

impl<S: NamedService> NamedService for DecodeErrorsAreInvalidArgument<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for DecodeErrorsAreInvalidArgument<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let future = self.0.call(req);
        Box::pin(async move {
            let mut response = future.await?;
            reclassify(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only INTERNAL decode failure to INVALID_ARGUMENT.
fn reclassify(headers: &mut http::HeaderMap) {
    let internal = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == (Code::Internal as i32).to_string().as_bytes());
    // grpc-message is percent-encoded on the wire (tonic encodes spaces).
    let decode = headers.get("grpc-message").is_some_and(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .replace("%20", " ")
            .starts_with(DECODE_FAILURE)
    });
    if internal && decode {
        headers.insert(
            "grpc-status",
            HeaderValue::from(Code::InvalidArgument as i32),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &'static str, message: &'static str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static(status));
        h.insert("grpc-message", HeaderValue::from_static(message));
        h
    }

    #[test]
    fn decode_failures_become_invalid_argument() {
        let mut h = headers(
            "13",
            "failed to decode Protobuf message: GetCustomerRequest.id: invalid string value: data is not UTF-8 encoded",
        );
        reclassify(&mut h);
        assert_eq!(h["grpc-status"], "3");
    }

    #[test]
    fn percent_encoded_messages_match_too() {
        let mut h = headers("13", "failed%20to%20decode%20Protobuf%20message:%20X.id");
        reclassify(&mut h);
        assert_eq!(h["grpc-status"], "3");
    }

    #[test]
    fn other_statuses_are_untouched() {
        for (status, message) in [
            ("13", "something else broke"),
            ("3", "failed to decode Protobuf message: x"),
            ("11", "failed to decode Protobuf message: x"),
        ] {
            let mut h = headers(status, message);
            reclassify(&mut h);
            assert_eq!(h["grpc-status"], status, "{message}");
        }
        let mut h = http::HeaderMap::new();
        reclassify(&mut h);
        assert!(h.is_empty());
    }

    /// Bytes in, bytes out: lets a test send a message no generated type
    /// would produce (invalid UTF-8 in a `string` field).
    #[derive(Clone, Copy, Default)]
    struct RawCodec;

    impl tonic::codec::Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawCodec;
        type Decoder = RawCodec;
        fn encoder(&mut self) -> Self::Encoder {
            RawCodec
        }
        fn decoder(&mut self) -> Self::Decoder {
            RawCodec
        }
    }

    impl tonic::codec::Encoder for RawCodec {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: Vec<u8>,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            prost::bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for RawCodec {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(
            &mut self,
            src: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<Vec<u8>>, tonic::Status> {
            use prost::bytes::Buf;
            Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
        }
    }

    /// A real tonic server (the health service) behind the wrapper, sent a
    /// request whose `service` string is not UTF-8: tonic's own decode error,
    /// so a tonic upgrade that rewords it fails here.
    #[tokio::test]
    async fn a_real_undecodable_request_is_invalid_argument() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(DecodeErrorsAreInvalidArgument(health))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connects");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        // HealthCheckRequest { service (1): "\xff\xfe" }
        let request = tonic::Request::new(vec![0x0a, 0x02, 0xff, 0xfe]);
        let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let err = grpc
            .unary(request, path, RawCodec)
            .await
            .expect_err("not UTF-8");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().starts_with(DECODE_FAILURE), "{err:?}");
        // A well-formed request still works.
        let ok = tonic::Request::new(vec![0x0a, 0x00]);
        let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        grpc.ready().await.expect("ready");
        grpc.unary(ok, path, RawCodec).await.expect("served");
        server.abort();
    }
}
