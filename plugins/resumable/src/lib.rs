//! `resumable`: processes items one by one, checkpointing its progress, and
//! can trap midway so that a retry has to resume from the checkpoint.
//!
//! Params:
//! - `items`: how many items to process (default 100);
//! - `every`: save the checkpoint after every this many items (default 10);
//! - `trap_after`: 0-based index of an item after which to panic (optional);
//! - `trap_attempts`: only trap while the attempt is at most this (default 1),
//!   so that a later retry can finish;
//! - `dataset`: where to write the result (default `resumable`).
//!
//! On success it writes `item-{i:06}` → the attempt that processed item `i`
//! for every item, plus `summary` → `{"items", "resumed_from", "attempt"}`,
//! which lets a test check that no item was processed twice or skipped.

use serde::{Deserialize, Serialize};
use tidemark_sdk::{export_task, info, Checkpoint, Context, Dataset, Error, Outcome, Result, Task};

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// The first item not processed yet.
    next: u32,
    /// The attempt that processed each item below `next`.
    processed_by: Vec<u32>,
}

#[derive(Serialize)]
struct Summary {
    items: u32,
    resumed_from: u32,
    attempt: u32,
}

struct Resumable;

impl Task for Resumable {
    fn run(ctx: &Context) -> Result<Outcome> {
        let items: u32 = ctx.param_or("items", 100)?;
        let every: u32 = ctx.param_or("every", 10)?;
        if every == 0 {
            return Err(Error::fatal("parameter `every` must be at least 1"));
        }
        let trap_after: Option<u32> = ctx.param_opt("trap_after")?;
        let trap_attempts: u32 = ctx.param_or("trap_attempts", 1)?;
        let dataset = Dataset::new(ctx.param("dataset").unwrap_or("resumable"));
        let attempt = ctx.attempt();

        let checkpoint = Checkpoint::<State>::new();
        let mut state = checkpoint.load()?.unwrap_or_default();
        let resumed_from = state.next;
        info!("attempt {attempt}: resuming at item {resumed_from} of {items}");

        while state.next < items {
            let i = state.next;
            // A checkpoint that runs ahead of `next` would make us redo work.
            if state.processed_by.len() > i as usize {
                return Err(Error::fatal(format!("item {i} processed twice")));
            }
            state.processed_by.push(attempt);
            state.next = i + 1;
            if state.next % every == 0 {
                checkpoint.save(&state)?;
            }
            if trap_after == Some(i) && attempt <= trap_attempts {
                panic!("resumable: trapping after item {i}");
            }
        }

        // Guards against a checkpoint that lost items or a changed `items`.
        if state.processed_by.len() != items as usize {
            return Err(Error::fatal(format!(
                "recorded {} processed items, expected {items}",
                state.processed_by.len()
            )));
        }
        for (i, by) in state.processed_by.iter().enumerate() {
            dataset.put_json(&format!("item-{i:06}"), by)?;
        }
        dataset.put_json(
            "summary",
            &Summary {
                items,
                resumed_from,
                attempt,
            },
        )?;
        checkpoint.clear();
        Ok(Outcome::summary(format!(
            "processed {items} items, resumed from {resumed_from}"
        )))
    }
}

export_task!(Resumable);
