//! `podnet_node`: an open node (one network namespace) and the sandbox lifecycle on it. The
//! handle is the core's blocking node, which owns a small tokio runtime and is `Send + Sync`.

use std::ffi::c_char;

use podnet_core::blocking::Node;

use crate::buffer::podnet_string_list;
use crate::call::{core, free, info, with_ref};
use crate::config::podnet_node_config;
use crate::error::podnet_error;
use crate::handle::{castable, thread_safe};
use crate::peer::mac_string;
use crate::record::{record, FromCore, Record};
use crate::sandbox::{podnet_check_report, podnet_gc_report, podnet_sandbox, podnet_sandbox_list};
use crate::spec::podnet_sandbox_spec;
use crate::status::podnet_status;

/// An open node: one network namespace (a Kubernetes node), its pod CIDRs, bridge and records.
///
/// Thread-safe: any number of threads may call any `podnet_node_*` function on one node at the
/// same time; calls run in parallel, and two calls for the same sandbox id serialize. The only
/// exception is `podnet_node_free`, which must not race with other calls on the node.
///
/// podnet never changes the calling thread's namespaces, never forks and never execs; it runs
/// a small thread pool per node for netlink I/O. Do not call it from the log callback.
pub struct podnet_node {
    _private: [u8; 0],
}

castable!(podnet_node: Owned => Node);

// The ABI promises a node may be shared across threads.
const _: () = thread_safe::<Node>();

/// Open a node: validate `config`, bind to its netns and initialize it (idempotent: forwarding
/// on, and in bridge mode the bridge with the gateway addresses). Needs CAP_NET_ADMIN and
/// CAP_SYS_ADMIN. Opening the same node (same name and state dir) again, in this or another
/// process, is fine: it shares the state.
///
/// `config` is copied; the caller keeps ownership of it. On success writes the node to
/// `*node_out` (free it with `podnet_node_free`); on failure `*node_out` is not written.
/// Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_open(
    config: *const podnet_node_config,
    node_out: *mut *mut podnet_node,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_open", "config", config, err_out, |c, cfg| {
        c.out("node_out", node_out)?.give(core(Node::open(cfg.clone()))?)
    })
}

/// Close a node: stop its threads and free it. The pods stay (they live in the kernel and the
/// state dir); open the node again to manage them. NULL is accepted (no-op).
///
/// Must not run concurrently with any other call on this node, nor from the log callback.
#[no_mangle]
pub extern "C" fn podnet_node_free(node: *mut podnet_node) {
    free(node)
}

/// Create a sandbox: allocate its addresses, create and pin its netns (or adopt the spec's),
/// attach a veth and record it. Any failure undoes every step taken. Idempotent: the same spec
/// again returns the existing sandbox; a different spec for an existing id gives
/// `PODNET_STATUS_ALREADY_EXISTS`.
///
/// `spec` is only read. On success writes the new sandbox object to `*sandbox_out` (free it
/// with `podnet_sandbox_free`); on failure `*sandbox_out` is not written and nothing is left on
/// the node. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_sandbox_create(
    node: *const podnet_node,
    spec: *const podnet_sandbox_spec,
    sandbox_out: *mut *mut podnet_sandbox,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_sandbox_create", "node", node, err_out, |c, node| {
        let spec = c.obj("spec", spec)?;
        c.give("sandbox_out", sandbox_out, || node.create_sandbox(spec))
    })
}

/// Delete a sandbox: release its addresses, remove its netns (the kernel destroys the veth
/// with it) and its record. Idempotent: an unknown id is success. Every step runs even if one
/// fails; the error then reports them all. When it returns `PODNET_STATUS_OK` the addresses are
/// free and a create with the same id succeeds.
///
/// `id`: a sandbox id as for `podnet_sandbox_spec_new`. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_sandbox_delete(
    node: *const podnet_node,
    id: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_sandbox_delete", "node", node, err_out, |c, node| {
        core(node.delete_sandbox(c.name("id", id)?))
    })
}

/// Read a sandbox's record. Unknown id: `PODNET_STATUS_NOT_FOUND`.
///
/// On success writes a new sandbox object to `*sandbox_out` (free it with
/// `podnet_sandbox_free`); on failure `*sandbox_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_sandbox_get(
    node: *const podnet_node,
    id: *const c_char,
    sandbox_out: *mut *mut podnet_sandbox,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_sandbox_get", "node", node, err_out, |c, node| {
        let id = c.name("id", id)?;
        c.give("sandbox_out", sandbox_out, || node.get_sandbox(id))
    })
}

/// List the node's sandboxes, sorted by id.
///
/// On success writes a new list to `*list_out` (free it with `podnet_sandbox_list_free`); on
/// failure `*list_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_sandbox_list(
    node: *const podnet_node,
    list_out: *mut *mut podnet_sandbox_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_sandbox_list", "node", node, err_out, |c, node| {
        c.give("list_out", list_out, || node.list_sandboxes())
    })
}

