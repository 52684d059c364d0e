//! Publishing: assemble a multi-arch index from per-arch images, refuse
//! incomplete, mixed or stale ones (the gates), publish it or a single
//! stage image (children by digest, then the index, then tags), and hand on
//! digest pins. What an image says about its origin, and the
//! `verify-chain` check on it, are in [`crate::provenance`].

pub mod assemble;
pub mod children;
pub mod gates;
pub mod pins;
pub mod publish;
pub mod push;

pub use assemble::IndexFormat;
pub use publish::{plan_index, publish_index, IndexOptions, IndexPlan, IndexReport};
