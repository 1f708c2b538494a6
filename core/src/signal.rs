//! A one-value broadcast for stop and cancel signals, with the subset of
//! `tokio::sync::watch`'s API this crate uses.
//!
//! Why not `watch` itself: its receivers wait on one of several internal
//! `Notify` shards picked by tokio's thread-local RNG, which is seeded from
//! a process-wide counter. So the order in which two loops wake on one
//! cancel, and with it the whole schedule after a step-down, would differ
//! from run to run in one process. This one wakes its waiters in the order
//! they started waiting: the same seed, the same schedule.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

struct Shared {
    value: AtomicBool,
    /// Bumped on every send, so receivers see each one.
    version: AtomicU64,
    /// The sender is gone: no value will ever change again.
    closed: AtomicBool,
    notify: Notify,
}

/// A new channel holding `init`.
pub fn channel(init: bool) -> (Sender<bool>, Receiver<bool>) {
    let shared = Arc::new(Shared {
        value: AtomicBool::new(init),
        version: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        notify: Notify::new(),
    });
    (Sender(shared.clone(), PhantomData), Receiver { shared, seen: 0, _value: PhantomData })
}

/// The sending half (one per channel). Only `bool` is carried; the type
/// parameter keeps `watch`-style signatures.
pub struct Sender<T>(Arc<Shared>, PhantomData<T>);

/// The sender is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the sender is gone")
    }
}

impl std::error::Error for RecvError {}

impl Sender<bool> {
    /// Set the value and wake every receiver waiting in `changed`. Never
    /// fails; the `Result` keeps call sites written for `watch` unchanged.
    pub fn send(&self, value: bool) -> Result<(), RecvError> {
        self.0.value.store(value, Ordering::SeqCst);
        self.0.version.fetch_add(1, Ordering::SeqCst);
        self.0.notify.notify_waiters();
        Ok(())
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<bool> {
        Receiver { shared: self.0.clone(), seen: self.0.version.load(Ordering::SeqCst), _value: PhantomData }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
}

/// The receiving half; clones share the channel and what they have seen.
pub struct Receiver<T> {
    shared: Arc<Shared>,
    seen: u64,
    _value: PhantomData<T>,
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver { shared: self.shared.clone(), seen: self.seen, _value: PhantomData }
    }
}

/// The value as read (a copy: the channel holds one bool).
pub struct Ref(bool);

impl Deref for Ref {
    type Target = bool;
    fn deref(&self) -> &bool {
        &self.0
    }
}

impl Receiver<bool> {
    pub fn borrow(&self) -> Ref {
        Ref(self.shared.value.load(Ordering::SeqCst))
    }

    /// Read the value and mark it seen.
    pub fn borrow_and_update(&mut self) -> Ref {
        self.seen = self.shared.version.load(Ordering::SeqCst);
        self.borrow()
    }

    /// Whether a value was sent since this receiver last looked; an error
    /// once the sender is gone.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(RecvError);
        }
        Ok(self.shared.version.load(Ordering::SeqCst) != self.seen)
    }

    /// Wait for a value not yet seen (and mark it seen); an error once the
    /// sender is gone with nothing new sent.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            // Registered before the check: a send in between still wakes it.
            let notified = self.shared.notify.notified();
            let v = self.shared.version.load(Ordering::SeqCst);
            if v != self.seen {
                self.seen = v;
                return Ok(());
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(RecvError);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[madsim::test]
    async fn a_send_wakes_every_waiter_and_is_seen_once() {
        let (tx, rx) = channel(false);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    rx.changed().await.unwrap();
                    *rx.borrow()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        for w in waiters {
            assert!(w.await.unwrap());
        }
        let mut rx2 = rx.clone();
        assert_eq!(rx2.has_changed(), Ok(true));
        assert!(*rx2.borrow_and_update());
        assert_eq!(rx2.has_changed(), Ok(false));
    }

    #[madsim::test]
    async fn dropping_the_sender_ends_waits_with_an_error() {
        let (tx, mut rx) = channel(false);
        let w = tokio::spawn(async move { rx.changed().await });
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(w.await.unwrap(), Err(RecvError));
    }
}
