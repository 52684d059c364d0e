//! Layers: decompression, entry paths and whiteouts.
//!
//! This is the shared base of the unpacker and the layer engine.

pub mod path;

use std::io::{BufReader, Read};

use oci_spec::image::Descriptor;

use crate::error::Result;
use crate::manifest::Compression;
use crate::transport::ImageSource;

/// Opens a layer blob as an uncompressed tar stream (verified while read).
pub fn open_tar_stream<'a>(
    src: &'a dyn ImageSource,
    desc: &Descriptor,
) -> Result<Box<dyn Read + Send + 'a>> {
    let compression = Compression::of_media_type(desc.media_type())?;
    let blob = src.open_blob(desc)?;
    decompress(blob, compression)
}

/// Wraps a compressed stream in its decoder.
pub fn decompress<'a>(
    r: Box<dyn Read + Send + 'a>,
    c: Compression,
) -> Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::None => r,
        // Multi-member: parallel gzip writers emit several members.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            r,
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(r)
                .map_err(|e| crate::error::Error::io("zstd decoder", e))?,
        ),
    })
}
