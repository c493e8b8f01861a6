//! The cluster allocators through the C ABI: `podnet_node_cidr_allocator` (a pod CIDR per node
//! and family, like `kube-controller-manager --allocate-node-cidrs`) and
//! `podnet_service_ip_allocator` (service IPs of a service range). Both are values: pure,
//! unprivileged, saved and restored as bytes (`_to_bytes` / `_from_bytes`) wherever the caller
//! keeps the cluster's truth.

use std::ffi::{c_char, CString};

use podnet_cluster::{
    ClusterCidr, Family, NodeCidrAllocator, ServiceIpAllocator, DEFAULT_NODE_MASK_V4, DEFAULT_NODE_MASK_V6,
};

use crate::buffer::{podnet_bytes, podnet_string_list};
use crate::call::{core, fallible, free, read, with_mut, with_ref};
use crate::error::{cstring, podnet_error};
use crate::handle::{castable, Castable, MayOwn};
use crate::status::podnet_status;

/// Size of a buffer that holds any IP address as text with its NUL ("ffff:...:255.255.255.255"),
/// like `INET6_ADDRSTRLEN`.
pub const PODNET_IP_STR_LEN: usize = 46;

/// Hands each node one pod CIDR per cluster CIDR (one, or one IPv4 and one IPv6): round-robin,
/// like Kubernetes' range allocator. Never hands out a CIDR overlapping the service ranges it was
/// built with (they must not overlap the cluster CIDRs at all).
///
/// Owned by the caller; free with `podnet_node_cidr_allocator_free`. A mutable value: calls that
/// change it (`allocate`, `occupy`, `release`) must not run concurrently with any other call on
/// the same allocator; calls that only read it (`const` argument) may run concurrently with each
/// other. It may move between threads.
pub struct podnet_node_cidr_allocator {
    _private: [u8; 0],
}

castable!(podnet_node_cidr_allocator: Owned => NodeCidrAllocator);

/// Create an empty node CIDR allocator.
///
/// `cluster_cidrs`: `n_cluster_cidrs` strings, one cluster CIDR ("10.10.0.0/16") or one IPv4
/// and one IPv6 (dual-stack, primary family first). `node_masks`: `n_node_masks` node CIDR
/// prefix lengths, one per cluster CIDR in the same order, or none (`n_node_masks` 0, NULL
/// allowed) for the Kubernetes defaults /24 (IPv4) and /64 (IPv6). `service_cidrs`:
/// `n_service_cidrs` service ranges to keep clear (NULL allowed when 0).
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when a string does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set, no or more than two cluster CIDRs
/// are given or two of one family, the mask count does not match, a node mask is shorter than
/// its cluster CIDR's prefix, longer than the family allows or more than 24 (IPv4) / 16 (IPv6)
/// bits longer than it, or a service range overlaps a cluster CIDR.
/// On success writes a new allocator to `*allocator_out` (free it with
/// `podnet_node_cidr_allocator_free`); on failure `*allocator_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_new(
    cluster_cidrs: *const *const c_char,
    n_cluster_cidrs: usize,
    node_masks: *const u8,
    n_node_masks: usize,
    service_cidrs: *const *const c_char,
    n_service_cidrs: usize,
    allocator_out: *mut *mut podnet_node_cidr_allocator,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    fallible("podnet_node_cidr_allocator_new", err_out, |c| {
        let clusters = c.ranges("cluster_cidrs", cluster_cidrs, n_cluster_cidrs)?;
        let masks = c.slice("node_masks", node_masks, n_node_masks)?;
        let services = c.ranges("service_cidrs", service_cidrs, n_service_cidrs)?;
        let out = c.out("allocator_out", allocator_out)?;
        if !masks.is_empty() && masks.len() != clusters.len() {
            return Err(c.err(
                podnet_status::InvalidArgument,
                format!(
                    "{} cluster CIDR(s) but {} node mask(s): give one node mask per cluster CIDR, or none",
                    clusters.len(),
                    masks.len()
                ),
            ));
        }
        let pools: Vec<ClusterCidr> = clusters
            .iter()
            .enumerate()
            .map(|(i, cidr)| ClusterCidr {
                cidr: *cidr,
                node_mask: masks.get(i).copied().unwrap_or(match cidr.family() {
                    Family::Ipv4 => DEFAULT_NODE_MASK_V4,
                    Family::Ipv6 => DEFAULT_NODE_MASK_V6,
                }),
            })
            .collect();
        let alloc = core(NodeCidrAllocator::new(&pools, &services))?;
        out.give(alloc)
    })
}

