//! Tests whose assertions rest on a real clock, in a binary of their own:
//! cargo runs test binaries one after another, so none of the suite's
//! tests (browsers, daemons, fault cycles) competes with them for the
//! cores while they measure.

#[allow(dead_code)] // the driver serves the suite too
#[path = "suite/driver.rs"]
mod daemon;
#[path = "suite/estimates_daemon.rs"]
mod estimates_daemon;
