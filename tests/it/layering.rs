//! The import check of `docs/architecture.md` ("Where things live and who may import whom"):
//! reads `src/` and fails on an import that runs up a layer, and on a circle of imports
//! between files.
//!
//! Text matching, no compiler: every `crate::…`, `super::…` and `self::…` path in code (not in
//! comments, not in `#[cfg(test)]` modules) is an import. A path to a name that a `mod.rs`
//! re-exports is followed to the file that defines the name, so that a file importing a
//! sibling through its parent counts as importing the sibling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first (layer 1 first; `docs/architecture.md` draws them): a module may
/// import modules of lower layers only, and its own files.
const LAYERS: &[&[&str]] = &[
    &["util", "progress", "runtime"],
    &["kernels"],
    &["model"],
    &["data"],
    &["slide"],
    &["run"],
    &["eval"],
    &["train"],
    &["inference"],
    &["interop"],
    &["report"],
    &["cohort"],
    &["bench"],
    &["error"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One source file of the library: its module path and its code lines (comments and test
/// modules removed).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

fn sources(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under src/");
                let mut module: Vec<String> = rel
                    .with_extension("")
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                if module.last().is_some_and(|m| m == "mod") {
                    module.pop();
                }
                if module == ["lib"]
                    || module == ["main"]
                    || module.first().is_some_and(|m| m == "cli")
                {
                    continue; // the crate roots and the binary's CLI sit above every layer
                }
                let text = std::fs::read_to_string(&path).expect("readable source");
                out.push(Source {
                    code: code_of(&text),
                    path,
                    module,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The code of a file: comment lines and `#[cfg(test)] mod … { … }` blocks dropped.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(")
            && t.contains("test")
            && let Some(next) = lines.peek()
            && next.trim_start().starts_with("mod ")
            && next.trim_end().ends_with('{')
        {
            let mut depth = 0i64;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                if depth <= 0 && l.contains('}') {
                    break;
                }
            }
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The names each file defines (`struct`, `enum`, `fn`, `trait`, `type`, `const`, `static`).
fn definitions(sources: &[Source]) -> BTreeMap<String, Vec<usize>> {
    let kinds = [
        "struct ", "enum ", "fn ", "trait ", "type ", "const ", "static ",
    ];
    let mut defs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        for line in s.code.lines() {
            let mut t = line.trim_start();
            if let Some(rest) = t.strip_prefix("pub") {
                t = rest.trim_start();
                if t.starts_with('(') {
                    t = t.split_once(')').map_or(t, |(_, r)| r).trim_start();
                }
            }
            for k in kinds {
                if let Some(rest) = t.strip_prefix(k) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        defs.entry(name).or_default().push(i);
                    }
                }
            }
        }
    }
    defs
}

/// Every path of a file that starts with `crate`, `super` or `self`, with `use` trees
/// (`a::{b, c::D}`) expanded; re-exports (`pub use`) of a `mod.rs` are left out.
fn paths(source: &Source) -> Vec<Vec<String>> {
    let is_mod = source.path.ends_with("mod.rs");
    let mut out = Vec::new();
    let code = &source.code;
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let prefix = before[line_start..].trim();
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let tree: String = after[..end].split_whitespace().collect();
        let boundary = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let reexport = prefix.starts_with("pub") && is_mod;
        if boundary && (prefix.is_empty() || prefix.starts_with("pub")) && !reexport {
            for p in expand(&tree) {
                out.push(p.split("::").map(str::to_string).collect());
            }
        }
        rest = &after[end.min(after.len())..];
    }
    // Paths in expressions and types: `crate::a::b(…)`, `super::c::D`.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 {
                let c = code.as_bytes()[at - 1];
                if c.is_ascii_alphanumeric()
                    || c == b'_'
                    || c == b':'
                    || c == b'{'
                    || c == b' ' && is_use_tail(code, at)
                {
                    continue;
                }
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                path.trim_end_matches(':')
                    .split("::")
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// Whether the path at `at` is the start of a `use` statement's tree (already counted).
fn is_use_tail(code: &str, at: usize) -> bool {
    code[..at].trim_end().ends_with("use")
}

/// `a::{b, c::{D, E}}` → `a::b`, `a::c::D`, `a::c::E`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).to_string()];
    };
    let prefix = &tree[..open];
    let body = &tree[open + 1..tree.len() - 1];
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for ch in body.chars() {
        match ch {
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            '{' => {
                depth += 1;
                cur.push(ch);
            }
            '}' => {
                depth -= 1;
                cur.push(ch);
            }
            _ => cur.push(ch),
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |q| format!("{prefix}{q}")))
        .collect()
}

/// The absolute module path of `path` as seen from `source` (`self::` names the file's own
/// module, `super::` its parent's).
fn absolute(source: &Source, path: &[String]) -> Option<Vec<String>> {
    let mut base = source.module.clone();
    let mut segs = path.to_vec();
    match segs.first().map(String::as_str) {
        Some("crate") => return Some(segs[1..].to_vec()),
        Some("self") => {
            segs.remove(0);
        }
        Some("super") => {
            while segs.first().is_some_and(|s| s == "super") {
                segs.remove(0);
                base.pop()?;
            }
        }
        _ => return None,
    }
    base.extend(segs);
    Some(base)
}

/// The file that `path` (absolute, without `crate`) leads to.
fn target(
    path: &[String],
    files: &BTreeMap<Vec<String>, usize>,
    sources: &[Source],
    defs: &BTreeMap<String, Vec<usize>>,
) -> Option<usize> {
    let mut depth = 0;
    while depth < path.len() && files.contains_key(&path[..=depth]) {
        depth += 1;
    }
    if depth == 0 {
        return None;
    }
    let module = &path[..depth];
    let own = files[module];
    let Some(name) = path.get(depth).filter(|n| *n != "self" && *n != "*") else {
        return Some(own);
    };
    let hits: Vec<usize> = defs
        .get(name)
        .map(|v| {
            v.iter()
                .copied()
                .filter(|&i| sources[i].module.starts_with(module))
                .collect()
        })
        .unwrap_or_default();
    Some(match hits.as_slice() {
        [one] => *one,
        many if many.contains(&own) || many.is_empty() => own,
        many => many[0],
    })
}

/// The import graph between files: `(from, to)` index pairs.
fn graph(sources: &[Source]) -> BTreeSet<(usize, usize)> {
    let files: BTreeMap<Vec<String>, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.module.clone(), i))
        .collect();
    let defs = definitions(sources);
    let mut edges = BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        for p in paths(s) {
            if let Some(abs) = absolute(s, &p)
                && let Some(t) = target(&abs, &files, sources, &defs)
                && t != i
            {
                edges.insert((i, t));
            }
        }
    }
    edges
}

