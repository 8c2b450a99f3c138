//! `envoy-ext [PATH]`: writes the transcoder EnvoyPatchPolicy rendered from
//! the API descriptor set to PATH, or to stdout without one.

use std::{env, fs, process::ExitCode};

fn main() -> ExitCode {
    let yaml = match envoy_ext::render_transcoder_policy(api::DESCRIPTOR_SET) {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("envoy-ext: the built-in descriptor set does not decode: {err}");
            return ExitCode::FAILURE;
        }
    };
    match env::args_os().nth(1) {
        None => print!("{yaml}"),
        Some(path) => {
            if let Err(err) = fs::write(&path, yaml) {
                eprintln!("envoy-ext: cannot write {}: {err}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
