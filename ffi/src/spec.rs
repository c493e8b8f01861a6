//! `podnet_sandbox_spec`: what the runtime asks for one pod, built with `_new` and setters.

use std::ffi::c_char;

use podnet_core::{NetnsSpec, PortMapping, Protocol, SandboxSpec, MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN};

use crate::call::{construct, free, with_mut, Call, CallResult};
use crate::cenum::c_enum;
use crate::config::{podnet_mode, podnet_mode_code};
use crate::error::podnet_error;
use crate::handle::castable;
use crate::status::podnet_status;

/// Transport protocol of a host port mapping (values are the IANA protocol numbers).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_protocol {
    /// Never accepted by setters (0 is never a valid protocol, as in every podnet enum).
    #[expect(dead_code, reason = "a C value only: Rust never produces it, setters refuse it")]
    Unknown = 0,
    /// TCP.
    Tcp = 6,
    /// UDP.
    Udp = 17,
    /// SCTP.
    Sctp = 132,
}

c_enum!(podnet_protocol <=> Protocol, "protocol" { Tcp => Protocol::Tcp, Udp => Protocol::Udp, Sctp => Protocol::Sctp });

/// A protocol as passed into podnet: `uint32_t` in the ABI so any value is defined behaviour;
/// the header spells it `podnet_protocol` (cbindgen.toml renames it).
pub type podnet_protocol_code = u32;

/// What the runtime asks for one pod: id, interface name, netns (created by podnet unless set),
/// requested addresses, host ports and pod mode. Built with `podnet_sandbox_spec_new` and the setters,
/// passed to `podnet_node_sandbox_create` (which reads it and keeps no reference).
///
/// Owned by the caller; free with `podnet_sandbox_spec_free`. Not thread-safe: do not use one
/// spec from two threads at the same time (it may move between threads).
pub struct podnet_sandbox_spec {
    _private: [u8; 0],
}

castable!(podnet_sandbox_spec: Owned => SandboxSpec);

/// Create a sandbox spec with defaults: podnet creates and pins a new netns, interface "eth0",
/// one dynamic address per pod CIDR, no host ports, the node's pod mode.
///
/// `id`: the sandbox id, `[A-Za-z0-9_.-]`, 1..=128 bytes, no ".." (it becomes part of file and
/// netns names). Longer gives `PODNET_STATUS_TOO_LONG`, other bad ids
/// `PODNET_STATUS_INVALID_ARGUMENT`.
///
/// On success writes a new spec to `*spec_out` (free it with `podnet_sandbox_spec_free`); on
/// failure `*spec_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_new(
    id: *const c_char,
    spec_out: *mut *mut podnet_sandbox_spec,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    construct("podnet_sandbox_spec_new", err_out, ("spec_out", spec_out), |c| Ok(SandboxSpec::new(c.name("id", id)?)))
}

/// Free a sandbox spec. NULL is accepted (no-op). Sandboxes created from it are not affected.
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_free(spec: *mut podnet_sandbox_spec) {
    free(spec)
}

/// Name the pod's interface (default "eth0"): 1..=15 bytes of `[A-Za-z0-9_.-]`.
///
/// On failure the spec is unchanged. Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_set_ifname(
    spec: *mut podnet_sandbox_spec,
    ifname: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_set_ifname", "spec", spec, err_out, |c, s| {
        s.ifname = c.ifname("ifname", ifname)?.to_string();
        Ok(())
    })
}

/// Give the pod's interface this MAC address ("02:aa:bb:cc:dd:01"; unicast, not all zeros)
/// instead of the one podnet derives (`0a:58:` and the pod's IPv4 address).
///
/// On failure the spec is unchanged. Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_set_mac(
    spec: *mut podnet_sandbox_spec,
    mac: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_set_mac", "spec", spec, err_out, |c, s| {
        let text = c.str("mac", mac, 17)?;
        let m = podnet_core::parse_mac(text)
            .ok_or_else(|| c.err(podnet_status::InvalidArgument, format!("`mac` {text:?} is not a MAC address")))?;
        podnet_core::validate_mac(m).map_err(|msg| c.err(podnet_status::InvalidArgument, format!("`mac`: {msg}")))?;
        s.mac = Some(m);
        Ok(())
    })
}

/// Attach the pod to a network namespace the runtime made (absolute path, e.g.
/// "/var/run/netns/cni-1234") instead of having podnet create one. podnet never removes a netns
/// it did not create; delete removes only its veth there.
///
/// On failure the spec is unchanged. Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_set_netns_path(
    spec: *mut podnet_sandbox_spec,
    path: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_set_netns_path", "spec", spec, err_out, |c, s| {
        s.netns = NetnsSpec::Path(c.path("path", path, true)?.into());
        Ok(())
    })
}

