//! RFC 8323 §5 signalling messages: CSM, Ping, Pong, Release, Abort.
//!
//! Signalling option numbers are scoped to their code (2 is
//! Max-Message-Size in a CSM and Custody in a Ping). Each peer's first
//! message is a CSM; a peer that breaks a rule gets an Abort whose
//! diagnostic payload says which.

use super::frame::{Frame, Token, signal_code};
use super::options::{decode_uint, is_critical};

/// CSM option 2: the largest message the sender can receive.
const MAX_MESSAGE_SIZE: u16 = 2;
/// CSM option 4: the sender supports block-wise transfer (BERT).
const BLOCK_WISE_TRANSFER: u16 = 4;
/// Ping/Pong option 2: ask for the Pong only after pending responses.
const CUSTODY: u16 = 2;
/// Release option 2: where to reconnect.
const ALTERNATIVE_ADDRESS: u16 = 2;
/// Release option 4: seconds to wait before reconnecting.
const HOLD_OFF: u16 = 4;
/// Abort option 2: the CSM option that caused the abort.
const BAD_CSM_OPTION: u16 = 2;

/// A parsed signalling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// 7.01: the sender's capabilities and settings.
    Csm {
        /// Max-Message-Size, when given.
        max_message_size: Option<u32>,
        /// Block-Wise-Transfer.
        block_wise: bool,
    },
    /// 7.02: asks for a Pong.
    Ping {
        /// Custody.
        custody: bool,
    },
    /// 7.03: answers a Ping (same token).
    Pong {
        /// Custody.
        custody: bool,
    },
    /// 7.04: the sender wants the connection closed in an orderly way.
    Release {
        /// Alternative-Address, when given.
        alternative_address: Option<String>,
        /// Hold-Off in seconds, when given.
        hold_off: Option<u32>,
        /// Diagnostic payload.
        diagnostic: String,
    },
    /// 7.05: the sender is closing the connection because of an error.
    Abort {
        /// Bad-CSM-Option, when the abort is about a CSM option.
        bad_csm_option: Option<u16>,
        /// Diagnostic payload.
        diagnostic: String,
    },
}

/// Why a signalling message is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// A code in class 7 that RFC 8323 does not define.
    #[error("unknown signalling code {0:#04x}")]
    UnknownCode(u8),
    /// A critical option this signal does not define.
    #[error("unknown critical option {number} in signalling message {code:#04x}")]
    UnknownCritical {
        /// The signalling code.
        code: u8,
        /// The option number.
        number: u16,
    },
    /// An option whose value is not what the RFC allows.
    #[error("invalid value for option {number} in signalling message {code:#04x}")]
    BadValue {
        /// The signalling code.
        code: u8,
        /// The option number.
        number: u16,
    },
}

impl SignalError {
    /// The CSM option to name in an Abort's Bad-CSM-Option, if any.
    pub fn bad_csm_option(&self) -> Option<u16> {
        match self {
            SignalError::UnknownCritical { code, number }
            | SignalError::BadValue { code, number }
                if *code == signal_code::CSM =>
            {
                Some(*number)
            }
            _ => None,
        }
    }
}

impl Signal {
    /// Parses a class-7 frame.
    pub fn from_frame(f: &Frame) -> Result<Signal, SignalError> {
        let code = f.code;
        let known: &[u16] = match code {
            signal_code::CSM => &[MAX_MESSAGE_SIZE, BLOCK_WISE_TRANSFER],
            signal_code::PING | signal_code::PONG => &[CUSTODY],
            signal_code::RELEASE => &[ALTERNATIVE_ADDRESS, HOLD_OFF],
            signal_code::ABORT => &[BAD_CSM_OPTION],
            other => return Err(SignalError::UnknownCode(other)),
        };
        for o in f.options.iter() {
            if is_critical(o.number) && !known.contains(&o.number) {
                return Err(SignalError::UnknownCritical {
                    code,
                    number: o.number,
                });
            }
        }
        let uint = |number: u16, max_len: usize| -> Result<Option<u64>, SignalError> {
            match f.options.get(number) {
                None => Ok(None),
                Some(v) if v.len() <= max_len => Ok(decode_uint(v)),
                Some(_) => Err(SignalError::BadValue { code, number }),
            }
        };
        let flag = |number: u16| -> Result<bool, SignalError> {
            match f.options.get(number) {
                None => Ok(false),
                Some([]) => Ok(true),
                Some(_) => Err(SignalError::BadValue { code, number }),
            }
        };
        let diagnostic = String::from_utf8_lossy(&f.payload).into_owned();
        Ok(match code {
            signal_code::CSM => Signal::Csm {
                max_message_size: uint(MAX_MESSAGE_SIZE, 4)?.map(|v| v as u32),
                block_wise: flag(BLOCK_WISE_TRANSFER)?,
            },
            signal_code::PING => Signal::Ping {
                custody: flag(CUSTODY)?,
            },
            signal_code::PONG => Signal::Pong {
                custody: flag(CUSTODY)?,
            },
            signal_code::RELEASE => Signal::Release {
                alternative_address: f
                    .options
                    .get(ALTERNATIVE_ADDRESS)
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                hold_off: uint(HOLD_OFF, 3)?.map(|v| v as u32),
                diagnostic,
            },
            _ => Signal::Abort {
                bad_csm_option: uint(BAD_CSM_OPTION, 2)?.map(|v| v as u16),
                diagnostic,
            },
        })
    }

