//! `spin`: burns CPU forever and never returns; exercises the host's fuel
//! and wall-clock limits. Takes no params.

use std::hint::black_box;

use tidemark_sdk::{export_task, Context, Outcome, Result, Task};

struct Spin;

impl Task for Spin {
    fn run(_ctx: &Context) -> Result<Outcome> {
        let mut counter = 0u64;
        // `black_box` keeps the optimizer from proving the loop side-effect
        // free and removing or collapsing it.
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

export_task!(Spin);
