//! The jobspec parser (HCL text to a validated `Job`) on arbitrary input,
//! including invalid UTF-8 read the way a job file is. Checks: no panic;
//! every error names a location; a job that parses encodes to CBOR and
//! decodes to the same job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_fuzz as _;
use wren_model::codec;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match wren_model::jobspec::parse("fuzz.hcl", &text) {
        Ok(job) => {
            let bytes = codec::to_cbor(&job);
            let back: wren_model::Job = codec::from_cbor(&bytes).expect("a parsed job round-trips");
            assert_eq!(back, job, "CBOR round trip changed the job");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a failed parse without an error");
            for e in &errors.0 {
                assert!(
                    e.line >= 1 && e.col >= 1,
                    "an error without a position: {e}"
                );
            }
        }
    }
});
