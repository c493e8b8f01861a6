//! Host ports of existing sandboxes through the C ABI: the `podnet_port_list` builder, the
//! `podnet_port_entry` / `podnet_port_entry_list` and `podnet_repair_report` results, and the
//! node calls `podnet_node_ports_add/remove/list` and `podnet_node_repair`.

use std::ffi::c_char;

use podnet_core::blocking::Node;
use podnet_core::{PortEntry, PortMapping, RepairReport, Sandbox};

use crate::buffer::podnet_string_list;
use crate::call::{at, construct, count, free, info, with_mut, with_ref};
use crate::error::podnet_error;
use crate::handle::castable;
use crate::node::podnet_node;
use crate::record::{record, FromCore, Record};
use crate::sandbox::{podnet_port_mapping, podnet_sandbox};
use crate::spec::{add_port, podnet_protocol_code};
use crate::status::podnet_status;

/// A list of host port mappings to add to or remove from a sandbox (`podnet_node_ports_add`,
/// `podnet_node_ports_remove`), built with `podnet_port_list_new` and `podnet_port_list_add`.
///
/// Owned by the caller; free with `podnet_port_list_free`. Not thread-safe: do not use one list
/// from two threads at the same time (it may move between threads).
pub struct podnet_port_list {
    _private: [u8; 0],
}

castable!(podnet_port_list: Owned => Vec<PortMapping>);

/// Create an empty port list.
///
/// On success writes a new list to `*list_out` (free it with `podnet_port_list_free`); on
/// failure `*list_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_port_list_new(
    list_out: *mut *mut podnet_port_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    construct("podnet_port_list_new", err_out, ("list_out", list_out), |_| Ok(Vec::new()))
}

/// Add a mapping, exactly as `podnet_sandbox_spec_add_port` takes it: traffic to `host_port`
/// on the node (only to `host_ip` if it is not NULL; NULL means every node address) goes to
/// `container_port` in the pod.
///
/// `host_ip` may be NULL: here NULL is a value, not an error.
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for an unknown protocol, a port 0 or a mapping
/// listed twice (same protocol, host port and host IP); `PODNET_STATUS_INVALID_ADDRESS` when
/// `host_ip` does not parse. On failure the list is unchanged. Not thread-safe for one list.
#[no_mangle]
pub extern "C" fn podnet_port_list_add(
    list: *mut podnet_port_list,
    protocol: podnet_protocol_code,
    host_ip: *const c_char,
    host_port: u16,
    container_port: u16,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_port_list_add", "list", list, err_out, |c, l| {
        add_port(c, l, (protocol, host_ip, host_port, container_port))
    })
}

/// Number of mappings in the list. NULL gives 0.
/// Thread-safe (not concurrently with `podnet_port_list_add` on the same list).
#[no_mangle]
pub extern "C" fn podnet_port_list_count(list: *const podnet_port_list) -> usize {
    count(list)
}

/// Free a port list. NULL is accepted (no-op). Mappings added with it stay on the node.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_port_list_free(list: *mut podnet_port_list) {
    free(list)
}

/// Map more host ports to an existing sandbox: one nftables element per mapping and pod address
/// family, O(1) whatever the number of mapped ports. Idempotent: mappings the sandbox has
/// already are skipped. All or nothing: when one mapping is refused none is added.
///
/// `id`: a sandbox id as for `podnet_sandbox_spec_new`; `ports` is only read (an empty list
/// changes nothing).
/// Errors: `PODNET_STATUS_NOT_FOUND` for an unknown sandbox; `PODNET_STATUS_CONFLICT` when a
/// host port is mapped to another sandbox already.
/// On success writes the sandbox as it is now (all its mappings) to `*sandbox_out` (free it with
/// `podnet_sandbox_free`); on failure `*sandbox_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_ports_add(
    node: *const podnet_node,
    id: *const c_char,
    ports: *const podnet_port_list,
    sandbox_out: *mut *mut podnet_sandbox,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    change_ports("podnet_node_ports_add", (node, id, ports), sandbox_out, err_out, Node::add_ports)
}

/// `podnet_node_ports_add` and `_remove`, which differ only in the node call `change`.
fn change_ports(
    func: &'static str,
    (node, id, ports): (*const podnet_node, *const c_char, *const podnet_port_list),
    sandbox_out: *mut *mut podnet_sandbox,
    err_out: *mut *mut podnet_error,
    change: fn(&Node, &str, &[PortMapping]) -> podnet_core::Result<Sandbox>,
) -> podnet_status {
    with_ref(func, "node", node, err_out, |c, node| {
        let id = c.name("id", id)?;
        let ports = c.obj("ports", ports)?;
        c.give("sandbox_out", sandbox_out, || change(node, id, ports))
    })
}

/// Unmap host ports of a sandbox. Mappings the sandbox does not have are ignored (so a retry is
/// fine); a mapping matches on protocol, host IP, host port and container port.
///
/// `id`: a sandbox id; `ports` is only read. Errors: `PODNET_STATUS_NOT_FOUND` for an unknown
/// sandbox. On success writes the sandbox as it is now to `*sandbox_out` (free it with
/// `podnet_sandbox_free`); on failure `*sandbox_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_ports_remove(
    node: *const podnet_node,
    id: *const c_char,
    ports: *const podnet_port_list,
    sandbox_out: *mut *mut podnet_sandbox,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    change_ports("podnet_node_ports_remove", (node, id, ports), sandbox_out, err_out, Node::remove_ports)
}

