//! Peers (other nodes) through the C ABI: the `podnet_peer` builder, which is also the element of
//! `podnet_peer_list`, `podnet_sync_report`, and the node calls that add, remove, list and sync
//! peers (`podnet_node_peer_*`, `podnet_node_peers_sync`).

use std::ffi::c_char;

use podnet_core::{Peer, SyncReport};

use crate::buffer::podnet_string_list;
use crate::call::{add_once, at, construct, core, count, free, info, with_mut, with_ref};
use crate::error::podnet_error;
use crate::handle::castable;
use crate::node::podnet_node;
use crate::record::{record, Built, FromCore, Record};
use crate::status::podnet_status;

/// A peer's fields, read with `podnet_peer_get_info`. Grows only at the end (see
/// `podnet_sandbox_info`). Owned by the peer: valid until the next setter call on it or until
/// it is freed (for a peer borrowed from a list: until the list is).
#[repr(C)]
#[derive(Debug)]
pub struct podnet_peer_info {
    /// `sizeof(podnet_peer_info)` as the library knows it.
    pub struct_size: usize,
    /// The peer's name.
    pub name: *const c_char,
    /// The peer's underlay address ("192.168.1.12").
    pub underlay_ip: *const c_char,
    /// The peer's pod CIDRs ("10.244.2.0/24"), in the order they were added.
    pub pod_cidrs: podnet_string_list,
    /// The VTEP MAC as podnet uses it ("0e:5a:17:c4:09:e2"): the one set with
    /// `podnet_peer_set_vtep_mac`, or else the one derived from the name.
    pub vtep_mac: *const c_char,
}

/// Another node as the cluster's source of truth describes it: name, underlay address, pod CIDRs
/// and (optionally) its VTEP MAC. Built with `podnet_peer_new` and the setters, passed to
/// `podnet_node_peer_add` or `podnet_node_peers_sync` (which read it and keep no reference);
/// also the element of a `podnet_peer_list`. Read it with `podnet_peer_get_info`.
///
/// A peer from `podnet_peer_new` is owned by the caller (free it with `podnet_peer_free`); one
/// borrowed from a `podnet_peer_list` is valid until the list is freed (never free or modify
/// it). Not thread-safe while it is modified: do not use one peer from two threads at the same
/// time while a setter runs (it may move between threads); reading alone may run concurrently.
pub struct podnet_peer {
    _private: [u8; 0],
}

castable!(podnet_peer: OwnedOrLent => Built<Peer, podnet_peer_info>);
castable!(podnet_peer_info: Borrowed => podnet_peer_info);

impl FromCore<Peer> for Record<podnet_peer_info> {
    fn from_core(peer: &Peer) -> Self {
        let mac = peer.vtep_mac.unwrap_or_else(|| podnet_core::vtep_mac(&peer.name));
        Record::build(|b| podnet_peer_info {
            struct_size: std::mem::size_of::<podnet_peer_info>(),
            name: b.text(&peer.name),
            underlay_ip: b.text(peer.underlay_ip),
            pod_cidrs: b.list(&peer.pod_cidrs),
            vtep_mac: b.text(mac_string(mac)),
        })
    }
}

pub(crate) fn mac_string(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Create a peer with no pod CIDR yet (a peer needs at least one: `podnet_peer_add_pod_cidr`)
/// and the VTEP MAC podnet derives from `name` (as every podnet node derives its own, so podnet
/// nodes agree without exchanging it).
///
/// `name`: the peer node's name, `[A-Za-z0-9_.-]`, 1..=128 bytes, no "..". `underlay_ip`: the
/// peer's address on the network that connects the nodes ("192.168.1.12", "fd00::12").
///
/// Errors: `PODNET_STATUS_TOO_LONG` / `PODNET_STATUS_INVALID_ARGUMENT` for a bad name;
/// `PODNET_STATUS_INVALID_ADDRESS` when `underlay_ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not a unicast host address.
/// On success writes a new peer to `*peer_out` (free it with `podnet_peer_free`); on failure
/// `*peer_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_peer_new(
    name: *const c_char,
    underlay_ip: *const c_char,
    peer_out: *mut *mut podnet_peer,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    construct("podnet_peer_new", err_out, ("peer_out", peer_out), |c| {
        let name = c.name("name", name)?;
        let ip = c.unicast_ip("underlay_ip", underlay_ip)?;
        Ok(Built::new(Peer::new(name, ip, vec![])))
    })
}

/// Free a peer made by `podnet_peer_new`. NULL is accepted (no-op). Never pass a peer borrowed
/// from a `podnet_peer_list`. Freeing the object does not remove the peer from a node: that is
/// `podnet_node_peer_remove`.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_peer_free(peer: *mut podnet_peer) {
    free(peer)
}

