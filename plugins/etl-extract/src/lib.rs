//! `etl-extract`: first step of the example ETL pipeline. Writes deterministic
//! synthetic purchase events for its window.
//!
//! Params:
//! - `events`: how many events to write (default 100);
//! - `dataset`: the dataset to write them to (default `events`);
//! - `fail_after_write`: if `true`, return a retryable error after writing,
//!   which tests use to show that a failed attempt's writes never appear.
//!
//! Each row has key `{i:06}` and value `{"user": "user-<u>", "amount": <a>}`.

use serde::Serialize;
use tidemark_sdk::{export_task, info, Context, Dataset, Error, Outcome, Result, Task};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Serialize)]
struct Event {
    user: String,
    amount: u64,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Event `i` of the window starting at `window_start_ms`.
///
/// The test suite recomputes this same formula to check what the downstream
/// tasks produce: change both together or not at all.
fn event(window_start_ms: i64, i: u64) -> Event {
    let h = splitmix64(window_start_ms as u64 ^ i.wrapping_mul(GOLDEN_GAMMA));
    Event {
        user: format!("user-{}", h % 10),
        amount: (h >> 32) % 1000,
    }
}

struct Extract;

impl Task for Extract {
    fn run(ctx: &Context) -> Result<Outcome> {
        let events: u64 = ctx.param_or("events", 100)?;
        let dataset = Dataset::new(ctx.param("dataset").unwrap_or("events"));
        let start_ms = ctx.window().start_ms;
        for i in 0..events {
            dataset.put_json(&format!("{i:06}"), &event(start_ms, i))?;
        }
        info!(
            "wrote {events} events for {} to `{}`",
            ctx.window(),
            dataset.name()
        );
        if ctx.param_or("fail_after_write", false)? {
            return Err(Error::retryable("failing after the writes, as asked"));
        }
        Ok(Outcome::summary(format!("{events} events")))
    }
}

export_task!(Extract);
