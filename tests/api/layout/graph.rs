//! The layout check's file graph: which file each `crate::`/`super::`/`self::` path of a file
//! lands in (re-exports followed), and the cycles of that graph.

use super::tokens::{Tok, tokens};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A path as written: its segments, and whether it ends in `*`.
#[derive(Debug, Clone, PartialEq)]
struct UsePath {
    segs: Vec<String>,
    glob: bool,
    /// The name it is brought in as (`as` or its last segment).
    name: Option<String>,
}

/// What one file says about other modules, with paths absolute (`crate` resolved).
#[derive(Debug, Default)]
struct FileRefs {
    /// Paths the file itself depends on.
    uses: Vec<Vec<String>>,
    /// `pub use`: exported name → absolute path; `*` re-exports as their source module.
    exports: Vec<(String, Vec<String>)>,
    globs: Vec<Vec<String>>,
    /// Names of items defined here (for glob re-exports).
    defines: BTreeSet<String>,
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// Index past the item starting at `i`: through its `;`, or its first `{ … }` block.
fn skip_item(t: &[Tok], mut i: usize) -> usize {
    let is_use = ident(t.get(i)) == Some("use");
    let mut depth = 0i32;
    while i < t.len() {
        match &t[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 && !is_use {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index past the attribute starting at `#` (`#[…]` or `#![…]`); whether it is `cfg(test)`.
fn attribute(t: &[Tok], i: usize) -> (usize, bool) {
    let mut j = i + 1;
    if t.get(j) == Some(&Tok::Punct('!')) {
        j += 1;
    }
    if t.get(j) != Some(&Tok::Punct('[')) {
        return (i + 1, false);
    }
    let start = j + 1;
    let mut depth = 0;
    while j < t.len() {
        match t[j] {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    let inner = &t[start..j.min(t.len())];
    let cfg_test = inner
        == [
            Tok::Ident("cfg".into()),
            Tok::Punct('('),
            Tok::Ident("test".into()),
            Tok::Punct(')'),
        ];
    (j + 1, cfg_test)
}

/// Whether the `use` at `i` is `pub` or `pub(…)`.
fn is_public(t: &[Tok], i: usize) -> bool {
    let pub_at = |j: usize| j < t.len() && t[j] == Tok::Ident("pub".into());
    match i.checked_sub(1).map(|j| &t[j]) {
        Some(Tok::Ident(s)) => s == "pub",
        Some(Tok::Punct(')')) => {
            let open = t[..i].iter().rposition(|t| *t == Tok::Punct('('));
            open.is_some_and(|o| o > 0 && pub_at(o - 1))
        }
        _ => false,
    }
}

/// Parses the use tree at `i` (after `use`), appending every leaf under `prefix`; returns the
/// index past the tree.
fn use_tree(t: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<UsePath>) -> usize {
    let mut segs = prefix.to_vec();
    if t.get(i) == Some(&Tok::Path) {
        i += 1; // a leading `::`
    }
    loop {
        match t.get(i) {
            Some(Tok::Ident(s)) => {
                segs.push(s.clone());
                i += 1;
                if t.get(i) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                let mut name = segs.last().cloned();
                if ident(t.get(i)) == Some("as") {
                    name = ident(t.get(i + 1)).map(String::from);
                    i += 2;
                }
                if segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                    if name.as_deref() == Some("self") {
                        name = segs.last().cloned();
                    }
                }
                out.push(UsePath {
                    segs,
                    glob: false,
                    name,
                });
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push(UsePath {
                    segs,
                    glob: true,
                    name: None,
                });
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while i < t.len() && t[i] != Tok::Punct('}') {
                    i = use_tree(t, i, &segs, out);
                    if t.get(i) == Some(&Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// `segs` (starting with `crate`, `$crate`, `self` or `super`) made absolute from module
/// `here`; None for other paths (other crates, relative names).
fn absolute(here: &[String], segs: &[String]) -> Option<Vec<String>> {
    let mut rest = segs.iter().peekable();
    let mut base = match rest.peek().map(|s| s.as_str()) {
        Some("crate") => {
            rest.next();
            Vec::new()
        }
        Some("self") => {
            rest.next();
            here.to_vec()
        }
        Some("super") => here.to_vec(),
        _ => return None,
    };
    while rest.peek().map(|s| s.as_str()) == Some("super") {
        rest.next();
        base.pop()?;
    }
    base.extend(rest.cloned());
    Some(base)
}

/// What `src` (the file of module `module`) refers to.
fn scan(module: &[String], src: &str) -> FileRefs {
    let t = tokens(src);
    let mut refs = FileRefs::default();
    // Inline modules open at each brace depth.
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let here = |inline: &[(String, i32)]| -> Vec<String> {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    let mut i = 0;
    while i < t.len() {
        match &t[i] {
            Tok::Punct('#') => {
                let (next, cfg_test) = attribute(&t, i);
                i = next;
                if cfg_test {
                    while t.get(i) == Some(&Tok::Punct('#')) {
                        i = attribute(&t, i).0;
                    }
                    i = skip_item(&t, i);
                }
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(name), Some(Tok::Punct('{'))) = (ident(t.get(i + 1)), t.get(i + 2)) {
                    inline.push((name.to_string(), depth + 1));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(kw)
                if matches!(
                    kw.as_str(),
                    "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "union"
                ) && inline.is_empty() =>
            {
                if let Some(name) = ident(t.get(i + 1)) {
                    refs.defines.insert(name.to_string());
                }
            }
            Tok::Ident(kw) if kw == "use" && t.get(i.wrapping_sub(1)) != Some(&Tok::Path) => {
                let public = is_public(&t, i);
                let mut leaves = Vec::new();
                let end = use_tree(&t, i + 1, &[], &mut leaves);
                let here = here(&inline);
                for leaf in leaves {
                    // A `pub use` of a child module's item (`pub use child::X`) is relative.
                    let abs = absolute(&here, &leaf.segs)
                        .or_else(|| public.then(|| [here.clone(), leaf.segs.clone()].concat()));
                    let Some(abs) = abs else { continue };
                    if !public {
                        refs.uses.push(abs);
                    } else if leaf.glob {
                        refs.globs.push(abs);
                    } else if let Some(name) = leaf.name {
                        refs.exports.push((name, abs));
                    }
                }
                i = end;
                continue;
            }
            Tok::Ident(kw)
                if matches!(kw.as_str(), "crate" | "self" | "super")
                    && t.get(i + 1) == Some(&Tok::Path)
                    && t.get(i.wrapping_sub(1)) != Some(&Tok::Path) =>
            {
                let mut segs = vec![kw.clone()];
                let mut j = i + 1;
                while t.get(j) == Some(&Tok::Path) {
                    match ident(t.get(j + 1)) {
                        Some(s) => {
                            segs.push(s.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if let Some(abs) = absolute(&here(&inline), &segs) {
                    refs.uses.push(abs);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// One crate's files by module path, and what each refers to.
struct Crate {
    files: BTreeMap<Vec<String>, String>,
    refs: HashMap<Vec<String>, FileRefs>,
}

impl Crate {
    /// `sources`: (file name relative to the crate's directory, contents).
    fn new(root: &str, sources: &[(String, String)], label: impl Fn(&str) -> String) -> Crate {
        let mut files = BTreeMap::new();
        let mut refs = HashMap::new();
        for (rel, src) in sources {
            let module = module_of(rel, root);
            let Some(module) = module else { continue };
            refs.insert(module.clone(), scan(&module, src));
            files.insert(module, label(rel));
        }
        Crate { files, refs }
    }

    /// The file `path` (absolute) lands in, re-exports followed.
    fn target(&self, path: &[String], hops: usize) -> Option<&String> {
        if hops > 16 {
            return None;
        }
        // The longest prefix that is a file's module.
        let len = (0..=path.len())
            .rev()
            .find(|n| self.files.contains_key(&path[..*n]))?;
        let module = &path[..len];
        if let (Some(name), Some(refs)) = (path.get(len), self.refs.get(module)) {
            let rest = &path[len + 1..];
            if let Some((_, to)) = refs.exports.iter().find(|(n, _)| n == name) {
                let via: Vec<String> = to.iter().chain(rest).cloned().collect();
                if via != path {
                    return self.target(&via, hops + 1);
                }
            }
            if !refs.defines.contains(name) {
                for source in &refs.globs {
                    let defined = self
                        .refs
                        .get(source)
                        .is_some_and(|r| r.defines.contains(name));
                    if defined {
                        let via: Vec<String> = source.iter().chain(&path[len..]).cloned().collect();
                        return self.target(&via, hops + 1);
                    }
                }
            }
        }
        self.files.get(module)
    }

    fn edges(&self, graph: &mut BTreeMap<String, BTreeSet<String>>) {
        for (module, file) in &self.files {
            let out = graph.entry(file.clone()).or_default();
            for path in &self.refs[module].uses {
                if let Some(to) = self.target(path, 0)
                    && to != file
                {
                    out.insert(to.clone());
                }
            }
        }
    }
}

/// The module path of `rel` (relative to the crate's directory) in the crate rooted at
/// `root`; None when it belongs to another crate (the binary's `main.rs` is its own).
fn module_of(rel: &str, root: &str) -> Option<Vec<String>> {
    if rel == root {
        return Some(Vec::new());
    }
    if rel == "main.rs" || rel == "lib.rs" {
        return None;
    }
    if root == "main.rs" {
        return None;
    }
    let stem = rel.strip_suffix(".rs")?;
    let mut segs: Vec<String> = stem.split('/').map(String::from).collect();
    if segs.last().map(String::as_str) == Some("mod") {
        segs.pop();
    }
    Some(segs)
}

/// Strongly connected components of more than one file (Tarjan).
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found.sort();
    s.found
}

/// The file graph of crates given as (crate directory, root file, sources).
pub fn graph_of(
    crates: &[(&str, &str, Vec<(String, String)>)],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (dir, root, sources) in crates {
        Crate::new(root, sources, |rel| format!("{dir}/{rel}")).edges(&mut graph);
    }
    graph
}
