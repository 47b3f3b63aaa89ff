//! Blocking queries: the latest applied state, and waiting for it to move.
//!
//! The state machine publishes a new [`State`] after every batch of
//! entries it applies; readers take the latest (an O(1) clone) or wait
//! until a table's index passes one they have seen, as Nomad's blocking
//! queries do. Waiting is runtime-agnostic: an `event-listener` event per
//! table, raced against an `async-io` timer, so it works on any executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::{Event, EventListener};
use smol::future;

use super::tables::{State, Table};

/// The latest applied state, shared between the state machine and its
/// readers.
#[derive(Debug, Clone)]
pub struct StateWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    /// One event per table, fired when its index moves.
    tables: [Event; 5],
    /// Fired on every publish.
    any: Event,
    closed: AtomicBool,
}

impl Default for StateWatch {
    fn default() -> Self {
        StateWatch::new(State::new())
    }
}

impl StateWatch {
    /// A watch starting at `state`.
    pub fn new(state: State) -> StateWatch {
        StateWatch {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                tables: Default::default(),
                any: Event::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The latest applied state.
    pub fn current(&self) -> State {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `state` the latest and wakes whoever waits on what changed.
    pub fn publish(&self, state: State) {
        let before = {
            let mut slot = self
                .inner
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *slot, state.clone())
        };
        for table in Table::ALL {
            if state.table_index(table) != before.table_index(table) {
                self.inner.tables[table.slot()].notify(usize::MAX);
            }
        }
        self.inner.any.notify(usize::MAX);
    }

    /// Wakes every waiter for good: they return what they have.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        for event in &self.inner.tables {
            event.notify(usize::MAX);
        }
        self.inner.any.notify(usize::MAX);
    }

    /// Waits until `table`'s index is greater than `after`, or `timeout`
    /// passes, and returns the state as it then is (check
    /// [`State::table_index`] to tell which happened, as with Nomad's
    /// blocking queries).
    pub async fn wait_for_index(&self, table: Table, after: u64, timeout: Duration) -> State {
        let event = &self.inner.tables[table.slot()];
        self.wait(event, timeout, |s| {
            (s.table_index(table) > after).then(|| s.clone())
        })
        .await
        .unwrap_or_else(|| self.current())
    }

    /// Waits until `check` returns something for the latest state, or
    /// `timeout` passes (then `None`). `check` runs after every publish.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        self.wait(&self.inner.any, timeout, check).await
    }

    async fn wait<T>(
        &self,
        event: &Event,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let listener: EventListener = event.listen();
            if let Some(found) = check(&self.current()) {
                return Some(found);
            }
            if self.inner.closed.load(Ordering::Acquire) {
                return None;
            }
            let timer = async {
                match deadline {
                    Some(at) => {
                        Timer::at(at).await;
                    }
                    None => future::pending::<()>().await,
                }
                true
            };
            let timed_out = future::or(
                async {
                    listener.await;
                    false
                },
                timer,
            )
            .await;
            if timed_out {
                return check(&self.current());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::fsm::apply::tests::{build, node};
    use crate::fsm::command::{Command, Proposal, UpsertNode};

    fn with_node(state: &State, index: u64, id: &str) -> State {
        let mut next = state.clone();
        let command = Command::UpsertNode(UpsertNode {
            node: node(id),
            evals: vec![],
        });
        next.apply(
            index,
            Proposal {
                issued_at: 0,
                command,
            },
        )
        .unwrap();
        next
    }

    #[test]
    fn a_blocking_query_returns_when_its_table_passes_the_index() {
        let watch = StateWatch::new(build(vec![]));
        let publisher = watch.clone();
        let handle = thread::spawn(move || {
            // Move another table first and the nodes table second: the
            // reader must not return on the first.
            let current = publisher.current();
            let mut jobs_only = current.clone();
            jobs_only.index = 1;
            jobs_only.touch(Table::Jobs);
            publisher.publish(jobs_only.clone());
            publisher.publish(with_node(&jobs_only, 2, "n1"));
        });
        let got = smol::block_on(watch.wait_for_index(Table::Nodes, 1, Duration::from_secs(60)));
        handle.join().unwrap();
        assert_eq!(got.table_index(Table::Nodes), 2);
        assert!(got.node("n1").is_some());
    }

    #[test]
    fn a_blocking_query_times_out_with_the_current_state() {
        let watch = StateWatch::new(build(vec![]));
        let got = smol::block_on(watch.wait_for_index(Table::Allocs, 0, Duration::from_millis(20)));
        assert_eq!(got.table_index(Table::Allocs), 0);
        let none: Option<()> = smol::block_on(watch.wait_for(Duration::from_millis(20), |_| None));
        assert!(none.is_none());
    }

    #[test]
    fn wait_for_sees_each_publish_and_close_releases_waiters() {
        let watch = StateWatch::new(build(vec![]));
        let publisher = watch.clone();
        let handle = thread::spawn(move || {
            let mut s = publisher.current();
            for i in 1..=5 {
                s = with_node(&s, i, &format!("n{i}"));
                publisher.publish(s.clone());
            }
        });
        let count = smol::block_on(watch.wait_for(Duration::from_secs(60), |s| {
            (s.counts().nodes == 5).then_some(s.index())
        }));
        handle.join().unwrap();
        assert_eq!(count, Some(5));

        let closer = watch.clone();
        let handle = thread::spawn(move || closer.close());
        let got =
            smol::block_on(watch.wait_for_index(Table::Evals, 100, Duration::from_secs(3600)));
        handle.join().unwrap();
        assert_eq!(got.index(), 5, "a closed watch returns what it has");
    }
}
