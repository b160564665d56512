//! Budgets: limits on a backfill's wall time, fuel and bytes written, and
//! the check that pauses it before it passes one.
//!
//! The check runs before each new window starts and projects one window
//! ahead: what was spent so far, plus, for every window in flight and the
//! one about to start, the average a window has cost so far (spent / windows
//! ended). If that passes a limit the window does not start and the
//! backfill pauses itself with the reason. So with uniform windows a budget
//! is never overrun: the backfill stops at the last window that fits.
//! Wall time is measured from the first window's start; its per-window
//! average is that time over the windows ended (throughput, so it already
//! accounts for parallelism), and one more window adds one average.
//! Before any window has ended there is no average and only what was
//! already spent counts. A resume after a budget pause lifts the budget: the
//! operator has seen the cost and chosen to go on.

use serde::{Deserialize, Serialize};

use super::request::{err, RequestError};

/// A budget as sent: every limit optional, each must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fuel: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
}

/// A validated budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub max_wall_ms: Option<u64>,
    pub max_fuel: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl RawBudget {
    pub fn validate(&self) -> Result<Budget, RequestError> {
        let positive = |field: &'static str, v: Option<i64>| match v {
            Some(n) if n <= 0 => Err(err(
                field,
                format!("must be positive (got {n}); omit it for no limit"),
            )),
            _ => Ok(v.map(|n| n as u64)),
        };
        let wall = positive("budget.max_wall_seconds", self.max_wall_seconds)?;
        Ok(Budget {
            max_wall_ms: wall
                .map(|s| s.checked_mul(1000).ok_or(()))
                .transpose()
                .map_err(|_| err("budget.max_wall_seconds", "is too large"))?,
            max_fuel: positive("budget.max_fuel", self.max_fuel)?,
            max_bytes: positive("budget.max_bytes", self.max_bytes)?,
        })
    }
}

/// What a backfill has spent so far. Stored with its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Actual {
    /// Attempts of its runs that ended (any outcome).
    #[serde(default)]
    pub task_runs: u64,
    /// Fuel of those attempts (failed ones burn fuel too).
    #[serde(default)]
    pub fuel: u64,
    /// Dataset and object bytes committed by its successful attempts.
    #[serde(default)]
    pub bytes: u64,
    /// When its first window started (UTC ms).
    #[serde(default)]
    pub first_start_ms: Option<i64>,
}

impl Actual {
    /// Wall time from the first window's start to `until`.
    pub fn wall_ms(&self, until: i64) -> u64 {
        self.first_start_ms
            .map_or(0, |s| until.saturating_sub(s).max(0) as u64)
    }
}

/// Spent so far plus `ahead` windows at the average per ended window.
fn projected(spent: u64, ended: u64, ahead: u64) -> u64 {
    if ended == 0 {
        return spent;
    }
    let extra = spent as u128 * ahead as u128 / ended as u128;
    (spent as u128 + extra).min(u64::MAX as u128) as u64
}

/// Why the next window must not start, if a limit would be passed:
/// `ended` windows have ended, `in_flight` are running, `now` is the clock.
pub fn exceeded(
    budget: &Budget,
    actual: &Actual,
    ended: u64,
    in_flight: u64,
    now: i64,
) -> Option<String> {
    let ahead = in_flight + 1;
    let wall = actual.wall_ms(now);
    let checks = [
        ("wall time (ms)", budget.max_wall_ms, wall),
        ("fuel", budget.max_fuel, actual.fuel),
        ("bytes", budget.max_bytes, actual.bytes),
    ];
    checks.into_iter().find_map(|(what, max, spent)| {
        let max = max?;
        let p = projected(spent, ended, ahead);
        (p > max).then(|| {
            format!(
                "budget: {what} {spent} spent of {max}; with the next window about {p} \
                 (resume to go on without the budget)"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_or_negative_limits_are_refused_naming_the_field() {
        let bad = |b: RawBudget| b.validate().unwrap_err().to_string();
        assert_eq!(
            bad(RawBudget {
                max_fuel: Some(0),
                ..Default::default()
            }),
            "budget.max_fuel: must be positive (got 0); omit it for no limit"
        );
        assert!(bad(RawBudget {
            max_wall_seconds: Some(-5),
            ..Default::default()
        })
        .starts_with("budget.max_wall_seconds: must be positive (got -5)"));
        assert!(bad(RawBudget {
            max_bytes: Some(-1),
            ..Default::default()
        })
        .starts_with("budget.max_bytes:"));
        let ok = RawBudget {
            max_wall_seconds: Some(60),
            max_fuel: Some(1000),
            max_bytes: None,
        }
        .validate()
        .unwrap();
        assert_eq!(
            ok,
            Budget {
                max_wall_ms: Some(60_000),
                max_fuel: Some(1000),
                max_bytes: None
            }
        );
    }

    #[test]
    fn the_next_window_starts_only_if_its_projection_fits() {
        let budget = Budget {
            max_fuel: Some(250),
            ..Default::default()
        };
        let spent = |fuel| Actual {
            fuel,
            ..Default::default()
        };
        // Nothing ended yet: no average, nothing spent.
        assert_eq!(exceeded(&budget, &spent(0), 0, 0, 0), None);
        // One window of 100 ended: the next brings it to 200 <= 250.
        assert_eq!(exceeded(&budget, &spent(100), 1, 0, 0), None);
        // Two ended: the third would reach 300 > 250.
        assert_eq!(
            exceeded(&budget, &spent(200), 2, 0, 0).as_deref(),
            Some(
                "budget: fuel 200 spent of 250; with the next window about 300 \
                 (resume to go on without the budget)"
            )
        );
        // One ended and one in flight: 100 + 2 x 100 = 300 > 250.
        assert!(exceeded(&budget, &spent(100), 1, 1, 0).is_some());
    }

    #[test]
    fn wall_time_counts_from_the_first_window_start() {
        let budget = Budget {
            max_wall_ms: Some(10_000),
            ..Default::default()
        };
        let a = Actual {
            first_start_ms: Some(1_000),
            ..Default::default()
        };
        // 4 s for 1 window: the next would end near 8 s.
        assert_eq!(exceeded(&budget, &a, 1, 0, 5_000), None);
        // 6 s for 1 window: about 12 s.
        assert!(exceeded(&budget, &a, 1, 0, 7_000)
            .unwrap()
            .starts_with("budget: wall time (ms) 6000 spent of 10000"));
        // Already past the limit with nothing ended.
        assert!(exceeded(&budget, &a, 0, 3, 11_001).is_some());
        assert_eq!(Actual::default().wall_ms(5), 0);
    }
}
