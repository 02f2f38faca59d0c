//! The layering of ARCHITECTURE.md, checked: the domain core is a crate
//! that depends on nothing async or I/O (read from `cargo metadata`, so the
//! check follows the real dependency graph); HTTP handlers never touch sled.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Every package `admind-core` depends on for building (normal
/// dependencies, transitively), from `cargo metadata`.
fn core_dependencies() -> BTreeSet<String> {
    // This machine's target only: other targets' crates (redox, windows)
    // are never downloaded, and --offline needs them present otherwise.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(&host)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let core = names
        .iter()
        .find(|(_, n)| **n == "admind-core")
        .map(|(id, _)| *id)
        .expect("the admind-core package");
    let mut seen = BTreeSet::new();
    let mut todo = vec![core];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            // Normal dependencies only: dev and build dependencies do not
            // end up in the core's code.
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[pkg].to_string()) {
                todo.push(pkg);
            }
        }
    }
    seen
}

#[test]
fn the_core_crate_depends_on_nothing_async_or_io() {
    let deps = core_dependencies();
    for forbidden in [
        "tokio",
        "axum",
        "hyper",
        "hyper-util",
        "sled",
        "reqwest",
        "lettre",
        "rhai",
        "notify",
        "figment",
        "tracing",
        "mio",
        "rand",
        "admind",
        "admind-plugin-api",
    ] {
        assert!(
            !deps.contains(forbidden),
            "admind-core depends on {forbidden} (all: {deps:?})"
        );
    }
    assert!(
        deps.contains("serde"),
        "the metadata walk found the core's dependencies: {deps:?}"
    );
}

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Code lines only: comments may name anything.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_domain_core_imports_no_io_and_no_outer_module() {
    let forbidden = [
        "crate::store",
        "crate::http",
        "crate::mail",
        "crate::hooks",
        "crate::config",
        "crate::server",
        "sled::",
        "axum::",
        "lettre::",
        "tokio::",
        "figment::",
        "std::fs",
        "std::net",
        "reqwest",
    ];
    for (file, text) in sources("crates/core/src") {
        let code = code(&text);
        for f in forbidden {
            assert!(!code.contains(f), "{file} uses {f}: the core does no I/O");
        }
    }
}

#[test]
fn http_reaches_state_only_through_the_core() {
    for (file, text) in sources("src/http") {
        let code = code(&text);
        assert!(!code.contains("sled::"), "{file} names sled");
        // Every write of a request goes through the writer (commands, and
        // maintenance such as redelivery).
        for write in [".commit(", ".tree(", ".db.", "queue_put", "queue_remove"] {
            assert!(
                !code.contains(write),
                "{file} writes the store directly ({write})"
            );
        }
        assert!(
            !code.contains("member_unchecked"),
            "{file} reads state past the core's checks"
        );
    }
}

/// Every `.rs` file under `dir`, recursively.
fn rs_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Only the writer writes: outside `src/store/` no code commits or writes a
/// tree, and inside it only the writer commits (workers, retention and
/// redelivery hand their writes to the writer).
#[test]
fn only_the_writer_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in rs_files(&root.join("src")) {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let code = non_test_code(&std::fs::read_to_string(&file).unwrap());
        let commits = code.contains(".commit(");
        let tree_writes = code
            .lines()
            .any(|l| l.contains(".tree(") && (l.contains(".insert(") || l.contains(".remove(")));
        match rel.as_str() {
            "src/store/writer.rs" => {}
            r if r.starts_with("src/store/") => {
                assert!(!tree_writes, "{r} writes a tree outside a transaction");
            }
            r => {
                assert!(
                    !commits,
                    "{r} commits to the store: hand the writes to the writer"
                );
                assert!(!tree_writes, "{r} writes a tree directly");
            }
        }
    }
}

/// The store sits below everything that uses it: no file of `src/store/`
/// names a worker, HTTP, the policy host or the server (they plug in
/// through `Sink`s and the `Backend` interface).
#[test]
fn the_store_imports_no_worker_and_no_http() {
    let forbidden = [
        "crate::http",
        "crate::mail",
        "crate::hooks",
        "crate::outbound",
        "crate::queue",
        "crate::webhooks",
        "crate::policy",
        "crate::server",
        "crate::audit",
        "crate::config",
        "axum::",
        "reqwest",
        "lettre",
    ];
    for (file, text) in sources("src/store") {
        let code = non_test_code(&text);
        for f in forbidden {
            assert!(
                !code.contains(f),
                "{file} uses {f}: the store knows no worker or HTTP"
            );
        }
    }
}

