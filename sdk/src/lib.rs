//! Write Tidemark tasks in Rust.
//!
//! A task is a type implementing [`Task`], exported with [`export_task!`] and
//! built for `wasm32-wasip2`:
//!
//! ```ignore
//! use tidemark_sdk::{export_task, info, Context, Dataset, Outcome, Result, Task};
//!
//! struct Count;
//!
//! impl Task for Count {
//!     fn run(ctx: &Context) -> Result<Outcome> {
//!         let n: u32 = ctx.param_or("n", 10)?;
//!         let out = Dataset::new("counts");
//!         for i in 0..n {
//!             out.put_json(&format!("{i:04}"), &i)?;
//!         }
//!         info!("wrote {n} rows for {}", ctx.window());
//!         Ok(Outcome::summary(format!("{n} rows")))
//!     }
//! }
//!
//! export_task!(Count);
//! ```
//!
//! The raw bindings generated from `wit/` are in [`bindings`]; everything
//! else here is a thin, typed layer over them.

extern crate self as tidemark_sdk;

mod blob;
mod context;
mod data;
mod error;
pub mod http;
pub mod log;

pub use blob::{Container, ObjectInfo, OutputObject, PublishedOutput};
pub use context::{Context, Outcome, Trigger, Window};
pub use data::{Checkpoint, Dataset, Entry, Scan};
pub use error::{Error, Result};

/// Bindings generated from the one copy of the WIT package in `wit/`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "task",
        pub_export_macro: true,
        export_macro_name: "__export_task_world",
        default_bindings_module: "tidemark_sdk::bindings",
        runtime_path: "tidemark_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// A task: one step of a workflow, run once per attempt for one window.
pub trait Task {
    /// Performs one attempt. Return [`Error::retryable`] for transient
    /// failures and [`Error::fatal`] for ones a retry cannot fix; a panic
    /// traps and fails the attempt.
    fn run(ctx: &Context) -> Result<Outcome>;
}

#[doc(hidden)]
pub fn __run<T: Task>(
    raw: bindings::Context,
) -> std::result::Result<bindings::Outcome, bindings::TaskError> {
    let ctx = Context::from_raw(raw);
    match T::run(&ctx) {
        Ok(outcome) => Ok(outcome.into_raw()),
        Err(err) => Err(err.into_raw()),
    }
}

/// Exports a [`Task`] implementation as the component's `run` function.
#[macro_export]
macro_rules! export_task {
    ($task:ty) => {
        const _: () = {
            struct __TidemarkExport;
            impl $crate::bindings::Guest for __TidemarkExport {
                fn run(
                    ctx: $crate::bindings::Context,
                ) -> ::core::result::Result<$crate::bindings::Outcome, $crate::bindings::TaskError>
                {
                    $crate::__run::<$task>(ctx)
                }
            }
    $crate::bindings::__export_task_world!(__TidemarkExport with_types_in $crate::bindings);
        };
    };
}
