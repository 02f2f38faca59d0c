//! The read lane: the API's two most frequent reads, an account's owner
//! and the first page of its team (`GET /v1/accounts/{a}/owner` and
//! `GET /v1/accounts/{a}/members` with no query), answered without going
//! through axum's router.
//!
//! Why: a cached read's own work (the bearer check, the store's cache, the
//! JSON) is about a third of what a request costs the daemon; routing it
//! through axum adds about as much again: matching the path, copying its
//! parameters into the request's extensions (each percent-decoded into a
//! shared string), the matched route's extension, a boxed clone of the
//! route and of the frame around it, and the extractors reading them back
//! (BENCHMARKS.md, "The read lane"). The lane recognises the two paths by
//! their bytes and calls the same functions the routed handlers call, in
//! the same frame (request id, span, panic guard, metrics under the
//! router's route label), so the answer is the router's byte for byte.
//!
//! Anything it does not recognise exactly goes to the router: another
//! method (HEAD included), a query string (a later page, another page
//! size), a percent-encoded or malformed account id, a trailing slash.

use std::sync::Arc;

use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Response};

use super::api::{AppState, Authed};
use super::frame::Frame;
use crate::domain::validate::id_has_shape;

/// The lane in front of the router (built by `super::router`, beside it).
pub(crate) struct ReadLane {
    app: AppState,
    frame: Arc<Frame>,
}

/// A read the lane answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneRoute {
    Owner,
    Members,
}

impl LaneRoute {
    /// The router's template for the same route: its metrics label.
    fn label(self) -> &'static str {
        match self {
            LaneRoute::Owner => "/v1/accounts/{a}/owner",
            LaneRoute::Members => "/v1/accounts/{a}/members",
        }
    }
}

/// The prefix of both routes, up to the account id.
const ACCOUNTS: &str = "/v1/accounts/";

/// The route of a request the lane answers, and where its account id lies
/// in the path (a byte range), or `None` for the router's.
fn lane_route(method: &Method, uri: &Uri) -> Option<(LaneRoute, std::ops::Range<usize>)> {
    if method != Method::GET || uri.query().is_some() {
        return None;
    }
    let rest = uri.path().strip_prefix(ACCOUNTS)?;
    let (account, what) = rest.split_once('/')?;
    let route = match what {
        "owner" => LaneRoute::Owner,
        "members" => LaneRoute::Members,
        _ => return None,
    };
    // An id of the shape admind issues needs no percent-decoding; any
    // other (which the router refuses with 404 or 400) is left to it.
    id_has_shape("acc", account).then(|| (route, ACCOUNTS.len()..ACCOUNTS.len() + account.len()))
}

impl ReadLane {
    pub(super) fn new(app: AppState, frame: Arc<Frame>) -> ReadLane {
        ReadLane { app, frame }
    }

    /// The answer to `req` if it is one of the lane's reads; else the
    /// request back, untouched, for the router.
    pub(crate) fn answer<B>(&self, req: Request<B>) -> Lane<B> {
        let Some((route, account)) = lane_route(req.method(), req.uri()) else {
            return Lane::ForTheRouter(req);
        };
        Lane::Answered(self.frame.answer_now(req, route.label(), |req| {
            let a = &req.uri().path()[account];
            let answer = Authed::from_headers(req.headers(), &self.app).and_then(
                |Authed(who, _)| match route {
                    LaneRoute::Owner => super::ownership::owner_answer(&self.app, &who, a),
                    LaneRoute::Members => {
                        super::members::members_answer(&self.app, &who, a, None, None)
                    }
                },
            );
            answer.into_response()
        }))
    }
}

/// What the lane did with a request.
pub(crate) enum Lane<B> {
    Answered(Response),
    /// Not one of the lane's reads: the request as it came.
    ForTheRouter(Request<B>),
}

#[cfg(test)]
mod tests {
    use super::{lane_route, LaneRoute};
    use axum::http::{Method, Uri};

    const ACCOUNT: &str = "acc_0123456789abcdef0123";

    fn route(method: Method, uri: &str) -> Option<LaneRoute> {
        let uri: Uri = uri.parse().expect("a test URI");
        lane_route(&method, &uri).map(|(route, range)| {
            assert_eq!(&uri.path()[range], ACCOUNT, "the account id's range");
            route
        })
    }

    /// The lane takes exactly the two reads without a query, with an
    /// account id of the shape admind issues; the router takes the rest.
    #[test]
    fn r07_the_lane_takes_only_the_owner_and_first_team_page_reads() {
        let owner = format!("/v1/accounts/{ACCOUNT}/owner");
        let members = format!("/v1/accounts/{ACCOUNT}/members");
        assert_eq!(route(Method::GET, &owner), Some(LaneRoute::Owner));
        assert_eq!(route(Method::GET, &members), Some(LaneRoute::Members));
        assert_eq!(
            route(Method::GET, &format!("http://admind.test{owner}")),
            Some(LaneRoute::Owner)
        );
        for (method, uri) in [
            (Method::HEAD, owner.clone()),
            (Method::PUT, owner.clone()),
            (Method::POST, members.clone()),
            (Method::GET, format!("{members}?limit=5")),
            (Method::GET, format!("{members}?")),
            (Method::GET, format!("{owner}/")),
            (Method::GET, format!("{members}/x")),
            (Method::GET, format!("/v1/accounts/{ACCOUNT}/integrations")),
            (Method::GET, format!("/v1/accounts/{ACCOUNT}")),
            (Method::GET, "/v1/accounts/acc_%30123/owner".to_string()),
            (Method::GET, "/v1/accounts/acc_XYZ/owner".to_string()),
            (Method::GET, "/v1/accounts//owner".to_string()),
            (Method::GET, format!("/v2/accounts/{ACCOUNT}/owner")),
            (Method::GET, format!("/a/{ACCOUNT}/members")),
        ] {
            assert_eq!(route(method.clone(), &uri), None, "{method} {uri}");
        }
    }
}
