//! Bounded mpsc (async-channel), oneshot (futures-channel) and an async
//! mutex (async-lock) in the shapes openraft's runtime traits ask for.

use std::future::Future;

use openraft_rt::mpsc::{MpscReceiver, MpscSender, MpscWeakSender, SendError, TryRecvError};
use openraft_rt::{Mpsc, Mutex, Oneshot, OneshotSender, OptionalSend};
use smol::channel;

/// Bounded multi-producer channels on async-channel.
///
/// async-channel allocates a bounded channel's whole buffer up front, so
/// the channel sizes in openraft's config matter for memory (see
/// [`crate::NodeConfig`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolMpsc;

/// Sending half of a [`SmolMpsc`] channel.
#[derive(Debug)]
pub struct Sender<T>(channel::Sender<T>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

/// Receiving half of a [`SmolMpsc`] channel.
#[derive(Debug)]
pub struct Receiver<T>(channel::Receiver<T>);

/// A sender that does not keep its channel open.
#[derive(Debug)]
pub struct WeakSender<T>(channel::WeakSender<T>);

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender(self.0.clone())
    }
}

impl Mpsc for SmolMpsc {
    type Sender<T: OptionalSend> = Sender<T>;
    type Receiver<T: OptionalSend> = Receiver<T>;
    type WeakSender<T: OptionalSend> = WeakSender<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (Sender<T>, Receiver<T>) {
        let (tx, rx) = channel::bounded(buffer.max(1));
        (Sender(tx), Receiver(rx))
    }
}

impl<T: OptionalSend> MpscSender<SmolMpsc, T> for Sender<T> {
    fn send(&self, msg: T) -> impl Future<Output = Result<(), SendError<T>>> + OptionalSend {
        let send = self.0.send(msg);
        async move { send.await.map_err(|e| SendError(e.into_inner())) }
    }

    fn downgrade(&self) -> WeakSender<T> {
        WeakSender(self.0.downgrade())
    }
}

impl<T: OptionalSend> MpscReceiver<T> for Receiver<T> {
    fn recv(&mut self) -> impl Future<Output = Option<T>> + OptionalSend {
        let recv = self.0.recv();
        async move { recv.await.ok() }
    }

    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map_err(|e| match e {
            channel::TryRecvError::Empty => TryRecvError::Empty,
            channel::TryRecvError::Closed => TryRecvError::Disconnected,
        })
    }
}

impl<T: OptionalSend> MpscWeakSender<SmolMpsc, T> for WeakSender<T> {
    fn upgrade(&self) -> Option<Sender<T>> {
        self.0.upgrade().map(Sender)
    }
}

/// One-shot channels on futures-channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolOneshot;

/// Sending half of a [`SmolOneshot`] channel.
#[derive(Debug)]
pub struct OneshotTx<T>(futures_channel::oneshot::Sender<T>);

impl Oneshot for SmolOneshot {
    type Sender<T: OptionalSend> = OneshotTx<T>;
    type Receiver<T: OptionalSend> = futures_channel::oneshot::Receiver<T>;
    type ReceiverError = futures_channel::oneshot::Canceled;

    fn channel<T: OptionalSend>() -> (OneshotTx<T>, Self::Receiver<T>) {
        let (tx, rx) = futures_channel::oneshot::channel();
        (OneshotTx(tx), rx)
    }
}

impl<T: OptionalSend> OneshotSender<T> for OneshotTx<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

/// An async mutex on async-lock.
#[derive(Debug)]
pub struct SmolMutex<T>(smol::lock::Mutex<T>);

impl<T: OptionalSend + 'static> Mutex<T> for SmolMutex<T> {
    type Guard<'a> = smol::lock::MutexGuard<'a, T>;

    fn new(value: T) -> Self {
        SmolMutex(smol::lock::Mutex::new(value))
    }

    fn lock(&self) -> impl Future<Output = Self::Guard<'_>> + OptionalSend {
        self.0.lock()
    }
}
