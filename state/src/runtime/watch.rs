//! A watch channel: one value, many readers, each told when it changes.
//!
//! smol has none, so this is a small one: the value and a version number
//! under a `RwLock`, an `event-listener` event for wake-ups, and counts of
//! senders and receivers so that sends fail without receivers and receivers
//! learn when the last sender is gone.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use event_listener::Event;
use openraft_rt::watch::{RecvError, SendError};
use openraft_rt::{OptionalSend, OptionalSync, Watch, WatchReceiver, WatchSender};

/// Watch channels for openraft.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolWatch;

#[derive(Debug)]
struct Slot<T> {
    value: T,
    version: u64,
}

#[derive(Debug)]
struct Shared<T> {
    slot: RwLock<Slot<T>>,
    changed: Event,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, Slot<T>> {
        // A writer that panicked left a whole value behind: readers go on.
        self.slot.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn modify(&self, f: impl FnOnce(&mut T) -> bool) -> bool {
        let changed = {
            let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
            let changed = f(&mut slot.value);
            if changed {
                slot.version += 1;
            }
            changed
        };
        if changed {
            self.changed.notify(usize::MAX);
        }
        changed
    }

    fn closed(&self) -> bool {
        self.senders.load(Ordering::Acquire) == 0
    }
}

/// Sending half of a watch channel.
#[derive(Debug)]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// Receiving half of a watch channel.
#[derive(Debug)]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// A read guard on the watched value.
#[derive(Debug)]
pub struct Ref<'a, T>(RwLockReadGuard<'a, Slot<T>>);

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl Watch for SmolWatch {
    type Sender<T: OptionalSend + OptionalSync> = Sender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = Receiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Sender<T>, Receiver<T>) {
        let shared = Arc::new(Shared {
            slot: RwLock::new(Slot {
                value: init,
                version: 0,
            }),
            changed: Event::new(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        });
        (
            Sender {
                shared: shared.clone(),
            },
            Receiver { shared, seen: 0 },
        )
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.changed.notify(usize::MAX);
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receivers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<SmolWatch, T> for Sender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Ordering::Acquire) == 0 {
            return Err(SendError(value));
        }
        self.shared.modify(|v| {
            *v = value;
            true
        });
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        self.shared.modify(modify)
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        let seen = self.shared.read().version;
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<SmolWatch, T> for Receiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            let listener = self.shared.changed.listen();
            let version = self.shared.read().version;
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed() {
                return Err(RecvError(()));
            }
            listener.await;
        }
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let slot = self.shared.read();
        self.seen = slot.version;
        Ref(slot)
    }
}
