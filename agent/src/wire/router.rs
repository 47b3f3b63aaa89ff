//! Routes: method + path pattern under `/v1/` + the roles allowed, to a
//! handler.
//!
//! Patterns are literal segments, `:name` captures one segment and a final
//! `*name` captures the rest (`/v1/job/:id`, `/v1/client/fs/:alloc/*path`).
//! A path that matches no pattern gets 4.04; a pattern matched with the
//! wrong method gets 4.05; a peer whose role is not allowed gets 4.03.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::identity::Role;
use super::request::{Method, Request};
use super::response::{ApiError, Response};

/// What a handler's future yields.
pub type HandlerResult = Result<Response, ApiError>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// Serves one route. Any `Fn(Request) -> impl Future<Output = HandlerResult>`
/// is a handler.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, req: Request) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, req: Request) -> HandlerFuture {
        Box::pin(self(req))
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// Servers only (Raft, workers, forwarding).
    pub const SERVER: Roles = Roles(1);
    /// Client agents.
    pub const CLIENT: Roles = Roles(2);
    /// The CLI.
    pub const CLI: Roles = Roles(4);
    /// Anyone with a certificate of the region.
    pub const ANY: Roles = Roles(7);

    /// Whether `role` is in the set.
    pub fn allows(self, role: Role) -> bool {
        let bit = match role {
            Role::Server => Roles::SERVER,
            Role::Client => Roles::CLIENT,
            Role::Cli => Roles::CLI,
        };
        self.0 & bit.0 != 0
    }
}

impl std::ops::BitOr for Roles {
    type Output = Roles;
    fn bitor(self, rhs: Roles) -> Roles {
        Roles(self.0 | rhs.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

pub(crate) struct Route {
    method: Method,
    pattern: Vec<Segment>,
    roles: Roles,
    /// Whether `Observe: 0` turns this route into a stream of notifications.
    pub observable: bool,
    pub handler: Arc<dyn Handler>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("pattern", &self.pattern)
            .field("roles", &self.roles)
            .field("observable", &self.observable)
            .finish()
    }
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// The outcome of routing a request.
pub(crate) enum Found<'r> {
    Route(&'r Route, Vec<(String, String)>),
    Error(ApiError),
}

impl Router {
    /// An empty table.
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route.
    ///
    /// # Panics
    ///
    /// When the pattern does not start with `/v1/` or has a `*rest`
    /// segment that is not last: routes are fixed in code, so this is a
    /// programming error found the first time the agent starts.
    pub fn route(
        &mut self,
        method: Method,
        pattern: &str,
        roles: Roles,
        handler: impl Handler,
    ) -> &mut Router {
        self.add(method, pattern, roles, false, Arc::new(handler))
    }

    /// Adds a GET route that clients may also observe (RFC 7641): the
    /// handler is then re-run as a blocking query with
    /// [`Request::min_index`] set to the last index sent, and must wait
    /// until the state passes it (or a deadline of its own) before
    /// answering. `min_index` 0 means "answer at once"; indexes start at 1.
    pub fn observable(
        &mut self,
        pattern: &str,
        roles: Roles,
        handler: impl Handler,
    ) -> &mut Router {
        self.add(Method::Get, pattern, roles, true, Arc::new(handler))
    }

    fn add(
        &mut self,
        method: Method,
        pattern: &str,
        roles: Roles,
        observable: bool,
        handler: Arc<dyn Handler>,
    ) -> &mut Router {
        assert!(
            pattern.starts_with("/v1/"),
            "route pattern {pattern:?} must start with /v1/"
        );
        let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let seg = if let Some(name) = p.strip_prefix(':') {
                Segment::Param(name.to_owned())
            } else if let Some(name) = p.strip_prefix('*') {
                assert!(
                    i + 1 == parts.len(),
                    "route pattern {pattern:?}: *{name} must be the last segment"
                );
                Segment::Rest(name.to_owned())
            } else {
                Segment::Literal((*p).to_owned())
            };
            segs.push(seg);
        }
        self.routes.push(Route {
            method,
            pattern: segs,
            roles,
            observable,
            handler,
        });
        self
    }

    /// Finds the route for a request and checks the peer's role.
    pub(crate) fn find(&self, method: Method, path: &[String], role: Role) -> Found<'_> {
        let mut path_matched = false;
        for route in &self.routes {
            let Some(params) = match_pattern(&route.pattern, path) else {
                continue;
            };
            path_matched = true;
            if route.method != method {
                continue;
            }
            if !route.roles.allows(role) {
                return Found::Error(ApiError::forbidden(format!(
                    "a {role} certificate may not {method:?} /{}",
                    path.join("/")
                )));
            }
            return Found::Route(route, params);
        }
        let path = path.join("/");
        Found::Error(if path_matched {
            ApiError::new(
                coap_lite::ResponseType::MethodNotAllowed,
                format!("{method:?} is not allowed on /{path}"),
            )
        } else {
            ApiError::not_found(format!("no resource at /{path}"))
        })
    }
}

fn match_pattern(pattern: &[Segment], path: &[String]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut i = 0;
    for seg in pattern {
        match seg {
            Segment::Literal(l) => {
                if path.get(i)? != l {
                    return None;
                }
            }
            Segment::Param(name) => {
                params.push((name.clone(), path.get(i)?.clone()));
            }
            Segment::Rest(name) => {
                let rest = path.get(i..).unwrap_or(&[]).join("/");
                params.push((name.clone(), rest));
                return Some(params);
            }
        }
        i += 1;
    }
    (i == path.len()).then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    }

