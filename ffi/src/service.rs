//! Services through the C ABI: the `podnet_service` builder (also the element of
//! `podnet_service_list`) and the node calls that set, remove, sync, list and repair services
//! (`podnet_node_service_*`, `podnet_node_services_*`). The services live in the memory of the
//! process that programs them (see `podnet_node_services_sync`).

use std::ffi::c_char;
use std::net::IpAddr;

use podnet_core::{Affinity, Endpoint, Service, ServicePort, TrafficPolicy, MAX_AFFINITY_SECS, MAX_SERVICE_NAME_LEN};

use crate::buffer::podnet_string_list;
use crate::call::{add_once, at, core, count, fallible, free, info, with_mut, with_ref};
use crate::cenum::{c_enum, CEnum};
use crate::error::podnet_error;
use crate::handle::castable;
use crate::node::podnet_node;
use crate::record::{Built, FromCore, Record};
use crate::spec::{podnet_protocol, podnet_protocol_code};
use crate::status::podnet_status;

/// External traffic policy of a service: which endpoints traffic to its NodePorts and external
/// IPs reaches.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_traffic_policy {
    /// Never accepted by setters (0 is never a valid policy, as in every podnet enum).
    #[expect(dead_code, reason = "a C value only: Rust never produces it, setters refuse it")]
    Unknown = 0,
    /// Any ready endpoint; the client's address is masqueraded to the node's (the default).
    Cluster = 1,
    /// Only endpoints on this node, the client's address kept; dropped when there is none.
    Local = 2,
}

/// A traffic policy as passed into podnet: `uint32_t` in the ABI so any value is defined
/// behaviour; the header spells it `podnet_traffic_policy` (cbindgen.toml renames it).
pub type podnet_traffic_policy_code = u32;

c_enum!(podnet_traffic_policy <=> TrafficPolicy, "traffic policy" {
    Cluster => TrafficPolicy::Cluster,
    Local => TrafficPolicy::Local,
});

/// One port of a service (an element of `podnet_service_info.ports`). A plain struct.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_service_port {
    /// `PODNET_PROTOCOL_TCP`, `_UDP` or `_SCTP`.
    pub protocol: podnet_protocol,
    /// Port on the ClusterIPs and external IPs.
    pub port: u16,
    /// Port on the endpoints (unless an endpoint names its own).
    pub target_port: u16,
    /// Port on every local node address (not loopback), or 0 for none.
    pub node_port: u16,
}

/// One endpoint of a service (an element of `podnet_service_info.endpoints`). A plain struct;
/// its pointers are owned by the service.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_service_endpoint {
    /// The endpoint's address ("10.244.1.7").
    pub ip: *const c_char,
    /// Port per service port, in the order of the service's ports; `port_count` 0 means each
    /// port's `target_port` (then `ports` may be any non-NULL pointer: do not read it).
    pub ports: *const u16,
    /// Number of entries at `ports`: 0 or the service's `port_count`.
    pub port_count: usize,
    /// Ready endpoints receive new connections; others none.
    pub ready: bool,
    /// The endpoint runs on this node (policy Local sends external traffic only to these).
    pub local: bool,
}

/// A service's fields, read with `podnet_service_get_info`. Grows only at the end (see
/// `podnet_sandbox_info`). Owned by the service: valid until the next setter call on it or
/// until it is freed (for a service borrowed from a list: until the list is).
#[repr(C)]
#[derive(Debug)]
pub struct podnet_service_info {
    /// `sizeof(podnet_service_info)` as the library knows it.
    pub struct_size: usize,
    /// The service's name ("default/web").
    pub name: *const c_char,
    /// ClusterIPs, at most one per family ("10.96.0.10", "fd00:96::a").
    pub cluster_ips: podnet_string_list,
    /// The ports, in the order they were added.
    pub ports: *const podnet_service_port,
    /// Number of ports.
    pub port_count: usize,
    /// External IPs.
    pub external_ips: podnet_string_list,
    /// The endpoints, in the order they were added.
    pub endpoints: *const podnet_service_endpoint,
    /// Number of endpoints.
    pub endpoint_count: usize,
    /// ClientIP session affinity timeout in seconds, or 0 for no affinity.
    pub affinity_timeout_secs: u32,
    /// `PODNET_TRAFFIC_POLICY_CLUSTER` or `_LOCAL`.
    pub external_traffic_policy: podnet_traffic_policy,
}