    /// Builds the frame for this signal with the given token.
    pub fn to_frame(&self, token: Token) -> Frame {
        let mut f;
        match self {
            Signal::Csm {
                max_message_size,
                block_wise,
            } => {
                f = Frame::new(signal_code::CSM, token);
                if let Some(m) = max_message_size {
                    f.options.push_uint(MAX_MESSAGE_SIZE, u64::from(*m));
                }
                if *block_wise {
                    f.options.push(BLOCK_WISE_TRANSFER, Vec::new());
                }
            }
            Signal::Ping { custody } | Signal::Pong { custody } => {
                let code = if matches!(self, Signal::Ping { .. }) {
                    signal_code::PING
                } else {
                    signal_code::PONG
                };
                f = Frame::new(code, token);
                if *custody {
                    f.options.push(CUSTODY, Vec::new());
                }
            }
            Signal::Release {
                alternative_address,
                hold_off,
                diagnostic,
            } => {
                f = Frame::new(signal_code::RELEASE, token);
                if let Some(a) = alternative_address {
                    f.options.push(ALTERNATIVE_ADDRESS, a.as_bytes().to_vec());
                }
                if let Some(h) = hold_off {
                    f.options.push_uint(HOLD_OFF, u64::from(*h));
                }
                f.payload = diagnostic.as_bytes().to_vec();
            }
            Signal::Abort {
                bad_csm_option,
                diagnostic,
            } => {
                f = Frame::new(signal_code::ABORT, token);
                if let Some(o) = bad_csm_option {
                    f.options.push_uint(BAD_CSM_OPTION, u64::from(*o));
                }
                f.payload = diagnostic.as_bytes().to_vec();
            }
        }
        f
    }

    /// An Abort carrying a diagnostic.
    pub fn abort(diagnostic: impl Into<String>) -> Signal {
        Signal::Abort {
            bad_csm_option: None,
            diagnostic: diagnostic.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::decode;

    fn round_trip(s: Signal) {
        let bytes = s.to_frame(Token::new(&[9]).unwrap()).to_bytes().unwrap();
        let (f, _) = decode(&bytes, &Default::default()).unwrap().unwrap();
        assert_eq!(Signal::from_frame(&f).unwrap(), s);
    }

    #[test]
    fn every_signal_round_trips() {
        round_trip(Signal::Csm {
            max_message_size: Some(8 << 20),
            block_wise: true,
        });
        round_trip(Signal::Csm {
            max_message_size: None,
            block_wise: false,
        });
        round_trip(Signal::Ping { custody: true });
        round_trip(Signal::Pong { custody: false });
        round_trip(Signal::Release {
            alternative_address: Some("coaps+tcp://10.0.0.2".into()),
            hold_off: Some(30),
            diagnostic: "shutting down".into(),
        });
        round_trip(Signal::Abort {
            bad_csm_option: Some(9),
            diagnostic: "bad csm".into(),
        });
    }

    #[test]
    fn unknown_critical_csm_option_names_itself() {
        let mut f = Frame::new(signal_code::CSM, Token::EMPTY);
        f.options.push(9u16, Vec::new());
        let err = Signal::from_frame(&f).unwrap_err();
        assert_eq!(err.bad_csm_option(), Some(9));
        // Unknown elective options are ignored.
        let mut f = Frame::new(signal_code::CSM, Token::EMPTY);
        f.options.push(8u16, vec![1]);
        assert!(Signal::from_frame(&f).is_ok());
    }

    #[test]
    fn malformed_values_and_codes_rejected() {
        let mut f = Frame::new(signal_code::CSM, Token::EMPTY);
        f.options.push(MAX_MESSAGE_SIZE, vec![1, 2, 3, 4, 5]);
        assert!(Signal::from_frame(&f).is_err());
        let mut f = Frame::new(signal_code::PING, Token::EMPTY);
        f.options.push(CUSTODY, vec![1]);
        assert!(Signal::from_frame(&f).is_err());
        assert!(Signal::from_frame(&Frame::new(0xE6, Token::EMPTY)).is_err());
    }
}
