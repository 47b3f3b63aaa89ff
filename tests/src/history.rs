//! What concurrent clients did, as a history for the linearizability
//! checker: for every operation, who invoked it, on which key, with what
//! input, when it was invoked, and when and with what it completed, or
//! that its outcome is unknown (the request timed out or the connection
//! broke: it may or may not have taken effect).
//!
//! Times are nanoseconds since the recorder was made, from one monotonic
//! clock shared by all workers. The invoke time is taken before the
//! request leaves and the completion time after the answer arrived, so the
//! real effect lies between them.
//!
//! The operations the chaos tests run against wren are [`JobInput`] and
//! [`JobOutput`]: register a job with a value, deregister it, read it.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum End<O> {
    /// It completed at `at` with `output`.
    Returned {
        /// Nanoseconds since the recorder started.
        at: u64,
        /// What it returned.
        output: O,
    },
    /// Nobody knows whether it took effect (timeout, broken connection,
    /// or the worker never finished it).
    Unknown,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op<I, O> {
    /// Its position in the history.
    pub id: usize,
    /// The worker that ran it.
    pub client: usize,
    /// What it touched (operations on different keys are independent).
    pub key: String,
    /// What was asked.
    pub input: I,
    /// Invoke time, nanoseconds since the recorder started.
    pub call: u64,
    /// How it ended.
    pub end: End<O>,
}

impl<I, O> Op<I, O> {
    /// The output, when known.
    pub fn output(&self) -> Option<&O> {
        match &self.end {
            End::Returned { output, .. } => Some(output),
            End::Unknown => None,
        }
    }

    /// Completion time; `u64::MAX` (after everything) when unknown.
    pub fn ret(&self) -> u64 {
        match &self.end {
            End::Returned { at, .. } => *at,
            End::Unknown => u64::MAX,
        }
    }
}

/// A recorded history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History<I, O> {
    /// The operations, in invoke order.
    pub ops: Vec<Op<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

impl<I: Serialize, O: Serialize> History<I, O> {
    /// Writes the history as JSON, one operation per line, to read after a
    /// failed run.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut text = String::new();
        for op in &self.ops {
            text.push_str(&serde_json::to_string(op).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        std::fs::write(path, text)
    }
}

impl<I, O> History<I, O> {
    /// Adds an operation (for hand-made histories in tests); times are
    /// whatever unit the test likes, as long as they are consistent.
    pub fn push(&mut self, client: usize, key: &str, input: I, call: u64, end: End<O>) -> usize {
        let id = self.ops.len();
        self.ops.push(Op {
            id,
            client,
            key: key.to_owned(),
            input,
            call,
            end,
        });
        id
    }
}

/// Records operations from many threads; clones share one history.
#[derive(Debug)]
pub struct Recorder<I, O> {
    start: Instant,
    ops: Arc<Mutex<Vec<Op<I, O>>>>,
}

impl<I, O> Clone for Recorder<I, O> {
    fn clone(&self) -> Self {
        Recorder {
            start: self.start,
            ops: Arc::clone(&self.ops),
        }
    }
}

impl<I: Clone, O: Clone> Default for Recorder<I, O> {
    fn default() -> Self {
        Recorder::new()
    }
}

impl<I: Clone, O: Clone> Recorder<I, O> {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder<I, O> {
        Recorder {
            start: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records that `client` is about to send `input` on `key`. Complete the
    /// returned handle with [`Pending::returned`] when the answer arrives,
    /// or [`Pending::unknown`] (dropping it does the same).
    pub fn invoke(&self, client: usize, key: impl Into<String>, input: I) -> Pending<I, O> {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        let id = ops.len();
        // The time is taken under the lock so ids follow invoke times.
        let call = self.now();
        ops.push(Op {
            id,
            client,
            key: key.into(),
            input,
            call,
            end: End::Unknown,
        });
        Pending {
            recorder: self.clone(),
            id,
        }
    }

    /// The history so far (operations still pending are unknown).
    pub fn history(&self) -> History<I, O> {
        History {
            ops: self
                .ops
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// An invoked operation waiting for its outcome.
#[derive(Debug)]
pub struct Pending<I, O> {
    recorder: Recorder<I, O>,
    id: usize,
}

impl<I: Clone, O: Clone> Pending<I, O> {
    /// The answer arrived: records the completion time now.
    pub fn returned(self, output: O) {
        let at = self.recorder.now();
        let mut ops = self
            .recorder
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = ops.get_mut(self.id) {
            op.end = End::Returned { at, output };
        }
    }

    /// No answer (timeout, broken connection): it may or may not have
    /// taken effect.
    pub fn unknown(self) {}

    /// Its id in the history.
    pub fn id(&self) -> usize {
        self.id
    }
}

/// An operation on a job, as the chaos tests run them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobInput {
    /// Register (or update) the job, carrying this value (e.g. in its
    /// meta); values are unique per history.
    Register(u64),
    /// Deregister (stop and purge) the job.
    Deregister,
    /// Read the job.
    Read,
}

/// What a job operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobOutput {
    /// The write was acknowledged.
    Ok,
    /// Deregister of a job that does not exist.
    NotFound,
    /// Read: no such job.
    Absent,
    /// Read: the job, carrying this value.
    Present(u64),
}

/// A history of job operations.
pub type JobHistory = History<JobInput, JobOutput>;

/// A recorder of job operations.
pub type JobRecorder = Recorder<JobInput, JobOutput>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_order_times_and_unknowns() {
        let rec = JobRecorder::new();
        let a = rec.invoke(0, "web", JobInput::Register(1));
        let b = rec.invoke(1, "web", JobInput::Read);
        let c = rec.invoke(2, "db", JobInput::Deregister);
        b.returned(JobOutput::Absent);
        a.returned(JobOutput::Ok);
        drop(c);
        let h = rec.history();
        assert_eq!(h.ops.len(), 3);
        assert!(h.ops.windows(2).all(|w| w[0].call <= w[1].call));
        assert!(h.ops.iter().all(|o| o.call <= o.ret()));
        assert_eq!(h.ops[0].output(), Some(&JobOutput::Ok));
        assert!(h.ops[1].ret() <= h.ops[0].ret());
        assert_eq!(h.ops[2].end, End::Unknown);
        assert_eq!(h.ops[2].ret(), u64::MAX);
    }

    #[test]
    fn jsonl_round_trips() {
        let mut h = JobHistory::default();
        h.push(
            0,
            "a",
            JobInput::Register(7),
            1,
            End::Returned {
                at: 2,
                output: JobOutput::Ok,
            },
        );
        h.push(1, "a", JobInput::Read, 3, End::Unknown);
        let dir = crate::TestDir::new("history-jsonl").unwrap();
        let path = dir.join("h.jsonl");
        h.write_jsonl(&path).unwrap();
        let back: Vec<Op<JobInput, JobOutput>> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, h.ops);
    }
}
