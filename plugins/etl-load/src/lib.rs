//! `etl-load`: last step of the example ETL pipeline. Rolls the per-user
//! totals of its window up into a single summary row.
//!
//! Params:
//! - `input`: dataset of per-user `{"count", "sum"}` rows (default
//!   `user_totals`);
//! - `output`: dataset receiving the row `window` → `{"window_start",
//!   "window_end", "users", "events", "amount"}` (default `summary`).
//!
//! An empty input is reported as retryable: upstream data may be late.

use serde::{Deserialize, Serialize};
use tidemark_sdk::{export_task, info, Context, Dataset, Error, Outcome, Result, Task};

#[derive(Deserialize)]
struct Total {
    count: u64,
    sum: u64,
}

#[derive(Serialize)]
struct Summary {
    window_start: i64,
    window_end: i64,
    users: u64,
    events: u64,
    amount: u64,
}

struct Load;

impl Task for Load {
    fn run(ctx: &Context) -> Result<Outcome> {
        let input = Dataset::new(ctx.param("input").unwrap_or("user_totals"));
        let output = Dataset::new(ctx.param("output").unwrap_or("summary"));
        let window = ctx.window();

        let mut summary = Summary {
            window_start: window.start_ms,
            window_end: window.end_ms,
            users: 0,
            events: 0,
            amount: 0,
        };
        for entry in input.scan_window(window, "") {
            let total: Total = entry?.json()?;
            summary.users += 1;
            summary.events += total.count;
            summary.amount += total.sum;
        }
        if summary.users == 0 {
            return Err(Error::retryable(format!(
                "no input rows for window {window} in `{}`",
                input.name()
            )));
        }

        output.put_json("window", &summary)?;
        let line = format!(
            "summary: {} users, {} events, amount {}",
            summary.users, summary.events, summary.amount
        );
        info!("{line} for {window}");
        Ok(Outcome::summary(line))
    }
}

export_task!(Load);
