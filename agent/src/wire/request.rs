//! A request as a handler sees it, and how one is read from a frame.

use std::sync::Arc;

use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use minicbor::{Decode, Encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::frame::Frame;
use super::identity::{Fingerprint, Peer, Role};
use super::options::{is_critical, is_known_request_option};
use super::response::{ApiError, CBOR, JSON, Response, decode_body};

/// A request method (GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH).
pub type Method = RequestType;

/// A request, parsed and authenticated.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path segments (`["v1", "job", "web"]`).
    pub path: Vec<String>,
    /// Named segments captured by the route pattern (`id` => `web`).
    pub params: Vec<(String, String)>,
    /// Query pairs, in order (`index=5` => `("index", "5")`; a bare `stale`
    /// has an empty value).
    pub query: Vec<(String, String)>,
    /// Content-Format of the body, if given.
    pub content_format: Option<u16>,
    /// Accept, if given.
    pub accept: Option<u16>,
    /// The body.
    pub body: Vec<u8>,
    /// Who sent it.
    pub peer: Arc<Peer>,
    /// For blocking queries: answer once the state index is above this
    /// (from `?index=N`, or the last index an observation sent). 0 means
    /// answer at once.
    pub min_index: u64,
    /// Whether this call serves an observation (`Observe: 0`).
    pub observe: bool,
}

impl Request {
    /// A captured path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path as a string, `/v1/job/web`.
    pub fn path_str(&self) -> String {
        format!("/{}", self.path.join("/"))
    }

    /// Whether the client asked for JSON (`Accept: 50`).
    pub fn wants_json(&self) -> bool {
        self.accept == Some(JSON)
    }

    /// Decodes the body: CBOR through the bounded
    /// [`wren_model::codec::from_cbor`], or JSON when the Content-Format
    /// says so. Errors become 4.00 with the decoder's message.
    pub fn decode<T>(&self) -> Result<T, ApiError>
    where
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("request body is empty"));
        }
        Ok(decode_body(&self.body, self.content_format)?)
    }

    /// Answers 2.05 Content with `value`, in the encoding the client asked for.
    pub fn reply<T: Encode<()> + Serialize>(&self, value: &T) -> Response {
        Response::value(ResponseType::Content, value, self.wants_json())
    }

    /// For routes on one node's resources: servers and the CLI pass; a
    /// client agent passes only with the certificate its node registered
    /// with (`node_cert`, `None` when the node is not known yet), so a
    /// client can read and write its own node's resources and no others.
    pub fn check_node_owner(&self, node_cert: Option<&Fingerprint>) -> Result<(), ApiError> {
        if self.peer.role != Role::Client || node_cert == Some(&self.peer.fingerprint) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "client certificate {} does not belong to this node",
            self.peer.fingerprint
        )))
    }

    /// Answers with `value` and any code.
    pub fn reply_with<T: Encode<()> + Serialize>(&self, code: ResponseType, value: &T) -> Response {
        Response::value(code, value, self.wants_json())
    }
}

/// What a request frame says, before routing.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub content_format: Option<u16>,
    pub accept: Option<u16>,
    pub observe: Option<u64>,
    pub min_index: u64,
}

/// Reads a request frame; an error is the response to send instead. The
/// second value says whether JSON was asked for, so even the error is in
/// the client's encoding.
pub(crate) fn parse(f: &Frame) -> Result<Parsed, (ApiError, bool)> {
    let accept = f.options.get_uint(CoapOption::Accept).ok().flatten();
    let json = accept == Some(u64::from(JSON));
    let err = |e: ApiError| (e, json);
    let method = match MessageClass::from(f.code) {
        MessageClass::Request(m) if m != RequestType::UnKnown => m,
        _ => {
            return Err(err(ApiError::new(
                ResponseType::MethodNotAllowed,
                format!("unknown method code 0.{:02}", f.code & 0x1F),
            )));
        }
    };
    for o in f.options.iter() {
        if is_critical(o.number) && !is_known_request_option(o.number) {
            return Err(err(ApiError::new(
                ResponseType::BadOption,
                format!("unsupported critical option {}", o.number),
            )));
        }
    }
    let uint = |opt: CoapOption| {
        f.options
            .get_uint(opt)
            .map_err(|e| err(ApiError::new(ResponseType::BadOption, e.to_string())))
    };
    let accept = uint(CoapOption::Accept)?;
    let accept = match accept {
        None => None,
        Some(a) if a == u64::from(JSON) || a == u64::from(CBOR) => Some(a as u16),
        Some(a) => {
            return Err(err(ApiError::new(
                ResponseType::NotAcceptable,
                format!("cannot answer in content format {a}; use 60 (cbor) or 50 (json)"),
            )));
        }
    };
    let content_format = match uint(CoapOption::ContentFormat)? {
        None => None,
        Some(c) if c == u64::from(JSON) || c == u64::from(CBOR) => Some(c as u16),
        Some(c) => {
            return Err(err(ApiError::new(
                ResponseType::UnsupportedContentFormat,
                format!("content format {c} is not supported; send 60 (cbor) or 50 (json)"),
            )));
        }
    };
    if let Some(block2) = uint(CoapOption::Block2)?
        && block2 >> 4 != 0
    {
        return Err(err(ApiError::new(
            ResponseType::BadOption,
            "block-wise transfer is not supported; responses come whole",
        )));
    }
    let observe = uint(CoapOption::Observe)?;
    let text = |v: &[u8], what: &str| {
        String::from_utf8(v.to_vec())
            .map_err(|_| err(ApiError::bad_request(format!("{what} is not valid UTF-8"))))
    };
    let mut path = Vec::new();
    for seg in f.options.get_all(CoapOption::UriPath) {
        path.push(text(seg, "a path segment")?);
    }
    let mut query = Vec::new();
    let mut min_index = 0;
    for q in f.options.get_all(CoapOption::UriQuery) {
        let q = text(q, "a query parameter")?;
        let (k, v) = match q.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (q, String::new()),
        };
        if k == "index" {
            min_index = v.parse().map_err(|_| {
                err(ApiError::bad_request(format!(
                    "index={v:?} is not an unsigned integer"
                )))
            })?;
        }
        query.push((k, v));
    }
    Ok(Parsed {
        method,
        path,
        query,
        content_format,
        accept,
        observe,
        min_index,
    })
}

