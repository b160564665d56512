//! The daemon's one `bindgen!`, generated from the WIT package in `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "task",
    // Host functions may trap: that is how a breached log or output limit
    // ends the attempt.
    imports: {
        // Object storage does network I/O: these host functions await.
        "tidemark:task/blobstore": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use self::tidemark::task::blobstore;
pub use self::tidemark::task::dataset;
pub use self::tidemark::task::types::{TriggerKind, Window};
