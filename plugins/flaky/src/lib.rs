//! `flaky`: fails with a retryable error on its first attempts, then
//! succeeds; exercises retry policies.
//!
//! Params: `fail_times`, how many attempts fail before one succeeds
//! (default 2).

use tidemark_sdk::{export_task, Context, Error, Outcome, Result, Task};

struct Flaky;

impl Task for Flaky {
    fn run(ctx: &Context) -> Result<Outcome> {
        let fail_times: u32 = ctx.param_or("fail_times", 2)?;
        let attempt = ctx.attempt();
        if attempt <= fail_times {
            return Err(Error::retryable(format!(
                "flaky: attempt {attempt} of {fail_times} planned failures"
            )));
        }
        Ok(Outcome::summary(format!("succeeded on attempt {attempt}")))
    }
}

export_task!(Flaky);