castable!(podnet_service_info: Borrowed => podnet_service_info);

/// A Service as a node serves it: name, ClusterIPs, ports, external IPs, endpoints, session
/// affinity and external traffic policy. Built with `podnet_service_new` and the setters,
/// passed to `podnet_node_service_set` or `podnet_node_services_sync` (which read it and keep
/// no reference); also the element of a `podnet_service_list`. Read it with
/// `podnet_service_get_info`.
///
/// A service from `podnet_service_new` is owned by the caller (free it with
/// `podnet_service_free`); one borrowed from a `podnet_service_list` is valid until the list is
/// freed (never free or modify it). Not thread-safe while it is modified: do not use one
/// service from two threads at the same time while a setter runs (it may move between
/// threads); reading alone may run concurrently.
pub struct podnet_service {
    _private: [u8; 0],
}

castable!(podnet_service: OwnedOrLent => Built<Service, podnet_service_info>);

impl FromCore<Service> for Record<podnet_service_info> {
    fn from_core(s: &Service) -> Self {
        Record::build(|b| {
            let (ports, port_count) = b.array(&s.ports, |_, p| podnet_service_port {
                protocol: podnet_protocol::from_core(p.protocol),
                port: p.port,
                target_port: p.target_port,
                node_port: p.node_port.unwrap_or(0),
            });
            let (endpoints, endpoint_count) = b.array(&s.endpoints, |b, e| podnet_service_endpoint {
                ip: b.text(e.ip),
                ports: e.ports.as_ptr(),
                port_count: e.ports.len(),
                ready: e.ready,
                local: e.local,
            });
            podnet_service_info {
                struct_size: std::mem::size_of::<podnet_service_info>(),
                name: b.text(&s.name),
                cluster_ips: b.list(&s.cluster_ips),
                ports,
                port_count,
                external_ips: b.list(&s.external_ips),
                endpoints,
                endpoint_count,
                affinity_timeout_secs: match s.affinity {
                    Affinity::None => 0,
                    Affinity::ClientIp { timeout_secs } => timeout_secs,
                },
                external_traffic_policy: podnet_traffic_policy::from_core(s.external_traffic_policy),
            }
        })
    }
}

/// Create a service with no ClusterIP, port or endpoint yet (it needs a ClusterIP and a port
/// before a node accepts it), no session affinity and traffic policy Cluster.
///
/// `name`: unique per node, e.g. "namespace/name": 1..=253 bytes, no whitespace or control
/// characters.
/// Errors: `PODNET_STATUS_TOO_LONG` for a name over 253 bytes, `PODNET_STATUS_INVALID_ARGUMENT`
/// for an empty one or one with whitespace or control characters.
/// On success writes a new service to `*service_out` (free it with `podnet_service_free`); on
/// failure `*service_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_new(
    name: *const c_char,
    service_out: *mut *mut podnet_service,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    fallible("podnet_service_new", err_out, |c| {
        let name = c.str("name", name, MAX_SERVICE_NAME_LEN)?;
        let out = c.out("service_out", service_out)?;
        if name.is_empty() || name.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            return Err(c.err(
                podnet_status::InvalidArgument,
                format!("service name {name:?} must be non-empty, without whitespace or control characters"),
            ));
        }
        let svc = Service {
            name: name.to_string(),
            cluster_ips: vec![],
            ports: vec![],
            external_ips: vec![],
            endpoints: vec![],
            affinity: Affinity::None,
            external_traffic_policy: TrafficPolicy::Cluster,
        };
        out.give(Built::new(svc))
    })
}

/// Free a service made by `podnet_service_new`. NULL is accepted (no-op). Never pass a service
/// borrowed from a `podnet_service_list`. Freeing the object does not remove the service from
/// a node: that is `podnet_node_service_remove`.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_service_free(service: *mut podnet_service) {
    free(service)
}

