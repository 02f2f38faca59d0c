//! The layering of ARCHITECTURE.md, checked: the domain core is a crate
//! that depends on nothing async or I/O (read from `cargo metadata`, so the
//! check follows the real dependency graph); HTTP handlers never touch sled.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Every package `admind-core` depends on for building (normal
/// dependencies, transitively), from `cargo metadata`.
fn core_dependencies() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
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
        assert!(!code.contains(".commit("), "{file} commits directly");
    }
}
