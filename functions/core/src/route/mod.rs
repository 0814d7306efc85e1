//! Routes: the API's own operations, each forwarded to its backend with its
//! own policy and breaker group.
//!
//! Why: a payment or order API has many operations on more than one
//! backend, with different deadlines, and its clients should keep calling
//! the paths they already call. One slow backend must not switch the other
//! backends' routes to async, so each route names a breaker group (by
//! default, one per backend origin).
//!
//! The table is data the engine is given (`ROUTES_FILE`, see [`file`]);
//! without a file it holds one route, `POST /requests` to `BACKEND_URL`,
//! which is the gateway as it always was. Matching is by method and path
//! segments; a `{name}` segment matches any one non-empty segment, and the
//! file is refused at start if two routes of one method could match the
//! same path, so the first match is the only one.

mod file;

use std::sync::Arc;

use crate::config::Policy;
use crate::lane::Lane;
use crate::ports::{Backend, BackendError, BackendRequest, BackendResponse};
use crate::ticket::{CapturedRequest, TicketId};

pub use file::RouteError;

/// The route used without a routes file.
pub const DEFAULT_ROUTE: &str = "requests";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One operation of the API.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Upper case: `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// As written in the file, e.g. `/payments/{id}/refunds`.
    pub path: String,
    segments: Vec<Segment>,
    /// The backend URL, with `{name}` where a path parameter goes.
    pub backend: String,
    /// The breaker this route's calls count in (and are judged by).
    pub group: String,
    /// The route's policy: the global one with the route's overrides.
    pub policy: Arc<Policy>,
    /// Request headers forwarded to the backend (lower case).
    pub forward_headers: Vec<String>,
    /// Response headers returned to the client (lower case).
    pub response_headers: Vec<String>,
    /// Accepted media types of the body (lower case, no parameters).
    pub content_types: Vec<String>,
    /// Never fails over: 503 with `Retry-After` instead of a ticket.
    pub sync_only: bool,
    /// The lane of its requests that no `PRIORITY_RULES` rule places.
    pub lane: Lane,
}

/// Whether a path parameter stays one segment of the backend's path once
/// put in its URL. URL parsers resolve `.` and `..` (also written `%2e`)
/// and read `\\` as `/`, `?` and `#` as the end of the path: a client could
/// otherwise send `/orders/..` to reach another path of the backend than
/// its route names.
fn is_one_segment(value: &str) -> bool {
    let dots = value.to_ascii_lowercase().replace("%2e", ".");
    !value.is_empty() && dots != "." && dots != ".." && !value.contains(['\\', '?', '#'])
}

/// Whether a request has a body to check and forward: any non-empty one,
/// and always for the methods that send one (an empty POST is still a
/// body, of the wrong kind if the route takes JSON).
pub fn has_body(method: &str, body: &[u8]) -> bool {
    !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")
}

/// What a request's method and path found.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found {
        route: &'a Arc<Route>,
        /// Path parameters, by name, as they came (percent-encoded).
        params: Vec<(String, String)>,
    },
    /// The path exists with these other methods (405, `Allow`).
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// The gateway's routes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

impl Route {
    /// A route that only matches (for checks on a pattern).
    fn probe(segments: Vec<Segment>) -> Route {
        Route {
            name: String::new(),
            method: String::new(),
            path: String::new(),
            segments,
            backend: String::new(),
            group: String::new(),
            policy: Arc::new(Policy::default()),
            forward_headers: Vec::new(),
            response_headers: Vec::new(),
            content_types: Vec::new(),
            sync_only: false,
            lane: Lane::Normal,
        }
    }

