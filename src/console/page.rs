//! What every console page shares: the chrome around its content, how a
//! refusal reads, rendering with the CSRF cookie, redirects. Imports no
//! page module (the pages import it).

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::Catalogue;
use super::visitor::Visitor;
use crate::app::problem::Problem;

/// A path on this site to go back to (never another site): printable
/// ASCII only, so no tab or newline a browser would drop to read `/\t/x`
/// as `//x` (another host), and no byte a `Location` header cannot carry;
/// no backslash, no `//` start. Anything else goes to `/`.
pub fn local_path(back: Option<&str>) -> &str {
    match back {
        Some(b)
            if b.starts_with('/')
                && !b.starts_with("//")
                && b.len() <= 2048
                && b.bytes().all(|c| c.is_ascii_graphic() && c != b'\\') =>
        {
            b
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::{local_path, policy_reason};

    #[test]
    fn a_policy_refusal_reads_as_its_reason() {
        assert_eq!(
            policy_reason("policy owner_change_guard.rhai (version ac6d8563ebffa3a0, 69 us) denied: the new owner must have signed in at least once"),
            "the new owner must have signed in at least once"
        );
        assert_eq!(
            policy_reason("policy p (version v, 1 us) denied: no; not carried out (before_ hooks decide, they do not act): notify"),
            "no"
        );
        assert_eq!(policy_reason("something else"), "something else");
    }

    #[test]
    fn local_path_never_leads_to_another_site_nor_breaks_the_header() {
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/ /evil.example",
            "/\u{0}",
            "/caf\u{e9}",
            "evil",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(
            local_path(Some("/a/acc_1/team?page=2")),
            "/a/acc_1/team?page=2"
        );
    }
}

pub(crate) fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A console path under an account, built in one place: `at(a, ["members",
/// u, "role"])` is `/a/{a}/members/{u}/role`, each segment percent-encoded
/// (ids come from the address bar, a `/` in one must not become a path).
pub fn at<const N: usize>(account_id: &str, segments: [&str; N]) -> String {
    let mut path = String::with_capacity(8 + account_id.len() + 12 * N);
    path.push_str("/a/");
    push_segment(&mut path, account_id);
    for segment in segments {
        path.push('/');
        push_segment(&mut path, segment);
    }
    path
}

fn push_segment(path: &mut String, segment: &str) {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
    // Ids and page names, nearly always: copied whole.
    if segment.bytes().all(unreserved) {
        path.push_str(segment);
        return;
    }
    for b in segment.bytes() {
        if unreserved(b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A value escaped for HTML as the page is written
/// ([`crate::console::i18n::write_html`]): a team row's name, address and
/// role, written once each, so not worth an [`Escaped`] copy.
pub struct Text<'a>(pub &'a str);

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::console::i18n::write_html(f, self.0)
    }
}

impl askama::filters::HtmlSafe for Text<'_> {}

impl askama::FastWritable for Text<'_> {
    fn write_into(
        &self,
        dest: &mut dyn std::fmt::Write,
        _: &dyn askama::Values,
    ) -> askama::Result<()> {
        Ok(crate::console::i18n::write_html(dest, self.0)?)
    }
}

/// Text escaped for HTML once, when the page is built, for a value a
/// template writes many times: the CSRF token of every form, the account's
/// path and each member's id in every row's forms. askama writes it as it
/// is (`HtmlSafe`) instead of escaping it at each use.
pub struct Escaped(String);

impl Escaped {
    pub fn new(text: &str) -> Escaped {
        Escaped(crate::console::i18n::escape_html(text))
    }
}

impl std::fmt::Display for Escaped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Escaped {}

/// Written straight into the page, not through `core::fmt`.
impl askama::FastWritable for Escaped {
    fn write_into(
        &self,
        dest: &mut dyn std::fmt::Write,
        _: &dyn askama::Values,
    ) -> askama::Result<()> {
        Ok(dest.write_str(&self.0)?)
    }
}

/// A moment on a page: `<time datetime="{{ iso }}">{{ text }}</time>`,
/// the text in the page's language and UTC, which the console's script
/// rewrites in the reader's own time zone.
pub struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn new(t: &Catalogue, at: chrono::DateTime<chrono::Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            text: t.when(at),
        }
    }

    /// A day (`<time data-day>`): the script shows the date only.
    pub fn day(t: &Catalogue, at: chrono::DateTime<chrono::Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            text: t.day(at),
        }
    }
}

