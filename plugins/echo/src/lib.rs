//! `echo`: writes the event payload it was triggered with (empty for other
//! triggers) to dataset `echo`, key `payload`; exercises the HTTP trigger.
//! Takes no params.

use tidemark_sdk::{export_task, Context, Dataset, Outcome, Result, Task};

struct Echo;

impl Task for Echo {
    fn run(ctx: &Context) -> Result<Outcome> {
        Dataset::new("echo").put("payload", ctx.payload())?;
        Ok(Outcome::summary(format!(
            "echoed {} bytes",
            ctx.payload().len()
        )))
    }
}

export_task!(Echo);
