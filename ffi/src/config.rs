//! `podnet_node_config`: the builder a C caller fills in before `podnet_node_open`. Every setter
//! validates its input at once, so a mistake is reported where it is made.

use std::ffi::c_char;

use podnet_core::config::MAX_ID_LEN;
use podnet_core::{NodeConfig, PodMode};

use crate::call::{core, fallible, infallible, Call, CallResult};
use crate::error::podnet_error;
use crate::handle::{free_owned, to_owned_ptr, Castable};
use crate::status::podnet_status;

/// How pods attach to the node.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_mode {
    /// Returned by accessors given NULL; never accepted by setters.
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

impl podnet_mode {
    pub(crate) fn from_core(m: PodMode) -> podnet_mode {
        match m {
            PodMode::Bridge => podnet_mode::Bridge,
            PodMode::Routed => podnet_mode::Routed,
        }
    }
}

/// Configuration of one node (one network namespace), built with `podnet_node_config_new` and
/// the setters, then passed to `podnet_node_open` (which copies it).
///
/// Owned by the caller; free with `podnet_node_config_free`. Not thread-safe: do not use one
/// config from two threads at the same time (it may move between threads).
pub struct podnet_node_config {
    _private: [u8; 0],
}

impl Castable for podnet_node_config {
    type RustType = NodeConfig;
}

/// Create a node configuration with defaults: bridge mode, bridge "podnet0", MTU 1500, the
/// caller's current netns, state dir "/run/podnet/<name>", netns dir "/run/netns", no pod CIDR
/// (at least one is required: `podnet_node_config_add_pod_cidr`).
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
    fallible("podnet_node_config_new", err_out, |c| {
        let name = c.name("name", name)?;
        let out = c.out("config_out", config_out)?;
        out.write(to_owned_ptr::<podnet_node_config>(NodeConfig::new(name)));
        Ok(())
    })
}

/// Free a node configuration. NULL is accepted (no-op). Nodes opened from it are not affected.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_node_config_free(config: *mut podnet_node_config) {
    infallible((), || free_owned(config))
}

fn with_config(
    op: &'static str,
    config: *mut podnet_node_config,
    err_out: *mut *mut podnet_error,
    body: impl FnOnce(&Call, &mut NodeConfig) -> CallResult,
) -> podnet_status {
    fallible(op, err_out, |c| {
        let cfg = c.obj_mut("config", config)?;
        body(c, cfg)
    })
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
    with_config("podnet_node_config_set_netns_path", config, err_out, |c, cfg| {
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
    with_config("podnet_node_config_set_state_dir", config, err_out, |c, cfg| {
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
    with_config("podnet_node_config_set_netns_dir", config, err_out, |c, cfg| {
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
    with_config("podnet_node_config_add_pod_cidr", config, err_out, |c, cfg| {
        let net = c.cidr("cidr", cidr)?;
        if net.ip() != net.network() {
            let hint = format!("{}/{}", net.network(), net.prefix());
            return Err(
                c.err(podnet_status::InvalidArgument, format!("{net} has host bits set (did you mean {hint}?)"))
            );
        }
        podnet_core::ipam::layout(net).map_err(|e| c.err(podnet_status::InvalidArgument, e))?;
        if cfg.pools.iter().any(|p| p.cidr.is_ipv4() == net.is_ipv4()) {
            return Err(
                c.err(podnet_status::InvalidArgument, format!("the node has a pod CIDR of {net}'s family already"))
            );
        }
        cfg.pools.push(podnet_core::ipam::PoolConfig::new(net));
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
    with_config("podnet_node_config_set_ip_range", config, err_out, |c, cfg| {
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
    with_config("podnet_node_config_add_reserved_ip", config, err_out, |c, cfg| {
        let ip = c.ip("ip", ip)?;
        let pool = cfg.pools.iter_mut().find(|p| p.cidr.contains(ip)).ok_or_else(|| {
            c.err(podnet_status::InvalidArgument, format!("no pod CIDR contains {ip} (add it first)"))
        })?;
        if !pool.reserved.contains(&ip) {
            pool.reserved.push(ip);
        }
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
    with_config("podnet_node_config_set_mode", config, err_out, |c, cfg| {
        cfg.mode = match mode {
            m if m == podnet_mode::Bridge as u32 => PodMode::Bridge,
            m if m == podnet_mode::Routed as u32 => PodMode::Routed,
            m => return Err(c.err(podnet_status::InvalidArgument, format!("unknown mode {m}"))),
        };
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
    with_config("podnet_node_config_set_bridge_name", config, err_out, |c, cfg| {
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
    with_config("podnet_node_config_set_mtu", config, err_out, |c, cfg| {
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
    fallible("podnet_node_config_validate", err_out, |c| {
        let cfg = c.obj("config", config)?;
        core(cfg.validate())
    })
}

// Keep the id limit of the ABI and the core in step.
const _: () = assert!(MAX_ID_LEN == 128);
