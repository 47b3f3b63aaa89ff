//! RFC 8323 §3.2 message framing for CoAP over TCP and TLS:
//!
//! ```text
//! Len:4 | TKL:4 | Extended Length (0, 1, 2 or 4 bytes) | Code | Token (TKL bytes) | Options | 0xFF Payload
//! ```
//!
//! Len counts the options, the payload marker and the payload; 13, 14 and
//! 15 announce 1, 2 and 4 extension bytes. There are no message ids or
//! types: the transport is reliable. Decoding checks the announced length
//! against the limit before a byte of the body is looked at, so a hostile
//! length never turns into an allocation.

use std::fmt;

use super::options::Options;

/// Longest token RFC 8323 allows (TKL 9 to 15 are message format errors).
pub const MAX_TOKEN_LEN: usize = 8;

/// What a peer can receive until its CSM says otherwise (RFC 8323 §5.3.1).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 1152;

/// Signalling codes (RFC 8323 §5), class 7.
pub mod signal_code {
    /// 7.01 Capabilities and Settings Message.
    pub const CSM: u8 = 0xE1;
    /// 7.02 Ping.
    pub const PING: u8 = 0xE2;
    /// 7.03 Pong.
    pub const PONG: u8 = 0xE3;
    /// 7.04 Release.
    pub const RELEASE: u8 = 0xE4;
    /// 7.05 Abort.
    pub const ABORT: u8 = 0xE5;
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// TKL above 8.
    #[error("token length {0} is longer than 8")]
    TokenTooLong(u8),
    /// The announced message is larger than we accept.
    #[error("message of {len} bytes is larger than the maximum of {max}")]
    TooLarge {
        /// Announced total size.
        len: u64,
        /// Our Max-Message-Size.
        max: u32,
    },
    /// An option header or value runs past the message, or uses the
    /// reserved nibble 15, or its number passes 65535.
    #[error("malformed option")]
    BadOption,
    /// More options than we accept.
    #[error("more than {0} options")]
    TooManyOptions(usize),
    /// A payload marker with no payload after it.
    #[error("payload marker followed by an empty payload")]
    EmptyPayload,
    /// An unsigned-integer option longer than 8 bytes.
    #[error("option {number} is not an unsigned integer of at most 8 bytes")]
    BadUint {
        /// The option number.
        number: u16,
    },
    /// An option value too long to encode.
    #[error("option {number} value of {len} bytes is too long to encode")]
    OptionTooLong {
        /// The option number.
        number: u16,
        /// Its length.
        len: usize,
    },
}

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest whole message accepted (the Max-Message-Size we advertise).
    pub max_message_size: u32,
    /// Most options in one message.
    pub max_options: usize,
}

impl Default for FrameLimits {
    fn default() -> FrameLimits {
        FrameLimits {
            max_message_size: 4 << 20,
            max_options: 64,
        }
    }
}

/// A token: 0 to 8 bytes matching a response to its request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Token {
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

impl Token {
    /// The empty token.
    pub const EMPTY: Token = Token {
        len: 0,
        bytes: [0; MAX_TOKEN_LEN],
    };

    /// A token from bytes; `None` when longer than 8.
    pub fn new(bytes: &[u8]) -> Option<Token> {
        if bytes.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut t = Token {
            len: bytes.len() as u8,
            bytes: [0; MAX_TOKEN_LEN],
        };
        t.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(t)
    }

    /// A token holding `n` in as few big-endian bytes as it needs.
    pub fn from_u64(n: u64) -> Token {
        let be = n.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count().min(7);
        Token::new(be.get(skip..).unwrap_or(&be)).unwrap_or_default()
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One CoAP message as carried over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The code: `class << 5 | detail`.
    pub code: u8,
    /// The token.
    pub token: Token,
    /// The options, sorted by number.
    pub options: Options,
    /// The payload; empty means none.
    pub payload: Vec<u8>,
}

/// Formats a code as `c.dd`.
pub fn code_str(code: u8) -> String {
    format!("{}.{:02}", code >> 5, code & 0x1F)
}

/// Whether a code is a request method (0.01 to 0.31).
pub fn is_request(code: u8) -> bool {
    code >> 5 == 0 && code != 0
}

/// Whether a code is a response (2.xx to 5.xx).
pub fn is_response(code: u8) -> bool {
    (2..=5).contains(&(code >> 5))
}

/// Whether a code is a signalling code (7.xx).
pub fn is_signal(code: u8) -> bool {
    code >> 5 == 7
}

impl Frame {
    /// A frame with a code and token and nothing else.
    pub fn new(code: u8, token: Token) -> Frame {
        Frame {
            code,
            token,
            options: Options::new(),
            payload: Vec::new(),
        }
    }

    fn body_len(&self) -> usize {
        let payload = if self.payload.is_empty() {
            0
        } else {
            1 + self.payload.len()
        };
        self.options.encoded_len() + payload
    }

