//! What the gateway costs, measured: load runs through the real stack
//! (`load`), the processes' CPU and memory meanwhile (`procs`), the
//! service's own footprint (`service`) and the report (`report`). Two
//! binaries use them: `bench` (`just bench`) and `bench-tiers` (one side of
//! `just bench-tiers`, the rate-limit tiers compared).

pub mod explain;
pub mod load;
pub mod procs;
pub mod report;
pub mod service;
