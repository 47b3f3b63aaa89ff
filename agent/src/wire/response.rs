//! Responses and errors as handlers return them and clients receive them:
//! a CoAP code, a body in CBOR (Content-Format 60) or JSON (50), and the
//! state index the answer reflects (option [`INDEX_OPTION`]).

use coap_lite::{CoapOption, MessageClass, ResponseType};
use minicbor::{Decode, Encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wren_model::codec::{self, CodecError};

use super::frame::{Frame, FrameError, Token, code_str};
use super::options::INDEX_OPTION;

/// Content-Format `application/json`.
pub const JSON: u16 = 50;
/// Content-Format `application/cbor`.
pub const CBOR: u16 = 60;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ErrorBody {
    /// What was wrong, for a person.
    #[n(0)]
    pub error: String,
    /// The CoAP code, `4.04`.
    #[n(1)]
    pub code: String,
}

/// A failed request: the code to answer with and what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {message}", code_str(u8::from(MessageClass::Response(*code))))]
pub struct ApiError {
    /// The response code.
    pub code: ResponseType,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with any code.
    pub fn new(code: ResponseType, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
    /// 4.00 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::BadRequest, message)
    }
    /// 4.03 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::Forbidden, message)
    }
    /// 4.04 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::NotFound, message)
    }
    /// 4.09 Conflict.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::Conflict, message)
    }
    /// 5.00 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::InternalServerError, message)
    }
    /// 5.03 Service Unavailable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ResponseType::ServiceUnavailable, message)
    }
}

impl From<CodecError> for ApiError {
    fn from(e: CodecError) -> ApiError {
        ApiError::bad_request(format!("invalid request body: {e}"))
    }
}

/// A response: code, body, its Content-Format and the index it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The response code.
    pub code: ResponseType,
    /// The body, possibly empty.
    pub body: Vec<u8>,
    /// The body's Content-Format, when there is a body.
    pub content_format: Option<u16>,
    /// The state index the response reflects, for blocking queries.
    pub index: Option<u64>,
}

impl Response {
    /// A response with no body.
    pub fn empty(code: ResponseType) -> Response {
        Response {
            code,
            body: Vec::new(),
            content_format: None,
            index: None,
        }
    }

    /// A response carrying `value` as CBOR, or as JSON when `json`.
    pub fn value<T: Encode<()> + Serialize>(code: ResponseType, value: &T, json: bool) -> Response {
        let (body, cf) = if json {
            (codec::to_json(value), JSON)
        } else {
            (codec::to_cbor(value), CBOR)
        };
        Response {
            code,
            body,
            content_format: Some(cf),
            index: None,
        }
    }

    /// The error response for `e`.
    pub fn error(e: &ApiError, json: bool) -> Response {
        let body = ErrorBody {
            error: e.message.clone(),
            code: code_str(u8::from(MessageClass::Response(e.code))),
        };
        Response::value(e.code, &body, json)
    }

    /// Sets the index the response reflects.
    pub fn with_index(mut self, index: u64) -> Response {
        self.index = Some(index);
        self
    }

    /// Whether the code is 2.xx.
    pub fn is_success(&self) -> bool {
        !self.code.is_error()
    }

    /// The numeric code.
    pub fn code_u8(&self) -> u8 {
        u8::from(MessageClass::Response(self.code))
    }

    /// Decodes the body by its Content-Format (CBOR when absent).
    pub fn decode<T>(&self) -> Result<T, CodecError>
    where
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        decode_body(&self.body, self.content_format)
    }

    /// The error this response carries, when its code is 4.xx or 5.xx.
    pub fn as_error(&self) -> Option<ApiError> {
        if self.is_success() {
            return None;
        }
        let message = match self.decode::<ErrorBody>() {
            Ok(b) => b.error,
            Err(_) => String::from_utf8_lossy(&self.body).into_owned(),
        };
        Some(ApiError::new(self.code, message))
    }

    /// The frame carrying this response.
    pub(crate) fn to_frame(&self, token: Token, observe: Option<u32>) -> Frame {
        let mut f = Frame::new(self.code_u8(), token);
        if let Some(seq) = observe {
            f.options.push_uint(CoapOption::Observe, u64::from(seq));
        }
        if let Some(cf) = self.content_format.filter(|_| !self.body.is_empty()) {
            f.options
                .push_uint(CoapOption::ContentFormat, u64::from(cf));
        }
        if let Some(index) = self.index {
            f.options.push_uint(INDEX_OPTION, index);
        }
        f.payload = self.body.clone();
        f
    }

    /// The response a frame carries (client side).
    pub(crate) fn from_frame(f: &Frame) -> Result<Response, FrameError> {
        let code = match MessageClass::from(f.code) {
            MessageClass::Response(r) => r,
            _ => ResponseType::UnKnown,
        };
        let cf = f.options.get_uint(CoapOption::ContentFormat)?;
        Ok(Response {
            code,
            body: f.payload.clone(),
            content_format: cf.and_then(|v| u16::try_from(v).ok()),
            index: f.options.get_uint(INDEX_OPTION)?,
        })
    }
}

/// Decodes a body: CBOR (bounded, via [`codec::from_cbor`]) unless the
/// Content-Format says JSON.
pub fn decode_body<T>(body: &[u8], content_format: Option<u16>) -> Result<T, CodecError>
where
    T: for<'b> Decode<'b, ()> + DeserializeOwned,
{
    match content_format {
        Some(JSON) => codec::from_json(body),
        _ => codec::from_cbor(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_code_and_message_in_either_encoding() {
        let e = ApiError::not_found("job \"web\" not found");
        for json in [false, true] {
            let r = Response::error(&e, json);
            assert_eq!(r.content_format, Some(if json { JSON } else { CBOR }));
            let back = r.as_error().unwrap();
            assert_eq!(back, e);
            let body: ErrorBody = r.decode().unwrap();
            assert_eq!(body.code, "4.04");
        }
        assert_eq!(e.to_string(), "4.04 job \"web\" not found");
    }

    #[test]
    fn frames_carry_index_and_content_format() {
        let r = Response::value(ResponseType::Content, &ErrorBody::default(), false).with_index(42);
        let f = r.to_frame(Token::from_u64(7), Some(3));
        let back = Response::from_frame(&f).unwrap();
        assert_eq!(back, r);
        assert_eq!(f.options.get_uint(CoapOption::Observe).unwrap(), Some(3));
    }
}
