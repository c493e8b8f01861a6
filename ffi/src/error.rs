//! `podnet_error`: the detailed error a failed call hands back as a value (never thread-local
//! state: a Go caller may change OS threads between two calls).

use std::ffi::{c_char, c_int, CString};

use crate::call::{free, infallible, read};
use crate::handle::{castable, try_ref};
use crate::status::{podnet_status, status_of_kind};

/// Details of one failed call: status, message, failed operation and errno.
///
/// Created by podnet only, written to a call's `podnet_error **err_out` when the call fails.
/// The caller owns it and frees it with `podnet_error_free`. Immutable: the accessors may be
/// called from any thread, concurrently.
pub struct podnet_error {
    _private: [u8; 0],
}

/// The Rust value behind `podnet_error`.
#[derive(Debug)]
pub(crate) struct ErrorObj {
    pub(crate) status: podnet_status,
    message: CString,
    operation: CString,
    errno: c_int,
}

castable!(podnet_error: Owned => ErrorObj);

/// A `CString` from text that may contain NUL (it never does in practice; replace, never panic).
pub(crate) fn cstring(s: impl Into<String>) -> CString {
    let s = s.into();
    CString::new(s).unwrap_or_else(|e| {
        let cleaned: Vec<u8> = e.into_vec().into_iter().filter(|b| *b != 0).collect();
        CString::new(cleaned).unwrap_or_default()
    })
}

impl ErrorObj {
    /// An error raised by the ABI layer itself (bad argument): `op` is the C function's name.
    pub(crate) fn new(status: podnet_status, op: &str, cause: impl std::fmt::Display) -> ErrorObj {
        ErrorObj { status, message: cstring(format!("{op}: {cause}")), operation: cstring(op), errno: 0 }
    }

    /// An error the core returned.
    pub(crate) fn from_core(e: podnet_core::Error) -> ErrorObj {
        ErrorObj {
            status: status_of_kind(e.kind()),
            message: cstring(e.to_string()),
            operation: cstring(e.operation()),
            errno: e.errno().unwrap_or(0),
        }
    }
}

/// The status of a failed call (never `PODNET_STATUS_OK`).
///
/// NULL `err` gives `PODNET_STATUS_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_error_status(err: *const podnet_error) -> podnet_status {
    infallible(podnet_status::Panic, || try_ref(err).map_or(podnet_status::NullArgument, |e| e.status))
}

/// One-line description "<operation>: <cause>", e.g.
/// "create sandbox web-1: create veth pn3f2a1c0b9d for sandbox web-1: File exists (os error 17)".
///
/// The string is owned by `err` and valid until `podnet_error_free(err)`. NULL `err` gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_error_message(err: *const podnet_error) -> *const c_char {
    read(err, std::ptr::null(), |e| e.message.as_ptr())
}

/// The operation that failed, e.g. "create sandbox web-1: allocate address from 10.1.0.0/24", or
/// the C function's name for argument errors ("podnet_sandbox_spec_set_ifname").
///
/// Owned by `err`, valid until `podnet_error_free(err)`. NULL `err` gives NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_error_operation(err: *const podnet_error) -> *const c_char {
    read(err, std::ptr::null(), |e| e.operation.as_ptr())
}

/// The errno behind the failure (e.g. `ENOENT`, `EPERM`), or 0 when there is none.
///
/// NULL `err` gives 0. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_error_errno(err: *const podnet_error) -> c_int {
    read(err, 0, |e| e.errno)
}

/// Free an error. NULL is accepted (no-op). `err` must not be used afterwards.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_error_free(err: *mut podnet_error) {
    free(err)
}