/// Compare a sandbox's kernel state (addresses, veth, routes, pod interface) with its record.
/// Differences are not an error: they are the report's problems. Unknown id:
/// `PODNET_STATUS_NOT_FOUND`.
///
/// On success writes a new report to `*report_out` (free it with `podnet_check_report_free`);
/// on failure `*report_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_sandbox_check(
    node: *const podnet_node,
    id: *const c_char,
    report_out: *mut *mut podnet_check_report,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_sandbox_check", "node", node, err_out, |c, node| {
        let id = c.name("id", id)?;
        c.give("report_out", report_out, || node.check_sandbox(id))
    })
}

/// Garbage-collect: delete every sandbox whose id is not among the `n_live_ids` strings at
/// `live_ids` (the runtime's live pods), and every orphan podnet left behind (address
/// reservations, netns pins, host veths without a record). gc keeps going after errors and
/// reports them.
///
/// `live_ids` may be NULL only when `n_live_ids` is 0 (then every sandbox is deleted); each
/// element must be a valid sandbox id. All ids are checked before anything is deleted (a bad
/// one gives the status its string would get elsewhere; an impossible `n_live_ids`
/// `PODNET_STATUS_INVALID_ARGUMENT`).
/// On success writes a new report to `*report_out` (free it with `podnet_gc_report_free`); on
/// failure `*report_out` is not written. Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_node_gc(
    node: *const podnet_node,
    live_ids: *const *const c_char,
    n_live_ids: usize,
    report_out: *mut *mut podnet_gc_report,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_gc", "node", node, err_out, |c, node| {
        let raw = c.slice("live_ids", live_ids, n_live_ids)?;
        let out = c.out("report_out", report_out)?;
        let live = c.each("live_ids", raw, |name, id| c.name(name, id))?;
        out.give(Record::from_core(&core(node.gc(&live))?))
    })
}

/// What a node is, read in one call with `podnet_node_status_get_info`. Grows only at the end
/// (see `podnet_sandbox_info`). Every pointer is owned by the status object.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_node_status_info {
    /// `sizeof(podnet_node_status_info)` as the library knows it.
    pub struct_size: usize,
    /// The node name.
    pub name: *const c_char,
    /// The node's state directory ("/run/podnet/node1").
    pub state_dir: *const c_char,
    /// MTU of pod interfaces (the VXLAN MTU when the node has an overlay).
    pub pod_mtu: u32,
    /// The gateway addresses pods use ("10.1.0.1"), one per pod CIDR.
    pub gateways: podnet_string_list,
    /// The node's own VTEP MAC ("0e:12:34:56:78:9a"), what other nodes must program for it (a
    /// flannel lease's `VtepMAC`); NULL when the node has no VXLAN device.
    pub vtep_mac: *const c_char,
    /// False while the node refuses sandbox creates with `PODNET_STATUS_NOT_READY` (a cluster
    /// agent has not programmed its peers yet).
    pub ready: bool,
}

/// A snapshot of a node's identity and settings, from `podnet_node_get_status`. Read it with
/// `podnet_node_status_get_info`.
///
/// Owned by the caller; free with `podnet_node_status_free`. Immutable: thread-safe to read.
pub struct podnet_node_status {
    _private: [u8; 0],
}

record!(podnet_node_status: Owned => podnet_node_status_info);

impl FromCore<podnet_core::Node> for Record<podnet_node_status_info> {
    fn from_core(node: &podnet_core::Node) -> Self {
        Record::build(|b| podnet_node_status_info {
            struct_size: std::mem::size_of::<podnet_node_status_info>(),
            name: b.text(&node.config().name),
            state_dir: b.text(node.state_dir().display()),
            pod_mtu: node.pod_mtu(),
            gateways: b.list(node.gateways()),
            vtep_mac: node.vtep_mac().map_or(std::ptr::null(), |m| b.text(mac_string(m))),
            ready: node.is_ready(),
        })
    }
}

/// Read the node's status: name, state dir, pod MTU, gateways, its own VTEP MAC and readiness.
/// Makes no kernel request.
///
/// On success writes a new status object to `*status_out` (free it with
/// `podnet_node_status_free`); on failure `*status_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_get_status(
    node: *const podnet_node,
    status_out: *mut *mut podnet_node_status,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_get_status", "node", node, err_out, |c, node| {
        c.out("status_out", status_out)?.give(Record::from_core(&**node.inner()))
    })
}

/// The status's fields, owned by `status` (see `podnet_node_status_info`). NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_node_status_get_info(status: *const podnet_node_status) -> *const podnet_node_status_info {
    info(status)
}

/// Free a node status. NULL is accepted (no-op). Freeing it does not touch the node.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_node_status_free(status: *mut podnet_node_status) {
    free(status)
}
