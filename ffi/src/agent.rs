//! `podnet_agent`: the cluster agent in-process, so a runtime that links libpodnet needs no
//! separate daemon. It leases the node's pod CIDR from etcd (flannel's layout), opens the node
//! and keeps every other node programmed as a peer, on a thread and runtime of its own.

use std::ffi::c_char;
use std::time::Duration;

use podnet_cluster::agent::{Agent, AgentConfig, EtcdStore};

use crate::call::{core, free, read, with_ref};
use crate::config::podnet_node_config;
use crate::error::podnet_error;
use crate::handle::{castable, thread_safe};
use crate::status::podnet_status;

/// A running cluster agent (see docs/agent.md).
///
/// Thread-safe: any thread may call any `podnet_agent_*` function on one agent at the same time,
/// except `podnet_agent_free`, which must not race with other calls on it. The agent runs on a
/// thread of its own; it never changes the calling thread's namespaces and never forks.
pub struct podnet_agent {
    _private: [u8; 0],
}

castable!(podnet_agent: Owned => Agent);

// The ABI promises an agent may be shared across threads.
const _: () = thread_safe::<Agent>();

/// Start an agent for the node `node` describes: name, netns, state dir, pod mode and the
/// underlay address (required, IPv4: the lease's PublicIP). Pod CIDRs, VXLAN VNI/port and the
/// cross-node mode come from etcd's network config and the lease. The agent reaches etcd from
/// the node's netns.
///
/// `etcd_endpoints`: `etcd_endpoints_len` strings "http://IP:PORT". `prefix`: the store prefix,
/// NULL for flannel's "/coreos.com/network". `lease_ttl_seconds`: TTL of the node's etcd lease,
/// 0 for flannel's 86400. `state_file`: where the agent remembers its subnet, NULL for
/// "/run/podnet/agent/<node>.json".
///
/// Returns as soon as the agent runs (it is not ready yet: `podnet_agent_wait_ready`). `node`
/// and the strings are copied. Errors: `PODNET_STATUS_INVALID_ARGUMENT` for a config without an
/// IPv4 underlay, a bad prefix or endpoint, a TTL below 2 s. On success writes the agent to
/// `*agent_out` (free it with `podnet_agent_free`); on failure `*agent_out` is not written.
/// Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_agent_start(
    node: *const podnet_node_config,
    etcd_endpoints: *const *const c_char,
    etcd_endpoints_len: usize,
    prefix: *const c_char,
    lease_ttl_seconds: u32,
    state_file: *const c_char,
    agent_out: *mut *mut podnet_agent,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_agent_start", "node", node, err_out, |c, node| {
        let ptrs = c.slice("etcd_endpoints", etcd_endpoints, etcd_endpoints_len)?;
        let endpoints = c.each("etcd_endpoints", ptrs, |name, p| Ok(c.str(name, p, 4096)?.to_string()))?;
        core(EtcdStore::check_endpoints(&endpoints))?;
        let mut cfg = AgentConfig::new(node.clone());
        if !prefix.is_null() {
            cfg.prefix = c.str("prefix", prefix, 4096)?.to_string();
        }
        if lease_ttl_seconds != 0 {
            cfg.lease_ttl = Duration::from_secs(u64::from(lease_ttl_seconds));
        }
        if !state_file.is_null() {
            cfg.state_file = Some(c.path("state_file", state_file, true)?.into());
        }
        let out = c.out("agent_out", agent_out)?;
        let ns = node.netns.clone();
        let agent =
            core(Agent::start(cfg, move || async move { EtcdStore::connect(&endpoints, ns.as_deref()).await }))?;
        out.give(agent)
    })
}

/// Wait up to `timeout_ms` milliseconds until the agent is ready: its subnet leased, its node
/// opened and every other node programmed as a peer. Blocks the calling thread.
///
/// Errors: `PODNET_STATUS_IO` when it is not ready in time (the message carries the agent's last
/// error, e.g. etcd unreachable). Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_agent_wait_ready(
    agent: *const podnet_agent,
    timeout_ms: u32,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_agent_wait_ready", "agent", agent, err_out, |_, a| {
        core(a.wait_ready(Duration::from_millis(u64::from(timeout_ms))))?;
        Ok(())
    })
}

/// Whether the agent is ready now (see `podnet_agent_wait_ready`). NULL gives false.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_agent_is_ready(agent: *const podnet_agent) -> bool {
    read(agent, false, |a| a.status().ready)
}

/// The agent's status as one JSON object: `node`, `ready`, `phase` ("leasing", "programming",
/// "ready", "stopped"), `pod_cidrs`, `key`, `lease_id`, `peers`, `store_reachable`, `revision`,
/// `lease_lost`, `peer_changes`, `last_error`, `pid` (docs/agent.md).
///
/// On success writes a new buffer to `*json_out` (free it with `podnet_bytes_free`); on failure
/// `*json_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_agent_status_json(
    agent: *const podnet_agent,
    json_out: *mut *mut crate::buffer::podnet_bytes,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_agent_status_json", "agent", agent, err_out, |c, a| {
        let out = c.out("json_out", json_out)?;
        let json = serde_json::to_vec(&a.status()).map_err(|e| c.err(podnet_status::Internal, e))?;
        out.give(json)
    })
}

/// Stop the agent and leave the cluster: revoke its etcd lease and delete its key, so every
/// other node removes this one. The local data plane stays. Blocks until the agent's thread
/// ended. Errors: `PODNET_STATUS_IO` when etcd could not be told. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_agent_leave(agent: *const podnet_agent, err_out: *mut *mut podnet_error) -> podnet_status {
    with_ref("podnet_agent_leave", "agent", agent, err_out, |_, a| core(a.leave()))
}

/// Stop the agent (if it still runs) and free it. The data plane and the etcd lease stay: an
/// agent started again for the node finds its subnet and lease, and the other nodes keep their
/// routes to it. Blocks until the agent's thread ended. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_agent_free(agent: *mut podnet_agent) {
    free(agent)
}