/// One mapped host port of a node (an element of `podnet_port_entry_list`): the sandbox holding
/// it, the mapping, and the pod addresses its traffic goes to. A plain struct read directly.
///
/// Borrowed from its list: valid until the list is freed; never free or change it. Grows only
/// at the end (see `podnet_sandbox_info`).
#[repr(C)]
#[derive(Debug)]
pub struct podnet_port_entry {
    /// `sizeof(podnet_port_entry)` as the library knows it.
    pub struct_size: usize,
    /// Id of the sandbox the port is mapped to.
    pub sandbox_id: *const c_char,
    /// The mapping.
    pub mapping: podnet_port_mapping,
    /// Pod addresses the port's traffic goes to, without prefix length ("10.88.0.5"): one per
    /// pod address family, only the host IP's family when the mapping has one.
    pub pod_ips: podnet_string_list,
}

// An element of `podnet_port_entry_list`: the record is `#[repr(C)]` with the entry first.
castable!(podnet_port_entry: Borrowed => Record<podnet_port_entry>);

impl FromCore<PortEntry> for Record<podnet_port_entry> {
    fn from_core(e: &PortEntry) -> Self {
        Record::build(|b| podnet_port_entry {
            struct_size: std::mem::size_of::<podnet_port_entry>(),
            sandbox_id: b.text(&e.sandbox),
            mapping: podnet_port_mapping::new(b, &e.mapping),
            pod_ips: b.list(&e.pod_ips),
        })
    }
}

/// Every host port mapped on a node (from `podnet_node_ports_list`), sorted by sandbox id, each
/// sandbox's mappings in the order they were added.
///
/// Owned by the caller; free with `podnet_port_entry_list_free`. Immutable: thread-safe to read.
pub struct podnet_port_entry_list {
    _private: [u8; 0],
}

castable!(podnet_port_entry_list: Owned => Vec<Record<podnet_port_entry>>);

/// Number of entries. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_port_entry_list_count(list: *const podnet_port_entry_list) -> usize {
    count(list)
}

/// Entry `index` (0-based), borrowed from the list: valid until `podnet_port_entry_list_free`,
/// never free it yourself. NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_port_entry_list_at(
    list: *const podnet_port_entry_list,
    index: usize,
) -> *const podnet_port_entry {
    at(list, index)
}

/// Free an entry list and every entry borrowed from it. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_port_entry_list_free(list: *mut podnet_port_entry_list) {
    free(list)
}

/// List every host port mapped on the node (from the sandboxes' records).
///
/// On success writes a new list to `*list_out` (free it with `podnet_port_entry_list_free`); on
/// failure `*list_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_ports_list(
    node: *const podnet_node,
    list_out: *mut *mut podnet_port_entry_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_ports_list", "node", node, err_out, |c, node| {
        c.give("list_out", list_out, || node.list_ports())
    })
}

/// What `podnet_node_repair` found and fixed, read with `podnet_repair_report_get_info`. Grows
/// only at the end (see `podnet_sandbox_info`). Owned by the report.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_repair_report_info {
    /// `sizeof(podnet_repair_report_info)` as the library knows it.
    pub struct_size: usize,
    /// True when podnet's nftables table was missing (someone flushed the ruleset) and was
    /// recreated.
    pub table_recreated: bool,
    /// Host-port elements (one per mapping and pod address family) that were missing and were
    /// re-added.
    pub ports_restored: usize,
}

/// What `podnet_node_repair` found and fixed. Read it with `podnet_repair_report_get_info`.
///
/// Owned by the caller; free with `podnet_repair_report_free`. Immutable: thread-safe to read.
pub struct podnet_repair_report {
    _private: [u8; 0],
}

record!(podnet_repair_report: Owned => podnet_repair_report_info);

impl FromCore<RepairReport> for Record<podnet_repair_report_info> {
    fn from_core(r: &RepairReport) -> Self {
        Record::build(|_| podnet_repair_report_info {
            struct_size: std::mem::size_of::<podnet_repair_report_info>(),
            table_recreated: r.table_recreated,
            ports_restored: r.ports_restored,
        })
    }
}

/// The report's fields, owned by `report`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_repair_report_get_info(
    report: *const podnet_repair_report,
) -> *const podnet_repair_report_info {
    info(report)
}

/// Free a repair report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_repair_report_free(report: *mut podnet_repair_report) {
    free(report)
}

/// Re-install podnet's nftables table (`inet podnet`: host ports, egress masquerade) and every
/// recorded host port when someone flushed the ruleset or deleted elements. Other tables are
/// never touched; a healthy node is left as it is. Run it after anything that may flush
/// nftables (a firewall reload).
///
/// On success writes a new report to `*report_out` (free it with `podnet_repair_report_free`);
/// on failure `*report_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_repair(
    node: *const podnet_node,
    report_out: *mut *mut podnet_repair_report,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_repair", "node", node, err_out, |c, node| c.give("report_out", report_out, || node.repair()))
}
