//! The top-level error: a module error plus the operation that failed, and a stable kind.
//!
//! Every module has its own `thiserror` enum; each variant maps to exactly one [`ErrorKind`],
//! which the C ABI maps to a status code in one place.

use std::fmt;

/// Stable classification of every error podnet returns. Values never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller passed something malformed or out of range; nothing was changed.
    InvalidArgument,
    /// The named object does not exist.
    NotFound,
    /// The object exists already (with different content).
    AlreadyExists,
    /// An address pool or range has no free entry left.
    Exhausted,
    /// The request conflicts with an existing object owned by someone else.
    Conflict,
    /// The process lacks a capability (CAP_NET_ADMIN / CAP_SYS_ADMIN) or permission.
    Permission,
    /// The kernel refused a netlink request.
    Kernel,
    /// A filesystem or other I/O operation failed.
    Io,
    /// Kernel state differs from the record (reported by `check`).
    Inconsistent,
    /// An internal invariant broke (a bug); also used for caught panics.
    Internal,
    /// The node is not ready for pods yet (its cluster agent has not leased its subnet and
    /// programmed its peers): nothing was changed; retry later.
    NotReady,
}

impl ErrorKind {
    /// Short lowercase name, stable, used by the CLI and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Permission => "permission",
            ErrorKind::Kernel => "kernel",
            ErrorKind::Io => "io",
            ErrorKind::Inconsistent => "inconsistent",
            ErrorKind::Internal => "internal",
            ErrorKind::NotReady => "not_ready",
        }
    }

    /// Classify an errno the kernel or libc returned.
    pub fn from_errno(errno: i32) -> ErrorKind {
        match errno {
            libc::EPERM | libc::EACCES => ErrorKind::Permission,
            libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::ENXIO => ErrorKind::NotFound,
            libc::EEXIST => ErrorKind::AlreadyExists,
            libc::EBUSY | libc::EADDRINUSE => ErrorKind::Conflict,
            libc::EINVAL | libc::ERANGE | libc::ENAMETOOLONG => ErrorKind::InvalidArgument,
            libc::ENOSPC => ErrorKind::Exhausted,
            _ => ErrorKind::Kernel,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error every public podnet call returns.
///
/// `Display` reads "`operation`: `cause`", e.g.
/// `create veth pn3f2a1c for sandbox web-1: File exists (os error 17)`.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    op: String,
    errno: Option<i32>,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Error {
    /// Wrap a module error with the operation that failed.
    pub fn new<E>(kind: ErrorKind, op: impl Into<String>, source: E) -> Error
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        Error { kind, op: op.into(), errno: None, source: source.into() }
    }

    /// Wrap an error that carries an errno.
    pub fn with_errno<E>(kind: ErrorKind, op: impl Into<String>, errno: i32, source: E) -> Error
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        Error { kind, op: op.into(), errno: Some(errno), source: source.into() }
    }

    /// Shorthand for an invalid-argument error with a message.
    pub fn invalid(op: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, op, msg.into())
    }

    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, e.g. "create veth pn3f2a1c for sandbox web-1".
    pub fn operation(&self) -> &str {
        &self.op
    }

    /// The errno behind the failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The message without the operation prefix.
    pub fn cause_message(&self) -> String {
        self.source.to_string()
    }

    /// Prefix more context (outermost first): `"create sandbox x: <op>: <cause>"`.
    pub fn context(mut self, outer: impl fmt::Display) -> Error {
        self.op = if self.op.is_empty() { outer.to_string() } else { format!("{outer}: {}", self.op) };
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op.is_empty() {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}: {}", self.op, self.source)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Result alias for podnet calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