/// Add one of the peer's pod CIDRs ("10.244.2.0/24", "fd00:10:244:2::/64"). Adding the same
/// CIDR twice is fine. Whether it overlaps the node's own pod CIDRs is checked when the peer is
/// added to a node (`PODNET_STATUS_CONFLICT`).
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set. On failure the peer is unchanged.
/// Not thread-safe for one peer.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_peer_add_pod_cidr(
    peer: *mut podnet_peer,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_peer_add_pod_cidr", "peer", peer, err_out, |c, p| {
        let net = c.network("cidr", cidr)?;
        add_once(&mut p.edit().pod_cidrs, net);
        Ok(())
    })
}

/// Set the peer's VTEP MAC (the MAC of its VXLAN device) instead of the one derived from its
/// name: needed only for a peer that is not a podnet node (e.g. flannel's, from its
/// `flannel.alpha.coreos.com/backend-data` annotation). `mac` points to `mac_len` bytes, which
/// must be 6, in network order ({0x0e, 0x12, ...} for "0e:12:...").
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` when `mac_len` is not 6 or the MAC is a multicast
/// (lowest bit of the first byte set) or all-zero address. On failure the peer is unchanged.
/// Not thread-safe for one peer.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_peer_set_vtep_mac(
    peer: *mut podnet_peer,
    mac: *const u8,
    mac_len: usize,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_peer_set_vtep_mac", "peer", peer, err_out, |c, p| {
        if mac.is_null() {
            return Err(c.err(podnet_status::NullArgument, "`mac` is NULL"));
        }
        let bytes = c.slice("mac", mac, mac_len)?;
        let m: [u8; 6] = bytes
            .try_into()
            .map_err(|_| c.err(podnet_status::InvalidArgument, format!("`mac` has {mac_len} bytes; a MAC has 6")))?;
        if m[0] & 1 == 1 || m == [0; 6] {
            return Err(c.err(
                podnet_status::InvalidArgument,
                format!("{} is not a unicast, non-zero MAC address", mac_string(m)),
            ));
        }
        p.edit().vtep_mac = Some(m);
        Ok(())
    })
}

/// The peer's fields, owned by `peer` (see `podnet_peer_info`). NULL gives NULL.
/// Thread-safe (not concurrently with a setter on the same peer).
#[no_mangle]
pub extern "C" fn podnet_peer_get_info(peer: *const podnet_peer) -> *const podnet_peer_info {
    info(peer)
}

/// The peers a node is configured with, sorted by name (from `podnet_node_peer_list`).
///
/// Owned by the caller; free with `podnet_peer_list_free`. Immutable: thread-safe to read.
pub struct podnet_peer_list {
    _private: [u8; 0],
}

castable!(podnet_peer_list: Owned => Vec<Built<Peer, podnet_peer_info>>);

/// Number of peers in the list. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_peer_list_count(list: *const podnet_peer_list) -> usize {
    count(list)
}

/// Peer `index` (0-based), borrowed from the list: valid until `podnet_peer_list_free`; never
/// free or modify it. It can be passed to `podnet_node_peer_add` and `podnet_node_peers_sync`.
/// NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_peer_list_at(list: *const podnet_peer_list, index: usize) -> *const podnet_peer {
    at(list, index)
}

/// Free a peer list and every peer borrowed from it. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_peer_list_free(list: *mut podnet_peer_list) {
    free(list)
}

/// What `podnet_node_peers_sync` changed, read with `podnet_sync_report_get_info`. Grows only at
/// the end (see `podnet_sandbox_info`). Owned by the report.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_sync_report_info {
    /// `sizeof(podnet_sync_report_info)` as the library knows it.
    pub struct_size: usize,
    /// Peers the node is configured with after the sync.
    pub peers: usize,
    /// Kernel entries (routes, neighbours, FDB entries) the sync added.
    pub added: usize,
    /// Stale kernel entries the sync removed (including ones an earlier run or another process
    /// left behind).
    pub removed: usize,
}

/// What `podnet_node_peers_sync` changed. Read it with `podnet_sync_report_get_info`.
///
/// Owned by the caller; free with `podnet_sync_report_free`. Immutable: thread-safe to read.
pub struct podnet_sync_report {
    _private: [u8; 0],
}

record!(podnet_sync_report: Owned => podnet_sync_report_info);

impl FromCore<SyncReport> for Record<podnet_sync_report_info> {
    fn from_core(r: &SyncReport) -> Self {
        Record::build(|_| podnet_sync_report_info {
            struct_size: std::mem::size_of::<podnet_sync_report_info>(),
            peers: r.peers,
            added: r.added,
            removed: r.removed,
        })
    }
}

/// The report's fields, owned by `report`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sync_report_get_info(report: *const podnet_sync_report) -> *const podnet_sync_report_info {
    info(report)
}

/// Free a sync report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sync_report_free(report: *mut podnet_sync_report) {
    free(report)
}

/// Add or update one peer: a route to each of its pod CIDRs, over the overlay (route, neighbour
/// and FDB entry on the VXLAN device) or routed via its underlay address, as the node's
/// cross-node mode decides per peer. O(1) kernel requests whatever the number of peers; an
/// update changes only what differs from the peer's record. The peer's underlay address is
/// never masqueraded.
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` when the node has no underlay
/// (`podnet_node_config_set_underlay`), the peer has no pod CIDR or is the node itself, or a
/// routed peer is not on-link; `PODNET_STATUS_CONFLICT` when a pod CIDR overlaps the node's own;
/// `PODNET_STATUS_KERNEL` when the kernel refuses an entry. `peer` is only read.
/// Thread-safe (peer changes on one node serialize).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_peer_add(
    node: *const podnet_node,
    peer: *const podnet_peer,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_peer_add", "node", node, err_out, |c, node| core(node.add_peer(c.obj("peer", peer)?.value())))
}