/// Add the service's ClusterIP of one family ("10.96.0.10" or "fd00:96::a"); adding the same
/// one again is fine. Whether it lies in the node's service CIDRs is checked when the service
/// is set on a node.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not unicast or the service has another ClusterIP
/// of that family. On failure the service is unchanged. Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_add_cluster_ip(
    service: *mut podnet_service,
    ip: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_add_cluster_ip", "service", service, err_out, |c, s| {
        let ip = c.unicast_ip("ip", ip)?;
        c.add_per_family(&mut s.edit().cluster_ips, ip, IpAddr::is_ipv4, |other| {
            format!("the service has the ClusterIP {other} of {ip}'s family already")
        })
    })
}

/// Add a port: traffic to `port` on the ClusterIPs and external IPs (and to `node_port` on
/// every local node address unless it is 0) goes to `target_port` on the endpoints.
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for an unknown protocol, a `port` or `target_port`
/// of 0, or a protocol and port (or node port) the service lists already. On failure the
/// service is unchanged. Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_add_port(
    service: *mut podnet_service,
    protocol: podnet_protocol_code,
    port: u16,
    target_port: u16,
    node_port: u16,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_add_port", "service", service, err_out, |c, s| {
        let protocol = c.code::<podnet_protocol>(protocol)?;
        if port == 0 || target_port == 0 {
            return Err(c.err(podnet_status::InvalidArgument, "port 0 is not a valid service or target port"));
        }
        let node_port = (node_port != 0).then_some(node_port);
        for p in s.value().ports.iter().filter(|p| p.protocol == protocol) {
            if p.port == port || (node_port.is_some() && p.node_port == node_port) {
                return Err(c.err(podnet_status::InvalidArgument, format!("port {port}/{protocol} listed twice")));
            }
        }
        s.edit().ports.push(ServicePort { protocol, port, target_port, node_port });
        Ok(())
    })
}

/// Add an external IP: traffic to it on the service's ports is served like the ClusterIP's,
/// with the external traffic policy. Adding the same one again is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not unicast. On failure the service is
/// unchanged. Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_add_external_ip(
    service: *mut podnet_service,
    ip: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_add_external_ip", "service", service, err_out, |c, s| {
        let ip = c.unicast_ip("ip", ip)?;
        add_once(&mut s.edit().external_ips, ip);
        Ok(())
    })
}

/// Add an endpoint: `ip` ("10.244.1.7") serves the ClusterIP of its family. `ports` holds
/// `n_ports` ports, one per service port in the order the ports were added, or is NULL with
/// `n_ports` 0 (each port's `target_port`); that the counts match is checked when the service
/// is set on a node. Only `ready` endpoints receive new connections; `local` says the endpoint
/// runs on this node (traffic policy Local).
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not unicast, a port is 0, or the service has
/// the endpoint already. On failure the service is unchanged. Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_add_endpoint(
    service: *mut podnet_service,
    ip: *const c_char,
    ports: *const u16,
    n_ports: usize,
    ready: bool,
    local: bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_add_endpoint", "service", service, err_out, |c, s| {
        let ip = c.unicast_ip("ip", ip)?;
        let ports = c.slice("ports", ports, n_ports)?;
        if ports.contains(&0) {
            return Err(c.err(podnet_status::InvalidArgument, format!("endpoint {ip}: port 0")));
        }
        if s.value().endpoints.iter().any(|e| e.ip == ip) {
            return Err(c.err(podnet_status::InvalidArgument, format!("endpoint {ip} listed twice")));
        }
        s.edit().endpoints.push(Endpoint { ip, ports: ports.to_vec(), ready, local });
        Ok(())
    })
}

/// Set ClientIP session affinity: a client IP keeps its endpoint while it keeps connecting
/// within `timeout_secs` (1..=86400); 0 turns affinity off (the default).
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for a timeout over 86400. On failure the service is
/// unchanged. Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_set_affinity_timeout(
    service: *mut podnet_service,
    timeout_secs: u32,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_set_affinity_timeout", "service", service, err_out, |c, s| {
        if timeout_secs > MAX_AFFINITY_SECS {
            return Err(c.err(
                podnet_status::InvalidArgument,
                format!("affinity timeout {timeout_secs} s out of range 0..={MAX_AFFINITY_SECS}"),
            ));
        }
        s.edit().affinity = match timeout_secs {
            0 => Affinity::None,
            t => Affinity::ClientIp { timeout_secs: t },
        };
        Ok(())
    })
}

