//! `podnet_node_config`: the builder a C caller fills in before `podnet_node_open`. Every setter
//! validates its input at once, so a mistake is reported where it is made.

use std::ffi::c_char;

use ipnetwork::IpNetwork;
use podnet_core::{CrossNodeMode, NodeConfig, PodMode, Underlay, MAX_ID_LEN};

use crate::call::{add_once, construct, core, free, set, with_mut, with_ref};
use crate::cenum::c_enum;
use crate::error::podnet_error;
use crate::handle::castable;
use crate::status::podnet_status;

/// How pods attach to the node.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_mode {
    /// Never accepted by setters (0 is never a valid mode, as in every podnet enum).
    #[expect(dead_code, reason = "a C value only: Rust never produces it, setters refuse it")]
    Unknown = 0,
    /// Host veths join a Linux bridge holding the gateway address (CNI `bridge` plugin style).
    Bridge = 1,
    /// No bridge: /32 (/128) pod addresses, a host route per pod, link-local gateway
    /// 169.254.1.1 / fe80::1 answered by the host veth (Calico style).
    Routed = 2,
}

/// A mode as passed into podnet: `uint32_t` in the ABI so any value is defined behaviour; the
/// header spells it `podnet_mode` (cbindgen.toml renames it).
pub type podnet_mode_code = u32;

c_enum!(podnet_mode <=> PodMode, "mode" { Bridge => PodMode::Bridge, Routed => PodMode::Routed });

/// How packets reach other nodes' pods (`podnet_node_config_set_cross_node_mode`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_cross_node_mode {
    /// Never accepted by setters (0 is never a valid mode, as in every podnet enum).
    #[expect(dead_code, reason = "a C value only: Rust never produces it, setters refuse it")]
    Unknown = 0,
    /// VXLAN to every peer (flannel-compatible: VNI 1, UDP port 8472 by default). The default.
    Overlay = 1,
    /// One route per peer pod CIDR via the peer's underlay address; every peer must be on-link
    /// (in the subnet of this node's underlay address). No VXLAN device is created.
    Routed = 2,
    /// Routed to peers on this node's underlay subnet, overlay to the rest.
    Auto = 3,
}

/// A cross-node mode as passed into podnet: `uint32_t` in the ABI so any value is defined
/// behaviour; the header spells it `podnet_cross_node_mode` (cbindgen.toml renames it).
pub type podnet_cross_node_mode_code = u32;

c_enum!(podnet_cross_node_mode <=> CrossNodeMode, "cross-node mode" {
    Overlay => CrossNodeMode::Overlay,
    Routed => CrossNodeMode::Routed,
    Auto => CrossNodeMode::Auto,
});

/// Configuration of one node (one network namespace), built with `podnet_node_config_new` and
/// the setters, then passed to `podnet_node_open` (which copies it).
///
/// Owned by the caller; free with `podnet_node_config_free`. Not thread-safe: do not use one
/// config from two threads at the same time (it may move between threads).
pub struct podnet_node_config {
    _private: [u8; 0],
}

castable!(podnet_node_config: Owned => NodeConfig);

/// Create a node configuration with defaults: bridge mode, bridge "podnet0", MTU 1500, the
/// caller's current netns, state dir "/run/podnet/<name>", netns dir "/run/netns", no pod CIDR
/// (at least one is required: `podnet_node_config_add_pod_cidr`). Multi-node defaults: no
/// underlay (no peers), no cluster CIDR, cross-node mode overlay, VXLAN VNI 1 on UDP port 8472
/// with device "podnet.1" and its TX checksum offload turned off, egress masquerade on.
///
/// `name`: `[A-Za-z0-9_.-]`, 1..=128 bytes, no "..". It names the default state dir and the
/// pods' netns pins.
///
/// On success writes a new config to `*config_out` (free it with `podnet_node_config_free`).
/// On failure `*config_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_new(
    name: *const c_char,
    config_out: *mut *mut podnet_node_config,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    construct("podnet_node_config_new", err_out, ("config_out", config_out), |c| {
        Ok(NodeConfig::new(c.name("name", name)?))
    })
}