/// Remove one peer's routes and entries and its record. Idempotent: an unknown name is success.
///
/// `name`: a peer name as for `podnet_peer_new`. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_peer_remove(
    node: *const podnet_node,
    name: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_peer_remove", "node", node, err_out, |c, node| core(node.remove_peer(c.name("name", name)?)))
}

/// Converge the node to exactly the `n_peers` peers at `peers`: add what is missing, fix what
/// changed, and remove every peer route, neighbour and FDB entry that is not wanted, including
/// ones an earlier run (or a crashed agent) left in the kernel. The way to repair after a
/// restart.
///
/// `peers` may be NULL only when `n_peers` is 0 (then every peer is removed); each element must
/// be a non-NULL peer (owned or borrowed from a list), and no name may appear twice
/// (`PODNET_STATUS_INVALID_ARGUMENT`). Every peer is checked (as by `podnet_node_peer_add`)
/// before anything changes. On success writes a new report to `*report_out` (free it with
/// `podnet_sync_report_free`); on failure `*report_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_peers_sync(
    node: *const podnet_node,
    peers: *const *const podnet_peer,
    n_peers: usize,
    report_out: *mut *mut podnet_sync_report,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_peers_sync", "node", node, err_out, |c, node| {
        let raw = c.slice("peers", peers, n_peers)?;
        let out = c.out("report_out", report_out)?;
        let list = c.each("peers", raw, |name, p| Ok(c.obj::<podnet_peer>(name, p)?.value().clone()))?;
        out.give(Record::from_core(&core(node.sync_peers(&list))?))
    })
}

/// List the peers the node is configured with (its records), sorted by name.
///
/// On success writes a new list to `*list_out` (free it with `podnet_peer_list_free`); on
/// failure `*list_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_peer_list(
    node: *const podnet_node,
    list_out: *mut *mut podnet_peer_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_peer_list", "node", node, err_out, |c, node| {
        c.give("list_out", list_out, || node.list_peers())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::try_ref;

    #[test]
    fn peer_builder() {
        let mut p: *mut podnet_peer = std::ptr::null_mut();
        assert_eq!(
            podnet_peer_new(c"n2".as_ptr(), c"10.0.0.2".as_ptr(), &mut p, std::ptr::null_mut()),
            podnet_status::Ok
        );
        assert_eq!(podnet_peer_add_pod_cidr(p, c"10.244.2.0/24".as_ptr(), std::ptr::null_mut()), podnet_status::Ok);
        assert_eq!(podnet_peer_add_pod_cidr(p, c"10.244.2.0/24".as_ptr(), std::ptr::null_mut()), podnet_status::Ok);
        let info = || try_ref::<podnet_peer_info>(podnet_peer_get_info(p)).unwrap();
        assert_eq!(info().pod_cidrs.count, 1);
        let derived = podnet_core::vtep_mac("n2");
        // SAFETY: the view's strings are valid NUL-terminated strings while the peer lives.
        let mac = || unsafe { std::ffi::CStr::from_ptr(info().vtep_mac) }.to_str().unwrap().to_string();
        assert_eq!(mac(), mac_string(derived));
        let bad = [1u8, 0, 0, 0, 0, 1];
        assert_eq!(podnet_peer_set_vtep_mac(p, bad.as_ptr(), 6, std::ptr::null_mut()), podnet_status::InvalidArgument);
        let good = [0x0eu8, 0, 0, 0, 0, 3];
        assert_eq!(podnet_peer_set_vtep_mac(p, good.as_ptr(), 5, std::ptr::null_mut()), podnet_status::InvalidArgument);
        assert_eq!(podnet_peer_set_vtep_mac(p, good.as_ptr(), 6, std::ptr::null_mut()), podnet_status::Ok);
        assert_eq!(mac(), "0e:00:00:00:00:03");
        podnet_peer_free(p);
    }
}
