//! The layering of ARCHITECTURE.md, checked: the domain core names no I/O
//! type and no outer module; HTTP handlers never touch sled.

use std::path::Path;

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
    for (file, text) in sources("src/domain") {
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
