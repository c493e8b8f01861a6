//! C ABI of podnet: `libpodnet.so` / `libpodnet.a` and `include/podnet.h` (generated from this
//! crate by cbindgen, see `ffi/README.md`).
//!
//! Shape: opaque handles; `podnet_<object>_<verb>` names; builder objects with `_new`, setters
//! and a NULL-tolerant `_free`; results read through accessors; every fallible call returns a
//! `podnet_status` and fills an optional `podnet_error **`; every export runs inside a panic
//! boundary (`call.rs`, with one helper per kind of export); only `handle.rs` converts raw
//! pointers; every result is a `record.rs` record converted once from the core's value.

#![expect(non_camel_case_types, reason = "C type names are spelled as the header spells them")]

use std::ffi::{c_char, CStr};

mod call;
mod cenum;
mod config;
mod error;
mod handle;
mod log;
mod node;
mod record;
mod sandbox;
mod spec;
mod status;

// cbindgen writes items in module order: later modules go in this second group so that each
// addition lands after the existing header items instead of moving them.
mod alloc;
mod buffer;
mod peer;
mod plan;
mod ports;
// The cluster agent (etcd).
mod agent;
// Services.
mod service;

/// Major version of this library (semantic versioning). Equals `ffi/Cargo.toml`'s version.
pub const PODNET_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const PODNET_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const PODNET_VERSION_PATCH: u32 = 0;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

// The header's macros are literals (cbindgen cannot evaluate `env!`; the header builds the
// `PODNET_VERSION` string from them): refuse to build when they
// drift from Cargo.toml. Bump them here and run `make header`.
const _: () = assert!(
    PODNET_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR"))
        && PODNET_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR"))
        && PODNET_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
    "PODNET_VERSION_* in ffi/src/lib.rs disagree with Cargo.toml: update them and run `make header`"
);

const VERSION_C: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("version contains NUL"),
};

/// The library's version at run time, "MAJOR.MINOR.PATCH" (compare with `PODNET_VERSION` to
/// detect a header/library mismatch). Static string: never free it; never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_version() -> *const c_char {
    call::infallible(VERSION_C.as_ptr(), || VERSION_C.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_cargo() {
        // SAFETY: podnet_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(podnet_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let numbers = format!("{PODNET_VERSION_MAJOR}.{PODNET_VERSION_MINOR}.{PODNET_VERSION_PATCH}");
        assert_eq!(numbers, env!("CARGO_PKG_VERSION"));
    }
}
