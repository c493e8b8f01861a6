//! Result objects: `podnet_sandbox`, `podnet_sandbox_list`, `podnet_check_report`,
//! `podnet_gc_report`. Each is immutable, converts its strings to C once when it is built, and
//! hands out `const char *` that live as long as the object.

use std::ffi::{c_char, CString};

use podnet_core::{CheckReport, GcReport, PortMapping, Sandbox};

use crate::call::infallible;
use crate::config::podnet_mode;
use crate::error::cstring;
use crate::handle::{free_owned, to_borrowed_ptr, try_ref, Castable, Owned, OwnedOrLent};
use crate::spec::podnet_protocol;

fn at(v: &[CString], index: usize) -> *const c_char {
    v.get(index).map_or(std::ptr::null(), |s| s.as_ptr())
}

fn strings<T: std::fmt::Display>(v: &[T]) -> Vec<CString> {
    v.iter().map(|x| cstring(x.to_string())).collect()
}

/// One sandbox (pod network) as created or recorded: id, interfaces, netns, addresses.
///
/// Returned by `podnet_node_sandbox_create` and `podnet_node_sandbox_get` (owned by the caller,
/// free with `podnet_sandbox_free`) or borrowed from a `podnet_sandbox_list` (valid until the
/// list is freed; never free it yourself). Immutable: the accessors may be called from any
/// thread, concurrently. Every string an accessor returns is owned by the sandbox and valid until
/// it is freed; accessors given NULL return NULL, 0 or `PODNET_MODE_UNKNOWN`.
pub struct podnet_sandbox {
    _private: [u8; 0],
}

/// The Rust value behind `podnet_sandbox`.
#[derive(Debug)]
pub(crate) struct SandboxObj {
    mode: podnet_mode,
    owns_netns: bool,
    id: CString,
    ifname: CString,
    netns_path: CString,
    host_ifname: CString,
    mac: CString,
    ips: Vec<CString>,
    gateways: Vec<CString>,
    ports: Vec<(PortMapping, Option<CString>)>,
}

impl Castable for podnet_sandbox {
    type Ownership = OwnedOrLent;
    type RustType = SandboxObj;
}

impl SandboxObj {
    pub(crate) fn new(sb: &Sandbox) -> SandboxObj {
        SandboxObj {
            mode: podnet_mode::from_core(sb.mode),
            owns_netns: sb.owns_netns,
            id: cstring(sb.id.as_str()),
            ifname: cstring(sb.ifname.as_str()),
            netns_path: cstring(sb.netns_path.to_string_lossy()),
            host_ifname: cstring(sb.host_ifname.as_str()),
            mac: cstring(sb.mac.as_str()),
            ips: strings(&sb.ips),
            gateways: strings(&sb.gateways),
            ports: sb.ports.iter().map(|p| (*p, p.host_ip.map(|ip| cstring(ip.to_string())))).collect(),
        }
    }
}

/// The sandbox id. Owned by `sandbox`. NULL `sandbox` gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_id(sandbox: *const podnet_sandbox) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| s.id.as_ptr()))
}

/// The interface name inside the pod (e.g. "eth0"). Owned by `sandbox`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_ifname(sandbox: *const podnet_sandbox) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| s.ifname.as_ptr()))
}

/// Path of the pod's network namespace (e.g. "/run/netns/pn-node1-web-1"): open it and
/// `setns(2)` into it to run the pod. Owned by `sandbox`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_netns_path(sandbox: *const podnet_sandbox) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| s.netns_path.as_ptr()))
}

/// True when podnet created the netns (and removes it on delete); false for a netns the runtime
/// passed in with `podnet_sandbox_spec_set_netns_path`, or for NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_owns_netns(sandbox: *const podnet_sandbox) -> bool {
    infallible(false, || try_ref(sandbox).is_some_and(|s| s.owns_netns))
}

/// Name of the host end of the pod's veth (e.g. "pn3f2a1c0b9d11"). Owned by `sandbox`. NULL
/// gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_host_ifname(sandbox: *const podnet_sandbox) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| s.host_ifname.as_ptr()))
}

/// MAC address of the pod interface ("0a:58:0a:01:00:02"). Owned by `sandbox`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_mac(sandbox: *const podnet_sandbox) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| s.mac.as_ptr()))
}

/// How the pod is attached (`PODNET_MODE_BRIDGE` or `PODNET_MODE_ROUTED`); NULL gives
/// `PODNET_MODE_UNKNOWN`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_mode(sandbox: *const podnet_sandbox) -> podnet_mode {
    infallible(podnet_mode::Unknown, || try_ref(sandbox).map_or(podnet_mode::Unknown, |s| s.mode))
}

