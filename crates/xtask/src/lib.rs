//! The project's tasks as a library: the pinned tool versions
//! (`pins.toml`), their installer, and the checks behind the justfile's
//! recipes. `src/main.rs` is the `cargo xtask` command line over it.

pub mod bench;
pub mod e2e;
pub mod fuzz;
pub mod k8s;
pub mod openapi;
pub mod pair;
pub mod pins;
pub mod readme;
pub mod stack;
pub mod stores;
pub mod token;
pub mod tools;
