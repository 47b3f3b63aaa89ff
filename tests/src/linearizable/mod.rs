//! A linearizability checker: is there an order of the operations,
//! consistent with real time (an operation that returned before another
//! was invoked comes first), in which a sequential model produces every
//! output that was observed?
//!
//! The search is Wing & Gong's, with Lowe's memoization as Porcupine uses
//! it: walk a doubly linked list of call and return events in time order;
//! at a call, try to linearize that operation now (the model accepts its
//! output, and the pair (set of linearized operations, model state) has not
//! been explored before), then restart from the first event; at a return
//! whose operation is not yet linearized, undo the last choice. The
//! history is linearizable when the list empties.
//!
//! The history is split per key first (operations on different jobs are
//! independent; linearizability is compositional), which keeps each search
//! small. An operation with an unknown outcome returns "after everything":
//! it may take effect at any point after its invocation, or never (which
//! is the same as at the very end).
//!
//! Unknown outcomes are what makes such searches explode, so the model may
//! say more about each ([`Model::unknown`]): a read, or a write whose value
//! nobody read, constrains nothing and is dropped; a write whose value was
//! read took effect before that read returned. And unknown operations with
//! equal inputs are interchangeable, so only the earliest invoked of them
//! that is not yet linearized is ever tried (any order that uses a later
//! one can use the earlier one instead).
//!
//! The search can take exponential time on adversarial histories; a step
//! budget per key turns that into [`Verdict::Inconclusive`] instead of a
//! hang.

pub mod generate;
mod jobs;
mod search;

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::hash::Hash;

pub use jobs::Jobs;

use crate::history::{End, History, Op};

/// A sequential specification.
pub trait Model {
    /// The state of one key.
    type State: Clone + Eq + Hash + Debug;
    /// Operation inputs.
    type Input: Debug + Eq + Hash;
    /// Operation outputs.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` if, from `state`, it could have returned
    /// `output` (`None`: unknown, anything goes); `None` if it could not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// What to make of `op`, whose outcome is unknown, given every
    /// operation on its key. The default keeps it: it may take effect at
    /// any time after its invocation, or never.
    fn unknown(
        &self,
        op: &Op<Self::Input, Self::Output>,
        key_ops: &[&Op<Self::Input, Self::Output>],
    ) -> Unknown {
        let _ = (op, key_ops);
        Unknown::Keep
    }
}

/// How the checker treats an operation with an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Nothing could have observed it (a read, or a write whose value was
    /// never read): leave it out.
    Drop,
    /// It may take effect at any time after its invocation, or never.
    Keep,
    /// It was observed, so it took effect, and no later than this time
    /// (the return of the first operation that observed it).
    TookEffectBy(u64),
}

/// An operation of model `M`'s history.
pub type OpOf<M> = Op<<M as Model>::Input, <M as Model>::Output>;

/// Search limits.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Steps (events visited) per key before giving up.
    pub steps_per_key: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            steps_per_key: 50_000_000,
        }
    }
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations have a linearization.
    Linearizable,
    /// This key's have none.
    Violation(Violation),
    /// The budget ran out on this key.
    Inconclusive {
        /// The key.
        key: String,
        /// Steps taken.
        steps: u64,
    },
}

impl Verdict {
    /// Whether the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Why a key's operations are not linearizable: the longest prefix that
/// could be linearized, and the operations none of which can come next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// Ids of the operations linearized by the deepest attempt, in order.
    pub linearized: Vec<usize>,
    /// The model state after them (Debug-formatted).
    pub state: String,
    /// Ids of operations that real time allowed next but the model refused
    /// (with the output each observed).
    pub refused: Vec<usize>,
    /// A readable account: the key's operations with times, the prefix,
    /// the refused operations.
    pub report: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::Violation(v) => write!(f, "not linearizable: {}", v.report),
            Verdict::Inconclusive { key, steps } => write!(
                f,
                "inconclusive: key {key:?} not decided within {steps} search steps"
            ),
        }
    }
}

/// Checks a whole history, key by key (keys in sorted order; the first
/// violating or undecided key is reported).
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    budget: Budget,
) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&OpOf<M>>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        let items: Vec<search::Item<'_, M::Input, M::Output>> = ops
            .iter()
            .filter_map(|&op| {
                let (ret, output) = match &op.end {
                    End::Returned { at, output } => (*at, Some(output)),
                    End::Unknown => match model.unknown(op, &ops) {
                        Unknown::Drop => return None,
                        Unknown::Keep => (u64::MAX, None),
                        Unknown::TookEffectBy(t) => (t, None),
                    },
                };
                Some(search::Item {
                    op,
                    ret: ret.max(op.call),
                    output,
                })
            })
            .collect();
        match search::check_key(model, &items, budget.steps_per_key) {
            search::Outcome::Ok => {}
            search::Outcome::OutOfBudget(steps) => {
                return Verdict::Inconclusive {
                    key: key.to_owned(),
                    steps,
                };
            }
            search::Outcome::Stuck(deepest) => {
                return Verdict::Violation(search::explain(model, key, &items, &deepest));
            }
        }
    }
    Verdict::Linearizable
}