    async fn ok(_req: Request) -> HandlerResult {
        Ok(Response::empty(coap_lite::ResponseType::Content))
    }

    fn router() -> Router {
        let mut r = Router::new();
        r.route(Method::Get, "/v1/jobs", Roles::ANY, ok)
            .route(Method::Get, "/v1/job/:id", Roles::CLI | Roles::SERVER, ok)
            .route(Method::Delete, "/v1/job/:id", Roles::CLI, ok)
            .route(Method::Get, "/v1/fs/:alloc/*path", Roles::ANY, ok)
            .observable("/v1/node/:id/allocs", Roles::CLIENT, ok);
        r
    }

    fn code(f: Found<'_>) -> Option<coap_lite::ResponseType> {
        match f {
            Found::Route(..) => None,
            Found::Error(e) => Some(e.code),
        }
    }

    #[test]
    fn routes_match_params_methods_and_roles() {
        use coap_lite::ResponseType as R;
        let r = router();
        match r.find(Method::Get, &p("/v1/job/web"), Role::Cli) {
            Found::Route(route, params) => {
                assert!(!route.observable);
                assert_eq!(params, [("id".into(), "web".into())]);
            }
            Found::Error(e) => panic!("{e}"),
        }
        match r.find(Method::Get, &p("/v1/fs/a1/logs/web.stdout"), Role::Client) {
            Found::Route(_, params) => {
                assert_eq!(params[1], ("path".into(), "logs/web.stdout".into()));
            }
            Found::Error(e) => panic!("{e}"),
        }
        assert_eq!(
            code(r.find(Method::Get, &p("/v1/job/web"), Role::Client)),
            Some(R::Forbidden)
        );
        assert_eq!(
            code(r.find(Method::Put, &p("/v1/job/web"), Role::Cli)),
            Some(R::MethodNotAllowed)
        );
        assert_eq!(
            code(r.find(Method::Get, &p("/v1/job"), Role::Cli)),
            Some(R::NotFound)
        );
        assert_eq!(
            code(r.find(Method::Get, &p("/v1/jobs/x"), Role::Cli)),
            Some(R::NotFound)
        );
        assert_eq!(
            code(r.find(Method::Get, &p("/v1/node/n1/allocs"), Role::Client)),
            None
        );
    }

    #[test]
    #[should_panic(expected = "must start with /v1/")]
    fn patterns_outside_v1_are_a_programming_error() {
        Router::new().route(Method::Get, "/jobs", Roles::ANY, ok);
    }
}
