//! The house's rooms and what each may import: a table, held against the `crate::` imports of
//! every file of `src/`. Arrows point down only (a room imports only rooms below it in the
//! table), so "may I use X here?" is answered by a failing test, not by a paragraph.
//!
//! To add a room or an arrow, add it here, where the whole order is in view (docs/design.md
//! says why the rooms are cut as they are).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level room of `src/`, lowest first, with the rooms it may import.
const ROOMS: &[(&str, &[&str])] = &[
    // Helpers with no vocabulary of their own.
    ("quote", &[]),
    ("routes", &[]),
    ("parallel", &[]),
    ("metrics", &["routes"]),
    // ConfigMaps and documents for unit tests (the `fixtures` feature): imports nothing.
    ("fixtures", &[]),
    // The vocabulary: no I/O.
    ("model", &["quote"]),
    ("files", &["model"]),
    ("selector", &["model", "quote"]),
    ("wire", &["model"]),
    ("query", &["model", "selector", "wire", "quote"]),
    // Delivery metrics from runs' facts: no I/O.
    ("insights", &["model", "query", "wire"]),
    // ConfigMaps in.
    ("decode", &["model", "files", "quote", "fixtures"]),
    ("source", &["model", "decode", "files", "parallel", "quote", "selector", "fixtures"]),
    // The live executions, and the archive beside them.
    ("index", &["model", "wire", "query", "insights", "decode", "source", "metrics", "parallel", "fixtures"]),
    ("history", &["model", "wire", "query", "insights", "index", "source", "quote"]),
    ("access", &["model", "query", "decode", "files", "metrics", "quote"]),
    (
        "retention",
        &["model", "query", "index", "history", "decode", "files", "metrics", "quote", "selector", "fixtures"],
    ),
    // Notifications: subscriptions, the outbox's messages, signing and sending.
    ("notify", &["model", "files", "index", "history", "source", "selector", "metrics", "quote"]),
    (
        "modules",
        &["model", "wire", "decode", "selector", "source", "index", "history", "retention", "notify", "fixtures"],
    ),
    // HTTP, and one running service.
    (
        "api",
        &[
            "model",
            "wire",
            "query",
            "insights",
            "decode",
            "selector",
            "quote",
            "routes",
            "metrics",
            "index",
            "history",
            "access",
            "retention",
            "modules",
            "fixtures",
        ],
    ),
    (
        "service",
        &[
            "model",
            "decode",
            "source",
            "metrics",
            "index",
            "history",
            "access",
            "retention",
            "notify",
            "modules",
            "api",
        ],
    ),
    // The binary's face: never the index, the archive or the HTTP server.
    (
        "cli",
        &[
            "service",
            "model",
            "wire",
            "query",
            "insights",
            "decode",
            "source",
            "retention",
            "selector",
            "files",
            "quote",
        ],
    ),
];

/// Each top-level module of `src/` and, for each room it names as `crate::…`, a file that does.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
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
            if !relative.ends_with(".rs") || top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let named = text.split("crate::").skip(1).filter_map(|rest| {
                let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                (!name.is_empty() && name != top).then_some(name)
            });
            let room = graph.entry(top.clone()).or_default();
            for name in named {
                room.entry(name).or_insert_with(|| relative.clone());
            }
        }
    }
    graph
}

#[test]
fn every_room_imports_only_the_rooms_below_it_that_the_table_allows() {
    let graph = imports();
    let table: BTreeMap<&str, BTreeSet<&str>> =
        ROOMS.iter().map(|(room, allowed)| (*room, allowed.iter().copied().collect())).collect();
    for room in graph.keys() {
        assert!(table.contains_key(room.as_str()), "src/{room} is a room the table of tests/layers.rs does not hold");
    }
    let mut wrong = Vec::new();
    for (room, named) in &graph {
        for (import, file) in named {
            if !table[room.as_str()].contains(import.as_str()) {
                wrong.push(format!("src/{file} ({room}) imports crate::{import}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports the table does not allow:\n{}", wrong.join("\n"));
}

#[test]
fn the_table_points_down_only() {
    for (at, (room, allowed)) in ROOMS.iter().enumerate() {
        for import in *allowed {
            let below = ROOMS[..at].iter().any(|(lower, _)| lower == import);
            assert!(below, "{room} may import {import}, which is not below it in the table");
        }
    }
}

#[test]
fn the_command_line_never_reaches_the_index_the_archive_or_the_server() {
    let graph = imports();
    let cli = &graph["cli"];
    for forbidden in ["index", "history", "api"] {
        assert!(!cli.contains_key(forbidden), "src/{} imports crate::{forbidden}", cli[forbidden]);
    }
    assert!(!graph["access"].contains_key("index"), "access reads scopes from query, not the index");
}
