//! `hello`: the smallest possible task, used for benchmarks and smoke tests.
//!
//! Takes no params. Logs one line naming its workflow, task and window and
//! succeeds with the summary `hello`; it deliberately writes nothing else so
//! that it measures the scheduler's per-attempt overhead only.

use tidemark_sdk::{export_task, info, Context, Outcome, Result, Task};

struct Hello;

impl Task for Hello {
    fn run(ctx: &Context) -> Result<Outcome> {
        let window = ctx.window();
        info!(
            "hello from {}/{} window {}..{}",
            ctx.workflow(),
            ctx.task(),
            window.start_ms,
            window.end_ms
        );
        Ok(Outcome::summary("hello"))
    }
}

export_task!(Hello);
