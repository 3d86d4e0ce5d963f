//! The house's layers point one way: among the top-level modules of `src/`, read from their
//! `crate::` imports, no module reaches itself again (source → validate → index →
//! access/modules → api → service, with counters and route templates low).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` and the top-level modules it names as `crate::…`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src").to_string_lossy().into_owned();
            let top = relative.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
            if !relative.ends_with(".rs") || top == "main" || top == "lib" || relative.ends_with("/tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let named = text.split("crate::").skip(1).filter_map(|rest| {
                let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                (!name.is_empty() && name != top).then_some(name)
            });
            graph.entry(top.clone()).or_default().extend(named);
        }
    }
    graph
}

/// A path from `from` back to `to`, if there is one.
fn path(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(from).into_iter().flatten() {
        if next == to {
            return Some(vec![next.clone()]);
        }
        if seen.insert(next.clone())
            && let Some(mut rest) = path(graph, next, to, seen)
        {
            rest.insert(0, next.clone());
            return Some(rest);
        }
    }
    None
}

#[test]
fn the_top_level_modules_import_one_another_without_a_circle() {
    let graph = imports();
    assert!(graph.contains_key("index") && graph.contains_key("api"), "the graph was read: {graph:?}");
    for module in graph.keys() {
        if let Some(circle) = path(&graph, module, module, &mut BTreeSet::new()) {
            panic!("{module} → {} is a circle", circle.join(" → "));
        }
    }
}