/// Free a node CIDR allocator. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_free(allocator: *mut podnet_node_cidr_allocator) {
    free(allocator)
}

/// Allocate one node CIDR per family for a new node, primary family first (its
/// `spec.podCIDRs`), e.g. "10.10.0.0/24". All or nothing: when one family is exhausted
/// (`PODNET_STATUS_EXHAUSTED`) nothing is allocated. A released CIDR is not handed out again
/// until the others were (round-robin).
///
/// On success writes a new list of one or two CIDRs to `*cidrs_out` (free it with
/// `podnet_string_list_free`); on failure `*cidrs_out` is not written and the allocator is
/// unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_allocate(
    allocator: *mut podnet_node_cidr_allocator,
    cidrs_out: *mut *mut podnet_string_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_cidr_allocator_allocate", "allocator", allocator, err_out, |c, a| {
        c.give("cidrs_out", cidrs_out, || a.allocate())
    })
}

/// Mark node CIDRs as allocated (adopting existing nodes' `spec.podCIDRs`): the `n_cidrs`
/// strings at `cidrs`, at least one and at most one per family. All or nothing.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when a string does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` for no CIDR, host bits, two of one family, a family, size or
/// range that is not one of the allocator's node CIDRs; `PODNET_STATUS_ALREADY_EXISTS` when one
/// is allocated already. On failure the allocator is unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_occupy(
    allocator: *mut podnet_node_cidr_allocator,
    cidrs: *const *const c_char,
    n_cidrs: usize,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_cidr_allocator_occupy", "allocator", allocator, err_out, |c, a| {
        core(a.occupy(&c.ranges("cidrs", cidrs, n_cidrs)?))
    })
}

/// Free node CIDRs (a deleted node's): the `n_cidrs` strings at `cidrs` (NULL allowed when 0),
/// at most one per family. Freeing a free CIDR is not an error, so cleanup can be retried.
///
/// Errors as for `podnet_node_cidr_allocator_occupy` (except ALREADY_EXISTS). On success
/// writes how many of them were allocated to `*released_out`; on failure it is not written and
/// the allocator is unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_release(
    allocator: *mut podnet_node_cidr_allocator,
    cidrs: *const *const c_char,
    n_cidrs: usize,
    released_out: *mut usize,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_cidr_allocator_release", "allocator", allocator, err_out, |c, a| {
        let cidrs = c.ranges("cidrs", cidrs, n_cidrs)?;
        let out = c.out("released_out", released_out)?;
        out.finish(core(a.release(&cidrs))?)
    })
}

/// Whether node CIDR `cidr` is allocated. Errors as for one CIDR of
/// `podnet_node_cidr_allocator_occupy` when it is not one of the allocator's node CIDRs.
///
/// On success writes the answer to `*allocated_out`; on failure it is not written. Thread-safe
/// (only reads `allocator`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_is_allocated(
    allocator: *const podnet_node_cidr_allocator,
    cidr: *const c_char,
    allocated_out: *mut bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_cidr_allocator_is_allocated", "allocator", allocator, err_out, |c, a| {
        let cidr = c.range("cidr", cidr)?;
        let out = c.out("allocated_out", allocated_out)?;
        out.finish(core(a.is_allocated(cidr))?)
    })
}