/// The store interface names no backend: only a backend's own file knows
/// its engine, so the writer, the queues, the workers and HTTP run on any
/// backend (sled, memory, the next one) unchanged.
#[test]
fn only_a_backend_knows_its_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in rs_files(&root.join("src")) {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let code = non_test_code(&std::fs::read_to_string(&file).unwrap());
        match rel.as_str() {
            // The backend itself, and the module that lists the backends.
            "src/store/sled_store.rs" => {}
            "src/store/mod.rs" => {
                assert!(!code.contains("sled::"), "{rel} names a sled type");
            }
            r => {
                for engine in ["sled::", "sled_store", "SledStore"] {
                    assert!(
                        !code.contains(engine),
                        "{r} names {engine}: go through store::Backend"
                    );
                }
            }
        }
    }
}

/// The modules of a crate (`crate::a::b` → file) under `root`.
fn crate_modules(root: &Path, krate: &str) -> HashMap<String, std::path::PathBuf> {
    let files = rs_files(root);
    let mut mods = HashMap::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.first().is_some_and(|p| p == "bin") {
            continue;
        }
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        let mut name = vec![krate.to_string()];
        name.extend(parts);
        mods.insert(name.join("::"), f);
    }
    mods
}

/// The code of a file without comments and without its `#[cfg(test)]` tail.
fn non_test_code(text: &str) -> String {
    let code = code(text);
    match code.find("#[cfg(test)]") {
        Some(i) => code[..i].to_string(),
        None => code,
    }
}