/// Splits `/v1/job/web?index=5&stale` into path segments and query pairs.
pub fn split_uri(uri: &str) -> (Vec<String>, Vec<String>) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let query = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (path, query)
}

/// A request frame for `method uri` with an optional body (client side).
pub(crate) fn build(
    method: Method,
    uri: &str,
    body: &[u8],
    content_format: u16,
    accept: u16,
) -> Frame {
    let mut f = Frame::new(u8::from(MessageClass::Request(method)), Default::default());
    let (path, query) = split_uri(uri);
    for seg in path {
        f.options.push(CoapOption::UriPath, seg.into_bytes());
    }
    for q in query {
        f.options.push(CoapOption::UriQuery, q.into_bytes());
    }
    if !body.is_empty() {
        f.options
            .push_uint(CoapOption::ContentFormat, u64::from(content_format));
        f.payload = body.to_vec();
    }
    f.options.push_uint(CoapOption::Accept, u64::from(accept));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_from(role: Role, fingerprint: Fingerprint) -> Request {
        Request {
            method: RequestType::Get,
            path: Vec::new(),
            params: Vec::new(),
            query: Vec::new(),
            content_format: None,
            accept: None,
            body: Vec::new(),
            peer: Arc::new(Peer {
                role,
                region: "global".into(),
                fingerprint,
                addr: "127.0.0.1:1".parse().unwrap(),
            }),
            min_index: 0,
            observe: false,
        }
    }

    #[test]
    fn clients_own_only_their_node() {
        let mine = Fingerprint([1; 32]);
        let other = Fingerprint([2; 32]);
        let req = request_from(Role::Client, mine);
        assert!(req.check_node_owner(Some(&mine)).is_ok());
        assert_eq!(
            req.check_node_owner(Some(&other)).unwrap_err().code,
            ResponseType::Forbidden
        );
        assert!(req.check_node_owner(None).is_err());
        for role in [Role::Server, Role::Cli] {
            assert!(
                request_from(role, mine)
                    .check_node_owner(Some(&other))
                    .is_ok()
            );
        }
    }

    #[test]
    fn requests_round_trip_through_frames() {
        let f = build(
            RequestType::Get,
            "/v1/job/web?index=7&stale",
            b"",
            CBOR,
            JSON,
        );
        let p = parse(&f).unwrap();
        assert_eq!(p.method, RequestType::Get);
        assert_eq!(p.path, ["v1", "job", "web"]);
        assert_eq!(
            p.query,
            [
                ("index".into(), "7".into()),
                ("stale".into(), String::new())
            ]
        );
        assert_eq!(p.min_index, 7);
        assert_eq!(p.accept, Some(JSON));
    }

    #[test]
    fn bad_requests_get_the_right_codes() {
        let mut f = build(RequestType::Get, "/v1/x", b"", CBOR, CBOR);
        f.options.push(9u16, vec![]);
        assert_eq!(parse(&f).unwrap_err().0.code, ResponseType::BadOption);

        let f = build(RequestType::Get, "/v1/x", b"", CBOR, 0);
        assert_eq!(parse(&f).unwrap_err().0.code, ResponseType::NotAcceptable);

        let f = build(RequestType::Post, "/v1/x", b"hi", 0, CBOR);
        assert_eq!(
            parse(&f).unwrap_err().0.code,
            ResponseType::UnsupportedContentFormat
        );

        let f = build(RequestType::Get, "/v1/x?index=-1", b"", CBOR, JSON);
        let (e, json) = parse(&f).unwrap_err();
        assert_eq!(e.code, ResponseType::BadRequest);
        assert!(json);

        let mut f = build(RequestType::Get, "/v1/x", b"", CBOR, CBOR);
        f.options.push(CoapOption::UriPath, vec![0xFF]);
        assert_eq!(parse(&f).unwrap_err().0.code, ResponseType::BadRequest);

        let mut f = build(RequestType::Get, "/v1/x", b"", CBOR, CBOR);
        f.code = 0x1F;
        assert_eq!(
            parse(&f).unwrap_err().0.code,
            ResponseType::MethodNotAllowed
        );
    }
}
