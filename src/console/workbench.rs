//! The policy workbench (platform support): a policy's versions with their
//! source and the diff between two; a draft editor that checks a draft,
//! tests it on a recorded event, replays it over a period, and (when
//! `[console] policy_save` allows) saves it into the scripts folder, where
//! the watcher loads it. Saving is audited with the diff.

use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::page::{encode_component, problem_page, render, see_other, Chrome, PageForm};
use super::visitor::Visitor;
use crate::app::problem::{Problem, Query};
use crate::app::AppState;
use crate::domain::{Command, Refusal};
use crate::policy::record;

/// Recorded calls offered to test a draft on (the newest).
const TEST_CHOICES_MAX: usize = 20;
/// Lines compared by the diff at most (both sides multiplied): past this the
/// diff says "replaced whole".
const DIFF_CELLS_MAX: usize = 4_000_000;

/// A policy name in a path segment (`shadow/x.rhai` keeps its slash).
fn segment(name: &str) -> String {
    encode_component(name).replace('/', "%2F")
}

pub struct DiffLine {
    /// ` `, `-` or `+`.
    pub sign: char,
    pub text: String,
}

/// A line diff (longest common subsequence) of two sources.
pub fn line_diff(a: &str, b: &str) -> Vec<DiffLine> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let line = |sign, text: &str| DiffLine {
        sign,
        text: text.to_string(),
    };
    if a.len().saturating_mul(b.len()) > DIFF_CELLS_MAX {
        return a
            .iter()
            .map(|l| line('-', l))
            .chain(b.iter().map(|l| line('+', l)))
            .collect();
    }
    // lcs[i][j]: common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(line(' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(line('+', b[j]));
            j += 1;
        } else {
            out.push(line('-', a[i]));
            i += 1;
        }
    }
    out
}

pub struct VersionRow {
    pub version: String,
    pub short: String,
    pub kind: String,
    pub loaded_at: super::page::When,
    pub href: String,
}

#[derive(Template)]
#[template(path = "console/policy_versions.html")]
struct VersionsPage {
    c: Chrome,
    name: String,
    rows: Vec<VersionRow>,
    /// The source shown, numbered.
    source: Vec<(usize, String)>,
    shown: Option<String>,
    diff: Vec<DiffLine>,
    diff_of: Option<(String, String)>,
    action: String,
    edit_href: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    show: Option<String>,
    a: Option<String>,
    b: Option<String>,
}

