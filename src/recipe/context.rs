//! The loader's context: the file, its text and the target, and how an
//! error is pinned to a line and column of the recipe.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::platform::TargetArch;

pub(super) struct Cx<'a> {
    pub(super) file: PathBuf,
    pub(super) text: &'a str,
    pub(super) base_dir: PathBuf,
    pub(super) arch: TargetArch,
    pub(super) build_arch: TargetArch,
    /// Final variable values, for `when.var`.
    pub(super) vars: BTreeMap<String, String>,
}

pub(super) type R<T> = Result<T>;

impl Cx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Recipe {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(super) fn toml_err(&self, e: &toml::de::Error) -> Error {
        let span = e.span().unwrap_or(0..0);
        self.err(span, e.message().trim().to_string())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
