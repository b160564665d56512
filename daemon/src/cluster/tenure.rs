//! How long this node may still act as the leader, by its own monotonic
//! clock.
//!
//! The database fences every write of a node that lost the engine lease,
//! but it cannot stop the node from *executing*: a leader paused past its
//! lease (SIGSTOP, a long stall, a suspended VM) wakes with a dispatcher
//! that does not know yet. The tenure ends a lease's length after the
//! last renewal was *sent*, which is never later than the expiry the
//! database gave it (that one is counted from when the statement ran), so
//! the node stops starting attempts before another node can hold the
//! lease. Attempts running when it ends finish; their commits are fenced.
//! An attempt the tenure holds back is not a failure: it waits, and starts
//! once a renewal extends the tenure (the database may still have granted
//! the lease, only a renewal was slow to say so).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Tenure {
    base: Instant,
    /// Nanoseconds after `base` when the tenure ends; 0 when it has.
    until_ns: AtomicU64,
}

impl Tenure {
    /// A tenure that has ended (nothing may run until it is extended).
    pub fn ended() -> Tenure {
        Tenure {
            base: Instant::now(),
            until_ns: AtomicU64::new(0),
        }
    }

    /// The lease was granted or renewed by a request sent at `sent`.
    pub fn extend(&self, sent: Instant, lease: Duration) {
        let until = (sent + lease).saturating_duration_since(self.base);
        self.until_ns
            .fetch_max(until.as_nanos() as u64, Ordering::SeqCst);
    }

    /// The lease is lost or released.
    pub fn end(&self) {
        self.until_ns.store(0, Ordering::SeqCst);
    }

    /// Whether the node may still act as the leader now.
    pub fn holds(&self) -> bool {
        let now = Instant::now().saturating_duration_since(self.base);
        (now.as_nanos() as u64) < self.until_ns.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenure_lasts_a_lease_from_the_request_that_renewed_it() {
        let t = Tenure::ended();
        assert!(!t.holds());
        let sent = Instant::now();
        t.extend(sent, Duration::from_secs(60));
        assert!(t.holds());
        // A renewal answered out of order never shortens it.
        t.extend(sent, Duration::ZERO);
        assert!(t.holds());
        t.end();
        assert!(!t.holds());
        // A lease that ends when its request was sent has lapsed already.
        t.extend(Instant::now(), Duration::ZERO);
        assert!(!t.holds());
    }
}