/// Which modules each module names (`crate::x`, `super::x`, `use` trees,
/// and a parent's `child::` paths), resolved to the longest known module.
fn import_graph(root: &Path, krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mods = crate_modules(root, krate);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let text = non_test_code(&std::fs::read_to_string(file).unwrap());
        let parts: Vec<&str> = m.split("::").collect();
        let is_dir = matches!(
            file.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs" | "main.rs")
        );
        let parent: Vec<&str> = if is_dir {
            parts[..parts.len().saturating_sub(1)].to_vec()
        } else {
            parts[..parts.len() - 1].to_vec()
        };
        let mut refs: Vec<String> = Vec::new();
        // Tokens: identifiers and `::`, with use trees expanded.
        let tokens = tokenize(&text);
        let mut i = 0;
        while i < tokens.len() {
            let head = tokens[i].as_str();
            if (head == "crate" || head == "super") && tokens.get(i + 1).is_some_and(|t| t == "::")
            {
                let base: Vec<String> = if head == "crate" {
                    vec![krate.to_string()]
                } else {
                    parent.iter().map(|s| s.to_string()).collect()
                };
                let mut path = base;
                let mut j = i + 1;
                let mut tree = false;
                while tokens.get(j).is_some_and(|t| t == "::") {
                    match tokens.get(j + 1).map(String::as_str) {
                        Some("{") => {
                            // A use tree: each first segment inside the braces.
                            let mut k = j + 2;
                            let mut depth = 1;
                            let mut expect_name = true;
                            while k < tokens.len() && depth > 0 {
                                match tokens[k].as_str() {
                                    "{" => depth += 1,
                                    "}" => depth -= 1,
                                    "," if depth == 1 => expect_name = true,
                                    t if depth == 1 && expect_name => {
                                        refs.push(format!("{}::{t}", path.join("::")));
                                        expect_name = false;
                                    }
                                    _ => {}
                                }
                                k += 1;
                            }
                            j = k;
                            tree = true;
                            break;
                        }
                        Some(seg) if seg.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                            path.push(seg.to_string());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if !tree {
                    refs.push(path.join("::"));
                }
                i = j;
                continue;
            }
            i += 1;
        }
        if is_dir {
            // A parent naming its own children (`handlers::routes()`).
            for line in text.lines() {
                let l = line.trim();
                let declared = l
                    .trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ")
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'));
                if let Some(child) = declared {
                    let named = text
                        .lines()
                        .filter(|x| {
                            !x.trim_start().starts_with("mod ")
                                && !x.trim_start().starts_with("pub mod ")
                        })
                        .any(|x| x.contains(&format!("{child}::")));
                    if named {
                        refs.push(format!("{m}::{child}"));
                    }
                }
            }
        }
        for r in refs {
            let segs: Vec<&str> = r.split("::").collect();
            for k in (1..=segs.len()).rev() {
                let cand = segs[..k].join("::");
                if mods.contains_key(&cand) {
                    if &cand != m {
                        edges.entry(m.clone()).or_default().insert(cand);
                    }
                    break;
                }
            }
        }
        edges.entry(m.clone()).or_default();
    }
    edges
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c == '"' {
            // Skip string literals (paths in strings are not imports).
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            if matches!(c, '{' | '}' | ',') {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// Groups of modules that import each other, directly or around a circle.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn finish<'a>(
        v: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if !seen.insert(v) {
            return;
        }
        for w in edges.get(v).into_iter().flatten() {
            finish(w, edges, seen, order);
        }
        order.push(v);
    }
    for v in edges.keys() {
        finish(v, edges, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (v, ws) in edges {
        for w in ws {
            reversed.entry(w.as_str()).or_default().push(v.as_str());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for v in order.into_iter().rev() {
        if assigned.contains(v) {
            continue;
        }
        let mut group = Vec::new();
        let mut todo = vec![v];
        while let Some(x) = todo.pop() {
            if assigned.insert(x) {
                group.push(x.to_string());
                todo.extend(reversed.get(x).into_iter().flatten().copied());
            }
        }
        if group.len() > 1 {
            group.sort();
            out.push(group);
        }
    }
    out
}

/// `cargo test --test architecture no_import_circles -- --nocapture` prints
/// each crate's module graph and fails on any circle.
#[test]
fn no_import_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for (dir, krate) in [("src", "admind"), ("crates/core/src", "admind_core")] {
        let edges = import_graph(&root.join(dir), krate);
        for (m, ws) in &edges {
            println!(
                "{m} -> {}",
                ws.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        found.extend(circles(&edges));
    }
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    edges.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&edges), vec![vec!["a", "b", "c"]]);
}

/// A command lives in its capability module; only the catalog (and `rules`,
/// which runs it) names every capability, and no capability imports the
/// catalog, so adding a command never touches another capability.
#[test]
fn only_the_catalog_names_every_capability() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = import_graph(&root.join("crates/core/src"), "admind_core");
    let capabilities = [
        "accounts",
        "addresses",
        "billing",
        "integrations",
        "licences",
        "members",
        "ownership",
        "policy_actions",
        "sell",
        "sessions",
        "support",
        "webhooks",
    ];
    let catalog = "admind_core::catalog".to_string();
    for c in capabilities {
        let m = format!("admind_core::{c}");
        let imports = edges.get(&m).expect("every capability is a module");
        assert!(!imports.contains(&catalog), "{m} imports the catalog");
        assert!(
            edges[&catalog].contains(&m),
            "the catalog lists no command of {m}"
        );
    }
    // The catalog is the one module with its hands on every capability.
    for (m, imports) in &edges {
        let named = capabilities
            .iter()
            .filter(|c| imports.contains(&format!("admind_core::{c}")))
            .count();
        assert!(
            m == &catalog || named < capabilities.len() / 2,
            "{m} names {named} capabilities: commands go through the catalog"
        );
    }
}

/// The HTTP API and the console stand side by side on `crate::app` (the
/// state, `App::submit`, problems, the sign-in flows): neither imports the
/// other, so either can change without the other.
#[test]
fn the_console_and_the_api_do_not_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = import_graph(&root.join("src"), "admind");
    let under = |m: &str, top: &str| m == top || m.starts_with(&format!("{top}::"));
    let mut found = Vec::new();
    for (m, imports) in &edges {
        for (from, to) in [
            ("admind::console", "admind::http"),
            ("admind::http", "admind::console"),
        ] {
            if under(m, from) {
                found.extend(
                    imports
                        .iter()
                        .filter(|i| under(i, to))
                        .map(|i| format!("{m} -> {i}")),
                );
            }
        }
        if under(m, "admind::app") {
            found.extend(
                imports
                    .iter()
                    .filter(|i| under(i, "admind::http") || under(i, "admind::console"))
                    .map(|i| format!("{m} -> {i}")),
            );
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    assert!(edges.contains_key("admind::app"), "the app module exists");
}