/// A link of the navigation.
pub struct NavLink {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// What every page shows around its content.
pub struct Chrome {
    pub t: &'static Catalogue,
    pub title: String,
    pub csrf: Escaped,
    pub nav: Vec<NavLink>,
    pub signed_in: bool,
    pub lang_href: String,
    pub flash: Option<String>,
    /// A refusal brought back to the page of the control that caused it
    /// (`?done=error.<code>` after a post).
    pub alert: Option<String>,
}

impl Chrome {
    /// The chrome of a page at `path` titled by catalogue key `title`.
    pub fn new(v: &Visitor, path: &str, title: &str, flash: Option<&str>) -> Chrome {
        let t = v.t;
        let nav = match (&v.who, v.account_id()) {
            (Some(_), Some(a)) => account_nav(t, a, path, v.user_id(), v.powers),
            (Some(crate::domain::Principal::Operator), _) => [
                ("/support/accounts", "nav.accounts"),
                ("/support/licences", "nav.licences"),
                ("/support/cases", "nav.cases"),
                ("/support/deliveries", "nav.deliveries"),
                ("/support/policies", "nav.policies"),
            ]
            .into_iter()
            .map(|(href, key)| NavLink {
                current: path.starts_with(href),
                href: href.into(),
                label: t.s(key),
            })
            .collect(),
            _ => Vec::new(),
        };
        Chrome {
            t,
            title: t.s(title).to_string(),
            csrf: Escaped::new(&v.csrf),
            nav,
            signed_in: v.who.is_some(),
            lang_href: format!("/lang/{}?back={}", t.other_lang, encode_component(path)),
            // Only messages of the catalogue, and only those this daemon's
            // own redirect signed for this page (never text from a URL,
            // nor a message from a link someone crafted).
            flash: flash
                .and_then(|done| v.flash_key(done))
                .filter(|key| t.has(key) && !key.starts_with("error."))
                .map(|key| t.s(key).to_string()),
            alert: flash
                .and_then(|done| v.flash_key(done))
                .filter(|key| t.has(key) && key.starts_with("error."))
                .map(|key| t.s(key).to_string()),
        }
    }
}

/// The account's pages a member may use: a link that could only refuse is
/// not offered (billing and licence requests are the owner's, the team,
/// integrations and the audit log admins', the owner page agents').
fn account_nav(
    t: &'static Catalogue,
    a: &str,
    path: &str,
    me: Option<&str>,
    p: super::visitor::Powers,
) -> Vec<NavLink> {
    // Another member's page belongs to the team (it is reached from the
    // list); "Profile" is the visitor's own.
    let profiles = at(a, ["profile"]);
    let someone_elses = path.starts_with(&profiles)
        && me.is_some_and(|me| path != at(a, ["profile", me]))
        && path != profiles;
    [
        ("members", "nav.members", p.admin),
        ("owner", "nav.owner", p.agent),
        ("billing", "nav.billing", p.owner),
        ("integrations", "nav.integrations", p.admin),
        ("directory", "nav.directory", p.admin),
        ("profile", "nav.profile", true),
        ("sell", "nav.sell", p.admin || p.sell),
        ("licences", "nav.licences", p.owner),
        ("audit", "nav.audit", p.admin),
        ("support", "nav.support", p.admin),
        ("settings", "nav.settings", p.admin),
    ]
    .into_iter()
    .filter(|(_, _, shown)| *shown)
    .map(|(page, key, _)| {
        let href = at(a, [page]);
        NavLink {
            current: match page {
                "members" => path.starts_with(&href) || someone_elses,
                "profile" => path.starts_with(&href) && !someone_elses,
                _ => path.starts_with(&href),
            },
            href,
            label: t.s(key),
        }
    })
    .collect()
}

/// A refusal or error as a person reads it, next to what caused it.
pub struct ErrorView {
    pub code: String,
    pub summary: String,
    pub detail: String,
}

/// The reason in a `policy_denied` detail ("policy P (version V, N us)
/// denied: REASON[; not carried out …]"); the whole detail when it has
/// another shape.
fn policy_reason(detail: &str) -> &str {
    let reason = detail
        .split_once(" denied: ")
        .map_or(detail, |(_, reason)| reason);
    reason
        .split_once("; not carried out")
        .map_or(reason, |(reason, _)| reason)
}

impl ErrorView {
    pub fn from_problem(t: &Catalogue, p: &Problem) -> ErrorView {
        // A refusal with figures (seats used of total) says them in the
        // page's language.
        let with_figures = format!("error.{}.figures", p.code);
        let figures: Vec<(&str, &str)> = p
            .figures()
            .iter()
            .filter(|(k, _)| !k.starts_with("reason_"))
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let summary = if !figures.is_empty() && t.has(&with_figures) {
            t.fill(&with_figures, &figures)
        } else {
            t.refusal(&p.code)
                .map(str::to_string)
                .unwrap_or_else(|| t.s("problem.heading").to_string())
        };
        // The server's own words add what the summary cannot know (a
        // policy's reason, which field was wrong); a summary that says it
        // all keeps the page short. They are English: a page in another
        // language shows its own summary only (and a policy's reason,
        // which is the policy author's).
        let detail = match p.code.as_str() {
            // The policy's reason, not its version and timing (those are
            // in the audit log, for whoever investigates).
            "policy_denied" => {
                let translated = format!("reason_{}", t.lang);
                p.figures()
                    .iter()
                    .find(|(name, _)| *name == translated)
                    .map_or_else(
                        || policy_reason(&p.detail).to_string(),
                        |(_, text)| text.clone(),
                    )
            }
            "invalid_credentials"
            | "invalid_token"
            | "csrf_failed"
            | "not_found"
            | "unauthorized" => String::new(),
            _ if summary != t.s("problem.heading") && (t.lang != "en" || !figures.is_empty()) => {
                String::new()
            }
            _ => p.detail.clone(),
        };
        ErrorView {
            code: p.code.clone(),
            summary,
            detail,
        }
    }

