//! The API of this project, generated from `proto/` at build time.
//!
//! [`DESCRIPTOR_SET`] is the one serialized `FileDescriptorSet` (with imports)
//! behind both gRPC reflection and the gateway's gRPC-JSON transcoder.

/// Serialized `google.protobuf.FileDescriptorSet` for every proto under
/// `proto/`, imports included.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_descriptor.bin"));

/// Every gRPC service of the API, as advertised with `--reflect-whole-api`.
pub const SERVICES: &[&str] = &[customer::v1::SERVICE_NAME, product::v1::SERVICE_NAME];

pub mod customer {
    pub mod v1 {
        tonic::include_proto!("customer.v1");

        /// Fully qualified gRPC service name, as routed by the gateway: the
        /// name tonic generated from the proto.
        pub const SERVICE_NAME: &str =
            <customer_service_server::CustomerServiceServer<()> as tonic::server::NamedService>::NAME;
    }
}

pub mod product {
    pub mod v1 {
        tonic::include_proto!("product.v1");

        /// Fully qualified gRPC service name, as routed by the gateway: the
        /// name tonic generated from the proto.
        pub const SERVICE_NAME: &str =
            <product_service_server::ProductServiceServer<()> as tonic::server::NamedService>::NAME;
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    fn file_names() -> Vec<String> {
        let set = FileDescriptorSet::decode(DESCRIPTOR_SET).expect("descriptor set decodes");
        set.file.into_iter().filter_map(|f| f.name).collect()
    }

    #[test]
    fn descriptor_set_carries_imports_needed_by_the_transcoder() {
        let names = file_names();
        for needed in [
            "google/api/annotations.proto",
            "google/api/http.proto",
            "google/protobuf/descriptor.proto",
            "google/protobuf/timestamp.proto",
            "customer/v1/customer.proto",
            "product/v1/product.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
        ] {
            assert!(
                names.iter().any(|n| n == needed),
                "missing {needed} in {names:?}"
            );
        }
    }

    #[test]
    fn http_rules_survive_in_the_descriptor_set() {
        // Envoy's transcoder reads google.api.http from these bytes; losing
        // the custom options makes every REST path a 404.
        let pool = prost_reflect::DescriptorPool::decode(DESCRIPTOR_SET).expect("pool decodes");
        let http = pool
            .get_extension_by_name("google.api.http")
            .expect("google.api.http extension is in the set");
        let method = pool
            .get_service_by_name(customer::v1::SERVICE_NAME)
            .expect("customer service")
            .methods()
            .find(|m| m.name() == "GetCustomer")
            .expect("GetCustomer");
        let options = method.options();
        let rule = options.get_extension(&http);
        let get = rule
            .as_message()
            .and_then(|rule| rule.get_field_by_name("get"))
            .expect("rule has a get pattern");
        assert_eq!(get.as_str(), Some("/customers/{id}"));
    }

    #[test]
    fn service_names_match_the_descriptor() {
        let set = FileDescriptorSet::decode(DESCRIPTOR_SET).expect("descriptor set decodes");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| {
                let package = f.package().to_owned();
                f.service
                    .iter()
                    .map(move |s| format!("{package}.{}", s.name()))
            })
            .collect();
        assert!(services.contains(&customer::v1::SERVICE_NAME.to_owned()));
        assert!(services.contains(&product::v1::SERVICE_NAME.to_owned()));
    }
}