/// The circles of the graph (strongly connected sets of more than one file).
fn circles(n: usize, edges: &BTreeSet<(usize, usize)>) -> Vec<Vec<usize>> {
    let reach = |from: usize| {
        let mut seen = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(v) = stack.pop() {
            for &(a, b) in edges.range((v, 0)..(v + 1, 0)) {
                debug_assert_eq!(a, v);
                if seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        seen
    };
    let reaches: Vec<BTreeSet<usize>> = (0..n).map(reach).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for v in 0..n {
        if done.contains(&v) {
            continue;
        }
        let comp: Vec<usize> = (0..n)
            .filter(|&w| reaches[v].contains(&w) && reaches[w].contains(&v))
            .collect();
        done.extend(comp.iter().copied());
        if comp.len() > 1 {
            out.push(comp);
        }
    }
    out
}

/// `path` from the crate's folder (`src/…`).
fn shown(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut missing = BTreeSet::new();
    for s in sources(&src()) {
        let top = &s.module[0];
        if layer_of(top).is_none() {
            missing.insert(top.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/it/layering.rs (add them to LAYERS and to \
         docs/architecture.md): {missing:?}"
    );
}

#[test]
fn no_import_runs_up_a_layer_or_sideways_to_a_peer() {
    let sources = sources(&src());
    let mut bad = Vec::new();
    for (from, to) in graph(&sources) {
        let (a, b) = (&sources[from].module[0], &sources[to].module[0]);
        if a == b {
            continue;
        }
        let (la, lb) = (layer_of(a), layer_of(b));
        if let (Some(la), Some(lb)) = (la, lb)
            && lb >= la
        {
            bad.push(format!(
                "{} (layer {}, {a}) imports {} (layer {}, {b})",
                shown(&sources[from].path),
                la + 1,
                shown(&sources[to].path),
                lb + 1
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "imports that run up a layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_circle_of_imports_between_files() {
    let sources = sources(&src());
    let edges = graph(&sources);
    let found = circles(sources.len(), &edges);
    let names: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|&i| shown(&sources[i].path))
                .collect::<Vec<_>>()
                .join(" ↔ ")
        })
        .collect();
    assert!(
        names.is_empty(),
        "circles of imports:\n{}",
        names.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import_and_a_circle() {
    // A file of `model` that names `crate::train::fit`, and two files importing each other.
    let fake = |path: &str, module: &[&str], code: &str| Source {
        path: PathBuf::from(path),
        module: module.iter().map(|s| s.to_string()).collect(),
        code: code_of(code),
    };
    let sources = vec![
        fake(
            "src/model/a.rs",
            &["model", "a"],
            "use crate::train::fit;\npub fn a() {}\n",
        ),
        fake(
            "src/train/fit.rs",
            &["train", "fit"],
            "pub fn fit() { super::b::b(); }\n",
        ),
        fake(
            "src/train/b.rs",
            &["train", "b"],
            "// use crate::model::a;\nuse super::fit::fit;\npub fn b() {}\n",
        ),
        fake(
            "src/train/mod.rs",
            &["train"],
            "mod b;\nmod fit;\npub use fit::fit;\n",
        ),
        fake("src/model/mod.rs", &["model"], "mod a;\n"),
    ];
    let edges = graph(&sources);
    assert!(
        edges.contains(&(0, 1)),
        "model/a.rs → train/fit.rs: {edges:?}"
    );
    assert!(
        edges.contains(&(1, 2)) && edges.contains(&(2, 1)),
        "{edges:?}"
    );
    assert!(
        !edges.contains(&(2, 0)),
        "a commented-out import is no import"
    );
    assert!(
        !edges.contains(&(3, 1)),
        "a parent's re-export is no import"
    );
    assert_eq!(circles(sources.len(), &edges), vec![vec![1, 2]]);
}
