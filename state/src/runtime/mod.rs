//! openraft's async runtime on smol.
//!
//! openraft 0.10 asks for a runtime through [`openraft_rt::AsyncRuntime`]:
//! spawn, sleep, timeouts, an instant, and channels. This module implements
//! it on the smol family (async-executor, async-io timers, async-channel,
//! async-lock) so that no tokio is needed.
//!
//! # Where tasks run
//!
//! `AsyncRuntime::spawn` is an associated function with no receiver, so the
//! runtime must find an executor from context. Library crates never spawn
//! onto a global executor, so the executor comes from the caller: the agent
//! hands its one `smol::Executor` to [`StateNode::open`](crate::StateNode)
//! as a [`Spawner`]. Every future the node gives to openraft, and every task
//! spawned through the spawner, is wrapped so that while it is polled a
//! thread-local names that spawner; a task openraft spawns from inside is
//! therefore placed on the same executor and inherits the context. Several
//! nodes with different executors can live in one process (the in-process
//! test cluster gives each node its own), which a process-global executor
//! could not do.
//!
//! A spawn with no context at all is a bug in this crate (some openraft
//! entry point was not wrapped); rather than lose the task it runs on a
//! thread of its own, and debug builds assert.

mod channels;
mod watch;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use async_io::Timer;
use openraft_rt::{AsyncRuntime, OptionalSend};
use smol::Executor;
use smol::future::FutureExt as _;

pub use channels::{SmolMpsc, SmolMutex, SmolOneshot};
pub use watch::SmolWatch;

/// Where a node's background tasks run: a handle to the caller's executor.
///
/// openraft spawns its tasks through an associated function with no
/// receiver, so a runtime must find an executor from context. Rather than a
/// process-global executor (which a library must not spawn onto), every
/// future this crate gives to openraft is wrapped so that, while it is
/// polled, a thread-local names this spawner's executor; whatever openraft
/// spawns from there lands on the same executor and inherits the context.
/// The agent passes its one `smol::Executor` here and decides the threads
/// that run it; tests give each node an executor of its own, so that
/// dropping it kills the node mid-flight.
#[derive(Clone)]
pub struct Spawner {
    executor: Arc<Executor<'static>>,
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}

thread_local! {
    /// The executor of the task being polled on this thread, if any.
    /// Weak: tasks must not keep their own executor alive, or dropping the
    /// executor would never cancel them.
    static CURRENT: RefCell<Option<Weak<Executor<'static>>>> = const { RefCell::new(None) };
}

impl Spawner {
    /// Spawns onto `executor`, which the caller runs on threads of its own.
    /// Tasks hold the executor weakly: dropping the last strong handle
    /// cancels them.
    pub fn new(executor: Arc<Executor<'static>>) -> Spawner {
        Spawner { executor }
    }

    /// Spawns a task that runs with this spawner as its context.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let caught = AssertUnwindSafe(future).catch_unwind();
        let task = self.executor.spawn(self.enter(caught));
        JoinHandle {
            task: Some(task.fallible()),
        }
    }

    /// Wraps `future` so that whatever it spawns lands on this spawner.
    pub(crate) fn enter<F: Future>(&self, future: F) -> InContext<F> {
        InContext {
            executor: Arc::downgrade(&self.executor),
            future: Box::pin(future),
        }
    }

    fn current() -> Option<Spawner> {
        let executor = CURRENT.with(|c| c.borrow().as_ref().and_then(Weak::upgrade))?;
        Some(Spawner { executor })
    }
}

/// A future polled with a [`Spawner`]'s executor installed as the thread's
/// context.
pub(crate) struct InContext<F> {
    executor: Weak<Executor<'static>>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(self.executor.clone()))));
        self.future.as_mut().poll(cx)
    }
}

/// Puts back the previous context when a poll ends, also by panic.
struct Restore(Option<Weak<Executor<'static>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Why a spawned task produced no value.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The task panicked.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The executor was dropped before the task finished.
    #[error("task cancelled: its executor shut down")]
    Cancelled,
}

/// Awaits a spawned task; dropping it detaches the task (as tokio does),
/// it does not cancel it.
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<thread::Result<T>>>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(JoinError::Cancelled));
        };
        let out = match Pin::new(task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => Err(JoinError::Cancelled),
            Poll::Ready(Some(Ok(value))) => Ok(value),
            Poll::Ready(Some(Err(panic))) => Err(JoinError::Panicked(panic_message(&*panic))),
        };
        self.task = None;
        Poll::Ready(out)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// A sleep on an async-io timer.
#[derive(Debug)]
pub struct Sleep(Timer);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// A future raced against a timer.
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    timer: Timer,
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").finish_non_exhaustive()
    }
}

