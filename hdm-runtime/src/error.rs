//! The one error type of hdm's runtime.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, said so that a user can fix it: which input, what was expected, what came.
#[derive(Debug)]
pub enum Error {
    /// An input of the wrong shape: `what` names it ("input of Mlp", "labels"), `expected` and
    /// `got` describe the shapes.
    Shape { what: String, expected: String, got: String },
    /// A batch larger than the trainer's buffers.
    BatchTooLarge { batch: usize, max: usize },
    /// A target out of range, such as a class label not below the number of classes.
    Target(String),
    /// A file could not be read or written.
    Io { path: PathBuf, source: std::io::Error },
    /// A file's content is not what it should be (bad magic number, truncated, mismatched).
    Format { path: PathBuf, problem: String },
    /// Anything else, already phrased for the user.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { what, expected, got } => {
                write!(f, "{what}: expected {expected}, got {got}")
            }
            Error::BatchTooLarge { batch, max } => write!(
                f,
                "batch of {batch} rows is larger than the {max} this trainer was made for \
                 (make the trainer with a larger batch size)"
            ),
            Error::Target(msg) => f.write_str(msg),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Result` with hdm's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
