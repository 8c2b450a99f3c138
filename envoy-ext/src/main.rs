//! `envoy-ext [DIR]`: writes the rendered EnvoyPatchPolicies into DIR
//! (default: `k8s/gateway` of the repository this binary was built from).

use std::{env, fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let dir = env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(envoy_ext::OUTPUT_DIR)
    });
    let files = match envoy_ext::render_all(api::DESCRIPTOR_SET) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("envoy-ext: the built-in descriptor set does not decode: {err}");
            return ExitCode::FAILURE;
        }
    };
    for (name, content) in files {
        let path = dir.join(name);
        if let Err(err) = fs::write(&path, content) {
            eprintln!("envoy-ext: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