    pub fn csrf(t: &Catalogue) -> ErrorView {
        ErrorView {
            code: "csrf_failed".into(),
            summary: t.s("error.csrf_failed").to_string(),
            detail: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    c: Chrome,
    error: Option<ErrorView>,
    back: String,
}

/// Renders a page with its status; sets the CSRF cookie when the visitor
/// had none.
pub fn render<T: Template>(v: &Visitor, status: StatusCode, page: &T) -> Response {
    // The page is written into a buffer the size of the last page rendered
    // (askama's own guess is the template's size, far below a page of
    // rows: the buffer then grew and was copied half a dozen times).
    static LAST_PAGE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    const PAGE_BUFFER_MAX_BYTES: usize = 256 * 1024;
    let hint = LAST_PAGE_BYTES
        .load(std::sync::atomic::Ordering::Relaxed)
        .clamp(T::SIZE_HINT, PAGE_BUFFER_MAX_BYTES.max(T::SIZE_HINT));
    let mut html = String::with_capacity(hint + hint / 8);
    let rendered = page.render_into(&mut html).map(|()| {
        LAST_PAGE_BYTES.store(html.len(), std::sync::atomic::Ordering::Relaxed);
        html
    });
    let mut response = match rendered {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            Problem::internal("the page could not be rendered").into_response()
        }
    };
    if v.new_csrf {
        set_cookie(&mut response, &v.csrf_set_cookie);
    }
    response
}

/// A page saying what went wrong, with the status of the problem.
pub fn problem_page(v: &Visitor, path: &str, back: &str, p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    let page = ProblemPage {
        c: Chrome::new(v, path, "problem.heading", None),
        error: Some(ErrorView::from_problem(v.t, p)),
        back: back.to_string(),
    };
    render(v, status, &page)
}

/// 403 for a post whose CSRF token or origin is wrong; nothing ran.
pub fn csrf_refused(v: &Visitor, path: &str) -> Response {
    let page = ProblemPage {
        c: Chrome::new(v, path, "problem.heading", None),
        error: Some(ErrorView::csrf(v.t)),
        back: path.to_string(),
    };
    render(v, StatusCode::FORBIDDEN, &page)
}

/// 303 to `to` (after a post: the browser then gets the page).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A posted form whose rejection (not form-encoded, a number that is not
/// one) is a problem with its `code`, never axum's plain text.
pub struct PageForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for PageForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(PageForm(value)),
            Err(rejection) => Err(Problem::bad_request(format!(
                "the form is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

#[cfg(test)]
mod link_tests {
    use super::at;

    #[test]
    fn account_paths_encode_each_segment() {
        assert_eq!(at("acc_1", []), "/a/acc_1");
        assert_eq!(
            at("acc_1", ["members", "usr_2", "role"]),
            "/a/acc_1/members/usr_2/role"
        );
        // An id from the address bar cannot add a path segment or a query.
        assert_eq!(
            at("acc/1", ["profile", "u?x=1"]),
            "/a/acc%2F1/profile/u%3Fx%3D1"
        );
    }
}
