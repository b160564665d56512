//! Lines into the attempt's log. Prefer the macros: `info!("{n} rows")`.

use crate::bindings::tidemark::task::log::{write, Level};

pub fn trace(message: &str) {
    write(Level::Trace, message);
}
pub fn debug(message: &str) {
    write(Level::Debug, message);
}
pub fn info(message: &str) {
    write(Level::Info, message);
}
pub fn warn(message: &str) {
    write(Level::Warn, message);
}
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// Logs a formatted line at info level.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) }; }
/// Logs a formatted line at debug level.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) }; }
/// Logs a formatted line at warn level.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) }; }
/// Logs a formatted line at error level.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) }; }