pub async fn versions_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(name): Path<String>,
    Query(q): Query<VersionsQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = format!("/support/policies/{}/versions", segment(&name));
    let store = app.store.clone();
    let (list_name, q_show, q_a, q_b) = (name.clone(), q.show.clone(), q.a.clone(), q.b.clone());
    let read = tokio::task::spawn_blocking(move || {
        let list = record::versions(&store, &list_name)?;
        let find = |version: &Option<String>| -> Result<Option<record::PolicyVersion>, crate::store::StoreError> {
            match version {
                Some(h) => record::version(&store, &list_name, h),
                None => Ok(None),
            }
        };
        Ok::<_, crate::store::StoreError>((list, find(&q_show)?, find(&q_a)?, find(&q_b)?))
    })
    .await;
    let (list, shown, a, b) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            return problem_page(&v, &path, "/support/policies", &Refusal::from(e).into())
        }
        Err(e) => {
            return problem_page(
                &v,
                &path,
                "/support/policies",
                &Problem::internal(e.to_string()),
            )
        }
    };
    let rows = list
        .into_iter()
        .map(|x| VersionRow {
            href: format!("{path}?show={}", encode_component(&x.version)),
            short: x.version.chars().take(12).collect(),
            version: x.version,
            kind: x.kind,
            loaded_at: super::page::When::new(v.t, x.loaded_at),
        })
        .collect();
    let source = shown
        .as_ref()
        .and_then(|s| s.source.as_deref())
        .map(|s| {
            s.lines()
                .enumerate()
                .map(|(n, l)| (n + 1, l.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let (diff, diff_of) = match (&a, &b) {
        (Some(a), Some(b)) => (
            line_diff(
                a.source.as_deref().unwrap_or(""),
                b.source.as_deref().unwrap_or(""),
            ),
            Some((
                a.version.chars().take(12).collect(),
                b.version.chars().take(12).collect(),
            )),
        ),
        _ => (Vec::new(), None),
    };
    let page = VersionsPage {
        c: Chrome::new(&v, &path, "workbench.versions", None),
        edit_href: format!("/support/policies/editor?name={}", encode_component(&name)),
        name,
        rows,
        source,
        shown: shown.map(|s| s.version),
        diff,
        diff_of,
        action: path,
    };
    render(&v, StatusCode::OK, &page)
}

pub struct Choice {
    pub id: u64,
    pub label: String,
}

#[derive(Template)]
#[template(path = "console/policy_editor.html")]
struct EditorPage {
    c: Chrome,
    name: String,
    source: String,
    choices: Vec<Choice>,
    save_enabled: bool,
    /// A check's verdict (ok, or the error with line and column).
    verdict: Option<String>,
    verdict_ok: bool,
    /// The draft with line numbers, after a check.
    listing: Vec<(usize, String)>,
    /// What the draft decided on the chosen event.
    tested: Option<String>,
    /// The replay's summary and its differing decisions.
    replayed: Option<String>,
    differences: Vec<String>,
    /// Before a save: what it changes in the enforced file (`+`/`-`
    /// lines), to confirm.
    save_diff: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditorQuery {
    name: Option<String>,
}

/// The newest recorded calls, for the test choice.
fn choices(app: &crate::app::App) -> Vec<Choice> {
    record::newest(&app.store, TEST_CHOICES_MAX)
        .unwrap_or_default()
        .into_iter()
        .map(|call| Choice {
            id: call.id,
            label: format!(
                "{} · {} · {} · {}",
                call.at.format("%Y-%m-%d %H:%M:%S"),
                call.hook,
                call.account_id.as_deref().unwrap_or("-"),
                call.decision
            ),
        })
        .collect()
}

fn editor(app: &crate::app::App, v: &Visitor, name: String, source: String) -> EditorPage {
    EditorPage {
        c: Chrome::new(v, "/support/policies/editor", "workbench.editor", None),
        name,
        source,
        choices: choices(app),
        save_enabled: app.policy_save,
        verdict: None,
        verdict_ok: false,
        listing: Vec::new(),
        tested: None,
        replayed: None,
        differences: Vec::new(),
        save_diff: None,
    }
}

/// The current source of a script, when it is in the scripts folder.
fn current_source(app: &crate::app::App, name: &str) -> Option<String> {
    valid_name(name).ok()?;
    std::fs::read_to_string(app.policies.scripts_dir().join(name)).ok()
}

/// A script name the editor may write: `x.rhai` or `shadow/x.rhai`, with
/// letters, digits, `-`, `_` and `.` only.
fn valid_name(name: &str) -> Result<(), &'static str> {
    let file = name.strip_prefix("shadow/").unwrap_or(name);
    let ok = file.ends_with(".rhai")
        && file.len() > 5
        && file.len() <= 100
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err("a script name is letters, digits, '-', '_' and '.', ending in .rhai (in shadow/ for a shadow script)")
    }
}

pub async fn editor_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(q): Query<EditorQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let name = q.name.unwrap_or_else(|| "draft.rhai".into());
    let source = current_source(&app, &name).unwrap_or_else(|| {
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) {\n}\n".into()
    });
    let page = tokio::task::block_in_place(|| editor(&app, &v, name, source));
    render(&v, StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct EditorForm {
    csrf: String,
    name: String,
    source: String,
    /// `check`, `test`, `replay` or `save`.
    op: String,
    #[serde(default)]
    record: Option<u64>,
    #[serde(default)]
    since: Option<String>,
    /// `yes` once support confirmed a save after seeing its diff.
    #[serde(default)]
    confirmed: String,
}

pub async fn editor_post(
    State(app): State<AppState>,
    v: Visitor,
    PageForm(f): PageForm<EditorForm>,
) -> Response {
    let back = "/support/policies/editor";
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    if !v.csrf_ok(&f.csrf) {
        return super::page::csrf_refused(&v, back);
    }
    if f.source.len() as u64 > app.policies.max_file_bytes() {
        return problem_page(
            &v,
            back,
            back,
            &Problem::bad_request(format!(
                "the draft is larger than {} bytes",
                app.policies.max_file_bytes()
            )),
        );
    }
    let app2 = app.clone();
    let v_t = v.t;
    let mut page =
        tokio::task::block_in_place(|| editor(&app2, &v, f.name.clone(), f.source.clone()));
    let compiled = app.policies.check_draft(&f.source);
    match &compiled {
        Ok(c) => {
            page.verdict_ok = true;
            page.verdict = Some(format!(
                "{}: {} ({})",
                v_t.s("workbench.loads"),
                c.hooks
                    .iter()
                    .map(|h| h.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.calls
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Err(e) => {
            page.verdict = Some(match (e.line, e.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", f.name, e.message),
                _ => e.message.clone(),
            });
        }
    }
    page.listing = f
        .source
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.to_string()))
        .collect();
    let Ok(compiled) = compiled else {
        return render(&v, StatusCode::OK, &page);
    };
    match f.op.as_str() {
        "test" => {
            let call = f
                .record
                .and_then(|id| record::by_id(&app.store, id).ok().flatten());
            page.tested = Some(match call {
                None => v_t.s("workbench.pick_event").to_string(),
                Some(call) => {
                    let hook = admind_plugin_api::Hook::from_name(&call.hook);
                    let event =
                        serde_json::from_value::<admind_plugin_api::Event>(call.event.clone());
                    match (hook, event) {
                        (Some(hook), Ok(event)) if compiled.hooks.contains(&hook) => {
                            // Off the async workers, and stopped with
                            // this request.
                            let stop = crate::policy::script::StopOnDrop::new();
                            let (policies, name, flag) =
                                (app.policies.clone(), f.name.clone(), stop.0.clone());
                            let compiled = compiled.clone();
                            let tried = tokio::task::spawn_blocking(move || {
                                policies.try_draft(&name, &compiled, hook, &event, Some(flag))
                            })
                            .await
                            .unwrap_or_else(|e| Err(format!("the test task failed: {e}")));
                            drop(stop);
                            match tried {
                                Ok(ctx) => format!(
                                    "{} → {}{} (recorded: {})",
                                    call.hook,
                                    match ctx.denied() {
                                        Some(r) if hook.may_veto() => format!("deny: {r}"),
                                        _ => "allow".into(),
                                    },
                                    if ctx.actions().is_empty() {
                                        String::new()
                                    } else {
                                        format!(
                                            " [{}]",
                                            ctx.actions()
                                                .iter()
                                                .map(record::describe)
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        )
                                    },
                                    call.decision
                                ),
                                Err(e) => format!("{}: {e}", v_t.s("workbench.failed")),
                            }
                        }
                        _ => v_t.s("workbench.not_handled").to_string(),
                    }
                }
            });
        }
        "replay" => {
            let since =
                crate::audit::parse_since(f.since.as_deref().unwrap_or("7d"), chrono::Utc::now())
                    .unwrap_or_else(|_| chrono::Utc::now() - chrono::Duration::days(7));
            let (store, policies, name, source) = (
                app.store.clone(),
                app.policies.clone(),
                f.name.clone(),
                f.source.clone(),
            );
            let stop = crate::policy::script::StopOnDrop::new();
            let stop_flag = stop.0.clone();
            let report = tokio::task::spawn_blocking(move || {
                policies.replay(
                    &crate::policy::replay::ReplayRequest {
                        name: &name,
                        source: &source,
                        hook: None,
                        since: Some(since),
                        account: None,
                        limit: crate::policy::replay::RECORDS_MAX,
                        stop: Some(stop_flag),
                    },
                    &store,
                )
            })
            .await;
            drop(stop);
            if let Ok(Ok(report)) = report {
                let table = crate::policy::replay::table(&report);
                let mut lines = table.lines();
                page.replayed = lines.next().map(str::to_string);
                page.differences = lines
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
            } else {
                page.replayed = Some(v_t.s("workbench.failed").to_string());
            }
        }
        "save" => {
            if !app.policy_save {
                return problem_page(
                    &v,
                    back,
                    back,
                    &Problem::new(
                        StatusCode::FORBIDDEN,
                        "policy_save_off",
                        "saving from the console is off ([console] policy_save)",
                    ),
                );
            }
            if let Err(why) = valid_name(&f.name) {
                return problem_page(&v, back, back, &Problem::bad_request(why));
            }
            let previous = current_source(&app, &f.name).unwrap_or_default();
            let diff: String = line_diff(&previous, &f.source)
                .into_iter()
                .filter(|l| l.sign != ' ')
                .map(|l| format!("{}{}\n", l.sign, l.text))
                .collect();
            // Overwriting the enforced file is not undone by a click:
            // show what changes, and save only once confirmed.
            if f.confirmed != "yes" {
                page.save_diff = Some(diff.lines().map(str::to_string).collect());
                return render(&v, StatusCode::OK, &page);
            }
            let dir = app.policies.scripts_dir().to_path_buf();
            let written =
                tokio::task::block_in_place(|| write_atomically(&dir, &f.name, &f.source));
            if let Err(e) = written {
                return problem_page(&v, back, back, &Problem::internal(format!("saving: {e}")));
            }
            // The file is saved (the watcher loads it); a save the audit
            // log missed must not pass for a recorded one.
            let recorded = app
                .submit(
                    crate::domain::Principal::Operator,
                    Command::RecordPolicySave(cmd::RecordPolicySave {
                        name: f.name.clone(),
                        diff,
                    }),
                )
                .await;
            if let Err(p) = recorded {
                tracing::error!(policy = %crate::logsafe::Clean(&f.name), error = %p.detail, "a policy was saved but recording the save failed");
                let mut p = p;
                p.detail = format!(
                    "{} was saved, but recording the save in the audit log failed: {}",
                    f.name, p.detail
                );
                return problem_page(&v, back, back, &p);
            }
            return see_other(&v.flash_url("/support/policies", "workbench.saved"));
        }
        _ => {}
    }
    render(&v, StatusCode::OK, &page)
}

/// Writes `name` in the scripts folder by writing a hidden temporary file
/// and renaming it over the old one, so the watcher never reads half a file.
fn write_atomically(dir: &std::path::Path, name: &str, source: &str) -> std::io::Result<()> {
    let target = dir.join(name);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("draft.rhai");
    let tmp = target.with_file_name(format!(".{file}.saving"));
    std::fs::write(&tmp, source)?;
    std::fs::rename(&tmp, &target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_keeps_common_lines_and_marks_the_rest() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
        let text: Vec<String> = d.iter().map(|l| format!("{}{}", l.sign, l.text)).collect();
        assert_eq!(text, vec![" a", "+x", "-b", " c", "+d"]);
    }

    #[test]
    fn only_plain_script_names_are_saved() {
        for ok in ["guard.rhai", "shadow/guard.rhai", "a-b_c.1.rhai"] {
            assert!(valid_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x.rhai",
            "x.txt",
            ".hidden.rhai",
            "a/b.rhai",
            "shadow/../x.rhai",
            ".rhai",
        ] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
