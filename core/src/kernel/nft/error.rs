//! Errors of the nft module.

use std::io;

use crate::ErrorKind;

/// What went wrong while programming nf_tables or conntrack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// The caller passed something malformed; nothing was sent to the kernel.
    #[error("{0}")]
    Invalid(String),
    /// The kernel rejected one message of a request, e.g.
    /// `add element tcp/8080 -> 10.88.0.3:80 to map hostports: File exists (os error 17)`.
    /// A rejected batch is rolled back as a whole.
    #[error("{op}: {source}{detail}")]
    Kernel {
        /// The message that failed, named by what it does.
        op: String,
        /// The errno from the kernel's NLMSG_ERROR.
        #[source]
        source: io::Error,
        /// Extra text from an extended ack (" (kernel: ...)"), or empty.
        detail: String,
    },
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer did not make sense (malformed, truncated or missing replies).
    #[error("{0}")]
    Protocol(String),
    /// Entering the target netns to open the socket failed.
    #[error("open netlink socket in netns: {0}")]
    Netns(#[from] crate::kernel::netns::NetnsError),
}

impl NftError {
    pub(crate) fn kernel(op: String, errno: i32, msg: Option<String>) -> NftError {
        NftError::Kernel {
            op,
            source: io::Error::from_raw_os_error(errno),
            detail: msg.map(|m| format!(" (kernel: {m})")).unwrap_or_default(),
        }
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> NftError {
        move |source| NftError::Io { what, source }
    }

    /// The errno behind the error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Kernel { source, .. } | NftError::Io { source, .. } => source.raw_os_error(),
            NftError::Netns(e) => e.errno(),
            _ => None,
        }
    }

    /// The stable kind of this error (`EEXIST` on an element is [`ErrorKind::AlreadyExists`]:
    /// the host port is taken by a different mapping).
    pub fn kind(&self) -> ErrorKind {
        match self {
            NftError::Invalid(_) => ErrorKind::InvalidArgument,
            NftError::Kernel { .. } => self.errno().map(ErrorKind::from_errno).unwrap_or(ErrorKind::Kernel),
            NftError::Io { .. } => self.errno().map(ErrorKind::from_errno).unwrap_or(ErrorKind::Io),
            NftError::Protocol(_) => ErrorKind::Kernel,
            NftError::Netns(e) => e.kind(),
        }
    }

    /// Wrap into the top-level error with an operation description.
    pub fn into_error(self, op: impl Into<String>) -> crate::Error {
        let kind = self.kind();
        match self.errno() {
            Some(e) => crate::Error::with_errno(kind, op, e, self),
            None => crate::Error::new(kind, op, self),
        }
    }
}

impl From<NftError> for crate::Error {
    fn from(e: NftError) -> crate::Error {
        e.into_error("nftables")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_reads_well_and_maps_kind() {
        let e = NftError::kernel("add element tcp/8080 -> 10.88.0.3:80 to map hostports".into(), libc::EEXIST, None);
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let top: crate::Error = e.into_error("map host ports for sandbox web-1");
        assert_eq!(top.kind(), ErrorKind::AlreadyExists);
        assert_eq!(top.errno(), Some(libc::EEXIST));
        assert!(top.to_string().starts_with(
            "map host ports for sandbox web-1: add element tcp/8080 -> 10.88.0.3:80 to map hostports: File exists"
        ));
        let inv: crate::Error = NftError::Invalid("host port 0".into()).into();
        assert_eq!(inv.kind(), ErrorKind::InvalidArgument);
    }
}
