//! Histories produced by a real linearizable store of jobs, for testing
//! the checker and measuring it: each operation takes effect at one instant
//! between its invocation and its return, against one sequential state, so
//! every generated history is linearizable. Some clients give up waiting
//! (outcome unknown); their operations may still take effect later, or
//! never, as with a request that timed out.

use crate::history::{End, JobHistory, JobInput, JobOutput};
use crate::rng::Rng;

/// The size of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Concurrent clients.
    pub clients: usize,
    /// Distinct jobs.
    pub keys: usize,
    /// Operations invoked.
    pub ops: usize,
}

struct InFlight {
    op: usize,
    key: usize,
    input: JobInput,
    output: Option<JobOutput>,
}

/// Applies `f` to the store: the instant it takes effect.
fn take_effect(store: &mut [Option<u64>], f: &mut InFlight) {
    let Some(slot) = store.get_mut(f.key) else {
        return;
    };
    f.output = Some(match f.input {
        JobInput::Register(v) => {
            *slot = Some(v);
            JobOutput::Ok
        }
        JobInput::Deregister => {
            // Deregistering an absent job: wren may answer Ok or NotFound;
            // both are generated (by the op's parity, for variety).
            let out = if slot.is_some() || f.op.is_multiple_of(2) {
                JobOutput::Ok
            } else {
                JobOutput::NotFound
            };
            *slot = None;
            out
        }
        JobInput::Read => match *slot {
            Some(v) => JobOutput::Present(v),
            None => JobOutput::Absent,
        },
    });
}

/// A linearizable history of `shape`'s size.
pub fn generate(rng: &mut Rng, shape: Shape) -> JobHistory {
    let clients = shape.clients.max(1);
    let keys = shape.keys.max(1);
    let mut h = JobHistory::default();
    let mut store: Vec<Option<u64>> = vec![None; keys];
    let mut busy: Vec<Option<InFlight>> = (0..clients).map(|_| None).collect();
    let mut orphans: Vec<InFlight> = Vec::new();
    let mut next_value = 0u64;
    let mut t = 0u64;
    while h.ops.len() < shape.ops || busy.iter().any(Option::is_some) {
        t += 1 + rng.below(3);
        let c = rng.index(clients);
        let Some(slot) = busy.get_mut(c) else {
            continue;
        };
        match slot.take() {
            None if h.ops.len() < shape.ops => {
                let key = rng.index(keys);
                let input = match rng.below(10) {
                    0..=3 => {
                        next_value += 1;
                        JobInput::Register(next_value)
                    }
                    4 => JobInput::Deregister,
                    _ => JobInput::Read,
                };
                let op = h.push(c, &format!("job{key}"), input.clone(), t, End::Unknown);
                *slot = Some(InFlight {
                    op,
                    key,
                    input,
                    output: None,
                });
            }
            None => {}
            // Gives up before it took effect; it may still happen later.
            Some(f) if f.output.is_none() && rng.chance(0.1) => orphans.push(f),
            Some(mut f) if f.output.is_none() => {
                take_effect(&mut store, &mut f);
                *slot = Some(f);
            }
            Some(f) => {
                let end = match f.output {
                    // Took effect, but the answer was lost.
                    Some(_) if rng.chance(0.05) => End::Unknown,
                    Some(output) => End::Returned { at: t, output },
                    None => End::Unknown,
                };
                if let Some(op) = h.ops.get_mut(f.op) {
                    op.end = end;
                }
            }
        }
        if !orphans.is_empty() && rng.chance(0.2) {
            let mut f = orphans.swap_remove(rng.index(orphans.len()));
            if f.input != JobInput::Read && rng.chance(0.5) {
                take_effect(&mut store, &mut f);
            }
        }
    }
    h
}
