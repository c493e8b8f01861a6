//! Host ports and the node's nftables table: mapping a sandbox's hostPorts (one map element
//! each, O(1)), conflict detection, the no-masquerade set of peer nodes, and repair after
//! someone flushed the ruleset. The nf_tables encoding lives in `kernel/nft/`; the mappings are
//! kept by the store with their sandbox.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnetwork::IpNetwork;

use crate::base::Base;
use crate::config::{PortMapping, Protocol};
use crate::kernel::nft::{HostPort, NftError, NftSocket, Proto, Ruleset};
use crate::store::{Entry, Phase, Sandbox};
use crate::Result;

/// One mapped host port, as `list_ports` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortEntry {
    /// The sandbox holding it.
    pub sandbox: String,
    /// The mapping.
    pub mapping: PortMapping,
    /// The pod addresses traffic goes to.
    pub pod_ips: Vec<IpAddr>,
}

/// What `repair` found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepairReport {
    /// The table was missing (someone flushed the ruleset) and was recreated.
    pub table_recreated: bool,
    /// Host-port elements that were missing and were re-added.
    pub ports_restored: usize,
    /// The services table was missing or replaced and was rebuilt from the services this
    /// handle programmed (always false in a process that programs no services).
    #[serde(default)]
    pub services_rebuilt: bool,
}

/// The host-port component: the node's nftables table and what is mapped in it.
#[derive(Debug)]
pub(crate) struct Ports {
    base: Arc<Base>,
    state: Mutex<State>,
}

/// The nftables socket and the never-masqueraded hosts programmed in it. Which ports are mapped
/// (and conflicts between them) is the store's: it answers for every process sharing the node.
#[derive(Debug)]
struct State {
    sock: NftSocket,
    /// Never-masqueraded hosts (the node's and its peers' underlay IPs) with how many peers
    /// (or the node itself) use each, so a peer change touches one set element.
    no_masq: HashMap<IpAddr, usize>,
}

fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Sctp => Proto::Sctp,
    }
}

/// The map elements of one sandbox: one per mapping and pod address family (a host IP
/// restricts the mapping to its family).
pub(crate) fn host_ports(ips: &[IpNetwork], ports: &[PortMapping]) -> Vec<HostPort> {
    let mut out = vec![];
    for m in ports {
        for ip in ips {
            if m.host_ip.is_some_and(|h| h.is_ipv4() != ip.is_ipv4()) {
                continue;
            }
            out.push(HostPort {
                protocol: proto(m.protocol),
                host_ip: m.host_ip,
                host_port: m.host_port,
                pod_ip: ip.ip(),
                pod_port: m.container_port,
            });
        }
    }
    out
}

impl Ports {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ruleset(&self, no_masq: &[IpAddr]) -> Ruleset {
        let cfg = &self.base.cfg;
        Ruleset {
            pod_cidrs: self.base.pools.iter().map(|p| p.cidr()).collect(),
            cluster_cidrs: cfg.cluster_cidrs.iter().copied().collect(),
            no_masq_hosts: no_masq.to_vec(),
            // Without cluster CIDRs podnet cannot tell "leaving the cluster" apart; no egress NAT.
            egress_masquerade: cfg.egress_masquerade && !cfg.cluster_cidrs.is_empty(),
            ..Ruleset::default()
        }
    }

    /// Destinations never masqueraded besides the cluster CIDRs: this node's and every peer's
    /// underlay address (pod -> node traffic keeps the pod's IP).
    fn no_masq_hosts(&self) -> Result<Vec<IpAddr>> {
        let own = self.base.cfg.underlay.iter().map(|u| u.address);
        Ok(own.chain(self.base.store.peers()?.into_iter().map(|p| p.underlay_ip)).collect())
    }

    /// Open the nft socket. The table is rebuilt, with every recorded host port (including
    /// those of creates in flight in other processes: their elements are theirs to remove), only
    /// when it is missing (someone flushed the ruleset, a reboot) or was built for another
    /// configuration: an open is O(1) in the number of pods, which a process per call (the CNI
    /// plugin) needs, and never re-adds elements another process is removing.
    pub(crate) fn open(base: Arc<Base>) -> Result<Ports> {
        let sock =
            NftSocket::open_in(&base.netns_file).map_err(|e| e.into_error("open nf_tables socket in node netns"))?;
        let ports = Ports { base, state: Mutex::new(State { sock, no_masq: HashMap::new() }) };
        let hosts = ports.no_masq_hosts()?;
        let rs = ports.ruleset(&hosts);
        // The table's identity: its rules, not the peer hosts (changed element by element).
        let fingerprint = format!("{:?}", Ruleset { no_masq_hosts: vec![], ..rs.clone() });
        let store = &ports.base.store;
        let mut st = ports.lock();
        let exists = st.sock.table_exists().map_err(|e| e.into_error("read nftables table inet podnet"))?;
        if !exists || store.meta("ruleset")?.as_deref() != Some(fingerprint.as_str()) {
            // Under the store's lock: the first opens after a boot race, and an element a
            // create in another process adds between our read and our rebuild would be lost.
            store.with_entries_locked("rebuild host ports", |entries| {
                let all = wanted(&entries);
                st.sock.ensure_table(&rs, &all).map_err(|e| e.into_error("create nftables table inet podnet"))
            })?;
            store.set_meta("ruleset", &fingerprint)?;
        }
        for h in hosts {
            *st.no_masq.entry(h).or_insert(0) += 1;
        }
        drop(st);
        Ok(ports)
    }