/// How many nodes get a full set of node CIDRs from an empty allocator (the smallest family's
/// node CIDR count). NULL gives 0.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_capacity(allocator: *const podnet_node_cidr_allocator) -> u64 {
    read(allocator, 0, NodeCidrAllocator::capacity)
}

/// How many more `podnet_node_cidr_allocator_allocate` calls succeed now. NULL gives 0.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_available(allocator: *const podnet_node_cidr_allocator) -> u64 {
    read(allocator, 0, NodeCidrAllocator::free)
}

/// Save the allocator's state (ranges, node masks, allocations, round-robin positions) as
/// bytes: a versioned header, JSON configuration, one bitmap per family and a CRC-32 (65,536
/// node CIDRs take 8 KiB). Store them with compare-and-swap wherever the cluster keeps its truth;
/// `podnet_node_cidr_allocator_from_bytes` restores them.
///
/// On success writes a new buffer to `*bytes_out` (free it with `podnet_bytes_free`); on failure
/// `*bytes_out` is not written. Thread-safe (only reads `allocator`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_to_bytes(
    allocator: *const podnet_node_cidr_allocator,
    bytes_out: *mut *mut podnet_bytes,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_cidr_allocator_to_bytes", "allocator", allocator, err_out, |c, a| {
        c.out("bytes_out", bytes_out)?.give(a.to_bytes())
    })
}

/// Restore an allocator from the `len` bytes at `data` (from
/// `podnet_node_cidr_allocator_to_bytes`; `data` may be NULL only when `len` is 0). Every part
/// is checked: damaged or foreign bytes give `PODNET_STATUS_INVALID_ARGUMENT`.
///
/// On success writes a new allocator to `*allocator_out` (free it with
/// `podnet_node_cidr_allocator_free`); on failure `*allocator_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_cidr_allocator_from_bytes(
    data: *const u8,
    len: usize,
    allocator_out: *mut *mut podnet_node_cidr_allocator,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    restore("podnet_node_cidr_allocator_from_bytes", (data, len), allocator_out, err_out, NodeCidrAllocator::from_bytes)
}

/// Hands out the service IPs of one service range (`--service-cluster-ip-range`), like
/// Kubernetes' bitmap allocator: user-chosen IPs anywhere, dynamic ones at random from the
/// upper band first, never the API server's (the first address) unless asked for.
///
/// Owned by the caller; free with `podnet_service_ip_allocator_free`. A mutable value: calls
/// that change it (`allocate`, `allocate_next`, `release`, `resize`) must not run concurrently
/// with any other call on the same allocator; calls that only read it (`const` argument) may run
/// concurrently with each other. It may move between threads.
pub struct podnet_service_ip_allocator {
    _private: [u8; 0],
}

/// The Rust value behind `podnet_service_ip_allocator`: the core's allocator and its range as C
/// text (rebuilt by a resize).
#[derive(Debug)]
pub(crate) struct ServiceAllocObj {
    alloc: ServiceIpAllocator,
    cidr: CString,
}

castable!(podnet_service_ip_allocator: Owned => ServiceAllocObj);

impl ServiceAllocObj {
    fn new(alloc: ServiceIpAllocator) -> ServiceAllocObj {
        ServiceAllocObj { cidr: cstring(alloc.cidr().to_string()), alloc }
    }
}

/// Create an empty service IP allocator for `cidr` ("10.96.0.0/12", "fd00:96::/108").
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set, an IPv4 range is larger than /12 or
/// smaller than /30, or an IPv6 range is a /128. (IPv6 ranges larger than /108 use their first
/// 2^20 addresses.)
/// On success writes a new allocator to `*allocator_out` (free it with
/// `podnet_service_ip_allocator_free`); on failure `*allocator_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_new(
    cidr: *const c_char,
    allocator_out: *mut *mut podnet_service_ip_allocator,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    fallible("podnet_service_ip_allocator_new", err_out, |c| {
        let cidr = c.range("cidr", cidr)?;
        let out = c.out("allocator_out", allocator_out)?;
        let a = core(ServiceIpAllocator::new(cidr))?;
        out.give(ServiceAllocObj::new(a))
    })
}

