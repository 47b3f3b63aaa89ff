//! CoAP options as RFC 7252 §3.1 encodes them (delta and length nibbles
//! with 1- and 2-byte extensions), shared by RFC 8323 frames.
//!
//! Option numbers are plain `u16`s; coap-lite's [`CoapOption`] converts
//! into one, so callers write `opts.push(CoapOption::UriPath, b"v1")`.

use coap_lite::CoapOption;

use super::frame::FrameError;

/// Wren's own elective option: the state index a response reflects (like
/// Nomad's `X-Nomad-Index` header). 65000 is in the experimental range of
/// RFC 7252 §12.2; even, so elective, and stock clients ignore it.
pub const INDEX_OPTION: u16 = 65000;

/// One option: its number and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapOpt {
    /// The option number.
    pub number: u16,
    /// The value, as on the wire.
    pub value: Vec<u8>,
}

/// A message's options, kept sorted by number (repeated options keep their
/// order), as the encoding requires.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options(Vec<CoapOpt>);

impl Options {
    /// No options.
    pub fn new() -> Options {
        Options(Vec::new())
    }

    /// How many options there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All options in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &CoapOpt> {
        self.0.iter()
    }

    /// Adds an option after any existing ones with the same number.
    pub fn push(&mut self, number: impl Into<u16>, value: impl Into<Vec<u8>>) {
        let number = number.into();
        let at = self.0.partition_point(|o| o.number <= number);
        self.0.insert(
            at,
            CoapOpt {
                number,
                value: value.into(),
            },
        );
    }

    /// Adds an unsigned-integer option in its shortest form (RFC 7252 §3.2).
    pub fn push_uint(&mut self, number: impl Into<u16>, value: u64) {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        self.push(number, bytes.get(skip..).unwrap_or(&[]).to_vec());
    }

    /// The first value of an option.
    pub fn get(&self, number: impl Into<u16>) -> Option<&[u8]> {
        let number = number.into();
        self.0
            .iter()
            .find(|o| o.number == number)
            .map(|o| o.value.as_slice())
    }

    /// Every value of a repeatable option, in order.
    pub fn get_all(&self, number: impl Into<u16>) -> impl Iterator<Item = &[u8]> {
        let number = number.into();
        self.0
            .iter()
            .filter(move |o| o.number == number)
            .map(|o| o.value.as_slice())
    }

    /// The first value of an unsigned-integer option; an error when it is
    /// longer than 8 bytes.
    pub fn get_uint(&self, number: impl Into<u16>) -> Result<Option<u64>, FrameError> {
        let number = number.into();
        match self.get(number) {
            None => Ok(None),
            Some(v) => decode_uint(v)
                .map(Some)
                .ok_or(FrameError::BadUint { number }),
        }
    }

    /// Removes every option with this number.
    pub fn remove(&mut self, number: impl Into<u16>) {
        let number = number.into();
        self.0.retain(|o| o.number != number);
    }

    /// Bytes the encoded options take.
    pub(crate) fn encoded_len(&self) -> usize {
        let mut prev = 0u16;
        let mut len = 0;
        for o in &self.0 {
            len += 1 + ext_len(o.number - prev) + ext_len_usize(o.value.len()) + o.value.len();
            prev = o.number;
        }
        len
    }

    /// Appends the encoded options to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut prev = 0u16;
        for o in &self.0 {
            // Sorted by construction, so the delta never underflows.
            let delta = o.number - prev;
            prev = o.number;
            let (dn, dext) = nibble(u32::from(delta));
            let vlen = u32::try_from(o.value.len()).unwrap_or(u32::MAX);
            let (ln, lext) = nibble(vlen);
            out.push((dn << 4) | ln);
            push_ext(out, dn, dext);
            push_ext(out, ln, lext);
            out.extend_from_slice(&o.value);
        }
    }

    /// Decodes options from the start of `bytes` (a message body after the
    /// token); returns them and where the payload starts (after the 0xFF
    /// marker), or `bytes.len()` when there is no payload.
    pub(crate) fn decode(bytes: &[u8], max_options: usize) -> Result<(Options, usize), FrameError> {
        let mut opts = Vec::new();
        let mut pos = 0usize;
        let mut number = 0u32;
        while let Some(&first) = bytes.get(pos) {
            pos += 1;
            if first == 0xFF {
                if pos == bytes.len() {
                    return Err(FrameError::EmptyPayload);
                }
                return Ok((Options(opts), pos));
            }
            if opts.len() >= max_options {
                return Err(FrameError::TooManyOptions(max_options));
            }
            let delta = read_ext(bytes, &mut pos, first >> 4)?;
            let len = read_ext(bytes, &mut pos, first & 0x0F)?;
            number += delta;
            let num = u16::try_from(number).map_err(|_| FrameError::BadOption)?;
            let end = pos
                .checked_add(len as usize)
                .filter(|end| *end <= bytes.len())
                .ok_or(FrameError::BadOption)?;
            let value = bytes.get(pos..end).ok_or(FrameError::BadOption)?.to_vec();
            pos = end;
            opts.push(CoapOpt { number: num, value });
        }
        Ok((Options(opts), bytes.len()))
    }
}

