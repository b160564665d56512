//! `panic`: panics at once, which traps the attempt; exercises how the host
//! reports traps.
//!
//! Params: `message`, included in the panic message (default `boom`).

use tidemark_sdk::{export_task, Context, Outcome, Result, Task};

struct Panic;

impl Task for Panic {
    fn run(ctx: &Context) -> Result<Outcome> {
        let message = ctx.param("message").unwrap_or("boom");
        panic!("panic plugin: {message}");
    }
}

export_task!(Panic);