/// Free a service IP allocator. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_free(allocator: *mut podnet_service_ip_allocator) {
    free(allocator)
}

/// Allocate a user-chosen service IP (a Service's `spec.clusterIP`), anywhere in the range, the
/// API server's included.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is of the other family, outside the range, or the
/// network or broadcast address; `PODNET_STATUS_ALREADY_EXISTS` when it is allocated already.
/// On failure the allocator is unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_allocate(
    allocator: *mut podnet_service_ip_allocator,
    ip: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_ip_allocator_allocate", "allocator", allocator, err_out, |c, a| {
        let ip = c.ip("ip", ip)?;
        core(a.alloc.allocate(ip))
    })
}

/// Allocate a free service IP chosen at random (upper band first, then the low band kept for
/// user-chosen IPs; never the API server's) and write it as text, e.g. "10.0.143.7", with its
/// NUL, to the `ip_out_len` bytes at `ip_out`, which must be at least `PODNET_IP_STR_LEN`
/// (checked first: `PODNET_STATUS_INVALID_ARGUMENT`, nothing allocated).
///
/// Errors: `PODNET_STATUS_EXHAUSTED` when no address is left. `ip_out` is written only on
/// success; on failure the allocator is unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_allocate_next(
    allocator: *mut podnet_service_ip_allocator,
    ip_out: *mut c_char,
    ip_out_len: usize,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_ip_allocator_allocate_next", "allocator", allocator, err_out, |c, a| {
        let buf = c.out_buf("ip_out", ip_out, ip_out_len, PODNET_IP_STR_LEN)?;
        let ip = core(a.alloc.allocate_next())?;
        let text = cstring(ip.to_string());
        let bytes: Vec<c_char> = text.as_bytes_with_nul().iter().map(|b| *b as c_char).collect();
        // An address is at most 45 bytes of text: it always fits.
        if !buf.write(&bytes) {
            let _ = a.alloc.release(ip);
            return Err(c.err(podnet_status::Internal, format!("{ip} does not fit the buffer")));
        }
        Ok(())
    })
}

/// Release a service IP. Releasing a free address is not an error, so cleanup can be retried.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not one of the range's allocatable addresses.
/// On success writes whether it was allocated to `*released_out`; on failure it is not written
/// and the allocator is unchanged. Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_release(
    allocator: *mut podnet_service_ip_allocator,
    ip: *const c_char,
    released_out: *mut bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_ip_allocator_release", "allocator", allocator, err_out, |c, a| {
        let ip = c.ip("ip", ip)?;
        let out = c.out("released_out", released_out)?;
        out.finish(core(a.alloc.release(ip))?)
    })
}

/// Whether service IP `ip` is allocated. Errors as for `podnet_service_ip_allocator_release`.
///
/// On success writes the answer to `*allocated_out`; on failure it is not written. Thread-safe
/// (only reads `allocator`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_is_allocated(
    allocator: *const podnet_service_ip_allocator,
    ip: *const c_char,
    allocated_out: *mut bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_service_ip_allocator_is_allocated", "allocator", allocator, err_out, |c, a| {
        let ip = c.ip("ip", ip)?;
        let out = c.out("allocated_out", allocated_out)?;
        out.finish(core(a.alloc.is_allocated(ip))?)
    })
}

