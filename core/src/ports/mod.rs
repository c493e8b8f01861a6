//! Host ports and the node's nftables table: mapping a sandbox's hostPorts (one map element
//! each, O(1)), conflict detection, the no-masquerade set of peer nodes, and repair after
//! someone flushed the ruleset. The nf_tables encoding itself lives in `nft/`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnetwork::IpNetwork;

use crate::config::{PortMapping, Protocol};
use crate::kernel::nft::{HostPort, NftSocket, Proto, Ruleset};
use crate::store::Sandbox;
use crate::{Error, ErrorKind, Node, Result};

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
}

/// Who holds a (protocol, host port): each holder's host IP (None = every address) and sandbox.
pub(crate) type PortIndex = HashMap<(Protocol, u16), Vec<(Option<IpAddr>, String)>>;

/// The node's nftables state: the socket, and indexes of mapped ports for O(1) conflicts and
/// lookups. The truth on disk is one file per mapping under `<state_dir>/ports/`.
#[derive(Debug)]
pub(crate) struct Ports {
    pub(crate) sock: NftSocket,
    /// (protocol, host port) -> [(host IP or wildcard, sandbox id)]
    pub(crate) index: PortIndex,
    /// sandbox id -> its mappings, in the order they were added
    pub(crate) by_sandbox: HashMap<String, Vec<PortMapping>>,
    /// Never-masqueraded hosts (the node's and its peers' underlay IPs) with how many peers
    /// (or the node itself) use each, so a peer change touches one set element.
    pub(crate) no_masq: HashMap<IpAddr, usize>,
}

/// File name of one mapping: `<id>@<proto>-<port>-<host ip or any>` ('@' is outside the id
/// alphabet; ':' of IPv6 host IPs is fine in a file name).
fn port_file_name(id: &str, m: &PortMapping) -> String {
    let hip = m.host_ip.map_or_else(|| "any".to_string(), |h| h.to_string());
    format!("{id}@{}-{}-{hip}", m.protocol, m.host_port)
}

pub(crate) type PortsCell = Mutex<Ports>;

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

