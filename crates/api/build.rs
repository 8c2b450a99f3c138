//! Compiles proto/ with protox (pure Rust, no system protoc, no network) into
//! one FileDescriptorSet that includes every import. The same bytes are used
//! for tonic codegen, gRPC reflection and Envoy's gRPC-JSON transcoder.

use std::{env, fs, path::PathBuf};

const PROTO_FILES: &[&str] = &[
    "customer/v1/customer.proto",
    "product/v1/product.proto",
    // Not imported by the API, but the transcoder prints gRPC errors and
    // their details for REST clients from these types.
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut compiler = protox::Compiler::new([&proto_root])?;
    // Imports must be in the set: Envoy resolves google.api.http and the
    // well-known types from it, and reflection clients ask for them.
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(PROTO_FILES)?;

    // Encoded by protox itself: going through prost_types would drop the
    // custom options (google.api.http) that the transcoder needs.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("api_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Code generation only needs the plain descriptors.
    let descriptor_set = compiler.file_descriptor_set();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptor_set)?;
    Ok(())
}
