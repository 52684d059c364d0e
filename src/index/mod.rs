//! Multi-arch indexes and provenance: build an index from per-arch images,
//! refuse incomplete or mixed ones, publish it with digest pins, and check
//! that a chain of stage images was built on the current parents.

pub mod build;
pub mod chain;
pub mod children;
pub mod gates;
pub mod pins;
pub mod provenance;
pub mod publish;
pub mod push;

pub use build::IndexFormat;
pub use publish::{plan_index, publish_index, IndexOptions, IndexPlan, IndexReport};
