//! Every CBOR (and JSON) decoder that reads bytes from the network. The
//! first byte picks the type; adding a request type is one line in
//! `decoders!`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minicbor::{Decode, Encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wren_fuzz as _;
use wren_model::codec::{from_cbor, from_json, to_cbor, to_json};

/// Decodes `data` as a `T`; what decodes must encode again (CBOR and JSON)
/// and its CBOR must be stable across a second round trip.
fn decode<T>(data: &[u8])
where
    T: for<'b> Decode<'b, ()> + Encode<()> + Serialize + DeserializeOwned,
{
    if let Ok(v) = from_cbor::<T>(data) {
        let bytes = to_cbor(&v);
        let again: T = from_cbor(&bytes).expect("re-encoded cbor decodes");
        assert_eq!(to_cbor(&again), bytes, "cbor round trip is not stable");
        let _ = to_json(&v);
    }
    let _ = from_json::<T>(data);
}

macro_rules! decoders {
    ($($t:ty),* $(,)?) => {
        const DECODERS: &[fn(&[u8])] = &[$(decode::<$t>),*];
    };
}

decoders![
    wren_model::Job,
    wren_model::Node,
    wren_model::Allocation,
    wren_model::Evaluation,
    wren_model::Plan,
    wren_model::PlanResult,
    wren_model::Deployment,
    wren_agent::wire::ErrorBody,
];

fuzz_target!(|data: &[u8]| {
    if let Some((&pick, rest)) = data.split_first() {
        DECODERS[usize::from(pick) % DECODERS.len()](rest);
    }
});
