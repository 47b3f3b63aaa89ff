//! The search for one key: Wing & Gong over a doubly linked list of call
//! and return events, with a cache of (linearized set, state) pairs
//! already explored, and interchangeable unknown operations tried in
//! invocation order only.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::{Model, Violation};
use crate::history::Op;

/// "No node": list ends.
const NIL: usize = usize::MAX;
/// The list head sentinel's index.
const HEAD: usize = 0;

/// An operation as the search sees it: its return time (`u64::MAX` when it
/// may take effect any time after its call) and its output, if known.
pub(super) struct Item<'a, I, O> {
    pub op: &'a Op<I, O>,
    pub ret: u64,
    pub output: Option<&'a O>,
}

/// How the search for one key ended.
pub(super) enum Outcome {
    /// Linearizable.
    Ok,
    /// Not linearizable; the deepest prefix tried (indexes into the key's
    /// items).
    Stuck(Vec<usize>),
    /// Gave up after this many steps.
    OutOfBudget(u64),
}

#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// Index into the items.
    item: usize,
    is_call: bool,
    /// For a call, its return node.
    ret: usize,
}

/// Events as a doubly linked list (index 0 is the head sentinel).
struct List {
    nodes: Vec<Node>,
}

impl List {
    fn new<I, O>(items: &[Item<'_, I, O>]) -> List {
        // (time, calls before returns at equal times, item): equal times
        // count as overlapping, which never rejects a correct history.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(items.len() * 2);
        for (i, it) in items.iter().enumerate() {
            events.push((it.op.call, false, i));
            events.push((it.ret.max(it.op.call), true, i));
        }
        events.sort_unstable();
        let mut nodes = vec![Node {
            prev: NIL,
            next: NIL,
            item: NIL,
            is_call: false,
            ret: NIL,
        }];
        let mut call_node = vec![NIL; items.len()];
        for (k, &(_, is_return, item)) in events.iter().enumerate() {
            let idx = k + 1;
            nodes.push(Node {
                prev: idx - 1,
                next: if k + 1 < events.len() { idx + 1 } else { NIL },
                item,
                is_call: !is_return,
                ret: NIL,
            });
            if is_return {
                // Every return follows its call in the sorted order.
                nodes[call_node[item]].ret = idx;
            } else {
                call_node[item] = idx;
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

/// A set of item indexes.
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

/// Unknown operations with equal inputs (and no deadline) are
/// interchangeable; each such class is linearized in invocation order.
struct Classes {
    /// Per item: its class and its place in it.
    of: Vec<Option<(usize, usize)>>,
    /// Per class: how many of its members are linearized (always a
    /// prefix, since the stack undoes in reverse order).
    done: Vec<usize>,
}

impl Classes {
    fn new<I: Eq + std::hash::Hash, O>(items: &[Item<'_, I, O>]) -> Classes {
        let mut ids: HashMap<&I, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if it.output.is_none() && it.ret == u64::MAX {
                let next = ids.len();
                let c = *ids.entry(&it.op.input).or_insert(next);
                if c == members.len() {
                    members.push(Vec::new());
                }
                members[c].push(i);
            }
        }
        let mut of = vec![None; items.len()];
        for (c, m) in members.iter_mut().enumerate() {
            m.sort_by_key(|&i| (items[i].op.call, i));
            for (pos, &i) in m.iter().enumerate() {
                of[i] = Some((c, pos));
            }
        }
        Classes {
            of,
            done: vec![0; members.len()],
        }
    }

    /// Whether item `i` may be linearized now (it is the next of its class).
    fn may_go(&self, i: usize) -> bool {
        self.of[i].is_none_or(|(c, pos)| self.done[c] == pos)
    }

    fn went(&mut self, i: usize) {
        if let Some((c, _)) = self.of[i] {
            self.done[c] += 1;
        }
    }

    fn undone(&mut self, i: usize) {
        if let Some((c, _)) = self.of[i] {
            self.done[c] -= 1;
        }
    }
}

/// Searches one key's items (all indexes used below come from the list
/// and classes built over `items`, so they are in range by construction).
pub(super) fn check_key<M: Model>(
    model: &M,
    items: &[Item<'_, M::Input, M::Output>],
    budget: u64,
) -> Outcome {
    let mut list = List::new(items);
    let mut classes = Classes::new(items);
    let mut state = model.init();
    let mut linearized = Bits::new(items.len());
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
            let it = &items[node.item];
            if classes.may_go(node.item)
                && let Some(next) = model.step(&state, &it.op.input, it.output)
            {
                let now = linearized.with(node.item);
                if seen.insert((now.clone(), next.clone())) {
                    stack.push((cur, std::mem::replace(&mut state, next)));
                    linearized = now;
                    classes.went(node.item);
                    list.lift(cur);
                    if stack.len() > deepest.len() {
                        deepest = stack.iter().map(|&(c, _)| list.nodes[c].item).collect();
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
            let item = list.nodes[call].item;
            state = before;
            linearized.without(item);
            classes.undone(item);
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
    items: &[Item<'_, M::Input, M::Output>],
    deepest: &[usize],
) -> Violation {
    let mut state = model.init();
    for &i in deepest {
        if let Some(next) = model.step(&state, &items[i].op.input, items[i].output) {
            state = next;
        }
    }
    let done: HashSet<usize> = deepest.iter().copied().collect();
    let rest: Vec<usize> = (0..items.len()).filter(|i| !done.contains(i)).collect();
    // Real time allows next whatever was invoked before the first
    // outstanding return.
    let horizon = rest.iter().map(|&i| items[i].ret).min().unwrap_or(u64::MAX);
    let refused: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|&i| items[i].op.call <= horizon)
        .collect();
    let mut report = format!("key {key:?}: {} operations\n", items.len());
    for it in items {
        let end = match (it.output, it.ret) {
            (Some(o), at) => format!("returned {o:?} at {at}"),
            (None, u64::MAX) => "outcome unknown".to_owned(),
            (None, by) => format!("outcome unknown, observed by {by}"),
        };
        let _ = writeln!(
            report,
            "  op {:>5} client {:>3} {:?} invoked at {}, {end}",
            it.op.id, it.op.client, it.op.input, it.op.call
        );
    }
    let ids = |v: &[usize]| v.iter().map(|&i| items[i].op.id).collect::<Vec<_>>();
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
