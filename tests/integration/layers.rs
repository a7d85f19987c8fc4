//! The direction of imports (`src/lib.rs`): every `crate::…`, `super::…` and `self::…` path in
//! the library names a module of the same layer or a lower one, and no two modules reach each
//! other. A module is a top-level module, or a child of `model`, `steps`, `repo`, `ops`, `exec`
//! and `cli` (`model::plan`, `steps::hooks`, …).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first; the same table as the map in `src/lib.rs`.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["fault", "fsutil", "tomlfile", "log", "context", "interrupt"],
    &["model"],
    &["config"],
    &["host", "repo", "state", "process"],
    &["ui"],
    &["steps", "check"],
    &["planner"],
    &["exec"],
    &["ops"],
    &["cli"],
];

/// Modules whose children are modules of their own in the graph.
const SPLIT: &[&str] = &["model", "steps", "repo", "ops", "exec", "cli"];

fn layer(node: &str) -> Option<usize> {
    let top = node.split("::").next().unwrap_or(node);
    LAYERS.iter().position(|l| l.contains(&top))
}

/// `src/a/b.rs` → `["a", "b"]`, `src/a/mod.rs` → `["a"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn is_module(src: &Path, path: &[String]) -> bool {
    let base: PathBuf = path.iter().collect();
    src.join(&base).with_extension("rs").is_file() || src.join(&base).join("mod.rs").is_file()
}

/// The graph node of a module path: its first segment, or its first two under [`SPLIT`].
fn node(src: &Path, path: &[String]) -> Option<String> {
    let first = path.first()?;
    if SPLIT.contains(&first.as_str()) && path.len() > 1 && is_module(src, &path[..2]) {
        return Some(format!("{first}::{}", path[1]));
    }
    Some(first.clone())
}

/// The code of `text` without comments (doc links are not imports) and string literals.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every module path the code refers to, absolute (`super::` and `self::` resolved).
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        // a path: ident(::ident)* possibly ending in ::{ group }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segments.push(bytes[start..j].iter().collect::<String>());
            if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' && ident(bytes[j + 2])
            {
                j += 2;
            } else {
                break;
            }
        }
        let mut prefixes: Vec<Vec<String>> = vec![segments.clone()];
        let mut next = j;
        // `crate::a::{b, c::d}`: each item of a group extends the path
        if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' && bytes[j + 2] == '{' {
            let close = (j + 3..bytes.len())
                .find(|&k| bytes[k] == '}')
                .unwrap_or(bytes.len());
            next = close;
            let group: String = bytes[j + 3..close].iter().collect();
            prefixes = group
                .split(',')
                .map(|item| {
                    let mut p = segments.clone();
                    if item.trim() == "self" {
                        return p;
                    }
                    p.extend(
                        item.trim()
                            .split("::")
                            .take_while(|s| !s.is_empty() && s.chars().all(ident))
                            .map(str::to_string),
                    );
                    p
                })
                .collect();
        }
        for p in prefixes {
            let resolved = match p.first().map(String::as_str) {
                Some("crate") => Some(p[1..].to_vec()),
                Some("super") => {
                    let mut base = here.to_vec();
                    // in `a/b.rs` or `a/b/mod.rs` (module a::b), super is `a`
                    let mut rest = &p[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    Some(base)
                }
                Some("self") => {
                    let mut base = here.to_vec();
                    base.extend(p[1..].iter().cloned());
                    Some(base)
                }
                _ => None,
            };
            if let Some(r) = resolved
                && !r.is_empty()
            {
                out.push(r);
            }
        }
        i = next.max(i + 1);
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let here = module_path(&src, &file);
        let Some(from) = node(&src, &here) else {
            continue; // lib.rs declares the modules
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = edges.entry(from.clone()).or_default();
        for r in references(&code(&text), &here) {
            if let Some(to) = node(&src, &r)
                && to != from
                && is_module(&src, &r[..1])
            {
                entry.insert(to);
            }
        }
    }
    edges
}

#[test]
fn every_module_has_a_layer_and_imports_point_down() {
    let edges = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        let Some(lf) = layer(from) else {
            wrong.push(format!(
                "`{from}` has no layer: add it to LAYERS and src/lib.rs"
            ));
            continue;
        };
        for to in tos {
            match layer(to) {
                Some(lt) if lt <= lf => {}
                Some(_) => wrong.push(format!("`{from}` imports `{to}`, a higher layer")),
                None => wrong.push(format!("`{to}` has no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_reach_each_other() {
    let edges = graph();
    // Tarjan would name the components; a DFS that reports the first cycle is enough to fix one.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for to in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(to, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(cycle) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    // NB: a checker that finds nothing would pass forever; feed it code that must fail.
    let here = vec!["model".to_string(), "plan".to_string()];
    let refs = references(
        &code(
            "use crate::exec::{self, lock};\n// crate::cli is a comment\nlet s = \"crate::ops\";\nuse super::rpm::RpmDb;",
        ),
        &here,
    );
    let joined: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(joined, ["exec", "exec::lock", "model::rpm::RpmDb"]);
    assert!(layer("exec").unwrap() > layer("model::plan").unwrap());
}
