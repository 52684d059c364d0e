//! The module structure has no import cycle: the crate's top-level
//! modules, and the files inside each folder, form a DAG (ARCHITECTURE.md
//! draws it). Read from the sources: every `crate::` and `super::` path
//! outside comments, strings and `#[cfg(test)]` items is an edge from the
//! file's module to the module it names. A cycle fails the test, printed
//! edge by edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module path from the crate root (`["layer", "merged"]`).
type Module = Vec<String>;

/// Edges a branch in flight removes. `transport.rs` holds the image traits
/// and the openers that dispatch over every transport, so each transport
/// (registry, layouts, archives) and `transport` import each other. The
/// `pipeline` branch moves the openers out of `transport.rs` (issue 12,
/// part 4): once merged, these entries must go.
const ALLOWED: &[(&str, &str)] = &[
    ("transport", "registry"),
    ("transport", "layout"),
    ("transport", "archive"),
    ("transport", "docker_archive"),
];

#[test]
fn no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    let mut levels: BTreeSet<Module> = BTreeSet::new();
    levels.insert(Vec::new());
    for m in edges.keys() {
        for n in 1..m.len() {
            levels.insert(m[..n].to_vec());
        }
    }
    let mut report = Vec::new();
    for level in &levels {
        let graph = collapse(&edges, level);
        for cycle in cycles(&graph) {
            let at = if level.is_empty() {
                "crate".to_string()
            } else {
                format!("src/{}/", level.join("/"))
            };
            let path: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            report.push(format!("{at}: {}", path.join(" -> ")));
        }
    }
    assert!(
        report.is_empty(),
        "import cycles (break them, see ARCHITECTURE.md):\n  {}",
        report.join("\n  ")
    );
}