fn lock(p: &PortsCell) -> std::sync::MutexGuard<'_, Ports> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub(crate) fn ruleset(&self, no_masq: &[IpAddr]) -> Ruleset {
        let mut rs = Ruleset::default();
        for p in &self.pools {
            match p.cidr() {
                IpNetwork::V4(n) => rs.pod_cidrs_v4.push(n),
                IpNetwork::V6(n) => rs.pod_cidrs_v6.push(n),
            }
        }
        for c in &self.cfg.cluster_cidrs {
            match c {
                IpNetwork::V4(n) => rs.cluster_cidrs_v4.push(*n),
                IpNetwork::V6(n) => rs.cluster_cidrs_v6.push(*n),
            }
        }
        rs.no_masq_hosts = no_masq.to_vec();
        // Without cluster CIDRs podnet cannot tell "leaving the cluster" apart; no egress NAT.
        rs.egress_masquerade = self.cfg.egress_masquerade && !self.cfg.cluster_cidrs.is_empty();
        rs
    }

    /// Destinations never masqueraded besides the cluster CIDRs: this node's and every peer's
    /// underlay address (pod -> node traffic keeps the pod's IP).
    pub(crate) fn no_masq_hosts(&self) -> Vec<IpAddr> {
        let own = self.cfg.underlay.iter().map(|u| u.address);
        own.chain(self.load_peers().into_iter().map(|p| p.underlay_ip)).collect()
    }

    fn ports_dir(&self) -> std::path::PathBuf {
        self.state_dir.join("ports")
    }

    /// Open the nft socket and (re)build the table with every recorded host port.
    pub(crate) fn init_nft(&self) -> Result<PortsCell> {
        let mut sock =
            NftSocket::open_in(&self.netns_file).map_err(|e| e.into_error("open nf_tables socket in node netns"))?;
        let mut index = PortIndex::new();
        let mut by_sandbox: HashMap<String, Vec<PortMapping>> = HashMap::new();
        let dir = self.ports_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::new(ErrorKind::Io, format!("create {}", dir.display()), e))?;
        let records: HashMap<String, Sandbox> = self.store.list()?.into_iter().map(|s| (s.id.clone(), s)).collect();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::new(ErrorKind::Io, "list port files", e))?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some((id, _)) = name.split_once('@') else { continue };
            let parsed = std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<PortMapping>(&b).ok());
            match (parsed, records.contains_key(id)) {
                (Some(m), true) => {
                    index.entry((m.protocol, m.host_port)).or_default().push((m.host_ip, id.to_string()));
                    by_sandbox.entry(id.to_string()).or_default().push(m);
                }
                // A mapping without a sandbox (a crash between two steps): drop it.
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut all = vec![];
        for (id, ms) in &by_sandbox {
            if let Some(sb) = records.get(id) {
                all.extend(host_ports(&sb.ips, ms));
            }
        }
        let hosts = self.no_masq_hosts();
        sock.ensure_table(&self.ruleset(&hosts), &all)
            .map_err(|e| e.into_error("create nftables table inet podnet"))?;
        let mut no_masq = HashMap::new();
        for h in hosts {
            *no_masq.entry(h).or_insert(0) += 1;
        }
        Ok(Mutex::new(Ports { sock, index, by_sandbox, no_masq }))
    }

    fn ports_cell(&self) -> Result<&PortsCell> {
        self.ports.get().ok_or_else(|| Error::new(ErrorKind::Internal, "host ports", "nftables not initialized"))
    }

    /// Reserve `ports` for sandbox `id` and add their map elements (one batch).
    pub(crate) async fn map_ports(&self, id: &str, ips: &[IpNetwork], ports: &[PortMapping]) -> Result<()> {
        let op = format!("map host ports of {id}");
        let cell = self.ports_cell()?;
        let mut p = lock(cell);
        for m in ports {
            if let Some(holders) = p.index.get(&(m.protocol, m.host_port)) {
                for (hip, holder) in holders {
                    let overlap = hip.is_none() || m.host_ip.is_none() || *hip == m.host_ip;
                    if overlap && holder != id {
                        let at = m.host_ip.map(|i| format!("{i}:")).unwrap_or_default();
                        let theirs = hip.map(|i| format!(" on {i}")).unwrap_or_default();
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            op,
                            format!(
                                "host port {at}{}/{} is already mapped by sandbox {holder}{theirs}",
                                m.host_port, m.protocol
                            ),
                        ));
                    }
                }
            }
        }
        let hp = host_ports(ips, ports);
        p.sock.add_ports(&hp).map_err(|e| e.into_error(op.clone()))?;
        for m in ports {
            let f = self.ports_dir().join(port_file_name(id, m));
            let data = serde_json::to_vec(m).map_err(|e| Error::new(ErrorKind::Internal, op.clone(), e))?;
            if let Err(e) = crate::ipam::write_atomic(&f, &data) {
                let _ = p.sock.remove_ports(&hp);
                return Err(Error::new(ErrorKind::Io, format!("{op}: write {}", f.display()), e));
            }
            let v = p.index.entry((m.protocol, m.host_port)).or_default();
            if !v.iter().any(|(h, s)| *h == m.host_ip && s == id) {
                v.push((m.host_ip, id.to_string()));
            }
            let mine = p.by_sandbox.entry(id.to_string()).or_default();
            if !mine.contains(m) {
                mine.push(*m);
            }
        }
        let udp: Vec<HostPort> = hp.into_iter().filter(|h| h.protocol == Proto::Udp).collect();
        if !udp.is_empty() {
            // A stale UDP conntrack entry (from before the mapping) would keep steering packets
            // elsewhere; flush so the pod gets its traffic at once.
            p.sock.flush_udp_conntrack(&udp).map_err(|e| e.into_error(format!("{op}: flush UDP conntrack")))?;
        }
        Ok(())
    }

    /// Remove `ports` of sandbox `id`; already gone is success.
    pub(crate) async fn unmap_ports(&self, id: &str, ips: &[IpNetwork], ports: &[PortMapping]) -> Result<()> {
        let op = format!("unmap host ports of {id}");
        let cell = self.ports_cell()?;
        let mut p = lock(cell);
        let hp = host_ports(ips, ports);
        p.sock.remove_ports(&hp).map_err(|e| e.into_error(op.clone()))?;
        for m in ports {
            match std::fs::remove_file(self.ports_dir().join(port_file_name(id, m))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::new(ErrorKind::Io, format!("{op}: remove port file"), e)),
            }
            if let Some(v) = p.by_sandbox.get_mut(id) {
                v.retain(|x| x != m);
                if v.is_empty() {
                    p.by_sandbox.remove(id);
                }
            }
            if let Some(v) = p.index.get_mut(&(m.protocol, m.host_port)) {
                v.retain(|(h, s)| !(*h == m.host_ip && s == id));
                if v.is_empty() {
                    p.index.remove(&(m.protocol, m.host_port));
                }
            }
        }
        let udp: Vec<HostPort> = hp.into_iter().filter(|h| h.protocol == Proto::Udp).collect();
        if !udp.is_empty() {
            p.sock.flush_udp_conntrack(&udp).map_err(|e| e.into_error(format!("{op}: flush UDP conntrack")))?;
        }
        Ok(())
    }

    /// The host ports of sandbox `id`.
    pub(crate) fn sandbox_ports(&self, id: &str) -> Vec<PortMapping> {
        self.ports.get().and_then(|c| lock(c).by_sandbox.get(id).cloned()).unwrap_or_default()
    }

    /// Which of the sandbox's elements are missing from the kernel.
    pub(crate) async fn check_ports(&self, sb: &Sandbox) -> Vec<String> {
        let Ok(cell) = self.ports_cell() else { return vec!["nftables not initialized".into()] };
        let mut p = lock(cell);
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
        let Ok(cell) = self.ports_cell() else { return Ok(()) };
        let mut p = lock(cell);
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
        let Ok(cell) = self.ports_cell() else { return Ok(()) };
        let hosts = self.no_masq_hosts();
        let mut p = lock(cell);
        p.sock.set_no_masq_hosts(&hosts).map_err(|e| e.into_error("update no-masquerade hosts"))?;
        p.no_masq.clear();
        for h in hosts {
            *p.no_masq.entry(h).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Add host ports to an existing sandbox (idempotent for mappings it already has).
    pub async fn add_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.serialized(id, async {
            let mut sb = self.get_sandbox(id).await?;
            let mut spec = crate::config::SandboxSpec::new(id);
            spec.ports = ports.to_vec();
            spec.validate(&self.cfg)?;
            let new: Vec<PortMapping> = ports.iter().filter(|m| !sb.ports.contains(m)).copied().collect();
            if new.is_empty() {
                return Ok(sb);
            }
            self.map_ports(id, &sb.ips, &new).await?;
            sb.ports.extend(new.iter().copied());
            Ok(sb)
        })
        .await
    }

    /// Remove host ports from a sandbox; mappings it does not have are ignored.
    pub async fn remove_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.serialized(id, async {
            let mut sb = self.get_sandbox(id).await?;
            let gone: Vec<PortMapping> = ports.iter().filter(|m| sb.ports.contains(m)).copied().collect();
            self.unmap_ports(id, &sb.ips, &gone).await?;
            sb.ports.retain(|m| !gone.contains(m));
            Ok(sb)
        })
        .await
    }

    /// Every host port mapped on this node.
    pub async fn list_ports(&self) -> Result<Vec<PortEntry>> {
        let mut out = vec![];
        for sb in self.list_sandboxes().await? {
            for m in &sb.ports {
                let pod_ips = sb
                    .ips
                    .iter()
                    .filter(|n| m.host_ip.is_none_or(|h| h.is_ipv4() == n.is_ipv4()))
                    .map(|n| n.ip())
                    .collect();
                out.push(PortEntry { sandbox: sb.id.clone(), mapping: *m, pod_ips });
            }
        }
        Ok(out)
    }

    /// Re-install podnet's nftables table and every recorded host port if someone flushed the
    /// ruleset (or deleted elements). Other tables are never touched.
    pub async fn repair(&self) -> Result<RepairReport> {
        let cell = self.ports_cell()?;
        let mut p = lock(cell);
        let mut want = vec![];
        for sb in self.store.list()? {
            if let Some(ms) = p.by_sandbox.get(&sb.id) {
                want.extend(host_ports(&sb.ips, ms));
            }
        }
        let exists = p.sock.table_exists().map_err(|e| e.into_error("repair: read nftables"))?;
        let have =
            if exists { p.sock.list_ports().map_err(|e| e.into_error("repair: list host ports"))? } else { vec![] };
        let missing = want.iter().filter(|h| !have.contains(h)).count();
        let rs = self.ruleset(&self.no_masq_hosts());
        if !exists || missing > 0 {
            p.sock.ensure_table(&rs, &want).map_err(|e| e.into_error("repair: rebuild table inet podnet"))?;
        }
        Ok(RepairReport { table_recreated: !exists, ports_restored: missing })
    }
}
