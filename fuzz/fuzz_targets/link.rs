//! A connection's reader fed a byte stream in reads of varying size:
//! CSM rules, signalling, request validation, Abort on malformed input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_fuzz as _;

fuzz_target!(|data: &[u8]| wren_agent::wire::fuzzing::link(data));
