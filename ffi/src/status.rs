//! Status codes: the stable numbers every fallible call returns, the one mapping from the core's
//! `ErrorKind`, and `podnet_status_str`.

use std::ffi::{c_char, CStr};

use podnet_core::ErrorKind;

use crate::call::infallible;

/// Result of every fallible podnet call: `PODNET_STATUS_OK` (0) or the reason it failed.
///
/// The values are part of the ABI: they are explicit, grouped in one block per subsystem and
/// never renumbered; a retired value stays reserved (as a comment). A caller must be prepared
/// for values added by later versions (treat unknown values like `PODNET_STATUS_INTERNAL`;
/// `podnet_status_str` names them "unknown").
///
/// Blocks:
/// - 0: success.
/// - 1-99: generic (arguments, objects, kernel, I/O).
/// - 100-199: peers / overlay / cluster (multi-node).
/// - 200-299: reserved for host ports.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum podnet_status {
    /// Success; out-parameters were written.
    Ok = 0,
    /// An argument has a value the call does not accept (malformed name, out-of-range number,
    /// unknown enum value, a spec the node refuses, a CIDR with host bits set, a peer the node
    /// cannot reach, damaged allocator state bytes). Nothing was changed.
    InvalidArgument = 1,
    /// A pointer argument that must not be NULL was NULL. Nothing was changed.
    NullArgument = 2,
    /// A string argument is not valid UTF-8. Nothing was changed.
    InvalidUtf8 = 3,
    /// The named object (sandbox, netns, file) does not exist.
    NotFound = 4,
    /// The object exists already with different content; for the cluster allocators, the
    /// service IP or node CIDR is allocated already.
    AlreadyExists = 5,
    /// An address pool or range has no free entry left (pod addresses, node CIDRs, service IPs).
    Exhausted = 6,
    /// The request conflicts with an object owned by someone else (an address taken, a host port
    /// mapped to another sandbox, a peer pod CIDR overlapping the node's own) or with existing
    /// state (a service range resize that would move its start or orphan allocated IPs).
    Conflict = 7,
    /// Missing privilege: CAP_NET_ADMIN / CAP_SYS_ADMIN or a file permission.
    Permission = 8,
    /// The kernel refused a request; the error's errno says why.
    Kernel = 9,
    /// A filesystem or other I/O operation failed; the error's errno says why.
    Io = 10,
    /// Kernel state differs from podnet's record.
    Inconsistent = 11,
    /// An internal invariant broke (a bug in podnet).
    Internal = 12,
    /// podnet panicked inside the call; the panic was caught at the ABI boundary. The object
    /// passed in may be left in an unspecified (but memory-safe) state.
    Panic = 13,
    /// A string argument is longer than the call allows (sandbox id and node name: 128 bytes;
    /// interface names: 15 bytes; paths and other strings: 4095 bytes). Nothing was changed.
    TooLong = 14,
    /// An IP address or CIDR argument could not be parsed. Nothing was changed.
    InvalidAddress = 15,
    // 16-99: free for future generic codes.
    // 100-199: peers / overlay / cluster (other peer errors map onto the generic codes).
    /// The node is not ready for pods yet: its cluster agent has not leased the node's subnet
    /// and programmed its peers. Nothing was changed; retry later.
    NotReady = 100,
    // 200-299: host ports (none needed so far: a taken host port is CONFLICT).
}

impl podnet_status {
    /// Every status, for tests and `podnet_status_str`.
    pub(crate) const ALL: [podnet_status; 17] = [
        podnet_status::Ok,
        podnet_status::InvalidArgument,
        podnet_status::NullArgument,
        podnet_status::InvalidUtf8,
        podnet_status::NotFound,
        podnet_status::AlreadyExists,
        podnet_status::Exhausted,
        podnet_status::Conflict,
        podnet_status::Permission,
        podnet_status::Kernel,
        podnet_status::Io,
        podnet_status::Inconsistent,
        podnet_status::Internal,
        podnet_status::Panic,
        podnet_status::TooLong,
        podnet_status::InvalidAddress,
        podnet_status::NotReady,
    ];

