//! Result objects: `podnet_sandbox`, `podnet_sandbox_list`, `podnet_check_report`,
//! `podnet_gc_report`. Each is immutable, converts its strings to C once when it is built, and
//! shows them through one `#[repr(C)]` view (`podnet_<object>_info`) that the caller reads
//! directly: one call per record, no per-field accessors.

use std::ffi::c_char;

use podnet_core::{CheckReport, GcReport, PortMapping, Sandbox};

use crate::buffer::podnet_string_list;
use crate::call::{at, count, free, info};
use crate::cenum::CEnum;
use crate::config::podnet_mode;
use crate::handle::castable;
use crate::record::{record, Backing, FromCore, Record};
use crate::spec::podnet_protocol;

/// One host port mapping as podnet reports it (an element of `podnet_sandbox_info.ports`, the
/// mapping of a `podnet_port_entry`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_port_mapping {
    /// `PODNET_PROTOCOL_TCP`, `_UDP` or `_SCTP`.
    pub protocol: podnet_protocol,
    /// The host address the mapping is limited to ("192.168.1.10"), or NULL for every node
    /// address.
    pub host_ip: *const c_char,
    /// Port on the node.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
}

impl podnet_port_mapping {
    /// The mapping `p` for C, its host IP as text kept in `b`.
    pub(crate) fn new(b: &mut Backing, p: &PortMapping) -> podnet_port_mapping {
        podnet_port_mapping {
            protocol: podnet_protocol::from_core(p.protocol),
            host_ip: p.host_ip.map_or(std::ptr::null(), |ip| b.text(ip)),
            host_port: p.host_port,
            container_port: p.container_port,
        }
    }
}

/// Everything podnet knows of one sandbox, read in one call with `podnet_sandbox_get_info`.
///
/// Grows only at the end: a field added in a later version follows all existing ones, and
/// `struct_size` is `sizeof(podnet_sandbox_info)` of the library that filled it, so a program
/// built against a newer header checks `info->struct_size > offsetof(podnet_sandbox_info,
/// field)` before reading a field an older library may lack. Every pointer is owned by the
/// sandbox and valid until it is freed (for a sandbox borrowed from a list: until the list is).
#[repr(C)]
#[derive(Debug)]
pub struct podnet_sandbox_info {
    /// `sizeof(podnet_sandbox_info)` as the library knows it.
    pub struct_size: usize,
    /// The sandbox id.
    pub id: *const c_char,
    /// Interface name inside the pod ("eth0").
    pub ifname: *const c_char,
    /// Path of the pod's network namespace ("/run/netns/pn-node1-web-1"): open it and
    /// `setns(2)` into it to run the pod.
    pub netns_path: *const c_char,
    /// Name of the host end of the pod's veth ("pn3f2a1c0b9d11").
    pub host_ifname: *const c_char,
    /// MAC address of the pod interface ("0a:58:0a:01:00:02").
    pub mac: *const c_char,
    /// True when podnet created the netns (and removes it on delete); false for a netns the
    /// runtime passed in with `podnet_sandbox_spec_set_netns_path`.
    pub owns_netns: bool,
    /// How the pod is attached: `PODNET_MODE_BRIDGE` or `PODNET_MODE_ROUTED`.
    pub mode: podnet_mode,
    /// Pod addresses (one per pod CIDR of the node) with the prefix length configured on the
    /// interface: "10.1.0.2/24" (bridge) or "10.1.0.2/32" (routed).
    pub ips: podnet_string_list,
    /// Default gateways, one per address family ("10.1.0.1", "169.254.1.1" when routed).
    pub gateways: podnet_string_list,
    /// Host port mappings, `port_count` of them (any non-NULL pointer when 0).
    pub ports: *const podnet_port_mapping,
    /// Number of host port mappings.
    pub port_count: usize,
    /// Labels as "key=value" (`podnet_sandbox_spec_set_label`), sorted by key. A key never
    /// contains '=': split at the first one.
    pub labels: podnet_string_list,
}

/// One sandbox (pod network) as created or recorded: read it with `podnet_sandbox_get_info`.
///
/// Returned by `podnet_node_sandbox_create`, `podnet_node_sandbox_get` and the host port calls
/// (owned by the caller, free with `podnet_sandbox_free`) or borrowed from a
/// `podnet_sandbox_list` (valid until the list is freed; never free it yourself). Immutable:
/// thread-safe to read.
pub struct podnet_sandbox {
    _private: [u8; 0],
}

record!(podnet_sandbox: OwnedOrLent => podnet_sandbox_info);

