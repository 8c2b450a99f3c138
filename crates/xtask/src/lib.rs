//! The project's tasks as a library: the pinned tool versions
//! (`pins.toml`), their installer, and the checks behind the justfile's
//! recipes. `src/main.rs` is the `cargo xtask` command line over it.

pub mod k8s;
pub mod pins;
pub mod tools;