/// Set the external traffic policy: `PODNET_TRAFFIC_POLICY_CLUSTER` (the default) or
/// `PODNET_TRAFFIC_POLICY_LOCAL`.
///
/// Any other value gives `PODNET_STATUS_INVALID_ARGUMENT` and leaves the service unchanged.
/// Not thread-safe for one service.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_service_set_traffic_policy(
    service: *mut podnet_service,
    policy: podnet_traffic_policy_code,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_service_set_traffic_policy", "service", service, err_out, |c, s| {
        s.edit().external_traffic_policy = c.code::<podnet_traffic_policy>(policy)?;
        Ok(())
    })
}

/// The service's fields, owned by `service` (see `podnet_service_info`). NULL gives NULL.
/// Thread-safe (not concurrently with a setter on the same service).
#[no_mangle]
pub extern "C" fn podnet_service_get_info(service: *const podnet_service) -> *const podnet_service_info {
    info(service)
}

/// The services a node serves, sorted by name (from `podnet_node_service_list`).
///
/// Owned by the caller; free with `podnet_service_list_free`. Immutable: thread-safe to read.
pub struct podnet_service_list {
    _private: [u8; 0],
}

castable!(podnet_service_list: Owned => Vec<Built<Service, podnet_service_info>>);

/// Number of services in the list. NULL gives 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_service_list_count(list: *const podnet_service_list) -> usize {
    count(list)
}

/// Service `index` (0-based), borrowed from the list: valid until `podnet_service_list_free`;
/// never free or modify it. It can be passed to `podnet_node_service_set` and
/// `podnet_node_services_sync`. NULL `list` or an index out of range gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_service_list_at(list: *const podnet_service_list, index: usize) -> *const podnet_service {
    at(list, index)
}

/// Free a service list and every service borrowed from it. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_service_list_free(list: *mut podnet_service_list) {
    free(list)
}

/// Add or replace one service on the node: validated (ClusterIPs inside the node's service
/// CIDRs, `podnet_node_config_add_service_cidr`; at least one ClusterIP and one port; endpoint
/// port counts), then programmed as the difference to its previous version in one nf_tables
/// batch (O(changed elements)). `service` is only read.
///
/// The node's services are kept in its state and shared by every client of the node (other
/// handles, other processes, the CLI): a change made anywhere is seen here.
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for a service the node refuses;
/// `PODNET_STATUS_CONFLICT` when another service holds one of its IP/protocol/port or node
/// ports; `PODNET_STATUS_KERNEL` when the kernel
/// refuses the batch. Nothing changes on error. Thread-safe (service changes on one node
/// serialize).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_service_set(
    node: *const podnet_node,
    service: *const podnet_service,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_service_set", "node", node, err_out, |c, node| {
        core(node.set_service(c.obj("service", service)?.value()))
    })
}

/// Remove one service: its elements, and UDP conntrack entries towards its endpoints.
/// Idempotent: an unknown name is success. `name` as for `podnet_service_new`.
///
/// Errors: `PODNET_STATUS_KERNEL` when the kernel refuses the batch. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_service_remove(
    node: *const podnet_node,
    name: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_service_remove", "node", node, err_out, |c, node| {
        core(node.remove_service(c.str("name", name, MAX_SERVICE_NAME_LEN)?))
    })
}

/// Make the node's services exactly the `n_services` services at `services`: one batch with
/// the difference when this handle's table is intact, else one batch that (re)builds the whole
/// table. This is how an agent starts (after a restart, whoever set the services before) and
/// how it repairs.
///
/// `services` may be NULL only when `n_services` is 0 (then every service is removed); each
/// element must be a non-NULL service (owned or borrowed from a list). Every service is
/// validated (as by `podnet_node_service_set`) before anything changes.
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for a service the node refuses or a name listed
/// twice; `PODNET_STATUS_CONFLICT` when two services share an IP/protocol/port or node port.
/// Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_services_sync(
    node: *const podnet_node,
    services: *const *const podnet_service,
    n_services: usize,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_services_sync", "node", node, err_out, |c, node| {
        let raw = c.slice("services", services, n_services)?;
        let list = c.each("services", raw, |name, s| Ok(c.obj::<podnet_service>(name, s)?.value().clone()))?;
        core(node.sync_services(&list))
    })
}

