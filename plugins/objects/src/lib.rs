//! `objects`: writes a window's output to object storage, deterministically
//! from the window, and optionally reads an upstream task's output first.
//! Test and benchmark guest.
//!
//! Params:
//! - `container`: the connection to write to (default `lake`);
//! - `objects`: how many objects to write (default 2);
//! - `size`: bytes per object (default 64);
//! - `upstream`: `workflow/task` whose output for this window is read and
//!   summed into the summary (fails retryably if it published nothing);
//! - `fail`: `always` writes everything, then fails (nothing may become
//!   visible); `retryable-once` fails the first attempt only.

use tidemark_sdk::{export_task, info, Container, Context, Error, Outcome, Result, Task};

struct Objects;

/// The object bytes for one window: its start repeated up to `size`.
fn content(window_start: i64, i: u32, size: usize) -> Vec<u8> {
    let seed = format!("{window_start}:{i};");
    seed.bytes().cycle().take(size).collect()
}

impl Task for Objects {
    fn run(ctx: &Context) -> Result<Outcome> {
        let lake = Container::new(ctx.param("container").unwrap_or("lake"));
        let n: u32 = ctx.param_or("objects", 2)?;
        let size: usize = ctx.param_or("size", 64)?;
        let start = ctx.window().start_ms;
        let mut read = 0usize;
        if let Some(up) = ctx.param("upstream") {
            let (wf, task) = up
                .split_once('/')
                .ok_or_else(|| Error::fatal("upstream must be workflow/task"))?;
            let found = lake.read_output(wf, task, start)?;
            if found.is_empty() {
                return Err(Error::retryable(format!(
                    "{up} has no output for this window yet"
                )));
            }
            read = found.iter().map(|(_, b)| b.len()).sum();
        }
        for i in 0..n {
            lake.write(&format!("part-{i:04}.bin"), &content(start, i, size))?;
        }
        match ctx.param("fail") {
            Some("always") => return Err(Error::fatal("failing after the writes, as asked")),
            Some("retryable-once") if ctx.attempt() == 1 => {
                return Err(Error::retryable("first attempt fails, as asked"))
            }
            _ => {}
        }
        info!("wrote {n} objects of {size} bytes");
        Ok(Outcome::summary(format!("{n} objects, read {read} bytes")))
    }
}

export_task!(Objects);