/// Free a node configuration. NULL is accepted (no-op). Nodes opened from it are not affected.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_node_config_free(config: *mut podnet_node_config) {
    free(config)
}

/// Bind the node to the network namespace at `path` (e.g. "/run/netns/node1"), instead of the
/// caller's current one. `path` must be absolute; it is opened by `podnet_node_open`.
///
/// On failure the config is unchanged. Not thread-safe for one config (see `podnet_node_config`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_netns_path(
    config: *mut podnet_node_config,
    path: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_netns_path", "config", config, err_out, |c, cfg| {
        cfg.netns = Some(c.path("path", path, true)?.into());
        Ok(())
    })
}

/// Keep the node's state (address reservations, sandbox records) under `path` instead of
/// "/run/podnet/<name>". Keep it on tmpfs: its lifetime should be the kernel objects' lifetime.
///
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_state_dir(
    config: *mut podnet_node_config,
    path: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_state_dir", "config", config, err_out, |c, cfg| {
        cfg.state_dir = Some(c.path("path", path, false)?.into());
        Ok(())
    })
}

/// Pin the pods' network namespaces under `path` (absolute) instead of "/run/netns".
///
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_netns_dir(
    config: *mut podnet_node_config,
    path: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_netns_dir", "config", config, err_out, |c, cfg| {
        cfg.netns_dir = c.path("path", path, true)?.into();
        Ok(())
    })
}

/// Add a pod CIDR ("10.1.0.0/24", "fd00:10:1::/64"): at most one IPv4 and one IPv6. The first
/// usable address is the gateway; pods get the others.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set, the CIDR has no assignable address, or
/// the node already has a CIDR of that family. On failure the config is unchanged.
/// Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_add_pod_cidr(
    config: *mut podnet_node_config,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_add_pod_cidr", "config", config, err_out, |c, cfg| {
        let net = c.network("cidr", cidr)?;
        let pool = podnet_core::PoolConfig::checked(net).map_err(|e| c.err(podnet_status::InvalidArgument, e))?;
        if cfg.pools.iter().any(|p| p.cidr.is_ipv4() == net.is_ipv4()) {
            return Err(
                c.err(podnet_status::InvalidArgument, format!("the node has a pod CIDR of {net}'s family already"))
            );
        }
        cfg.pools.push(pool);
        Ok(())
    })
}

/// Hand out only addresses from `first` to `last` (inclusive) of the pod CIDR containing both
/// (add the CIDR first). Replaces a range set before for that CIDR.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when an address does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when no pod CIDR contains both or `first` > `last`.
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_ip_range(
    config: *mut podnet_node_config,
    first: *const c_char,
    last: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_ip_range", "config", config, err_out, |c, cfg| {
        let first = c.ip("first", first)?;
        let last = c.ip("last", last)?;
        let pool = cfg.pools.iter_mut().find(|p| p.cidr.contains(first) && p.cidr.contains(last)).ok_or_else(|| {
            c.err(
                podnet_status::InvalidArgument,
                format!("no pod CIDR contains both {first} and {last} (add it first)"),
            )
        })?;
        let ordered = match (first, last) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => a <= b,
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => a <= b,
            _ => false,
        };
        if !ordered {
            return Err(c.err(podnet_status::InvalidArgument, format!("range start {first} is after range end {last}")));
        }
        pool.range_start = Some(first);
        pool.range_end = Some(last);
        Ok(())
    })
}

/// Never hand out `ip` (an address of a pod CIDR already added). Adding one twice is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when no pod CIDR contains it. On failure the config is
/// unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_add_reserved_ip(
    config: *mut podnet_node_config,
    ip: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_add_reserved_ip", "config", config, err_out, |c, cfg| {
        let ip = c.ip("ip", ip)?;
        let pool = cfg.pools.iter_mut().find(|p| p.cidr.contains(ip)).ok_or_else(|| {
            c.err(podnet_status::InvalidArgument, format!("no pod CIDR contains {ip} (add it first)"))
        })?;
        add_once(&mut pool.reserved, ip);
        Ok(())
    })
}