/// List the services this node handle programmed (its memory, not the kernel's table: a
/// handle that set none lists none), sorted by name.
///
/// On success writes a new list to `*list_out` (free it with `podnet_service_list_free`); on
/// failure `*list_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_service_list(
    node: *const podnet_node,
    list_out: *mut *mut podnet_service_list,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_service_list", "node", node, err_out, |c, node| {
        c.give("list_out", list_out, || node.list_services())
    })
}

/// Re-install table `inet podnet-services` from this handle's services if someone removed or
/// replaced it (`nft flush ruleset`, a firewall reload); a healthy table is left as it is, and
/// every service change does the same check first. Other tables are never touched.
///
/// On success writes to `*rebuilt_out` whether the table was rebuilt; on failure it is not
/// written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_services_repair(
    node: *const podnet_node,
    rebuilt_out: *mut bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_services_repair", "node", node, err_out, |c, node| {
        c.out("rebuilt_out", rebuilt_out)?.finish(core(node.repair_services())?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::try_ref;

    #[test]
    fn service_builder() {
        fn null() -> *mut *mut podnet_error {
            std::ptr::null_mut()
        }
        let mut s: *mut podnet_service = std::ptr::null_mut();
        assert_eq!(podnet_service_new(c"a b".as_ptr(), &mut s, null()), podnet_status::InvalidArgument);
        assert_eq!(podnet_service_new(c"default/web".as_ptr(), &mut s, null()), podnet_status::Ok);
        assert_eq!(podnet_service_add_cluster_ip(s, c"10.96.0.10".as_ptr(), null()), podnet_status::Ok);
        assert_eq!(podnet_service_add_cluster_ip(s, c"10.96.0.11".as_ptr(), null()), podnet_status::InvalidArgument);
        assert_eq!(podnet_service_add_cluster_ip(s, c"10.96.0".as_ptr(), null()), podnet_status::InvalidAddress);
        assert_eq!(podnet_service_add_port(s, 6, 80, 8080, 30080, null()), podnet_status::Ok);
        assert_eq!(podnet_service_add_port(s, 6, 80, 8081, 0, null()), podnet_status::InvalidArgument);
        assert_eq!(podnet_service_add_port(s, 99, 81, 8081, 0, null()), podnet_status::InvalidArgument);
        let ports = [8080u16];
        assert_eq!(
            podnet_service_add_endpoint(s, c"10.244.1.2".as_ptr(), ports.as_ptr(), 1, true, false, null()),
            podnet_status::Ok
        );
        assert_eq!(
            podnet_service_add_endpoint(s, c"10.244.1.3".as_ptr(), std::ptr::null(), 0, false, true, null()),
            podnet_status::Ok
        );
        assert_eq!(podnet_service_set_affinity_timeout(s, 86_401, null()), podnet_status::InvalidArgument);
        assert_eq!(podnet_service_set_affinity_timeout(s, 60, null()), podnet_status::Ok);
        assert_eq!(podnet_service_set_traffic_policy(s, 3, null()), podnet_status::InvalidArgument);
        assert_eq!(podnet_service_set_traffic_policy(s, 2, null()), podnet_status::Ok);
        let info = try_ref::<podnet_service_info>(podnet_service_get_info(s)).unwrap();
        assert_eq!((info.port_count, info.endpoint_count, info.cluster_ips.count), (1, 2, 1));
        assert_eq!(info.affinity_timeout_secs, 60);
        assert_eq!(info.external_traffic_policy, podnet_traffic_policy::Local);
        // SAFETY: the view's arrays hold the counts it states while the service lives.
        let (p, e) = unsafe { (*info.ports, *info.endpoints.add(0)) };
        assert_eq!((p.port, p.target_port, p.node_port), (80, 8080, 30080));
        assert_eq!((e.port_count, e.ready, e.local), (1, true, false));
        podnet_service_free(s);
    }
}
