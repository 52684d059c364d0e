//! Globs over image paths, one engine (globset) for what the recipe
//! validates, what a selection picks and what the guards match, so a
//! pattern the validator accepts selects what it says: `*`, `?`, `[...]`
//! and `{a,b}` within one component (never across `/`), and `**` as a whole
//! component for any number of components.
//!
//! Patterns are rooted at the image root; the leading `/` is optional, and
//! paths may be given either way (`/opt/x` or `opt/x`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    matcher: GlobMatcher,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Glob {}

/// Whether a string has glob syntax (the characters globset gives a
/// meaning to; anything else is taken as a literal path).
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Glob {
    /// Compiles a pattern. Empty and `.` components are dropped, so
    /// `/opt/vulkan/` and `opt/vulkan` are the same pattern.
    pub fn new(pattern: &str) -> std::result::Result<Glob, globset::Error> {
        let normal = pattern
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect::<Vec<_>>()
            .join("/");
        let matcher = GlobBuilder::new(&normal)
            .literal_separator(true)
            .backslash_escape(true)
            .build()?
            .compile_matcher();
        Ok(Glob {
            pattern: normal,
            matcher,
        })
    }

    /// The pattern as matched (relative, normalised).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The leading components without glob syntax (where matches can be).
    pub fn literal_prefix(&self) -> PathBuf {
        let mut out = PathBuf::new();
        for p in self.pattern.split('/') {
            if is_glob(p) || p.contains('\\') {
                break;
            }
            out.push(OsStr::from_bytes(p.as_bytes()));
        }
        out
    }

    /// Whether `path` matches the whole pattern.
    pub fn matches(&self, path: impl AsRef<Path>) -> bool {
        let path = path.as_ref();
        self.matcher
            .is_match(path.strip_prefix("/").unwrap_or(path))
    }

    /// Whether `path` or one of its ancestors matches (a matched directory
    /// takes its subtree with it).
    pub fn matches_or_below(&self, path: impl AsRef<Path>) -> bool {
        let mut cur = PathBuf::new();
        for c in path.as_ref().components() {
            if let Component::Normal(n) = c {
                cur.push(n);
                if self.matches(&cur) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, path: &str) -> bool {
        Glob::new(pat).unwrap().matches(Path::new(path))
    }

    #[test]
    fn component_matching() {
        assert!(m("libLiteRt*.so*", "libLiteRtRuntime.so.1"));
        assert!(m("libLiteRt*.so*", "libLiteRt.so"));
        assert!(!m("libLiteRt*.so*", "libLiteRt.a"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("*.h", "x.h"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*a*b*c", "xxaybzzc"));
        // An unterminated class is an error, not a literal `[`: the
        // recipe validator refuses it, so selection never sees it.
        assert!(Glob::new("[").is_err());
    }

    #[test]
    fn path_matching() {
        let g = Glob::new("/usr/local/lib/libLiteRt*.so*").unwrap();
        assert!(g.matches(Path::new("usr/local/lib/libLiteRtRuntime.so")));
        assert!(g.matches("/usr/local/lib/libLiteRtRuntime.so"));
        assert!(!g.matches(Path::new("usr/local/lib/sub/libLiteRt.so")));
        assert_eq!(g.literal_prefix(), Path::new("usr/local/lib"));
        let x = Glob::new("/opt/vulkan/*/x86_64").unwrap();
        assert!(x.matches_or_below(Path::new("opt/vulkan/1.4/x86_64/bin/vulkaninfo")));
        assert!(!x.matches_or_below(Path::new("opt/vulkan/1.4/aarch64/lib")));
        let d = Glob::new("/opt/**/README").unwrap();
        assert!(d.matches(Path::new("opt/README")));
        assert!(d.matches(Path::new("opt/a/b/README")));
        assert!(!d.matches(Path::new("opt/a/b/README.md")));
    }

    /// The bug one engine fixes: `{a,b}` validated, then taken literally.
    #[test]
    fn brace_alternation() {
        let g = Glob::new("/opt/{a,b}").unwrap();
        assert!(is_glob("/opt/{a,b}"));
        assert!(g.matches(Path::new("opt/a")));
        assert!(g.matches(Path::new("opt/b")));
        assert!(!g.matches(Path::new("opt/c")));
        assert!(!g.matches(Path::new("opt/{a,b}")));
        assert_eq!(g.literal_prefix(), Path::new("opt"));
    }
}