/// Set the pod mode: `PODNET_MODE_BRIDGE` (default) or `PODNET_MODE_ROUTED`. Any other value
/// gives `PODNET_STATUS_INVALID_ARGUMENT` and leaves the config unchanged.
/// Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_mode(
    config: *mut podnet_node_config,
    mode: podnet_mode_code,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_mode", "config", config, err_out, |c, cfg| {
        cfg.mode = c.code::<podnet_mode>(mode)?;
        Ok(())
    })
}

/// Name the bridge (bridge mode; default "podnet0"): 1..=15 bytes of `[A-Za-z0-9_.-]`.
///
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_bridge_name(
    config: *mut podnet_node_config,
    name: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_bridge_name", "config", config, err_out, |c, cfg| {
        cfg.bridge_name = c.ifname("name", name)?.to_string();
        Ok(())
    })
}

/// Set the MTU of the bridge and every veth (576..=65535; default 1500).
///
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_mtu(
    config: *mut podnet_node_config,
    mtu: u32,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_mtu", "config", config, err_out, |c, cfg| {
        if !(576..=65535).contains(&mtu) {
            return Err(c.err(podnet_status::InvalidArgument, format!("MTU {mtu} out of range 576..65535")));
        }
        cfg.mtu = mtu;
        Ok(())
    })
}

/// Validate a whole config as `podnet_node_open` would, without touching the kernel or the disk
/// (e.g. "at least one pod CIDR is required").
///
/// `PODNET_STATUS_OK` when valid. Thread-safe (does not modify `config`), but not concurrently
/// with a setter on the same config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_validate(
    config: *const podnet_node_config,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_node_config_validate", "config", config, err_out, |_, cfg| core(cfg.validate()))
}

/// Set the node's underlay: its own address on the network that connects the nodes (the VXLAN
/// source address, and the next hop other nodes route this node's pods to), and the interface
/// holding it. `interface` may be NULL (a value here, not an error): `podnet_node_open` then
/// finds the interface by address. Required before peers can be added. Replaces an underlay set
/// before.
///
/// `podnet_node_open` fails with `PODNET_STATUS_NOT_FOUND` when no interface in the node's netns
/// holds `address` (or `interface` does not). Unless the cross-node mode is
/// `PODNET_CROSS_NODE_MODE_ROUTED`, opening creates the VXLAN device on it and lowers the pod
/// MTU to fit the encapsulation.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `address` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when it is not a unicast host address (unspecified,
/// loopback, multicast) or `interface` is not an interface name (1..=15 bytes of
/// `[A-Za-z0-9_.-]`; longer gives `PODNET_STATUS_TOO_LONG`). On failure the config is
/// unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_underlay(
    config: *mut podnet_node_config,
    address: *const c_char,
    interface: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_underlay", "config", config, err_out, |c, cfg| {
        let address = c.unicast_ip("address", address)?;
        let interface = if interface.is_null() { None } else { Some(c.ifname("interface", interface)?.to_string()) };
        cfg.underlay = Some(Underlay { address, interface });
        Ok(())
    })
}

/// Add a cluster CIDR: the pod range of the whole cluster ("10.244.0.0/16"), at most one per
/// address family. Pod traffic to anything outside the cluster CIDRs is masqueraded (see
/// `podnet_node_config_set_egress_masquerade`); without a cluster CIDR nothing is. Every pod
/// CIDR must lie inside a cluster CIDR of its family (checked by `podnet_node_config_validate`
/// and `podnet_node_open`). Adding the same CIDR twice is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set or the config has another cluster
/// CIDR of that family. On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_add_cluster_cidr(
    config: *mut podnet_node_config,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_add_cluster_cidr", "config", config, err_out, |c, cfg| {
        let net = c.network("cidr", cidr)?;
        c.add_per_family(&mut cfg.cluster_cidrs, net, IpNetwork::is_ipv4, |other| {
            format!("the node has the cluster CIDR {other} of {net}'s family already")
        })
    })
}