/// Number of pod addresses (one per pod CIDR of the node). NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_ip_count(sandbox: *const podnet_sandbox) -> usize {
    infallible(0, || try_ref(sandbox).map_or(0, |s| s.ips.len()))
}

/// Pod address `index` (0-based) with the prefix length configured on the interface, e.g.
/// "10.1.0.2/24" (bridge) or "10.1.0.2/32" (routed). Owned by `sandbox`. NULL `sandbox` or an
/// index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_ip_at(sandbox: *const podnet_sandbox, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| at(&s.ips, index)))
}

/// Number of default gateways (one per address family). NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_gateway_count(sandbox: *const podnet_sandbox) -> usize {
    infallible(0, || try_ref(sandbox).map_or(0, |s| s.gateways.len()))
}

/// Default gateway `index` (0-based), e.g. "10.1.0.1" or "169.254.1.1" (routed). Owned by
/// `sandbox`. NULL `sandbox` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_gateway_at(sandbox: *const podnet_sandbox, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(sandbox).map_or(std::ptr::null(), |s| at(&s.gateways, index)))
}

/// Number of host port mappings of the sandbox. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_port_count(sandbox: *const podnet_sandbox) -> usize {
    infallible(0, || try_ref(sandbox).map_or(0, |s| s.ports.len()))
}

fn port_of<'a>(sandbox: *const podnet_sandbox, index: usize) -> Option<&'a (PortMapping, Option<CString>)> {
    try_ref(sandbox).and_then(|s| s.ports.get(index))
}

/// Protocol of port mapping `index` (0-based). NULL `sandbox` or an index out of range gives
/// `PODNET_PROTOCOL_UNKNOWN`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_port_protocol(sandbox: *const podnet_sandbox, index: usize) -> podnet_protocol {
    infallible(podnet_protocol::Unknown, || {
        port_of(sandbox, index).map_or(podnet_protocol::Unknown, |p| podnet_protocol::from_core(p.0.protocol))
    })
}

/// Host address of port mapping `index`, or NULL when it applies to every node address (and
/// for NULL `sandbox` or an index out of range). Owned by `sandbox`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_port_host_ip(sandbox: *const podnet_sandbox, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || {
        port_of(sandbox, index).and_then(|p| p.1.as_ref()).map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Host port of port mapping `index`. NULL `sandbox` or an index out of range gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_port_host_port(sandbox: *const podnet_sandbox, index: usize) -> u16 {
    infallible(0, || port_of(sandbox, index).map_or(0, |p| p.0.host_port))
}

/// Pod (container) port of port mapping `index`. NULL `sandbox` or an index out of range gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_port_container_port(sandbox: *const podnet_sandbox, index: usize) -> u16 {
    infallible(0, || port_of(sandbox, index).map_or(0, |p| p.0.container_port))
}

/// Free a sandbox returned by `podnet_node_sandbox_create` or `podnet_node_sandbox_get`. NULL is
/// accepted (no-op). Never pass a sandbox borrowed from a `podnet_sandbox_list`. Freeing the
/// object does not delete the pod: that is `podnet_node_sandbox_delete`.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sandbox_free(sandbox: *mut podnet_sandbox) {
    infallible((), || free_owned(sandbox))
}

/// The sandboxes of a node, sorted by id (from `podnet_node_sandbox_list`).
///
/// Owned by the caller; free with `podnet_sandbox_list_free`. Immutable: thread-safe to read.
pub struct podnet_sandbox_list {
    _private: [u8; 0],
}

impl Castable for podnet_sandbox_list {
    type Ownership = Owned;
    type RustType = Vec<SandboxObj>;
}

/// Number of sandboxes in the list. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_count(list: *const podnet_sandbox_list) -> usize {
    infallible(0, || try_ref(list).map_or(0, Vec::len))
}

/// Sandbox `index` (0-based), borrowed from the list: valid until `podnet_sandbox_list_free`,
/// never free it yourself. NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_at(list: *const podnet_sandbox_list, index: usize) -> *const podnet_sandbox {
    infallible(std::ptr::null(), || {
        try_ref(list).and_then(|l| l.get(index)).map_or(std::ptr::null(), to_borrowed_ptr::<podnet_sandbox>)
    })
}

/// Free a sandbox list and every sandbox borrowed from it. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_free(list: *mut podnet_sandbox_list) {
    infallible((), || free_owned(list))
}

