//! ocipack: assemble, verify and publish multi-arch OCI images from BuildKit
//! artifacts, without a daemon, root or QEMU.
//!
//! The core is small: [`endpoint::ImageSource`] and [`endpoint::ImageSink`]
//! over layouts, archives and registries; everything else (copy, inspect,
//! unpack, the layer engine, packaging) is written against them.

pub mod alternatives;
pub mod archive;
pub mod atomic;
pub mod attest;
pub mod bench;
pub mod copy;
pub mod digest;
pub mod docker_archive;
pub mod elf;
pub mod endpoint;
pub mod error;
pub mod extract;
pub mod fsck;
pub mod guard;
pub mod image;
pub mod imageconfig;
pub mod index;
pub mod inspect;
pub mod labels;
pub mod layer;
pub mod layout;
pub mod ldcache;
pub mod manifest;
pub mod pipeline;
pub mod platform;
pub mod provenance;
pub mod recipe;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod run_id;
pub mod smoke;
pub mod spool;
pub mod step;
pub mod timestamp;
pub mod transport;
pub mod tree;
pub mod unpack;

pub use error::{Error, Result};