impl<R, F: Future<Output = R>> Future for Timeout<F> {
    type Output = Result<R, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(&mut self.timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// openraft's runtime on smol. As a value it is a small private executor
/// with its own threads, which only openraft's own test suites use
/// ([`AsyncRuntime::new`]); nodes spawn through the [`Spawner`] they are
/// given.
pub struct SmolRuntime {
    spawner: Spawner,
    stop: Option<smol::channel::Sender<()>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolRuntime")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Drop for SmolRuntime {
    fn drop(&mut self) {
        self.stop.take();
        for worker in self.workers.drain(..) {
            // A worker only runs the executor; if it panicked there is
            // nothing left to clean up.
            let _ = worker.join();
        }
    }
}

impl AsyncRuntime for SmolRuntime {
    type JoinError = JoinError;
    type JoinHandle<T: OptionalSend + 'static> = JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = rand::rngs::ThreadRng;

    fn spawn<T>(future: T) -> JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        match Spawner::current() {
            Some(spawner) => spawner.spawn(future),
            None => spawn_orphan(future),
        }
    }

    fn sleep(duration: Duration) -> Sleep {
        Sleep(Timer::after(duration))
    }

    fn sleep_until(deadline: Instant) -> Sleep {
        Sleep(Timer::at(deadline))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Timeout<F> {
        Timeout {
            future: Box::pin(future),
            timer: Timer::after(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Instant,
        future: F,
    ) -> Timeout<F> {
        Timeout {
            future: Box::pin(future),
            timer: Timer::at(deadline),
        }
    }

    fn is_panic(join_error: &JoinError) -> bool {
        matches!(join_error, JoinError::Panicked(_))
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rand::rng()
    }

    type Mpsc = SmolMpsc;
    type Watch = SmolWatch;
    type Oneshot = SmolOneshot;
    type Mutex<T: OptionalSend + 'static> = SmolMutex<T>;

    fn new(threads: usize) -> SmolRuntime {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        // The thread calling `block_on` also runs the executor.
        let workers = (1..threads.max(1))
            .filter_map(|n| {
                let executor = executor.clone();
                let stopped = stopped.clone();
                thread::Builder::new()
                    .name(format!("wren-rt-{n}"))
                    .spawn(move || {
                        async_io::block_on(executor.run(async move {
                            let _ = stopped.recv().await;
                        }))
                    })
                    .ok()
            })
            .collect();
        SmolRuntime {
            spawner: Spawner::new(executor),
            stop: Some(stop),
            workers,
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        let executor = self.spawner.executor.clone();
        async_io::block_on(executor.run(self.spawner.enter(future)))
    }
}

/// Runs a task spawned outside any context on a thread of its own, which
/// ends with the task.
fn spawn_orphan<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    debug_assert!(
        false,
        "openraft spawned a task outside a wren-state context"
    );
    let executor = Arc::new(Executor::new());
    let spawner = Spawner::new(executor.clone());
    let (done, finished) = smol::channel::bounded::<()>(1);
    let handle = spawner.spawn(async move {
        let out = future.await;
        drop(done);
        out
    });
    let _ = thread::Builder::new()
        .name("wren-rt-orphan".to_owned())
        .spawn(move || {
            async_io::block_on(executor.run(async move {
                let _ = finished.recv().await;
            }))
        });
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openraft-rt's own conformance suite for runtimes, run against ours.
    #[test]
    fn openraft_runtime_suite() {
        openraft_rt::testing::Suite::<SmolRuntime>::test_all();
    }

    #[test]
    fn spawned_tasks_inherit_the_spawner() {
        let mut rt = SmolRuntime::new(2);
        let got = rt.block_on(async {
            let outer = SmolRuntime::spawn(async {
                let inner = SmolRuntime::spawn(async { 7 });
                inner.await
            });
            outer.await
        });
        assert_eq!(got.unwrap().unwrap(), 7);
    }

    #[test]
    fn panics_are_reported_as_join_errors() {
        let mut rt = SmolRuntime::new(1);
        let err = rt
            .block_on(async { SmolRuntime::spawn(async { panic!("boom") }).await })
            .unwrap_err();
        assert!(SmolRuntime::is_panic(&err));
        assert!(err.to_string().contains("boom"));
    }

    #[test]
    fn dropping_a_handle_detaches_the_task() {
        let mut rt = SmolRuntime::new(1);
        let (tx, rx) = smol::channel::bounded(1);
        let got = rt.block_on(async move {
            drop(SmolRuntime::spawn(async move {
                SmolRuntime::sleep(Duration::from_millis(5)).await;
                tx.send(1u8).await.ok();
            }));
            rx.recv().await
        });
        assert_eq!(got, Ok(1));
    }
}
