//! Plain owned results: `podnet_bytes` (a byte buffer, e.g. an allocator's saved state) and
//! `podnet_string_list` (e.g. the node CIDRs one allocation hands out).

use std::ffi::c_char;

use crate::call::{free, read};
use crate::handle::castable;
use crate::record::{FromCore, Record};

/// A byte buffer podnet hands out (e.g. `podnet_node_cidr_allocator_to_bytes`): read it with
/// `podnet_bytes_data` and `podnet_bytes_len`.
///
/// Owned by the caller; free with `podnet_bytes_free`. Immutable: thread-safe to read.
pub struct podnet_bytes {
    _private: [u8; 0],
}

castable!(podnet_bytes: Owned => Vec<u8>);

/// The bytes: `podnet_bytes_len(bytes)` of them, owned by `bytes` and valid until
/// `podnet_bytes_free(bytes)` (copy them to keep them). NULL gives NULL; an empty buffer may
/// give any non-NULL pointer, which must not be read.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_bytes_data(bytes: *const podnet_bytes) -> *const u8 {
    read(bytes, std::ptr::null(), |b| b.as_ptr())
}

/// Number of bytes. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_bytes_len(bytes: *const podnet_bytes) -> usize {
    read(bytes, 0, Vec::len)
}

/// Free a byte buffer. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_bytes_free(bytes: *mut podnet_bytes) {
    free(bytes)
}

/// A list of strings: `count` NUL-terminated UTF-8 strings at `items[0]` .. `items[count - 1]`.
///
/// A plain struct the caller reads directly: the record views embed it by value (the
/// addresses of a `podnet_sandbox_info`, the lines of a report), and a few calls hand one out
/// on its own (`podnet_node_cidr_allocator_allocate`: owned by the caller, free it with
/// `podnet_string_list_free`). The array and the strings belong to whatever the list came
/// from and are valid as long as it is; never write to them. `items` may be any non-NULL
/// pointer when `count` is 0 (do not read it). Thread-safe to read.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_string_list {
    /// The strings, `count` of them.
    pub items: *const *const c_char,
    /// Number of strings.
    pub count: usize,
}

// An owned `podnet_string_list` is a record of its own view.
castable!(podnet_string_list: Owned => Record<podnet_string_list>);

/// A list of values as text (`podnet_node_cidr_allocator_allocate`'s CIDRs).
impl<T: std::fmt::Display> FromCore<Vec<T>> for Record<podnet_string_list> {
    fn from_core(items: &Vec<T>) -> Self {
        Record::build(|b| b.list(items))
    }
}

/// Free a string list a call handed out (never one embedded in a record view). NULL is
/// accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_string_list_free(list: *mut podnet_string_list) {
    free(list)
}