/// The checker sees what it must: the parser finds `super::{a, b}` groups
/// and ignores comments, strings and test modules.
#[test]
fn parser_reads_paths_like_rustc() {
    let code = r#"
use super::{alpha, beta::X};
use crate::gamma::Y; // crate::not_this
/// [`crate::nor_this`]
fn f() { let s = "crate::nor_in_strings"; let c = '{'; }
#[cfg(test)]
mod tests { use crate::only_in_tests; }
fn g() { crate::delta::h() }
"#;
    let found = paths_in(code);
    assert_eq!(
        found,
        [
            ("super".to_string(), "alpha".to_string()),
            ("super".into(), "beta".into()),
            ("crate".into(), "gamma".into()),
            ("crate".into(), "delta".into()),
        ]
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`; `lib.rs`, `main.rs`
/// and test-only files (`tests.rs`) are left out.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut m: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match m.last().map(String::as_str) {
        Some("lib" | "main") if m.len() == 1 => return None,
        Some("tests") => return None,
        Some("mod") => {
            m.pop();
        }
        _ => {}
    }
    Some(m)
}

fn module_edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut texts = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(src, f) {
            texts.insert(m, fs::read_to_string(f).unwrap());
        }
    }
    let known: BTreeSet<Module> = texts.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &texts {
        let out = edges.entry(m.clone()).or_default();
        for (root, first_and_rest) in paths_full(text) {
            let mut target: Module = if root == "crate" {
                Vec::new()
            } else {
                m[..m.len() - 1].to_vec()
            };
            let mut segs = first_and_rest.into_iter().peekable();
            while segs.peek().is_some_and(|s| s == "super") {
                target.pop();
                segs.next();
            }
            target.extend(segs);
            // The longest prefix that is a module (the rest names an item).
            while !target.is_empty() && !known.contains(&target) {
                target.pop();
            }
            if !target.is_empty() && &target != m {
                out.insert(target);
            }
        }
    }
    edges
}

/// The graph between the children of `level` (or the top-level modules).
fn collapse(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    level: &Module,
) -> BTreeMap<Module, BTreeSet<Module>> {
    let n = level.len();
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (a, targets) in edges {
        for b in targets {
            if a.len() <= n || b.len() <= n || a[..n] != level[..] || b[..n] != level[..] {
                continue;
            }
            let (x, y) = (a[..=n].to_vec(), b[..=n].to_vec());
            let allowed = n == 0 && ALLOWED.iter().any(|(f, t)| x == [*f] && y == [*t]);
            if x != y && !allowed {
                g.entry(x).or_default().insert(y);
            }
        }
    }
    g
}

/// One cycle through each strongly connected component with more than
/// one module (Tarjan), as the list of modules walked.
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        sccs: Vec<Vec<&'g Module>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g Module) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        for w in t.g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.sccs.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.sccs
        .iter()
        .map(|scc| {
            // Walk inside the component from its smallest module back to it.
            let inside: BTreeSet<&Module> = scc.iter().copied().collect();
            let start = *inside.iter().next().unwrap();
            let mut prev: BTreeMap<&Module, &Module> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut end = None;
            'bfs: while let Some(v) = queue.pop_front() {
                for w in g.get(v).into_iter().flatten() {
                    if !inside.contains(w) {
                        continue;
                    }
                    if w == start {
                        end = Some(v);
                        break 'bfs;
                    }
                    if !prev.contains_key(w) {
                        prev.insert(w, v);
                        queue.push_back(w);
                    }
                }
            }
            let mut path = vec![start.clone()];
            let mut cur = end.unwrap();
            let mut back = Vec::new();
            while cur != start {
                back.push(cur.clone());
                cur = prev[cur];
            }
            path.extend(back.into_iter().rev());
            path.push(start.clone());
            path
        })
        .collect()
}

/// `(root, first segment)` of every `crate::`/`super::` path.
fn paths_in(code: &str) -> Vec<(String, String)> {
    paths_full(code)
        .into_iter()
        .map(|(r, segs)| (r, segs.into_iter().next().unwrap_or_default()))
        .collect()
}

/// Every `crate::a::b` / `super::a` path (`super::{a, b::c}` gives one
/// per member), as the root and its segments.
fn paths_full(code: &str) -> Vec<(String, Vec<String>)> {
    let code = strip(code);
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |s: usize| {
        let mut e = s;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        e
    };
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let root = if !boundary {
            None
        } else if code[i..].starts_with("crate::") {
            Some("crate")
        } else if code[i..].starts_with("super::") {
            Some("super")
        } else {
            None
        };
        let Some(root) = root else {
            i += 1;
            continue;
        };
        let mut j = i + root.len() + 2;
        let mut segs = Vec::new();
        loop {
            let e = ident(j);
            if e == j {
                break;
            }
            segs.push(code[j..e].to_string());
            j = e;
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        if j < b.len() && b[j] == b'{' {
            // A group: one path per top-level member.
            let mut depth = 0;
            let mut member_start = true;
            while j < b.len() {
                match b[j] {
                    b'{' => {
                        depth += 1;
                        member_start = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => member_start = true,
                    c if member_start && depth == 1 && !c.is_ascii_whitespace() => {
                        let e = ident(j);
                        if e > j && &code[j..e] != "self" {
                            let mut p = segs.clone();
                            p.push(code[j..e].to_string());
                            out.push((root.to_string(), p));
                        } else if e > j {
                            out.push((root.to_string(), segs.clone()));
                        }
                        member_start = false;
                    }
                    _ => {}
                }
                j += 1;
            }
        } else {
            out.push((root.to_string(), segs));
        }
        i = j.max(i + 1);
    }
    out
}

/// The code with comments, string and char literals blanked, and
/// `#[cfg(test)]` items removed.
fn strip(code: &str) -> String {
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &code[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 1 + hashes + 1;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len() - body, |e| e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(&b[i..]).is_some() {
            i += char_literal_len(&b[i..]).unwrap_or(1);
            out.push_str("' '");
        } else if rest.starts_with("#[cfg(test)]") {
            i += "#[cfg(test)]".len();
            i += test_item_len(&code[i..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `'x'`, `'\n'`, `'\u{..}'`: the literal's length (not a lifetime).
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let end = b[2..].iter().position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let s = std::str::from_utf8(&b[1..b.len().min(6)]).unwrap_or("");
    let c = s.chars().next()?;
    (b.get(1 + c.len_utf8()) == Some(&b'\'')).then(|| 2 + c.len_utf8())
}

/// The length of the item after a `#[cfg(test)]`: through its `;`, or its
/// braced body (string and char literals inside bodies are skipped over).
fn test_item_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' if depth == 0 => return i + 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                if let Some(n) = char_literal_len(&b[i..]) {
                    i += n - 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i += rest[i..].find('\n').unwrap_or(rest.len() - i);
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}
