//! Compiles proto/ with protox (pure Rust, no system protoc, no network) into
//! one FileDescriptorSet that includes every import. The same bytes are used
//! for tonic codegen, gRPC reflection and Envoy's gRPC-JSON transcoder.

use std::{
    env, fs, io,
    path::{Path, PathBuf},
};

/// Not imported by the API, but the transcoder prints gRPC errors and their
/// details for REST clients from these types.
const ERROR_PROTOS: &[&str] = &["google/rpc/status.proto", "google/rpc/error_details.proto"];

/// The API's own protos: every `.proto` under `root` outside `google/` (the
/// vendored imports), relative to it and sorted, so that a new service's
/// proto is picked up without a list to edit and the descriptor set's bytes
/// do not depend on directory order.
fn api_protos(root: &Path) -> io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, found)?;
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                let relative = path.strip_prefix(root).map_err(io::Error::other)?;
                let relative = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if !relative.starts_with("google/") {
                    found.push(relative);
                }
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    found.sort();
    Ok(found)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut compiler = protox::Compiler::new([&proto_root])?;
    // Imports must be in the set: Envoy resolves google.api.http and the
    // well-known types from it, and reflection clients ask for them.
    compiler.include_imports(true).include_source_info(false);
    let mut files = api_protos(&proto_root)?;
    files.extend(ERROR_PROTOS.iter().map(|file| (*file).to_owned()));
    compiler.open_files(files)?;

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
