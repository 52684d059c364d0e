//! Shell-style globs over image paths: `*`, `?` and `[...]` within one
//! component (never across `/`), and `**` as a whole component for any
//! number of components.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// A compiled absolute glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    parts: Vec<Vec<u8>>,
}

/// Whether a string has glob syntax.
pub fn is_glob(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

impl Glob {
    /// Compiles a pattern; a leading `/` is optional (patterns are always
    /// rooted at the image root).
    pub fn new(pattern: &str) -> Glob {
        Glob {
            parts: pattern
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(|p| p.as_bytes().to_vec())
                .collect(),
        }
    }

    /// The leading components without glob syntax (where matches can be).
    pub fn literal_prefix(&self) -> std::path::PathBuf {
        let mut out = std::path::PathBuf::new();
        for p in &self.parts {
            let s = String::from_utf8_lossy(p);
            if is_glob(&s) {
                break;
            }
            out.push(std::ffi::OsStr::from_bytes(p));
        }
        out
    }

    /// Whether `path` (relative to the root) matches the whole pattern.
    pub fn matches(&self, path: &Path) -> bool {
        let comps: Vec<&[u8]> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes()),
                _ => None,
            })
            .collect();
        match_parts(&self.parts, &comps)
    }

    /// Whether `path` or one of its ancestors matches (a matched directory
    /// takes its subtree with it).
    pub fn matches_or_below(&self, path: &Path) -> bool {
        let mut cur = std::path::PathBuf::new();
        for c in path.components() {
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

fn match_parts(pat: &[Vec<u8>], path: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p.as_slice() == b"**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((p, rest)) => match path.split_first() {
            Some((c, prest)) => match_component(p, c) && match_parts(rest, prest),
            None => false,
        },
    }
}

/// fnmatch for one component (no `/` inside either side).
pub fn match_component(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Backtracking point for the last `*`.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = match_class(&pat[p..], s[i]) {
                        if ok {
                            p += next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        // An unterminated class is a literal `[`.
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() => {
                    if pat[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches `[...]` at the start of `pat`; returns (matched, pattern length).
fn match_class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        let lo = pat[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if lo <= c && c <= pat[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_matching() {
        assert!(match_component(b"libLiteRt*.so*", b"libLiteRtRuntime.so.1"));
        assert!(match_component(b"libLiteRt*.so*", b"libLiteRt.so"));
        assert!(!match_component(b"libLiteRt*.so*", b"libLiteRt.a"));
        assert!(match_component(b"a?c", b"abc"));
        assert!(!match_component(b"a?c", b"ac"));
        assert!(match_component(b"[a-c]x", b"bx"));
        assert!(!match_component(b"[!a-c]x", b"bx"));
        assert!(match_component(b"*", b""));
        assert!(match_component(b"*.h", b"x.h"));
        assert!(match_component(b"\\*", b"*"));
        assert!(!match_component(b"\\*", b"a"));
        assert!(match_component(b"[", b"["));
        assert!(match_component(b"*a*b*c", b"xxaybzzc"));
    }

    #[test]
    fn path_matching() {
        let g = Glob::new("/usr/local/lib/libLiteRt*.so*");
        assert!(g.matches(Path::new("usr/local/lib/libLiteRtRuntime.so")));
        assert!(!g.matches(Path::new("usr/local/lib/sub/libLiteRt.so")));
        assert_eq!(g.literal_prefix(), Path::new("usr/local/lib"));
        let x = Glob::new("/opt/vulkan/*/x86_64");
        assert!(x.matches_or_below(Path::new("opt/vulkan/1.4/x86_64/bin/vulkaninfo")));
        assert!(!x.matches_or_below(Path::new("opt/vulkan/1.4/aarch64/lib")));
        let d = Glob::new("/opt/**/README");
        assert!(d.matches(Path::new("opt/README")));
        assert!(d.matches(Path::new("opt/a/b/README")));
        assert!(!d.matches(Path::new("opt/a/b/README.md")));
    }
}
