//! `hog`: allocates memory without bound; exercises the host's memory limit.
//!
//! Params: `chunk_kib`, the size of each allocation in KiB (default 1024).

use std::hint::black_box;

use tidemark_sdk::{export_task, info, Context, Error, Outcome, Result, Task};

/// Touching one byte per host page is enough to make the memory resident.
const PAGE: usize = 4096;

struct Hog;

impl Task for Hog {
    fn run(ctx: &Context) -> Result<Outcome> {
        let chunk_kib: usize = ctx.param_or("chunk_kib", 1024)?;
        let chunk = chunk_kib
            .checked_mul(1024)
            .filter(|&bytes| bytes > 0)
            .ok_or_else(|| {
                Error::fatal(format!("parameter `chunk_kib` = {chunk_kib}: out of range"))
            })?;
        info!("hog: allocating {chunk_kib} KiB chunks until stopped");

        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut v = vec![0u8; chunk];
            for byte in v.iter_mut().step_by(PAGE) {
                *byte = black_box(1);
            }
            // Letting the chunk escape stops the allocation being elided.
            chunks.push(black_box(v));
        }
    }
}

export_task!(Hog);
