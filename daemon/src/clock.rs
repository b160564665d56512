//! Time, injected: the engine asks a [`Clock`] for "now" and for sleeping, so
//! tests drive time by hand and are exact.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC milliseconds.
    fn now_ms(&self) -> i64;
    /// Completes once `now_ms() >= t`.
    fn sleep_until(&self, t: i64) -> Sleep;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn sleep_until(&self, t: i64) -> Sleep {
        let wait = (t - self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(wait)))
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<i64>,
}

impl ManualClock {
    pub fn new(now: i64) -> Self {
        ManualClock {
            now: watch::Sender::new(now),
        }
    }

    pub fn set(&self, t: i64) {
        self.now.send_replace(t);
    }

    pub fn advance(&self, ms: i64) {
        self.now.send_modify(|n| *n += ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, t: i64) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, time has
            // stopped and the sleep never ends, like a real one would not.
            let _ = rx.wait_for(|now| *now >= t).await;
        })
    }
}
