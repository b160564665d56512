//! `chatty`: floods one of its outputs forever; exercises the host's log and
//! output limits, which are the only thing that stops it.
//!
//! Params: `mode`, one of
//! - `log` (default): ~1 KiB lines into the attempt's log;
//! - `stdout`: ~1 KiB lines on stdout (which the host also logs);
//! - `output`: 64 KiB values under increasing keys of dataset `chatty`.

use tidemark_sdk::{export_task, info, Context, Dataset, Error, Outcome, Result, Task};

const LINE_PAD: usize = 1000;
const VALUE_BYTES: usize = 64 * 1024;

/// Calls `f` with 0, 1, 2, ... and only stops when it fails.
fn forever(mut f: impl FnMut(u64) -> Result<()>) -> Result<Outcome> {
    let mut n = 0u64;
    loop {
        f(n)?;
        n = n.wrapping_add(1);
    }
}

struct Chatty;

impl Task for Chatty {
    fn run(ctx: &Context) -> Result<Outcome> {
        let pad = "x".repeat(LINE_PAD);
        match ctx.param("mode").unwrap_or("log") {
            "log" => forever(|n| {
                info!("chatty {n:>10} {pad}");
                Ok(())
            }),
            "stdout" => forever(|n| {
                println!("chatty {n:>10} {pad}");
                Ok(())
            }),
            "output" => {
                let dataset = Dataset::new("chatty");
                let value = vec![b'x'; VALUE_BYTES];
                forever(|n| dataset.put(&format!("{n:020}"), &value))
            }
            other => Err(Error::fatal(format!(
                "parameter `mode` = {other:?}: expected `log`, `stdout` or `output`"
            ))),
        }
    }
}

export_task!(Chatty);
