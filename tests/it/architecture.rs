//! docs/ARCHITECTURE.md's rules, checked against the source: no import
//! cycle between the top-level modules of src/, no function longer than 120
//! lines, and every top-level module named in the map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level modules of src/ (a file or a folder), with their files.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "main" || name == "lib" {
            continue;
        }
        let files: Vec<PathBuf> = walkdir::WalkDir::new(&path)
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
            .map(|e| e.into_path())
            .collect();
        out.insert(name, files);
    }
    out
}

/// A file's text without its unit tests (they may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut graph = BTreeMap::new();
    for (name, files) in &mods {
        let mut deps = BTreeSet::new();
        for f in files {
            let text = code(f);
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let dep: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if dep != *name && mods.contains_key(&dep) {
                    deps.insert(dep);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// Every module from which `start` can be reached again, if any.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack: Vec<(String, Vec<String>)> = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in &graph[&node] {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = graph();
    assert!(graph.len() > 10, "{graph:?}");
    for name in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, name) {
            panic!("import cycle: {} -> {name}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_function_over_120_lines() {
    let mut long = Vec::new();
    for files in modules().values() {
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let trimmed = line.trim_start();
                let indent = &line[..line.len() - trimmed.len()];
                let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "async fn ", "pub async fn ", "pub(crate) async fn "]
                    .iter()
                    .any(|p| trimmed.starts_with(p));
                if !is_fn || line.ends_with(';') {
                    continue;
                }
                let close = format!("{indent}}}");
                let end = lines[i + 1..].iter().position(|l| *l == close).map_or(lines.len(), |p| i + 1 + p);
                if end - i + 1 > 120 {
                    long.push(format!("{}:{}: {} lines", f.display(), i + 1, end - i + 1));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over 120 lines:\n{}", long.join("\n"));
}

/// The code map's modules, in the order of the map (leaves first).
fn map_order() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name))
        .filter_map(|name| name.strip_suffix('/').or_else(|| name.strip_suffix(".rs")))
        .map(str::to_string)
        .collect()
}

#[test]
fn modules_only_use_modules_above_them_in_the_map() {
    let order = map_order();
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = Vec::new();
    for (name, deps) in graph() {
        let Some(me) = rank(&name) else { continue };
        for d in deps {
            if rank(&d).is_none_or(|r| r > me) {
                wrong.push(format!("{name} uses {d}, which the map lists below it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_architecture_map_names_every_top_level_module() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = modules()
        .keys()
        .filter(|m| !doc.contains(&format!("`{m}/`")) && !doc.contains(&format!("`{m}.rs`")))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md does not name {missing:?}");
}