    /// Add the map elements of `ports` (reserved in the store already) for sandbox `id`: one
    /// batch.
    pub(crate) async fn program(&self, id: &str, ips: &[IpNetwork], ports: &[PortMapping]) -> Result<()> {
        self.change(&format!("map host ports of {id}"), &host_ports(ips, ports), NftSocket::add_ports)
    }

    /// Remove the map elements of `ports` of sandbox `id`; already gone is success.
    pub(crate) async fn unprogram(&self, id: &str, ips: &[IpNetwork], ports: &[PortMapping]) -> Result<()> {
        self.change(&format!("unmap host ports of {id}"), &host_ports(ips, ports), NftSocket::remove_ports)
    }

    /// Add or remove (`apply`) the elements `hp` in one batch, then flush the UDP conntrack
    /// entries of their ports: a stale entry (from before the change) would keep steering
    /// packets the old way.
    fn change(
        &self,
        op: &str,
        hp: &[HostPort],
        apply: fn(&mut NftSocket, &[HostPort]) -> std::result::Result<(), NftError>,
    ) -> Result<()> {
        let mut p = self.lock();
        apply(&mut p.sock, hp).map_err(|e| e.into_error(op))?;
        let udp: Vec<HostPort> = hp.iter().filter(|h| h.protocol == Proto::Udp).cloned().collect();
        if !udp.is_empty() {
            p.sock.flush_udp_conntrack(&udp).map_err(|e| e.into_error(format!("{op}: flush UDP conntrack")))?;
        }
        Ok(())
    }

    /// Which of the sandbox's elements are missing from the kernel.
    pub(crate) async fn check(&self, sb: &Sandbox) -> Vec<String> {
        let mut p = self.lock();
        match p.sock.list_ports() {
            Ok(have) => host_ports(&sb.ips, &sb.ports)
                .into_iter()
                .filter(|h| !have.contains(h))
                .map(|h| format!("host port element missing: {h}"))
                .collect(),
            Err(e) => vec![format!("list host ports: {e}")],
        }
    }

    /// A peer was added or changed its underlay IP: pod traffic to peer nodes keeps its
    /// source. O(1): one element in and (when the old IP is no longer used) one out.
    pub(crate) fn no_masq_peer_changed(&self, old: Option<IpAddr>, new: Option<IpAddr>) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let mut p = self.lock();
        if let Some(n) = new {
            let c = p.no_masq.entry(n).or_insert(0);
            *c += 1;
            if *c == 1 {
                p.sock.add_no_masq_hosts(&[n]).map_err(|e| e.into_error("update no-masquerade hosts"))?;
            }
        }
        if let Some(o) = old {
            let gone = match p.no_masq.get_mut(&o) {
                Some(c) if *c > 1 => {
                    *c -= 1;
                    false
                }
                Some(_) => true,
                None => false,
            };
            if gone {
                p.no_masq.remove(&o);
                p.sock.remove_no_masq_hosts(&[o]).map_err(|e| e.into_error("update no-masquerade hosts"))?;
            }
        }
        Ok(())
    }

    /// The peer set was replaced: rebuild the never-masqueraded hosts from the records.
    pub(crate) fn no_masq_reset(&self) -> Result<()> {
        let hosts = self.no_masq_hosts()?;
        let mut p = self.lock();
        p.sock.set_no_masq_hosts(&hosts).map_err(|e| e.into_error("update no-masquerade hosts"))?;
        p.no_masq.clear();
        for h in hosts {
            *p.no_masq.entry(h).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Re-install podnet's nftables table and every recorded host port if someone flushed the
    /// ruleset (or deleted elements). Other tables are never touched. (`services_rebuilt` is the
    /// node's to fill in.)
    pub(crate) async fn repair(&self) -> Result<RepairReport> {
        let rs = self.ruleset(&self.no_masq_hosts()?);
        let mut p = self.lock();
        self.base.store.with_entries_locked("repair host ports", |entries| {
            let want = wanted(&entries);
            let exists = p.sock.table_exists().map_err(|e| e.into_error("repair: read nftables"))?;
            let have =
                if exists { p.sock.list_ports().map_err(|e| e.into_error("repair: list host ports"))? } else { vec![] };
            let missing = want.iter().filter(|h| !have.contains(h)).count();
            if !exists || missing > 0 {
                p.sock.ensure_table(&rs, &want).map_err(|e| e.into_error("repair: rebuild table inet podnet"))?;
            }
            Ok(RepairReport { table_recreated: !exists, ports_restored: missing, services_rebuilt: false })
        })
    }
}

/// The host ports the table must hold for `entries`: every sandbox's but those being deleted
/// (their delete removes, or has removed, their elements).
fn wanted(entries: &[Entry]) -> Vec<HostPort> {
    entries
        .iter()
        .filter(|e| e.phase != Phase::Deleting)
        .flat_map(|e| host_ports(&e.sandbox.ips, &e.sandbox.ports))
        .collect()
}
