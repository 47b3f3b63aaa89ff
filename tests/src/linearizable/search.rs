//! The search for one key: Wing & Gong over a doubly linked list of call
//! and return events, with a cache of (linearized set, state) pairs
//! already explored.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::{Model, Violation};
use crate::history::Op;

/// "No node": list ends.
const NIL: usize = usize::MAX;
/// The list head sentinel's index.
const HEAD: usize = 0;

/// How the search for one key ended.
pub(super) enum Outcome {
    /// Linearizable.
    Ok,
    /// Not linearizable; the deepest prefix tried (indexes into the key's
    /// operations).
    Stuck(Vec<usize>),
    /// Gave up after this many steps.
    OutOfBudget(u64),
}

#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// Index into the key's operations.
    op: usize,
    is_call: bool,
    /// For a call, its return node.
    ret: usize,
}

/// Events as a doubly linked list (index 0 is the head sentinel).
struct List {
    nodes: Vec<Node>,
}

impl List {
    fn new<I, O>(ops: &[&Op<I, O>]) -> List {
        // (time, calls before returns at equal times, op): equal times
        // count as overlapping, which never rejects a correct history.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, false, i));
            events.push((op.ret().max(op.call), true, i));
        }
        events.sort_unstable();
        let mut nodes = vec![Node {
            prev: NIL,
            next: NIL,
            op: NIL,
            is_call: false,
            ret: NIL,
        }];
        let mut call_node = vec![NIL; ops.len()];
        for (k, &(_, is_return, op)) in events.iter().enumerate() {
            let idx = k + 1;
            nodes.push(Node {
                prev: idx - 1,
                next: if k + 1 < events.len() { idx + 1 } else { NIL },
                op,
                is_call: !is_return,
                ret: NIL,
            });
            if is_return {
                // Every return follows its call in the sorted order.
                nodes[call_node[op]].ret = idx;
            } else {
                call_node[op] = idx;
            }
        }
        nodes[HEAD].next = if events.is_empty() { NIL } else { 1 };
        List { nodes }
    }

    fn unlink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = i;
        if next != NIL {
            self.nodes[next].prev = i;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        self.unlink(call);
        self.unlink(ret);
    }

    /// Puts them back (the reverse of `lift`).
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        self.relink(ret);
        self.relink(call);
    }
}

/// A set of operation indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn with(&self, i: usize) -> Bits {
        let mut b = self.clone();
        b.0[i / 64] |= 1 << (i % 64);
        b
    }
    fn without(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches one key's operations (all indexes used below come from the
/// list built over `ops`, so they are in range by construction).
pub(super) fn check_key<M: Model>(
    model: &M,
    ops: &[&Op<M::Input, M::Output>],
    budget: u64,
) -> Outcome {
    let mut list = List::new(ops);
    let mut state = model.init();
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // (call node, state before it)
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut deepest: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    let mut cur = list.nodes[HEAD].next;
    while list.nodes[HEAD].next != NIL {
        steps += 1;
        if steps > budget {
            return Outcome::OutOfBudget(steps);
        }
        let node = match list.nodes.get(cur) {
            Some(n) if cur != HEAD => *n,
            // Ran off the end: only possible if a return is missing.
            _ => return Outcome::Stuck(deepest),
        };
        if node.is_call {
            let op = ops[node.op];
            if let Some(next) = model.step(&state, &op.input, op.output()) {
                let now = linearized.with(node.op);
                if seen.insert((now.clone(), next.clone())) {
                    stack.push((cur, std::mem::replace(&mut state, next)));
                    linearized = now;
                    list.lift(cur);
                    if stack.len() > deepest.len() {
                        deepest = stack.iter().map(|&(c, _)| list.nodes[c].op).collect();
                    }
                    cur = list.nodes[HEAD].next;
                    continue;
                }
            }
            cur = node.next;
        } else {
            // An operation returned before it could be linearized: undo
            // the last choice and try the next candidate after it.
            let Some((call, before)) = stack.pop() else {
                return Outcome::Stuck(deepest);
            };
            state = before;
            linearized.without(list.nodes[call].op);
            list.unlift(call);
            cur = list.nodes[call].next;
        }
    }
    Outcome::Ok
}

/// Describes why a key failed: replays the deepest prefix, then names the
/// operations real time allowed next and the model refused.
pub(super) fn explain<M: Model>(
    model: &M,
    key: &str,
    ops: &[&Op<M::Input, M::Output>],
    deepest: &[usize],
) -> Violation {
    let mut state = model.init();
    for &i in deepest {
        if let Some(next) = model.step(&state, &ops[i].input, ops[i].output()) {
            state = next;
        }
    }
    let done: HashSet<usize> = deepest.iter().copied().collect();
    let rest: Vec<usize> = (0..ops.len()).filter(|i| !done.contains(i)).collect();
    // Real time allows next whatever was invoked before the first
    // outstanding return.
    let horizon = rest.iter().map(|&i| ops[i].ret()).min().unwrap_or(u64::MAX);
    let refused: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|&i| ops[i].call <= horizon)
        .collect();
    let mut report = format!("key {key:?}: {} operations\n", ops.len());
    for op in ops {
        let end = match op.output() {
            Some(o) => format!("returned {o:?} at {}", op.ret()),
            None => "outcome unknown".to_owned(),
        };
        let _ = writeln!(
            report,
            "  op {:>5} client {:>3} {:?} invoked at {}, {end}",
            op.id, op.client, op.input, op.call
        );
    }
    let ids = |v: &[usize]| v.iter().map(|&i| ops[i].id).collect::<Vec<_>>();
    let _ = writeln!(
        report,
        "longest linearizable prefix: {:?}, leaving state {state:?}",
        ids(deepest)
    );
    let _ = write!(
        report,
        "none of these can come next from that state: {:?}",
        ids(&refused)
    );
    Violation {
        key: key.to_owned(),
        linearized: ids(deepest),
        state: format!("{state:?}"),
        refused: ids(&refused),
        report,
    }
}
