//! docs/ARCHITECTURE.md's rules, checked against the source: no import
//! cycle between the top-level modules of src/, no function longer than 100
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
fn no_function_over_100_lines() {
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
                if end - i + 1 > 100 {
                    long.push(format!("{}:{}: {} lines", f.display(), i + 1, end - i + 1));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over 100 lines:\n{}", long.join("\n"));
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

/// Every source file with its module path (`pipeline::plan`; a `mod.rs`
/// is its folder's module).
fn file_modules() -> BTreeMap<Vec<String>, PathBuf> {
    let root = src();
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(&root).into_iter().map(Result::unwrap) {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&root).unwrap();
        let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let last = parts.pop().unwrap();
        let stem = last.trim_end_matches(".rs").to_string();
        if !matches!(stem.as_str(), "mod" | "lib" | "main") {
            parts.push(stem);
        }
        if matches!(last.as_str(), "lib.rs" | "main.rs") {
            continue;
        }
        out.insert(parts, path.to_path_buf());
    }
    out
}

/// The files a file's code names (`crate::a::b`, `super::c`, `self::d`),
/// each resolved to the longest module path that is a file.
fn file_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = file_modules();
    let mut graph = BTreeMap::new();
    for (me, path) in &files {
        let text = code(path);
        let mut deps = BTreeSet::new();
        let chars: Vec<char> = text.chars().collect();
        let word = |from: usize| -> Vec<String> {
            let tail: String = chars[from..].iter().take(200).collect();
            let path: String =
                tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            path.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        for (i, _) in text.char_indices().filter(|(_, c)| *c == 'c' || *c == 's') {
            let ci = text[..i].chars().count();
            let before = if ci == 0 { ' ' } else { chars[ci - 1] };
            if before.is_ascii_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let rest = &text[i..];
            let (base, start): (Vec<String>, usize) = if rest.starts_with("crate::") {
                (Vec::new(), ci + "crate::".len())
            } else if rest.starts_with("super::") {
                // `super` of `a::b` (a file or a folder's mod.rs) is `a`.
                (me[..me.len().saturating_sub(1)].to_vec(), ci + "super::".len())
            } else if rest.starts_with("self::") {
                (me.clone(), ci + "self::".len())
            } else {
                continue;
            };
            let mut target = base;
            target.extend(word(start));
            while !target.is_empty() && !files.contains_key(&target) {
                target.pop();
            }
            if !target.is_empty() && target != *me {
                deps.insert(target);
            }
        }
        // A child declared here (`mod plan;`) is named bare: `plan::make`.
        for line in text.lines() {
            let decl = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            let Some(child) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else { continue };
            let mut target = me.clone();
            target.push(child.trim().to_string());
            let used = text.match_indices(&format!("{child}::")).any(|(i, _)| {
                let before = text[..i].chars().next_back().unwrap_or(' ');
                !(before.is_ascii_alphanumeric() || before == '_' || before == ':')
            });
            if used && files.contains_key(&target) {
                deps.insert(target);
            }
        }
        graph.insert(me.clone(), deps);
    }
    graph
}

#[test]
fn no_import_cycle_between_files() {
    let graph = file_graph();
    assert!(graph.len() > 50, "{}", graph.len());
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(edges > 200, "the resolver finds the imports: {edges}");
    let plan = graph.get(&vec!["pipeline".to_string(), "plan".to_string()]).expect("pipeline::plan");
    assert!(plan.contains(&vec!["pipeline".to_string(), "views".to_string()]), "{plan:?}");
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.join("::")])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} -> {}", path.join(" -> "), start.join("::")));
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.join("::"));
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "import cycles between files:\n{}", cycles.join("\n"));
}