/// Add a service CIDR: a range the cluster's ClusterIPs come from ("10.96.0.0/12"). A
/// service's ClusterIPs must lie inside one (`podnet_node_service_set`); traffic to an address
/// in a service CIDR that no service holds is dropped. It must not overlap a pod CIDR (checked
/// by `podnet_node_config_validate` and `podnet_node_open`). Adding the same CIDR twice is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set. On failure the config is
/// unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_add_service_cidr(
    config: *mut podnet_node_config,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_add_service_cidr", "config", config, err_out, |c, cfg| {
        let net = c.range("cidr", cidr)?;
        add_once(&mut cfg.service_cidrs, IpNetwork::from(net));
        Ok(())
    })
}

/// Set how packets reach other nodes' pods: `PODNET_CROSS_NODE_MODE_OVERLAY` (default),
/// `PODNET_CROSS_NODE_MODE_ROUTED` or `PODNET_CROSS_NODE_MODE_AUTO`. Any other value gives
/// `PODNET_STATUS_INVALID_ARGUMENT` and leaves the config unchanged. The mode takes effect with
/// an underlay (`podnet_node_config_set_underlay`). Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_cross_node_mode(
    config: *mut podnet_node_config,
    mode: podnet_cross_node_mode_code,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_cross_node_mode", "config", config, err_out, |c, cfg| {
        cfg.cross_node = c.code::<podnet_cross_node_mode>(mode)?;
        Ok(())
    })
}

/// Set the VXLAN network identifier (1..=16777215; default 1, flannel's). Every node of the
/// cluster must use the same. On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_vxlan_vni(
    config: *mut podnet_node_config,
    vni: u32,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_vxlan_vni", "config", config, err_out, |c, cfg| {
        if !(1..=0xff_ffff).contains(&vni) {
            return Err(c.err(podnet_status::InvalidArgument, format!("VNI {vni} out of range 1..16777215")));
        }
        cfg.vxlan.vni = vni;
        Ok(())
    })
}

/// Set the VXLAN UDP port (1..=65535; default 8472, flannel's and Linux's; IANA's is 4789).
/// Every node of the cluster must use the same. Port 0 gives `PODNET_STATUS_INVALID_ARGUMENT`.
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_vxlan_port(
    config: *mut podnet_node_config,
    port: u16,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_vxlan_port", "config", config, err_out, |c, cfg| {
        if port == 0 {
            return Err(c.err(podnet_status::InvalidArgument, "VXLAN port 0 is not a valid UDP port"));
        }
        cfg.vxlan.port = port;
        Ok(())
    })
}

/// Name the VXLAN device (default "podnet.1"): 1..=15 bytes of `[A-Za-z0-9_.-]`.
///
/// On failure the config is unchanged. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_vxlan_device(
    config: *mut podnet_node_config,
    name: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_node_config_set_vxlan_device", "config", config, err_out, |c, cfg| {
        cfg.vxlan.device = c.ifname("name", name)?.to_string();
        Ok(())
    })
}

/// Force whether TX checksum offload is turned off on the VXLAN device: true turns it off, false
/// leaves the device's offloads alone. Without this call podnet decides by the running kernel:
/// off before Linux 5.7 (whose NAT rewrote zero UDP checksums of VXLAN packets: flannel's
/// 63-second delays, fixed by torvalds/linux ea64d8d6c675), on from 5.7 (off also disables
/// segmentation offload, a 4x loss of bulk throughput between pods).
/// Never fails for a non-NULL config. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_vxlan_disable_tx_checksum_offload(
    config: *mut podnet_node_config,
    disable: bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    set("podnet_node_config_set_vxlan_disable_tx_checksum_offload", "config", config, err_out, |cfg| {
        cfg.vxlan.disable_tx_checksum_offload = Some(disable)
    })
}

/// Whether to masquerade pod traffic leaving the cluster CIDRs (default true). Without a
/// cluster CIDR (`podnet_node_config_add_cluster_cidr`) nothing is masqueraded either way.
/// Never fails for a non-NULL config. Not thread-safe for one config.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_node_config_set_egress_masquerade(
    config: *mut podnet_node_config,
    enable: bool,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    set("podnet_node_config_set_egress_masquerade", "config", config, err_out, |cfg| cfg.egress_masquerade = enable)
}

// Keep the id limit of the ABI and the core in step.
const _: () = assert!(MAX_ID_LEN == 128);