/// Decodes an unsigned-integer option value (0 to 8 bytes, big endian).
pub fn decode_uint(v: &[u8]) -> Option<u64> {
    if v.len() > 8 {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Whether an option number is critical (RFC 7252 §5.4.1: odd numbers).
pub fn is_critical(number: u16) -> bool {
    number & 1 == 1
}

/// The options a request may carry that wren understands; an unknown
/// critical option gets 4.02 Bad Option.
pub fn is_known_request_option(number: u16) -> bool {
    matches!(
        CoapOption::from(number),
        CoapOption::UriHost
            | CoapOption::UriPort
            | CoapOption::UriPath
            | CoapOption::UriQuery
            | CoapOption::ContentFormat
            | CoapOption::Accept
            | CoapOption::Observe
            | CoapOption::Block2
            | CoapOption::Size1
            | CoapOption::Size2
            | CoapOption::IfMatch
            | CoapOption::IfNoneMatch
            | CoapOption::ETag
            | CoapOption::MaxAge
    ) || number == INDEX_OPTION
}

fn nibble(v: u32) -> (u8, u32) {
    match v {
        0..=12 => (v as u8, 0),
        13..=268 => (13, v - 13),
        _ => (14, v - 269),
    }
}

fn push_ext(out: &mut Vec<u8>, n: u8, ext: u32) {
    match n {
        13 => out.push(ext as u8),
        14 => out.extend_from_slice(&(ext as u16).to_be_bytes()),
        _ => {}
    }
}

fn ext_len(v: u16) -> usize {
    ext_len_usize(usize::from(v))
}

fn ext_len_usize(v: usize) -> usize {
    match v {
        0..=12 => 0,
        13..=268 => 1,
        _ => 2,
    }
}

fn read_ext(bytes: &[u8], pos: &mut usize, n: u8) -> Result<u32, FrameError> {
    match n {
        0..=12 => Ok(u32::from(n)),
        13 => {
            let b = *bytes.get(*pos).ok_or(FrameError::BadOption)?;
            *pos += 1;
            Ok(u32::from(b) + 13)
        }
        14 => {
            let b: [u8; 2] = bytes
                .get(*pos..*pos + 2)
                .and_then(|b| b.try_into().ok())
                .ok_or(FrameError::BadOption)?;
            *pos += 2;
            Ok(u32::from(u16::from_be_bytes(b)) + 269)
        }
        // 15 is reserved for the payload marker, which was handled above.
        _ => Err(FrameError::BadOption),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_options_use_the_shortest_form() {
        let mut o = Options::new();
        o.push_uint(CoapOption::Observe, 0);
        o.push_uint(CoapOption::ContentFormat, 60);
        o.push_uint(CoapOption::MaxAge, 0x1_0000);
        assert_eq!(o.get(CoapOption::Observe), Some(&[][..]));
        assert_eq!(o.get(CoapOption::ContentFormat), Some(&[60][..]));
        assert_eq!(o.get_uint(CoapOption::MaxAge).unwrap(), Some(0x1_0000));
    }

    #[test]
    fn options_stay_sorted_and_round_trip() {
        let mut o = Options::new();
        o.push(CoapOption::UriQuery, b"index=3".to_vec());
        o.push(CoapOption::UriPath, b"v1".to_vec());
        o.push(CoapOption::UriPath, b"jobs".to_vec());
        o.push(INDEX_OPTION, vec![7]);
        o.push(CoapOption::UriPath, vec![b'x'; 300]);
        let numbers: Vec<u16> = o.iter().map(|x| x.number).collect();
        assert_eq!(numbers, [11, 11, 11, 15, INDEX_OPTION]);
        let paths: Vec<&[u8]> = o.get_all(CoapOption::UriPath).collect();
        assert_eq!(paths[..2], [&b"v1"[..], &b"jobs"[..]]);
        let mut bytes = Vec::new();
        o.encode(&mut bytes);
        assert_eq!(bytes.len(), o.encoded_len());
        let (back, at) = Options::decode(&bytes, 64).unwrap();
        assert_eq!(back, o);
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn bad_options_are_errors() {
        // Delta nibble 15 without being the payload marker.
        assert!(Options::decode(&[0xF1, 0], 64).is_err());
        // Length runs past the end.
        assert!(Options::decode(&[0x15, 1, 2], 64).is_err());
        // Extended delta byte missing.
        assert!(Options::decode(&[0xD0], 64).is_err());
        // Payload marker with nothing after it.
        assert!(Options::decode(&[0xFF], 64).is_err());
        // Option number past 65535.
        assert!(Options::decode(&[0xE0, 0xFF, 0xFF, 0xE0, 0xFF, 0xFF], 64).is_err());
        // Too many options.
        assert!(matches!(
            Options::decode(&[0x10, 0x00, 0x00], 2),
            Err(FrameError::TooManyOptions(2))
        ));
    }

    #[test]
    fn uint_longer_than_eight_bytes_rejected() {
        let mut o = Options::new();
        o.push(CoapOption::MaxAge, vec![1; 9]);
        assert!(o.get_uint(CoapOption::MaxAge).is_err());
    }
}