impl FromCore<Sandbox> for Record<podnet_sandbox_info> {
    fn from_core(sb: &Sandbox) -> Self {
        Record::build(|b| {
            let (ports, port_count) = b.array(&sb.ports, podnet_port_mapping::new);
            podnet_sandbox_info {
                struct_size: std::mem::size_of::<podnet_sandbox_info>(),
                id: b.text(&sb.id),
                ifname: b.text(&sb.ifname),
                netns_path: b.text(sb.netns_path.to_string_lossy()),
                host_ifname: b.text(&sb.host_ifname),
                mac: b.text(&sb.mac),
                owns_netns: sb.owns_netns,
                mode: podnet_mode::from_core(sb.mode),
                ips: b.list(&sb.ips),
                gateways: b.list(&sb.gateways),
                ports,
                port_count,
                labels: b.list(sb.labels.iter().map(|(k, v)| format!("{k}={v}"))),
            }
        })
    }
}

/// The sandbox's fields, owned by `sandbox` (see `podnet_sandbox_info`). NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_get_info(sandbox: *const podnet_sandbox) -> *const podnet_sandbox_info {
    info(sandbox)
}

/// Free a sandbox returned by `podnet_node_sandbox_create`, `podnet_node_sandbox_get` or a
/// host port call. NULL is accepted (no-op). Never pass a sandbox borrowed from a
/// `podnet_sandbox_list`. Freeing the object does not delete the pod: that is
/// `podnet_node_sandbox_delete`.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sandbox_free(sandbox: *mut podnet_sandbox) {
    free(sandbox)
}

/// The sandboxes of a node, sorted by id (from `podnet_node_sandbox_list`).
///
/// Owned by the caller; free with `podnet_sandbox_list_free`. Immutable: thread-safe to read.
pub struct podnet_sandbox_list {
    _private: [u8; 0],
}

castable!(podnet_sandbox_list: Owned => Vec<Record<podnet_sandbox_info>>);

/// Number of sandboxes in the list. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_count(list: *const podnet_sandbox_list) -> usize {
    count(list)
}

/// Sandbox `index` (0-based), borrowed from the list: valid until `podnet_sandbox_list_free`,
/// never free it yourself. NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_at(list: *const podnet_sandbox_list, index: usize) -> *const podnet_sandbox {
    at(list, index)
}

/// Free a sandbox list and every sandbox borrowed from it. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sandbox_list_free(list: *mut podnet_sandbox_list) {
    free(list)
}

/// What `podnet_node_sandbox_check` found, read with `podnet_check_report_get_info`. Grows only at
/// the end (see `podnet_sandbox_info`). Owned by the report.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_check_report_info {
    /// `sizeof(podnet_check_report_info)` as the library knows it.
    pub struct_size: usize,
    /// The checked sandbox's id.
    pub id: *const c_char,
    /// True when the kernel matches the record (no problems).
    pub ok: bool,
    /// One line per difference, e.g. "host veth pn3f2a1c0b9d11 is missing"; none when healthy.
    pub problems: podnet_string_list,
}

/// What `podnet_node_sandbox_check` found for one sandbox: one line per difference between the
/// kernel and the record; none when healthy. Read it with `podnet_check_report_get_info`.
///
/// Owned by the caller; free with `podnet_check_report_free`. Immutable: thread-safe to read.
pub struct podnet_check_report {
    _private: [u8; 0],
}

record!(podnet_check_report: Owned => podnet_check_report_info);

impl FromCore<CheckReport> for Record<podnet_check_report_info> {
    fn from_core(r: &CheckReport) -> Self {
        Record::build(|b| podnet_check_report_info {
            struct_size: std::mem::size_of::<podnet_check_report_info>(),
            id: b.text(&r.id),
            ok: r.problems.is_empty(),
            problems: b.list(&r.problems),
        })
    }
}

/// The report's fields, owned by `report`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_check_report_get_info(report: *const podnet_check_report) -> *const podnet_check_report_info {
    info(report)
}

/// Free a check report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_check_report_free(report: *mut podnet_check_report) {
    free(report)
}

/// What `podnet_node_gc` removed and the errors it went past, read with
/// `podnet_gc_report_get_info`. Grows only at the end (see `podnet_sandbox_info`). Owned by the
/// report.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_gc_report_info {
    /// `sizeof(podnet_gc_report_info)` as the library knows it.
    pub struct_size: usize,
    /// Ids of the sandboxes gc deleted (not in the live list).
    pub sandboxes: podnet_string_list,
    /// Orphaned address reservations released ("10.1.0.9").
    pub ips: podnet_string_list,
    /// Paths of orphaned netns pins removed.
    pub netns: podnet_string_list,
    /// Names of orphaned host veths deleted.
    pub links: podnet_string_list,
    /// Errors gc met and went past, one line each.
    pub errors: podnet_string_list,
}

