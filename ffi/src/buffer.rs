//! Plain owned results: `podnet_bytes` (a byte buffer, e.g. an allocator's saved state) and
//! `podnet_string_list` (e.g. the node CIDRs one allocation hands out).

use std::ffi::{c_char, CString};

use crate::error::cstring;

use crate::call::infallible;
use crate::handle::{castable, free_owned, try_ref};

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

/// Strings converted to C once, and the array of pointers a `podnet_string_list` shows.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl Strings {
    /// Convert each item to C (a NUL inside a string is dropped, never a panic).
    pub(crate) fn new<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> Strings {
        let strings: Vec<CString> = items.into_iter().map(|x| cstring(x.to_string())).collect();
        let ptrs = strings.iter().map(|s| s.as_ptr()).collect();
        Strings { strings, ptrs }
    }

    /// The C view. It points into heap memory `self` owns, so it stays valid when `self` moves
    /// and until `self` is dropped.
    pub(crate) fn view(&self) -> podnet_string_list {
        podnet_string_list { items: self.ptrs.as_ptr(), count: self.ptrs.len() }
    }

    /// String `i` (NULL when out of range); valid as long as the view.
    pub(crate) fn at(&self, i: usize) -> *const c_char {
        self.ptrs.get(i).copied().unwrap_or(std::ptr::null())
    }

    /// The number of strings.
    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }
}

/// The Rust value behind an owned `podnet_string_list`: the view first (`#[repr(C)]`), so a
/// pointer to it is a pointer to the view.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct StringListObj {
    view: podnet_string_list,
    strings: Strings,
}

impl StringListObj {
    pub(crate) fn new(strings: Strings) -> StringListObj {
        StringListObj { view: strings.view(), strings }
    }
}

castable!(podnet_string_list: Owned => StringListObj);

/// Free a string list a call handed out (never one embedded in a record view). NULL is
/// accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_string_list_free(list: *mut podnet_string_list) {
    infallible((), || free_owned(list))
}