/// Ask for a specific address ("10.1.0.7" or "fd00:10:1::7"), at most one per family; it must
/// be assignable from the node's pod CIDR of that family (checked by the create call).
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `ip` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when the spec has an address of that family already.
/// On failure the spec is unchanged. Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_add_ip(
    spec: *mut podnet_sandbox_spec,
    ip: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_add_ip", "spec", spec, err_out, |c, s| {
        let ip = c.ip("ip", ip)?;
        if s.ips.iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
            return Err(c.err(podnet_status::InvalidArgument, "at most one requested address per family"));
        }
        s.ips.push(ip);
        Ok(())
    })
}

/// Map a host port to the pod (a pod spec's hostPort): traffic to `host_port` on the node
/// (only to `host_ip` if it is not NULL; NULL means every node address) goes to
/// `container_port` in the pod.
///
/// `host_ip` may be NULL: here NULL is a value, not an error.
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for an unknown protocol, a port 0 or a mapping
/// listed twice; `PODNET_STATUS_INVALID_ADDRESS` when `host_ip` does not parse. On failure the
/// spec is unchanged. Not thread-safe for one spec.
///
/// The mappings are installed by `podnet_node_sandbox_create` (a host port already mapped to
/// another sandbox gives `PODNET_STATUS_CONFLICT`, nothing created) and read back with
/// `podnet_sandbox_info.ports`.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_add_port(
    spec: *mut podnet_sandbox_spec,
    protocol: podnet_protocol_code,
    host_ip: *const c_char,
    host_port: u16,
    container_port: u16,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_add_port", "spec", spec, err_out, |c, s| {
        add_port(c, &mut s.ports, (protocol, host_ip, host_port, container_port))
    })
}

/// Check one host port mapping as `podnet_sandbox_spec_add_port` and `podnet_port_list_add`
/// take it, and add it to the mappings listed before it.
pub(crate) fn add_port(
    c: &Call,
    listed: &mut Vec<PortMapping>,
    (protocol, host_ip, host_port, container_port): (podnet_protocol_code, *const c_char, u16, u16),
) -> CallResult {
    let protocol = c.code::<podnet_protocol>(protocol)?;
    let host_ip = if host_ip.is_null() { None } else { Some(c.ip("host_ip", host_ip)?) };
    if host_port == 0 || container_port == 0 {
        return Err(c.err(podnet_status::InvalidArgument, "port 0 is not a valid host or container port"));
    }
    let m = PortMapping { protocol, host_ip, host_port, container_port };
    if listed.iter().any(|o| o.protocol == m.protocol && o.host_port == m.host_port && o.host_ip == m.host_ip) {
        return Err(c.err(podnet_status::InvalidArgument, format!("host port {host_port}/{protocol} listed twice")));
    }
    listed.push(m);
    Ok(())
}

/// Attach this pod differently from the node's mode: `PODNET_MODE_BRIDGE` or
/// `PODNET_MODE_ROUTED` (default: the node's mode). A routed pod on a bridge node gets a /32
/// (/128) address and a host route, and reaches the bridge pods through proxy ARP (proxy NDP);
/// a bridge pod on a routed node makes the node create its bridge on first use. Read back with
/// `podnet_sandbox_info.mode`.
///
/// Any other value gives `PODNET_STATUS_INVALID_ARGUMENT` and leaves the spec unchanged.
/// Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_set_mode(
    spec: *mut podnet_sandbox_spec,
    mode: podnet_mode_code,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_set_mode", "spec", spec, err_out, |c, s| {
        let m = c.code::<podnet_mode>(mode)?;
        s.mode = Some(m);
        Ok(())
    })
}

/// Keep a label with the sandbox (pod namespace, name, uid or any metadata the runtime wants
/// back from `podnet_node_sandbox_list`); a key set again replaces its value. Read back as
/// "key=value" in `podnet_sandbox_info.labels`.
///
/// `key`: 1..=253 bytes of `[A-Za-z0-9_./-]`; `value`: at most 4,096 bytes (may be empty). At
/// most 64 labels. Errors: `PODNET_STATUS_TOO_LONG` for a key or value over its limit,
/// `PODNET_STATUS_INVALID_ARGUMENT` for an empty key, a character outside the set, or a 65th
/// label. On failure the spec is unchanged. Not thread-safe for one spec.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_sandbox_spec_set_label(
    spec: *mut podnet_sandbox_spec,
    key: *const c_char,
    value: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_sandbox_spec_set_label", "spec", spec, err_out, |c, s| {
        let key = c.str("key", key, MAX_LABEL_KEY_LEN)?;
        let value = c.str("value", value, MAX_LABEL_VALUE_LEN)?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b)) {
            return Err(c.err(
                podnet_status::InvalidArgument,
                format!("label key {key:?}: 1..={MAX_LABEL_KEY_LEN} bytes of [A-Za-z0-9_./-]"),
            ));
        }
        if !s.labels.contains_key(key) && s.labels.len() >= MAX_LABELS {
            return Err(c.err(podnet_status::InvalidArgument, format!("at most {MAX_LABELS} labels")));
        }
        s.labels.insert(key.to_string(), value.to_string());
        Ok(())
    })
}
