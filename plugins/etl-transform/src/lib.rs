//! `etl-transform`: second step of the example ETL pipeline. Aggregates the
//! events of its window per user.
//!
//! Params:
//! - `input`: dataset of `{"user", "amount"}` events (default `events`);
//! - `output`: dataset receiving one `{"count", "sum"}` row per user, keyed by
//!   user (default `user_totals`).
//!
//! An empty input is reported as retryable: upstream data may be late.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidemark_sdk::{export_task, info, Context, Dataset, Error, Outcome, Result, Task};

#[derive(Deserialize)]
struct Event {
    user: String,
    amount: u64,
}

#[derive(Serialize, Default)]
struct Total {
    count: u64,
    sum: u64,
}

struct Transform;

impl Task for Transform {
    fn run(ctx: &Context) -> Result<Outcome> {
        let input = Dataset::new(ctx.param("input").unwrap_or("events"));
        let output = Dataset::new(ctx.param("output").unwrap_or("user_totals"));

        // A BTreeMap keeps the output rows in a deterministic order.
        let mut totals: BTreeMap<String, Total> = BTreeMap::new();
        let mut rows = 0u64;
        for entry in input.scan_window(ctx.window(), "") {
            let event: Event = entry?.json()?;
            let total = totals.entry(event.user).or_default();
            total.count += 1;
            total.sum += event.amount;
            rows += 1;
        }
        if rows == 0 {
            return Err(Error::retryable(format!(
                "no input rows for window {} in `{}`",
                ctx.window(),
                input.name()
            )));
        }

        for (user, total) in &totals {
            output.put_json(user, total)?;
        }
        let users = totals.len();
        info!(
            "aggregated {rows} events into {users} users for {}",
            ctx.window()
        );
        Ok(Outcome::summary(format!(
            "{users} users from {rows} events"
        )))
    }
}

export_task!(Transform);
