//! Registry transport (distribution API). Parsing of `docker://` references
//! lives in `reference`; the transport itself is being built (issue 5).

use crate::error::{Error, Result};
use crate::reference::RegistryRef;
use crate::transport::{ImageSink, ImageSource};

pub fn open_source(r: &RegistryRef) -> Result<Box<dyn ImageSource>> {
    Err(Error::Unsupported(format!(
        "docker://{r}: the registry transport is not available yet; save the image as an OCI layout"
    )))
}

pub fn open_sink(r: &RegistryRef) -> Result<Box<dyn ImageSink>> {
    Err(Error::Unsupported(format!(
        "docker://{r}: the registry transport is not available yet; write to an OCI layout"
    )))
}
