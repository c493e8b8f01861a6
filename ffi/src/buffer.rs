//! Plain owned results: `podnet_bytes` (a byte buffer, e.g. an allocator's saved state) and
//! `podnet_string_list` (e.g. the node CIDRs one allocation hands out).

use std::ffi::{c_char, CString};

use crate::call::infallible;
use crate::handle::{free_owned, try_ref, Castable, Owned};

/// A byte buffer podnet hands out (e.g. `podnet_node_cidr_allocator_to_bytes`): read it with
/// `podnet_bytes_data` and `podnet_bytes_len`.
///
/// Owned by the caller; free with `podnet_bytes_free`. Immutable: thread-safe to read.
pub struct podnet_bytes {
    _private: [u8; 0],
}

impl Castable for podnet_bytes {
    type Ownership = Owned;
    type RustType = Vec<u8>;
}

/// The bytes: `podnet_bytes_len(bytes)` of them, owned by `bytes` and valid until
/// `podnet_bytes_free(bytes)` (copy them to keep them). NULL gives NULL; an empty buffer may
/// give any non-NULL pointer, which must not be read.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_bytes_data(bytes: *const podnet_bytes) -> *const u8 {
    infallible(std::ptr::null(), || try_ref(bytes).map_or(std::ptr::null(), |b| b.as_ptr()))
}

/// Number of bytes. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_bytes_len(bytes: *const podnet_bytes) -> usize {
    infallible(0, || try_ref(bytes).map_or(0, Vec::len))
}

/// Free a byte buffer. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_bytes_free(bytes: *mut podnet_bytes) {
    infallible((), || free_owned(bytes))
}

/// A list of strings podnet hands out (e.g. `podnet_node_cidr_allocator_allocate`).
///
/// Owned by the caller; free with `podnet_string_list_free`. Immutable: thread-safe to read.
/// The strings are owned by the list and valid until it is freed.
pub struct podnet_string_list {
    _private: [u8; 0],
}

impl Castable for podnet_string_list {
    type Ownership = Owned;
    type RustType = Vec<CString>;
}

/// Number of strings. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_string_list_count(list: *const podnet_string_list) -> usize {
    infallible(0, || try_ref(list).map_or(0, Vec::len))
}

/// String `index` (0-based). Owned by `list`. NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_string_list_at(list: *const podnet_string_list, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(list).and_then(|l| l.get(index)).map_or(std::ptr::null(), |s| s.as_ptr()))
}

/// Free a string list. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_string_list_free(list: *mut podnet_string_list) {
    infallible((), || free_owned(list))
}