/// What `podnet_node_sandbox_check` found for one sandbox: one line per difference between the
/// kernel and the record; none when healthy.
///
/// Owned by the caller; free with `podnet_check_report_free`. Immutable: thread-safe to read.
/// Strings are owned by the report and valid until it is freed.
pub struct podnet_check_report {
    _private: [u8; 0],
}

/// The Rust value behind `podnet_check_report`.
#[derive(Debug)]
pub(crate) struct CheckReportObj {
    id: CString,
    problems: Vec<CString>,
}

impl Castable for podnet_check_report {
    type Ownership = Owned;
    type RustType = CheckReportObj;
}

impl CheckReportObj {
    pub(crate) fn new(r: &CheckReport) -> CheckReportObj {
        CheckReportObj { id: cstring(r.id.as_str()), problems: strings(&r.problems) }
    }
}

/// The checked sandbox's id. Owned by `report`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_check_report_id(report: *const podnet_check_report) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| r.id.as_ptr()))
}

/// True when the kernel matches the record (no problems). NULL gives false.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_check_report_is_ok(report: *const podnet_check_report) -> bool {
    infallible(false, || try_ref(report).is_some_and(|r| r.problems.is_empty()))
}

/// Number of problems found. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_check_report_problem_count(report: *const podnet_check_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.problems.len()))
}

/// Problem `index` (0-based), e.g. "host veth pn3f2a1c0b9d11 is missing". Owned by `report`.
/// NULL `report` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_check_report_problem_at(report: *const podnet_check_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.problems, index)))
}

/// Free a check report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_check_report_free(report: *mut podnet_check_report) {
    infallible((), || free_owned(report))
}

/// What `podnet_node_gc` removed, and the errors it met (gc keeps going after an error).
///
/// Owned by the caller; free with `podnet_gc_report_free`. Immutable: thread-safe to read.
/// Strings are owned by the report and valid until it is freed.
pub struct podnet_gc_report {
    _private: [u8; 0],
}

/// The Rust value behind `podnet_gc_report`.
#[derive(Debug)]
pub(crate) struct GcReportObj {
    sandboxes: Vec<CString>,
    ips: Vec<CString>,
    netns: Vec<CString>,
    links: Vec<CString>,
    errors: Vec<CString>,
}

impl Castable for podnet_gc_report {
    type Ownership = Owned;
    type RustType = GcReportObj;
}

impl GcReportObj {
    pub(crate) fn new(r: &GcReport) -> GcReportObj {
        GcReportObj {
            sandboxes: strings(&r.sandboxes),
            ips: strings(&r.ips),
            netns: r.netns.iter().map(|p| cstring(p.to_string_lossy())).collect(),
            links: strings(&r.links),
            errors: strings(&r.errors),
        }
    }
}

/// Number of sandboxes gc deleted (not in the live list). NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_sandbox_count(report: *const podnet_gc_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.sandboxes.len()))
}

/// Id of deleted sandbox `index`. Owned by `report`. NULL or out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_sandbox_at(report: *const podnet_gc_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.sandboxes, index)))
}

/// Number of orphaned address reservations released. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_ip_count(report: *const podnet_gc_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.ips.len()))
}

/// Released address `index` ("10.1.0.9"). Owned by `report`. NULL or out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_ip_at(report: *const podnet_gc_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.ips, index)))
}

/// Number of orphaned netns pins removed. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_netns_count(report: *const podnet_gc_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.netns.len()))
}

/// Path of removed netns pin `index`. Owned by `report`. NULL or out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_netns_at(report: *const podnet_gc_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.netns, index)))
}

/// Number of orphaned host veths deleted. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_link_count(report: *const podnet_gc_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.links.len()))
}

/// Name of deleted host veth `index`. Owned by `report`. NULL or out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_link_at(report: *const podnet_gc_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.links, index)))
}

/// Number of errors gc met and went past. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_error_count(report: *const podnet_gc_report) -> usize {
    infallible(0, || try_ref(report).map_or(0, |r| r.errors.len()))
}

/// Error `index` as one line of text. Owned by `report`. NULL or out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_error_at(report: *const podnet_gc_report, index: usize) -> *const c_char {
    infallible(std::ptr::null(), || try_ref(report).map_or(std::ptr::null(), |r| at(&r.errors, index)))
}

/// Free a gc report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_gc_report_free(report: *mut podnet_gc_report) {
    infallible((), || free_owned(report))
}
