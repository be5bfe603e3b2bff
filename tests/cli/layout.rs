//! The shape of `src/`: dependencies between top-level modules point one way.
//!
//! A module is a top-level `src/X.rs` or `src/X/`; module X depends on Y when a file of X
//! names `crate::Y` (in a `use`, a path, or a `use crate::{Y, …}` group; comments are
//! skipped). A cycle means neither module can be understood, tested or moved without the
//! other, so any cycle fails this test, except where it is closed by one of the
//! [`KNOWN_BACK_EDGES`], which are being removed on other branches. An entry that no longer
//! closes a cycle fails too, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::repo;

/// `(file, module it names)`: references that close a cycle and are allowed for now. Empty:
/// every top-level module imports one way (the runner, import and export, the run
/// directory and the connection were the last ones untangled).
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[];

/// Module → module → the files that make the edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn top_level_modules_import_one_way() {
    let src = repo().join("src");
    let full = module_graph(&src);
    assert!(
        full.get("job")
            .is_some_and(|deps| deps.contains_key("source")),
        "the scan must see job → source (job/check.rs reads the CSV header): {full:?}"
    );
    let full_cycles = strongly_connected(&full);
    let mut problems = Vec::new();
    let mut graph = full.clone();
    for &(file, to) in KNOWN_BACK_EDGES {
        let from = module_of(file);
        let on_a_cycle = full_cycles
            .iter()
            .any(|c| c.iter().any(|m| m == from) && c.iter().any(|m| m == to));
        let deps = graph.get_mut(from);
        let removed = on_a_cycle
            && deps.is_some_and(|deps| {
                let files = deps.entry(to.to_string()).or_default();
                let removed = files.remove(file);
                if files.is_empty() {
                    deps.remove(to);
                }
                removed
            });
        if !removed {
            problems.push(format!(
                "{file} -> {to} no longer closes a cycle: remove it from KNOWN_BACK_EDGES"
            ));
        }
    }
    for cycle in strongly_connected(&graph) {
        let mut text = format!("cycle among {}:", cycle.join(", "));
        for from in &cycle {
            for (to, files) in &graph[from] {
                if cycle.contains(to) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    text.push_str(&format!("\n    {from} -> {to}  ({})", files.join(", ")));
                }
            }
        }
        problems.push(text);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `src/api/connect.rs` → `api`.
fn module_of(file: &str) -> &str {
    let rest = file.strip_prefix("src/").expect("a path under src/");
    let first = rest.split('/').next().expect("a first component");
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The scanner itself: groups, nested paths, comments and other crates.
#[test]
fn the_scan_reads_groups_and_skips_comments() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    let text = "use crate::a::x;\nuse crate::{\n    b::{y, z},\n    c,\n};\n// crate::d in a comment\nlet v = mycrate::d::f();\n";
    assert_eq!(
        referenced_modules(text, &modules),
        ["a", "b", "c"].map(String::from).into()
    );
}

/// Every top-level module's dependencies on the others.
fn module_graph(src: &Path) -> Graph {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let module = name.strip_suffix(".rs").unwrap_or(name).to_string();
            (p.is_dir() || name.ends_with(".rs")).then_some(module)
        })
        // The crate roots are not modules of the library.
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph = Graph::new();
    for module in &modules {
        let deps = graph.entry(module.clone()).or_default();
        for file in rust_files(src, module) {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            let shown = file
                .strip_prefix(src.parent().expect("src has a parent"))
                .unwrap_or(&file)
                .display()
                .to_string();
            for to in referenced_modules(&text, &modules) {
                if &to != module {
                    deps.entry(to).or_default().insert(shown.clone());
                }
            }
        }
    }
    graph
}

/// `src/X.rs`, or every `.rs` file under `src/X/`.
fn rust_files(src: &Path, module: &str) -> Vec<std::path::PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a module directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level modules `text` names through `crate::`.
fn referenced_modules(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        // Not a Rust lexer: a `//` inside a string literal (`https://`) also hides the rest
        // of its line. That can only hide an edge, never invent one, and no `crate::` path
        // follows a URL on a line in this tree.
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = &rest[i + "crate::".len()..];
        rest = after;
        if preceded_by_ident {
            continue; // `mycrate::`, not ours
        }
        let names = match after.strip_prefix('{') {
            Some(group) => group_heads(group),
            None => vec![ident(after)],
        };
        out.extend(names.into_iter().filter(|n| modules.contains(n)));
    }
    out
}

/// The first path segment of each item of a `{…}` group (the text after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && depth == 0 && !c.is_whitespace() => {
                heads.push(ident(&group[i..]));
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|d| d.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Tarjan on a small graph: a 3-cycle, a 2-cycle and a chain into them.
#[test]
fn cycles_are_found_as_components() {
    let mut graph = Graph::new();
    for (from, to) in [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("d", "a"),
        ("e", "f"),
        ("f", "e"),
    ] {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default();
        graph.entry(to.into()).or_default();
    }
    assert_eq!(
        strongly_connected(&graph),
        vec![vec!["a", "b", "c"], vec!["e", "f"]]
    );
}