/// What `podnet_node_gc` removed, and the errors it met (gc keeps going after an error). Read
/// it with `podnet_gc_report_get_info`.
///
/// Owned by the caller; free with `podnet_gc_report_free`. Immutable: thread-safe to read.
pub struct podnet_gc_report {
    _private: [u8; 0],
}

record!(podnet_gc_report: Owned => podnet_gc_report_info);

impl FromCore<GcReport> for Record<podnet_gc_report_info> {
    fn from_core(r: &GcReport) -> Self {
        Record::build(|b| podnet_gc_report_info {
            struct_size: std::mem::size_of::<podnet_gc_report_info>(),
            sandboxes: b.list(&r.sandboxes),
            ips: b.list(&r.ips),
            netns: b.list(r.netns.iter().map(|p| p.to_string_lossy())),
            links: b.list(&r.links),
            errors: b.list(&r.errors),
        })
    }
}

/// The report's fields, owned by `report`. NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_gc_report_get_info(report: *const podnet_gc_report) -> *const podnet_gc_report_info {
    info(report)
}

/// Free a gc report. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_gc_report_free(report: *mut podnet_gc_report) {
    free(report)
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use podnet_core::{PodMode, Protocol};

    use super::*;
    use crate::handle::to_owned_ptr;
    use crate::handle::try_ref;

    fn text(p: *const c_char) -> Option<String> {
        // SAFETY: the views' strings are NUL-terminated and live as long as the object.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
    }

    fn list(l: podnet_string_list) -> Vec<String> {
        // SAFETY: a view's list holds `count` valid string pointers.
        let items = unsafe { std::slice::from_raw_parts(l.items, l.count) };
        items.iter().map(|p| text(*p).unwrap()).collect()
    }

    #[test]
    fn sandbox_view() {
        let port = |host_ip: Option<&str>, host_port| PortMapping {
            protocol: Protocol::Udp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port,
            container_port: 53,
        };
        let sb = Sandbox {
            id: "web-1".into(),
            ifname: "eth0".into(),
            netns_path: "/run/netns/pn-n-web-1".into(),
            owns_netns: true,
            host_ifname: "pn0123456789ab".into(),
            mac: "0a:58:0a:01:00:02".into(),
            ips: vec!["10.1.0.2/24".parse().unwrap(), "fd00::2/64".parse().unwrap()],
            gateways: vec!["10.1.0.1".parse().unwrap()],
            mode: PodMode::Routed,
            // host IPs on the 2nd and 4th mapping only: each must land on its own mapping
            ports: vec![port(None, 1), port(Some("10.0.0.1"), 2), port(None, 3), port(Some("fd00::1"), 4)],
            labels: [("b", "2=two"), ("a", "")].into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        };
        let obj = to_owned_ptr::<podnet_sandbox>(Record::from_core(&sb));
        let v = try_ref::<podnet_sandbox_info>(podnet_sandbox_get_info(obj)).unwrap();
        assert_eq!(v.struct_size, std::mem::size_of::<podnet_sandbox_info>());
        assert_eq!(text(v.id).unwrap(), "web-1");
        assert_eq!(text(v.netns_path).unwrap(), "/run/netns/pn-n-web-1");
        assert_eq!(text(v.mac).unwrap(), "0a:58:0a:01:00:02");
        assert!(v.owns_netns);
        assert_eq!(v.mode, podnet_mode::Routed);
        assert_eq!(list(v.ips), ["10.1.0.2/24", "fd00::2/64"]);
        assert_eq!(list(v.gateways), ["10.1.0.1"]);
        assert_eq!(list(v.labels), ["a=", "b=2=two"]);
        // SAFETY: `ports` holds `port_count` mappings while the sandbox lives.
        let ports = unsafe { std::slice::from_raw_parts(v.ports, v.port_count) };
        let got: Vec<(u16, Option<String>)> = ports.iter().map(|p| (p.host_port, text(p.host_ip))).collect();
        let want = [(1, None), (2, Some("10.0.0.1".into())), (3, None), (4, Some("fd00::1".into()))];
        assert_eq!(got, want);
        assert!(ports.iter().all(|p| p.protocol == podnet_protocol::Udp && p.container_port == 53));
        podnet_sandbox_free(obj);
        assert!(podnet_sandbox_get_info(std::ptr::null()).is_null());
    }
}
