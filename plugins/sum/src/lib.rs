//! `sum`: a trivial task that does a little real work, for throughput
//! benchmarks: adds up `1..=n` (param `n`, default 1000) salted with its
//! window start and writes the result as one row of dataset `sums` (key =
//! the task's name), so every task-run pays for one dataset commit.

use tidemark_sdk::{export_task, Context, Dataset, Outcome, Result, Task};

struct Sum;

impl Task for Sum {
    fn run(ctx: &Context) -> Result<Outcome> {
        let n: u64 = ctx.param("n").and_then(|v| v.parse().ok()).unwrap_or(1000);
        let salt = ctx.window().start_ms as u64;
        let total = (1..=n).fold(0u64, |acc, i| acc.wrapping_add(i ^ salt));
        Dataset::new("sums").put(ctx.task(), total.to_string().as_bytes())?;
        Ok(Outcome::summary(total.to_string()))
    }
}

export_task!(Sum);
