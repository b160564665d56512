//! `deep`: recurses without bound; exercises the host's stack limit. Takes no
//! params.

use std::hint::black_box;

use tidemark_sdk::{export_task, Context, Outcome, Result, Task};

// The recursion is the point: only the host's stack limit may end it. Using
// the frame's buffer after the call keeps it from becoming a tail call (and
// so a loop).
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let buf = black_box([n; 16]);
    recurse(n + 1) + buf[3]
}

struct Deep;

impl Task for Deep {
    fn run(_ctx: &Context) -> Result<Outcome> {
        let depth = recurse(black_box(0));
        Ok(Outcome::summary(format!("returned {depth}")))
    }
}

export_task!(Deep);
