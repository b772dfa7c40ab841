use std::fmt;

use abi_stable::std_types::RString;

use crate::ffi::ModError;

/// What kind of failure a module reports; the host maps it to a reload phase
/// or a handler error.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, abi_stable::StableAbi)]
pub enum ErrorKind {
    /// The module code returned an error.
    Failed = 0,
    /// The module code panicked; the panic was caught inside the library.
    Panicked = 1,
    /// `migrate` was handed a state version this library does not know.
    UnknownStateVersion = 2,
    /// `downgrade` cannot produce the requested older state version.
    CannotDowngrade = 3,
    /// A message, configuration or state could not be decoded.
    BadInput = 4,
}

impl ErrorKind {
    /// A short lowercase name, used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Panicked => "panicked",
            ErrorKind::UnknownStateVersion => "unknown state version",
            ErrorKind::CannotDowngrade => "cannot downgrade",
            ErrorKind::BadInput => "bad input",
        }
    }
}

/// The error a module returns from any entry point.
///
/// Build one with [`Error::msg`] (or `?` on a `String` / `&str`), or with the
/// constructors for the cases the host treats specially.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A plain failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Error {
            kind,
            message: message.to_string(),
        }
    }

    /// `migrate` was handed a state version it cannot convert.
    pub fn unknown_state_version(module: &str, found: u32, current: u32) -> Self {
        Self::new(
            ErrorKind::UnknownStateVersion,
            format!(
                "module {module} (state version {current}) does not know state version {found}"
            ),
        )
    }

    /// `downgrade` cannot produce the requested state version.
    pub fn cannot_downgrade(module: &str, current: u32, to: u32) -> Self {
        Self::new(
            ErrorKind::CannotDowngrade,
            format!("module {module} cannot downgrade its state from version {current} to {to}"),
        )
    }

    /// Input that did not decode (a message, the config, a state).
    pub fn bad_input(what: &str, err: impl fmt::Display) -> Self {
        Self::new(ErrorKind::BadInput, format!("cannot decode {what}: {err}"))
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message of this error.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::msg(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::msg(message)
    }
}

impl From<Error> for ModError {
    fn from(e: Error) -> Self {
        ModError {
            kind: e.kind,
            message: RString::from(e.message),
        }
    }
}

impl From<ModError> for Error {
    fn from(e: ModError) -> Self {
        Error {
            kind: e.kind,
            message: e.message.into_string(),
        }
    }
}
