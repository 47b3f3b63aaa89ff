//! The RFC 8323 frame decoder, and the signal, request and response
//! parsers above it, on one buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_fuzz as _;

fuzz_target!(|data: &[u8]| wren_agent::wire::fuzzing::frame(data));