    fn matches(&self, path: &[&str]) -> Option<Vec<(String, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, got) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == got => {}
                Segment::Param(name) if is_one_segment(got) => {
                    params.push((name.clone(), got.to_string()));
                }
                _ => return None,
            }
        }
        Some(params)
    }

    /// The backend URL for these path parameters and query string: each
    /// parameter goes in as it came (one path segment, still
    /// percent-encoded), the query string is appended unchanged.
    pub fn backend_url(&self, params: &[(String, String)], query: Option<&str>) -> String {
        let mut url = self.backend.clone();
        for (name, value) in params {
            url = url.replace(&format!("{{{name}}}"), value);
        }
        match query.filter(|q| !q.is_empty()) {
            Some(q) if url.contains('?') => format!("{url}&{q}"),
            Some(q) => format!("{url}?{q}"),
            None => url,
        }
    }

    /// Whether a body of this `Content-Type` may be sent on this route
    /// (`application/json` in the list also takes `application/*+json`).
    pub fn accepts(&self, content_type: &str) -> bool {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let json_family = media.starts_with("application/") && media.ends_with("+json");
        self.content_types
            .iter()
            .any(|t| *t == media || (json_family && t == "application/json"))
    }
}

impl RouteTable {
    /// The gateway without a routes file: `POST /requests` to `backend`.
    pub fn single(backend: &str, policy: Arc<Policy>) -> Result<Self, RouteError> {
        let spec = format!(
            "[[route]]\nname = \"{DEFAULT_ROUTE}\"\nmethod = \"POST\"\npath = \"/requests\"\nbackend = {}\n",
            toml_string(backend)
        );
        Self::parse(&spec, "BACKEND_URL", &policy)
    }

    /// The routes of a routes file (`name` is how errors refer to it).
    pub fn parse(text: &str, name: &str, base: &Policy) -> Result<Self, RouteError> {
        file::parse(text, name, base).map(|routes| Self {
            routes: routes.into_iter().map(Arc::new).collect(),
        })
    }

    /// Whether this is the gateway without a routes file.
    pub fn is_default(&self) -> bool {
        matches!(self.routes.as_slice(), [only] if only.name == DEFAULT_ROUTE)
    }

    /// A breaker group as metrics, logs and the health store name it:
    /// nothing without a routes file (the names of before routes).
    pub fn group_label<'a>(&self, group: &'a str) -> &'a str {
        if self.is_default() {
            ""
        } else {
            group
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The route for a request, if any.
    pub fn find(&self, method: &str, path: &str) -> Lookup<'_> {
        let got = segments(path);
        let mut allowed = Vec::new();
        for route in &self.routes {
            if let Some(params) = route.matches(&got) {
                if route.method.eq_ignore_ascii_case(method) {
                    return Lookup::Found { route, params };
                }
                allowed.push(route.method.clone());
            }
        }
        match allowed.is_empty() {
            true => Lookup::NotFound,
            false => Lookup::MethodNotAllowed(allowed),
        }
    }

    /// The breaker group of the route named `name` (empty if it is gone).
    pub fn group_of(&self, name: &str) -> &str {
        self.by_name(name).map_or("", |r| r.group.as_str())
    }

    /// The breaker groups, each once, in the order the routes name them.
    pub fn groups(&self) -> Vec<(&str, &Arc<Policy>)> {
        let mut groups: Vec<(&str, &Arc<Policy>)> = Vec::new();
        for r in &self.routes {
            if !groups.iter().any(|(g, _)| *g == r.group) {
                groups.push((&r.group, &r.policy));
            }
        }
        groups
    }
}

/// Calls the backend for a captured request: its route's method and URL as
/// configured now, its forwarded headers and its exact bytes.
pub async fn call(
    backend: &dyn Backend,
    routes: &RouteTable,
    ticket_id: &TicketId,
    req: &CapturedRequest,
    trace: Option<&crate::trace::TraceContext>,
) -> Result<BackendResponse, BackendError> {
    let route = routes
        .by_name(&req.route)
        .ok_or_else(|| BackendError(format!("no route {:?} is configured", req.route)))?;
    let url = route.backend_url(&req.params, req.query.as_deref());
    let request = BackendRequest {
        ticket_id,
        request_id: &req.request_id,
        method: &route.method,
        url: &url,
        headers: &req.headers,
        body: &req.body,
        content_type: &req.content_type,
        trace,
        response_headers: &route.response_headers,
    };
    let mut answer = backend.call(request).await?;
    answer
        .headers
        .retain(|(name, _)| route.response_headers.contains(&name.to_ascii_lowercase()));
    Ok(answer)
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests;