    /// Bytes the encoded frame takes.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        1 + len_ext_bytes(body) + 1 + self.token.as_bytes().len() + body
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        for o in self.options.iter() {
            if o.value.len() > 65535 + 269 {
                return Err(FrameError::OptionTooLong {
                    number: o.number,
                    len: o.value.len(),
                });
            }
        }
        let body = self.body_len();
        let tkl = self.token.as_bytes().len() as u8;
        out.reserve(self.encoded_len());
        match body {
            0..=12 => out.push(((body as u8) << 4) | tkl),
            13..=268 => {
                out.push((13 << 4) | tkl);
                out.push((body - 13) as u8);
            }
            269..=65804 => {
                out.push((14 << 4) | tkl);
                out.extend_from_slice(&((body - 269) as u16).to_be_bytes());
            }
            _ => {
                out.push((15 << 4) | tkl);
                let ext = u32::try_from(body - 65805).map_err(|_| FrameError::TooLarge {
                    len: body as u64,
                    max: u32::MAX,
                })?;
                out.extend_from_slice(&ext.to_be_bytes());
            }
        }
        out.push(self.code);
        out.extend_from_slice(self.token.as_bytes());
        self.options.encode(out);
        if !self.payload.is_empty() {
            out.push(0xFF);
            out.extend_from_slice(&self.payload);
        }
        Ok(())
    }

    /// The encoded frame.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

fn len_ext_bytes(body: usize) -> usize {
    match body {
        0..=12 => 0,
        13..=268 => 1,
        269..=65804 => 2,
        _ => 4,
    }
}

/// The total length of the frame starting at `buf`, once enough of its
/// header has arrived to know it; checked against the limit and the token
/// length before anything else.
pub fn frame_len(buf: &[u8], limits: &FrameLimits) -> Result<Option<usize>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let len_nibble = first >> 4;
    let tkl = first & 0x0F;
    if usize::from(tkl) > MAX_TOKEN_LEN {
        return Err(FrameError::TokenTooLong(tkl));
    }
    let ext_bytes = match len_nibble {
        13 => 1,
        14 => 2,
        15 => 4,
        _ => 0,
    };
    let Some(ext) = buf.get(1..1 + ext_bytes) else {
        return Ok(None);
    };
    let ext_val = ext.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let body = match len_nibble {
        13 => ext_val + 13,
        14 => ext_val + 269,
        15 => ext_val + 65805,
        n => u64::from(n),
    };
    let total = 1 + ext_bytes as u64 + 1 + u64::from(tkl) + body;
    if total > u64::from(limits.max_message_size) {
        return Err(FrameError::TooLarge {
            len: total,
            max: limits.max_message_size,
        });
    }
    // Bounded by max_message_size (a u32), so it fits in usize.
    Ok(Some(total as usize))
}

/// Decodes the frame at the start of `buf`: `Ok(None)` when more bytes are
/// needed, otherwise the frame and how many bytes it took.
pub fn decode(buf: &[u8], limits: &FrameLimits) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(total) = frame_len(buf, limits)? else {
        return Ok(None);
    };
    let Some(whole) = buf.get(..total) else {
        return Ok(None);
    };
    let first = whole.first().copied().unwrap_or(0);
    let ext_bytes = match first >> 4 {
        13 => 1,
        14 => 2,
        15 => 4,
        _ => 0,
    };
    let tkl = usize::from(first & 0x0F);
    let code_at = 1 + ext_bytes;
    let code = *whole.get(code_at).ok_or(FrameError::BadOption)?;
    let token_bytes = whole
        .get(code_at + 1..code_at + 1 + tkl)
        .ok_or(FrameError::BadOption)?;
    let token = Token::new(token_bytes).ok_or(FrameError::TokenTooLong(tkl as u8))?;
    let body = whole.get(code_at + 1 + tkl..).unwrap_or(&[]);
    let (options, payload_at) = Options::decode(body, limits.max_options)?;
    let payload = body.get(payload_at..).unwrap_or(&[]).to_vec();
    Ok(Some((
        Frame {
            code,
            token,
            options,
            payload,
        },
        total,
    )))
}

#[cfg(test)]
mod tests {
    use coap_lite::CoapOption;

    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits::default()
    }

    #[test]
    fn rfc8323_example_shapes_round_trip() {
        // Every length class: inline, 1-, 2- and 4-byte extensions.
        for size in [0usize, 5, 12, 13, 200, 268, 269, 5000, 65804, 65805, 70000] {
            let mut f = Frame::new(0x45, Token::new(&[1, 2, 3]).unwrap());
            f.options.push_uint(CoapOption::ContentFormat, 60);
            f.payload = vec![0xAB; size];
            let bytes = f.to_bytes().unwrap();
            assert_eq!(bytes.len(), f.encoded_len());
            let (back, used) = decode(&bytes, &limits()).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, f, "size {size}");
            // Every strict prefix is incomplete, never an error.
            for cut in [0, 1, 2, bytes.len() / 2, bytes.len() - 1] {
                assert!(decode(&bytes[..cut], &limits()).unwrap().is_none());
            }
        }
    }

    #[test]
    fn empty_csm_is_two_bytes() {
        let f = Frame::new(signal_code::CSM, Token::EMPTY);
        assert_eq!(f.to_bytes().unwrap(), [0x00, 0xE1]);
    }

    #[test]
    fn oversized_announcement_rejected_from_the_header_alone() {
        // Len 15 with a 4-byte extension of 0xFFFFFFFF and nothing else.
        let bytes = [0xF0, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            decode(&bytes, &limits()),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn token_longer_than_eight_rejected() {
        assert_eq!(
            decode(&[0x09, 0x01], &limits()),
            Err(FrameError::TokenTooLong(9))
        );
    }

    #[test]
    fn tokens_from_counters_are_short() {
        assert_eq!(Token::from_u64(0).as_bytes(), [0]);
        assert_eq!(Token::from_u64(0x1234).as_bytes(), [0x12, 0x34]);
        assert_eq!(Token::from_u64(u64::MAX).as_bytes().len(), 8);
        assert!(Token::new(&[0; 9]).is_none());
    }
}
