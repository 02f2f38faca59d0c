//! README.md runs as written: every ```sh block (not ```sh no-run, such as the opening block of set-up commands) is run,
//! in order, in one bash session, against a fresh daemon started the way
//! README says (`serve` from the repository root, so `data/` and `scripts/`
//! are the daemon's), and every line ending in `#=> text` must print
//! something containing `text` (variables in it are expanded). Every
//! ```toml block must load as a configuration file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Blocks of README.md as (info string, body).
fn blocks(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in readme.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                out.extend(current.take());
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Turns a README block into bash that checks each `#=>` promise.
fn checked(block: &str) -> String {
    let mut script = String::new();
    let mut logical = String::new();
    for line in block.lines() {
        logical.push_str(line);
        if line.ends_with('\\') {
            logical.push('\n');
            continue;
        }
        let statement = std::mem::take(&mut logical);
        match statement.rsplit_once("#=>") {
            Some((command, expected)) => {
                let expected = expected.trim();
                script.push_str(&format!(
                    "__out=$({command})\nprintf '%s\\n' \"$__out\"\n__want=$(cat <<__README_EXPECT__\n{expected}\n__README_EXPECT__\n)\n\
                     case \"$__out\" in *\"$__want\"*) ;; *) echo \"README promised: $__want\" >&2; echo \"got: $__out\" >&2; exit 1;; esac\n"
                ));
            }
            None => {
                script.push_str(&statement);
                script.push('\n');
            }
        }
    }
    script
}

#[test]
fn readme_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = blocks(&readme);

    // Configuration examples load (unknown keys and bad values fail).
    let configs = tempfile::tempdir().unwrap();
    let mut tomls = 0;
    for (n, (info, body)) in blocks.iter().enumerate() {
        if info == "toml" {
            let file = configs.path().join(format!("block{n}.toml"));
            std::fs::write(&file, body).unwrap();
            if let Err(e) = admind::config::Config::load(Some(&file), Default::default()) {
                panic!("README's toml block #{n} does not load: {e:#}\n{body}");
            }
            tomls += 1;
        }
    }
    assert!(tomls >= 4, "the configuration examples are checked");

    // A copy of the repository root: README's relative paths (data/,
    // scripts/) resolve as in a checkout, without touching the real one.
    let work = tempfile::tempdir().unwrap();
    // A copy of the shipped scripts: README's policy loop writes there.
    std::fs::create_dir(work.path().join("scripts")).unwrap();
    for entry in std::fs::read_dir(root.join("scripts")).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(
                entry.path(),
                work.path().join("scripts").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(work.path())
        .env("ADMIND_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start admind");
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("admind listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let mut script = String::from("set -euo pipefail\n");
    let mut runnable = 0;
    for (info, body) in &blocks {
        if info == "sh" {
            script.push_str(&checked(&body.replace("http://127.0.0.1:7878", &base)));
            runnable += 1;
        }
    }
    assert!(runnable >= 3, "README's walk-throughs are found");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_admind")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .output()
        .expect("bash");
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        out.status.success(),
        "README did not run as written.\n--- stdout\n{}\n--- stderr\n{}\n--- script\n{script}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
