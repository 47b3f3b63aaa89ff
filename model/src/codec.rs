//! Encodings: CBOR for the wire and storage, JSON for people.
//!
//! Every CBOR decode of untrusted bytes goes through [`from_cbor`], which
//! first walks the input without recursion and rejects it when it nests
//! deeper or declares longer collections than [`Limits`] allow, so that no
//! decoder below ever sees a hostile shape.

use minicbor::data::Type;
use minicbor::{Decode, Decoder, Encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bounds applied to untrusted CBOR before decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays, maps and tags.
    pub max_depth: usize,
    /// Longest declared array or map.
    pub max_collection: u64,
    /// Most data items in the whole input.
    pub max_items: u64,
}

impl Default for Limits {
    /// Generous for any real request (a job with hundreds of groups, a plan
    /// with thousands of allocations) and small enough to bound work.
    fn default() -> Limits {
        Limits {
            max_depth: 48,
            max_collection: 1 << 20,
            max_items: 1 << 24,
        }
    }
}

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The CBOR is malformed or does not match the expected type.
    #[error("invalid cbor at byte {position}: {message}")]
    Cbor {
        /// Byte offset, where known.
        position: usize,
        /// What was wrong.
        message: String,
    },
    /// The input nests deeper than allowed.
    #[error("cbor nests deeper than {0} levels")]
    TooDeep(usize),
    /// A collection is longer than allowed.
    #[error("cbor collection of {len} items is longer than the limit of {limit}")]
    TooLong {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The input has more data items than allowed.
    #[error("cbor has more than {0} data items")]
    TooManyItems(u64),
    /// Bytes remain after the value.
    #[error("{0} trailing bytes after the cbor value")]
    Trailing(usize),
    /// JSON did not parse or did not match.
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<minicbor::decode::Error> for CodecError {
    fn from(e: minicbor::decode::Error) -> CodecError {
        CodecError::Cbor {
            position: e.position().unwrap_or(0),
            message: e.to_string(),
        }
    }
}

/// Encodes a value as CBOR.
pub fn to_cbor<T: Encode<()>>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail, and our Encode impls return no errors
    // of their own; an empty result would be rejected by any decoder.
    if minicbor::encode(value, &mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

/// Decodes one CBOR value that must fill `bytes` exactly, after checking
/// the input against the default [`Limits`].
pub fn from_cbor<'b, T: Decode<'b, ()>>(bytes: &'b [u8]) -> Result<T, CodecError> {
    from_cbor_with(bytes, Limits::default())
}

/// Like [`from_cbor`] with explicit limits.
pub fn from_cbor_with<'b, T: Decode<'b, ()>>(
    bytes: &'b [u8],
    limits: Limits,
) -> Result<T, CodecError> {
    check_limits(bytes, limits)?;
    let mut d = Decoder::new(bytes);
    let value = T::decode(&mut d, &mut ())?;
    let rest = bytes.len() - d.position();
    if rest != 0 {
        return Err(CodecError::Trailing(rest));
    }
    Ok(value)
}

/// Walks one CBOR value without recursion and checks it against `limits`.
/// Also rejects truncated input, so a value that passes is well framed.
pub fn check_limits(bytes: &[u8], limits: Limits) -> Result<(), CodecError> {
    let mut d = Decoder::new(bytes);
    // Remaining items in each open container; None for indefinite length.
    let mut stack: Vec<Option<u64>> = Vec::new();
    let mut items = 0u64;
    loop {
        items += 1;
        if items > limits.max_items {
            return Err(CodecError::TooManyItems(limits.max_items));
        }
        let mut opened = false;
        match d.datatype()? {
            Type::Array | Type::Map | Type::ArrayIndef | Type::MapIndef => {
                let (len, pairs) = match d.datatype()? {
                    Type::Array | Type::ArrayIndef => (d.array()?, 1),
                    _ => (d.map()?, 2),
                };
                match len {
                    Some(0) => {}
                    Some(n) => {
                        if n > limits.max_collection {
                            return Err(CodecError::TooLong {
                                len: n,
                                limit: limits.max_collection,
                            });
                        }
                        stack.push(Some(n * pairs));
                        opened = true;
                    }
                    None => {
                        stack.push(None);
                        opened = true;
                    }
                }
                if stack.len() > limits.max_depth {
                    return Err(CodecError::TooDeep(limits.max_depth));
                }
            }
            Type::Tag => {
                d.tag()?;
                continue;
            }
            Type::Break => {
                d.skip().ok();
                // A break closes the innermost indefinite container.
                match stack.pop() {
                    Some(None) => {}
                    _ => {
                        return Err(CodecError::Cbor {
                            position: d.position(),
                            message: "unexpected break".to_owned(),
                        });
                    }
                }
                items -= 1;
            }
            Type::Bytes | Type::BytesIndef => {
                for chunk in d.bytes_iter()? {
                    chunk?;
                }
            }
            Type::String | Type::StringIndef => {
                for chunk in d.str_iter()? {
                    chunk?;
                }
            }
            _ => d.skip()?,
        }
        if opened {
            continue;
        }
        // One item finished: count it against the enclosing containers,
        // closing those that are now complete.
        loop {
            match stack.last_mut() {
                None => {
                    return Ok(());
                }
                Some(None) => break,
                Some(Some(n)) => {
                    *n -= 1;
                    if *n > 0 {
                        break;
                    }
                    stack.pop();
                }
            }
        }
    }
}

/// Encodes a value as pretty JSON for people.
pub fn to_json_pretty<T: Serialize>(value: &T) -> String {
    // Our types serialize to maps with string keys only, so this cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Encodes a value as compact JSON.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decodes JSON.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_rejected() {
        let mut bytes = vec![0x81u8; 100];
        bytes.push(0x00);
        assert!(matches!(
            check_limits(&bytes, Limits::default()),
            Err(CodecError::TooDeep(_))
        ));
        let mut ok = vec![0x81u8; 10];
        ok.push(0x00);
        check_limits(&ok, Limits::default()).unwrap();
    }

    #[test]
    fn huge_declared_length_rejected_before_allocating() {
        // array of 2^32 items, then nothing.
        let bytes = [0x9a, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            check_limits(&bytes, Limits::default()),
            Err(CodecError::TooLong { .. })
        ));
    }

    #[test]
    fn truncated_input_rejected() {
        let bytes = [0x82, 0x01];
        assert!(check_limits(&bytes, Limits::default()).is_err());
        let bytes = [0x9f, 0x01];
        assert!(check_limits(&bytes, Limits::default()).is_err());
    }

    #[test]
    fn indefinite_and_tags_accepted() {
        // tag(1) [_ 1, {_ "a": h'00'}]
        let bytes = [0xc1, 0x9f, 0x01, 0xbf, 0x61, b'a', 0x41, 0x00, 0xff, 0xff];
        check_limits(&bytes, Limits::default()).unwrap();
    }

    #[test]
    fn trailing_bytes_rejected() {
        let err = from_cbor::<u32>(&[0x01, 0x02]).unwrap_err();
        assert!(matches!(err, CodecError::Trailing(1)));
    }
}