/// Change the range to `cidr`, keeping every allocation at its address. Only the end of a range
/// may move: it may grow freely and shrink while no allocated address lies beyond the new end.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` for host bits, the other family or a size the allocator
/// refuses; `PODNET_STATUS_CONFLICT` when the start (network address) would move (allocations
/// are offsets from it: create a new allocator and migrate instead) or allocated addresses lie
/// beyond the new end (release them first). On failure the allocator is unchanged. On success
/// the string `podnet_service_ip_allocator_cidr` returned before is invalid.
/// Not thread-safe for one allocator.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_resize(
    allocator: *mut podnet_service_ip_allocator,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_ip_allocator_resize", "allocator", allocator, err_out, |c, a| {
        let cidr = c.range("cidr", cidr)?;
        core(a.alloc.resize(cidr))?;
        a.cidr = cstring(cidr.to_string());
        Ok(())
    })
}

/// The service range, e.g. "10.0.0.0/16". Owned by `allocator`: valid until the next successful
/// `podnet_service_ip_allocator_resize` or until it is freed. NULL gives NULL.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_cidr(allocator: *const podnet_service_ip_allocator) -> *const c_char {
    read(allocator, std::ptr::null(), |a| a.cidr.as_ptr())
}

/// Number of addresses the allocator manages, the API server's included: 2^n - 2 (IPv4) or
/// min(2^n, 2^20) - 1 (IPv6). NULL gives 0.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_size(allocator: *const podnet_service_ip_allocator) -> u64 {
    read(allocator, 0, |a| a.alloc.size())
}

/// Number of allocated addresses. NULL gives 0.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_allocated(allocator: *const podnet_service_ip_allocator) -> u64 {
    read(allocator, 0, |a| a.alloc.allocated())
}

/// Number of free addresses (the API server's included when it is free). NULL gives 0.
/// Thread-safe (only reads `allocator`).
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_available(allocator: *const podnet_service_ip_allocator) -> u64 {
    read(allocator, 0, |a| a.alloc.free())
}

/// Save the allocator's state (range and allocations; not the random seed) as bytes: a
/// versioned header, the range as JSON, the bitmap and a CRC-32 (a /12 takes 128 KiB).
///
/// On success writes a new buffer to `*bytes_out` (free it with `podnet_bytes_free`); on failure
/// `*bytes_out` is not written. Thread-safe (only reads `allocator`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_to_bytes(
    allocator: *const podnet_service_ip_allocator,
    bytes_out: *mut *mut podnet_bytes,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_service_ip_allocator_to_bytes", "allocator", allocator, err_out, |c, a| {
        c.out("bytes_out", bytes_out)?.give(a.alloc.to_bytes())
    })
}

/// Restore an allocator from the `len` bytes at `data` (from
/// `podnet_service_ip_allocator_to_bytes`; `data` may be NULL only when `len` is 0), with a
/// fresh random seed. Every part is checked: damaged or foreign bytes give
/// `PODNET_STATUS_INVALID_ARGUMENT`.
///
/// On success writes a new allocator to `*allocator_out` (free it with
/// `podnet_service_ip_allocator_free`); on failure `*allocator_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_ip_allocator_from_bytes(
    data: *const u8,
    len: usize,
    allocator_out: *mut *mut podnet_service_ip_allocator,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    restore("podnet_service_ip_allocator_from_bytes", (data, len), allocator_out, err_out, |bytes| {
        ServiceIpAllocator::from_bytes(bytes).map(ServiceAllocObj::new)
    })
}

/// `podnet_node_cidr_allocator_from_bytes` and `podnet_service_ip_allocator_from_bytes`: the
/// allocator `parse` restores from the `len` bytes at `data`, handed to C.
fn restore<C: Castable>(
    op: &'static str,
    (data, len): (*const u8, usize),
    allocator_out: *mut *mut C,
    err_out: *mut *mut podnet_error,
    parse: fn(&[u8]) -> podnet_core::Result<C::RustType>,
) -> podnet_status
where
    C::Ownership: MayOwn,
{
    fallible(op, err_out, |c| {
        let bytes = c.slice("data", data, len)?;
        let out = c.out("allocator_out", allocator_out)?;
        out.give(core(parse(bytes))?)
    })
}
