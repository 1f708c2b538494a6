//! Sleeps and timeouts that cost madsim one timer each (docs/design.md §12).
//!
//! madsim's own `Sleep` adds a timer to its heap every time it is polled
//! while pending, and never removes one: a timeout re-polled each time the
//! call it bounds is woken adds a timer per wake, and the timer of a call
//! that finished early still fires later and wakes whatever its task awaits
//! by then, a poll that does nothing but arm more timers. [`Sleep`] arms
//! madsim's timer once, through a waker of its own that forwards to the
//! task only while the sleep is alive: a dropped sleep's timer wakes nobody.

use haywire_core::clock::Elapsed;
use haywire_core::{Clock, Millis};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Sleep for `d` of simulated time (at least madsim's 1 ms).
pub fn sleep(d: Duration) -> Sleep {
    Sleep { inner: madsim::time::sleep(d), slot: None }
}

/// Sleep until `deadline` (at least madsim's 1 ms from now).
pub fn sleep_until(deadline: madsim::time::Instant) -> Sleep {
    Sleep { inner: madsim::time::sleep_until(deadline), slot: None }
}

/// Run `fut` for at most `d` of simulated time (core's bounded wait, on
/// the world's own time).
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    haywire_core::clock::timeout(&WorldTime, d, fut).await
}

/// The world's simulated time through core's clock seam: global, with no
/// skew or drift (the replicas' own clocks are [`crate::clock::SimClock`]).
struct WorldTime;

impl Clock for WorldTime {
    fn now(&self) -> Millis {
        madsim::time::TimeHandle::current().elapsed().as_millis() as Millis
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        sleep(d)
    }
}

/// See the module comment.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sleep {
    inner: madsim::time::Sleep,
    /// None until first polled while pending, then the waker madsim's one
    /// timer will wake.
    slot: Option<Arc<Slot>>,
}

/// The task to wake when the timer fires: None once fired or dropped.
struct Slot(Mutex<Option<Waker>>);

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.0.lock().expect("timer slot lock").take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Sleep {
    /// Arm madsim's timer with `slot`'s forwarding waker.
    fn arm(&mut self, slot: &Arc<Slot>) {
        let waker = Waker::from(slot.clone());
        let armed = Pin::new(&mut self.inner).poll(&mut Context::from_waker(&waker));
        debug_assert!(armed.is_pending(), "arm is only called before the deadline");
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.is_elapsed() {
            return Poll::Ready(());
        }
        match self.slot.clone() {
            None => {
                let slot = Arc::new(Slot(Mutex::new(Some(cx.waker().clone()))));
                self.arm(&slot);
                self.slot = Some(slot);
            }
            Some(slot) => {
                let fired = {
                    let mut task = slot.0.lock().expect("timer slot lock");
                    let fired = task.is_none();
                    if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                        *task = Some(cx.waker().clone());
                    }
                    fired
                };
                // Fired before the clock reached the deadline (it cannot on
                // madsim's clock, which jumps past each timer it expires):
                // arm again rather than never wake.
                if fired {
                    self.arm(&slot);
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.0.lock().expect("timer slot lock").take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the polls of the future it wraps.
    struct Polls<F> {
        count: Arc<AtomicUsize>,
        inner: Pin<Box<F>>,
    }

    impl<F: Future> Future for Polls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.inner.as_mut().poll(cx)
        }
    }

    fn in_sim<F: Future<Output = ()> + Send + 'static>(make: impl FnOnce() -> F) {
        madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(make());
    }

    /// A task that wins a race against a long sleep, then sleeps past that
    /// sleep's deadline: `polls` is how often the task was polled.
    async fn race_then_sleep<S: Future<Output = ()>>(long: S) -> usize {
        let count = Arc::new(AtomicUsize::new(0));
        let task = async move {
            tokio::select! {
                biased;
                _ = sleep(Duration::from_millis(5)) => {}
                _ = long => panic!("the long sleep lost the race"),
            }
            sleep(Duration::from_secs(10)).await;
        };
        Polls { count: count.clone(), inner: Box::pin(task) }.await;
        count.load(Ordering::Relaxed)
    }

    #[test]
    fn a_dropped_sleep_wakes_nobody() {
        in_sim(|| async {
            // First poll, the 5 ms sleep firing, the 10 s sleep firing.
            assert_eq!(race_then_sleep(sleep(Duration::from_secs(1))).await, 3);
            // madsim's own sleep still wakes the task at 1 s, after it was
            // dropped: the spurious poll this module exists to avoid.
            assert_eq!(race_then_sleep(madsim::time::sleep(Duration::from_secs(1))).await, 4);
        });
    }

    #[test]
    fn a_timeout_bounds_and_passes_through() {
        in_sim(|| async {
            let start = madsim::time::Instant::now();
            assert_eq!(timeout(Duration::from_millis(50), std::future::pending::<()>()).await, Err(Elapsed));
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(50) && waited < Duration::from_millis(51), "{waited:?}");
            assert_eq!(timeout(Duration::from_millis(50), async { 7 }).await, Ok(7));
            sleep_until(start + Duration::from_secs(2)).await;
            assert!(start.elapsed() >= Duration::from_secs(2));
        });
    }

    #[test]
    fn a_sleep_repolled_by_its_task_still_wakes_it() {
        in_sim(|| async {
            // The 30 ms sleep is polled again each time the 1 ms ticks wake
            // the task; it must still fire, once, at its own deadline.
            let start = madsim::time::Instant::now();
            let long = sleep(Duration::from_millis(30));
            tokio::pin!(long);
            let mut ticks = 0;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut long => break,
                    _ = sleep(Duration::from_millis(1)) => ticks += 1,
                }
            }
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert!((20..30).contains(&ticks), "{ticks} ticks");
        });
    }
}
