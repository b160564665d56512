use std::fmt;

use crate::bindings::tidemark::task::dataset::DatasetError;
use crate::bindings::TaskError;

/// A failure the task reports; the host retries `Retryable` ones under the
/// task's retry policy and never retries `Fatal` ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Retryable(String),
    Fatal(String),
}

/// The result type of task code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A transient failure: a later attempt may succeed.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Error::Retryable(message.to_string())
    }

    /// A permanent failure: retrying cannot help.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Error::Fatal(message.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Retryable(m) | Error::Fatal(m) => m,
        }
    }

    pub(crate) fn into_raw(self) -> TaskError {
        match self {
            Error::Retryable(m) => TaskError::Retryable(m),
            Error::Fatal(m) => TaskError::Fatal(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retryable(m) => write!(f, "retryable: {m}"),
            Error::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<DatasetError> for Error {
    fn from(err: DatasetError) -> Self {
        match err {
            // A bad name is a bug in the task: retrying repeats it.
            DatasetError::InvalidName(m) => Error::Fatal(format!("invalid dataset name: {m}")),
            DatasetError::Unavailable(m) => Error::Retryable(format!("dataset unavailable: {m}")),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        // Stored data that does not decode will not decode on a retry either.
        Error::Fatal(format!("JSON: {err}"))
    }
}