    /// Stable lowercase name (the same words as the core's `ErrorKind::as_str` where they meet).
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            podnet_status::Ok => c"ok",
            podnet_status::InvalidArgument => c"invalid_argument",
            podnet_status::NullArgument => c"null_argument",
            podnet_status::InvalidUtf8 => c"invalid_utf8",
            podnet_status::NotFound => c"not_found",
            podnet_status::AlreadyExists => c"already_exists",
            podnet_status::Exhausted => c"exhausted",
            podnet_status::Conflict => c"conflict",
            podnet_status::Permission => c"permission",
            podnet_status::Kernel => c"kernel",
            podnet_status::Io => c"io",
            podnet_status::Inconsistent => c"inconsistent",
            podnet_status::Internal => c"internal",
            podnet_status::Panic => c"panic",
            podnet_status::TooLong => c"too_long",
            podnet_status::InvalidAddress => c"invalid_address",
            podnet_status::NotReady => c"not_ready",
        }
    }
}

/// The one place a core `ErrorKind` becomes a status code.
pub(crate) fn status_of_kind(kind: ErrorKind) -> podnet_status {
    match kind {
        ErrorKind::InvalidArgument => podnet_status::InvalidArgument,
        ErrorKind::NotFound => podnet_status::NotFound,
        ErrorKind::AlreadyExists => podnet_status::AlreadyExists,
        ErrorKind::Exhausted => podnet_status::Exhausted,
        ErrorKind::Conflict => podnet_status::Conflict,
        ErrorKind::Permission => podnet_status::Permission,
        ErrorKind::Kernel => podnet_status::Kernel,
        ErrorKind::Io => podnet_status::Io,
        ErrorKind::Inconsistent => podnet_status::Inconsistent,
        ErrorKind::Internal => podnet_status::Internal,
        ErrorKind::NotReady => podnet_status::NotReady,
        // A kind added to the core after this ABI version: never invent a new number here.
        _ => podnet_status::Internal,
    }
}

/// Short, stable, lowercase name of a status code, e.g. "not_found" for `PODNET_STATUS_NOT_FOUND`.
///
/// Accepts any value: codes this version does not know give "unknown". The returned string is
/// static (never free it) and never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_status_str(status: podnet_status_code) -> *const c_char {
    infallible(c"unknown".as_ptr(), || {
        podnet_status::ALL.iter().find(|s| **s as u32 == status).map_or(c"unknown", |s| s.name()).as_ptr()
    })
}

/// A status as passed *into* podnet: a plain `uint32_t` in the ABI, so that any value a C caller
/// passes is defined behaviour (a Rust enum parameter would not be). The header spells it
/// `podnet_status` (cbindgen.toml renames it).
pub type podnet_status_code = u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_values_stable() {
        let names: std::collections::HashSet<_> = podnet_status::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), podnet_status::ALL.len());
        for (i, s) in podnet_status::ALL.iter().take(16).enumerate() {
            assert_eq!(*s as u32, i as u32, "generic block is dense from 0");
        }
        assert_eq!(podnet_status::NotReady as u32, 100, "first of the multi-node block");
        // SAFETY: podnet_status_str returns a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(podnet_status_str(4)) };
        assert_eq!(s, c"not_found");
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(podnet_status_str(9999)) };
        assert_eq!(s, c"unknown");
    }

    #[test]
    fn kinds_map() {
        assert_eq!(status_of_kind(ErrorKind::NotFound), podnet_status::NotFound);
        assert_eq!(status_of_kind(ErrorKind::Internal), podnet_status::Internal);
        assert_eq!(status_of_kind(ErrorKind::InvalidArgument), podnet_status::InvalidArgument);
        assert_eq!(status_of_kind(ErrorKind::NotReady), podnet_status::NotReady);
    }
}
