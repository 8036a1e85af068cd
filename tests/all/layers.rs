//! The layers of `src/`, checked on the module graph rather than by eye: data flows one way,
//! handles → region → (protocol crate | sys), and no module imports, directly or through
//! others, a module that imports it.
//!
//! The graph is read from the sources: a file's edges are the modules its `use` declarations
//! and `crate::` / `super::` paths name (the deepest existing module of each path). `mod`
//! declarations and re-exports (`pub use`, `pub(crate) use`) are a module's façade, not its
//! dependencies, and are left out; so are comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`region::object`, `lock`, the root is "") → its source file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The code of a file without comments, and without its inline unit-test module (which sits at
/// the end of the file, and whose `super` is the file's own module).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                ""
            } else if let Some(i) = line.find(" // ") {
                &line[..i]
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut parts = vec![];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// The deepest module of `modules` that `segments` (from the crate root) runs through.
fn resolve(modules: &BTreeMap<String, PathBuf>, segments: &[&str]) -> String {
    let mut best = String::new();
    for n in 1..=segments.len() {
        let candidate = segments[..n].join("::");
        if modules.contains_key(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    best
}

/// The module graph: module → the modules it depends on.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = code(file);
        let mut paths = vec![];
        // `use` declarations (not re-exports), possibly over several lines.
        let mut lines = code.lines();
        while let Some(line) = lines.next() {
            let Some(rest) = line.trim_start().strip_prefix("use ") else {
                continue;
            };
            let mut statement = rest.to_string();
            while !statement.contains(';') {
                match lines.next() {
                    Some(more) => statement.push_str(more),
                    None => break,
                }
            }
            let statement = statement.split(';').next().unwrap();
            paths.extend(expand(statement));
        }
        // Paths written in code.
        for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("crate::") || word.starts_with("super::") {
                paths.push(word.to_string());
            }
        }
        let mut deps = BTreeSet::new();
        for path in paths {
            let path = path.split(" as ").next().unwrap().to_string();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let absolute: Vec<&str> = match segments.first() {
                Some(&"crate") => segments[1..].to_vec(),
                Some(&"super") => {
                    let mut base: Vec<&str> =
                        module.split("::").filter(|s| !s.is_empty()).collect();
                    let mut rest = &segments[..];
                    while rest.first() == Some(&"super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend_from_slice(rest);
                    base
                }
                Some(&"self") => {
                    let mut base: Vec<&str> =
                        module.split("::").filter(|s| !s.is_empty()).collect();
                    base.extend_from_slice(&segments[1..]);
                    base
                }
                // A child module of this one, used by name (`use layout::HEADER_SIZE`).
                Some(first) if modules.contains_key(&child(module, first)) => {
                    let mut base: Vec<&str> =
                        module.split("::").filter(|s| !s.is_empty()).collect();
                    base.extend_from_slice(&segments);
                    base
                }
                _ => continue,
            };
            let target = resolve(&modules, &absolute);
            if &target != module {
                deps.insert(target);
            }
        }
        // The crate root only re-exports: depending on it is depending on nothing.
        deps.remove("");
        graph.insert(module.clone(), deps);
    }
    graph
}

fn child(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut vec![], &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph(&src());
    assert!(graph.contains_key("region::object") && graph.contains_key("sys::futex"));
    assert!(
        graph["region::object"].contains("region"),
        "the reader sees `use super::Inner`: {:?}",
        graph["region::object"]
    );
    if let Some(cycle) = cycle(&graph) {
        panic!("import loop in src/: {}", cycle.join(" -> "));
    }
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let graph = graph(&src());
    let handles = [
        "barrier",
        "condition",
        "event",
        "lock",
        "raw",
        "rlock",
        "rwlock",
        "semaphore",
        "value",
    ];
    for (module, deps) in &graph {
        let layer = module.split("::").next().unwrap();
        let forbidden: Vec<&str> = match layer {
            "region" | "error" => handles.to_vec(),
            "sys" => handles.iter().copied().chain(["region", "error"]).collect(),
            _ => continue,
        };
        for dep in deps {
            let top = dep.split("::").next().unwrap();
            assert!(
                !forbidden.contains(&top),
                "{module} imports {dep}: the {layer} layer must not reach up to {top}"
            );
        }
    }
}

#[test]
fn the_checker_sees_a_loop_when_there_is_one() {
    // A planted loop: the check above would pass on anything if it could not see this.
    let mut graph = graph(&src());
    graph
        .get_mut("sys::ids")
        .unwrap()
        .insert("sys::lease".to_string());
    let found = cycle(&graph).expect("a planted loop is found");
    assert!(found.contains(&"sys::lease".to_string()), "{found:?}");
}
