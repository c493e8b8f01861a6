//! Services: ClusterIPs, NodePorts and external IPs programmed into podnet's services table
//! (`inet podnet-services`, see `kernel/nft/services.rs`), kube-proxy's nftables semantics with
//! map elements instead of per-service chains.
//!
//! The component keeps what it programmed in memory: each change diffs one service's elements
//! against what is in the kernel and sends the difference as one batch (O(changed elements));
//! the table is never listed on this path. Before each change one GETGEN round trip tells
//! whether anyone committed to nf_tables since our last batch; if so, the table's handle shows
//! whether our table is still the one we built, and a table someone deleted or replaced (e.g.
//! `nft flush ruleset`) is rebuilt from memory in one batch.
//!
//! The node's store holds the services (one row per service, and a sequence number), so every
//! client of the node (the agent, a runtime, the CLI, another process) sees and changes the same
//! set: each change runs inside one store write transaction, kernel batch included. A process
//! whose memory is behind the store's sequence number (its first call, or another process
//! changed the services) reloads the rows and rebuilds the table from them once, in one batch.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnetwork::IpNetwork;

use crate::base::Base;
use crate::config::Protocol;
use crate::kernel::nft::msg::{Elem, SetDef, MAX_KEY_LEN};
use crate::kernel::nft::services::{self as table, Kind, ServiceTable};
use crate::kernel::nft::{NftError, NftSocket, Proto, DEFAULT_SERVICE_MASQ_MARK};
use crate::store::ServiceRows;
use crate::{Error, ErrorKind, Result};

/// Longest service name (a Kubernetes `namespace/name` fits).
pub const MAX_SERVICE_NAME_LEN: usize = 253;
/// Longest ClientIP affinity timeout (Kubernetes' limit: one day).
pub const MAX_AFFINITY_SECS: u32 = 86_400;

/// A Service as the node serves it: one ClusterIP per family, ports, external IPs, endpoints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    /// Unique name, e.g. `namespace/name` (1..=253 bytes, printable, no spaces).
    pub name: String,
    /// One ClusterIP per family (IPv4, IPv6 or both), each inside a service CIDR of the node.
    pub cluster_ips: Vec<IpAddr>,
    /// The ports (at least one).
    pub ports: Vec<ServicePort>,
    /// External IPs: traffic to `ip:port` is served like the ClusterIP's, with the external
    /// traffic policy.
    #[serde(default)]
    pub external_ips: Vec<IpAddr>,
    /// Endpoints; only ready ones receive traffic.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Session affinity.
    #[serde(default)]
    pub affinity: Affinity,
    /// Which endpoints external traffic (NodePorts, external IPs) reaches.
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServicePort {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Port on the ClusterIP and external IPs.
    pub port: u16,
    /// Port on the endpoints (unless an endpoint names its own).
    pub target_port: u16,
    /// Port on every local node address (not loopback), if any.
    #[serde(default)]
    pub node_port: Option<u16>,
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// The endpoint's address (it serves the ClusterIP of its family).
    pub ip: IpAddr,
    /// Port per service port (same order as [`Service::ports`]); empty: each port's
    /// `target_port`.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Ready endpoints receive new connections; others none.
    pub ready: bool,
    /// The endpoint runs on this node (policy Local sends external traffic only to these).
    pub local: bool,
}

/// Session affinity of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affinity {
    /// Every new connection picks an endpoint at random.
    #[default]
    None,
    /// A client IP keeps its endpoint while it keeps connecting within the timeout.
    ClientIp {
        /// Seconds (1..=86400).
        timeout_secs: u32,
    },
}

/// External traffic policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficPolicy {
    /// Any ready endpoint; the client's address is masqueraded to the node's.
    #[default]
    Cluster,
    /// Only endpoints on this node, the client's address kept; dropped when there is none.
    Local,
}

fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Sctp => Proto::Sctp,
    }
}

fn unicast(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
}

impl Service {
    /// Check the service on its own and against the node's service CIDRs.
    pub fn validate(&self, service_cidrs: &[IpNetwork]) -> std::result::Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > MAX_SERVICE_NAME_LEN
            || self.name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("name must be 1..={MAX_SERVICE_NAME_LEN} printable bytes without spaces"));
        }
        let (v4, v6) = (
            self.cluster_ips.iter().filter(|i| i.is_ipv4()).count(),
            self.cluster_ips.iter().filter(|i| i.is_ipv6()).count(),
        );
        if self.cluster_ips.is_empty() || v4 > 1 || v6 > 1 {
            return Err("one ClusterIP per family (IPv4, IPv6 or both) is required".into());
        }
        for ip in &self.cluster_ips {
            if !unicast(*ip) {
                return Err(format!("ClusterIP {ip} is not a unicast address"));
            }
            if !service_cidrs.iter().any(|c| c.contains(*ip)) {
                return Err(if service_cidrs.is_empty() {
                    format!("ClusterIP {ip}: the node has no service CIDRs configured")
                } else {
                    format!("ClusterIP {ip} is outside the node's service CIDRs")
                });
            }
        }
        if self.ports.is_empty() {
            return Err("at least one port is required".into());
        }
        let mut seen = HashSet::new();
        let mut node_ports = HashSet::new();
        for p in &self.ports {
            if p.port == 0 || p.target_port == 0 || p.node_port == Some(0) {
                return Err(format!("port {}/{}: ports must be in 1..=65535", p.port, p.protocol));
            }
            if !seen.insert((p.protocol, p.port)) {
                return Err(format!("port {}/{} is listed twice", p.port, p.protocol));
            }
            if let Some(np) = p.node_port {
                if !node_ports.insert((p.protocol, np)) {
                    return Err(format!("node port {np}/{} is listed twice", p.protocol));
                }
            }
        }
        for ip in &self.external_ips {
            if !unicast(*ip) {
                return Err(format!("external IP {ip} is not a unicast address"));
            }
            if self.cluster_ips.contains(ip) {
                return Err(format!("external IP {ip} is also a ClusterIP"));
            }
        }
        for e in &self.endpoints {
            if !unicast(e.ip) {
                return Err(format!("endpoint {} is not a unicast address", e.ip));
            }
            if !e.ports.is_empty() && e.ports.len() != self.ports.len() {
                return Err(format!(
                    "endpoint {} has {} ports for {} service ports",
                    e.ip,
                    e.ports.len(),
                    self.ports.len()
                ));
            }
            if e.ports.contains(&0) {
                return Err(format!("endpoint {}: port 0", e.ip));
            }
        }
        if let Affinity::ClientIp { timeout_secs } = self.affinity {
            if timeout_secs == 0 || timeout_secs > MAX_AFFINITY_SECS {
                return Err(format!("affinity timeout {timeout_secs} s out of range 1..={MAX_AFFINITY_SECS}"));
            }
        }
        Ok(())
    }

    /// (frontend IP, protocol, port) pairs the service answers on.
    fn frontends(&self) -> impl Iterator<Item = (IpAddr, Proto, u16)> + '_ {
        self.cluster_ips
            .iter()
            .chain(&self.external_ips)
            .flat_map(move |ip| self.ports.iter().map(move |p| (*ip, proto(p.protocol), p.port)))
    }

    fn node_ports(&self) -> impl Iterator<Item = (Proto, u16)> + '_ {
        self.ports.iter().filter_map(|p| p.node_port.map(|n| (proto(p.protocol), n)))
    }
}

/// Sets whose elements several services may need: a ClusterIP whose ports two services
/// serve, an endpoint of two services (hairpin).
fn shared(set: &SetDef) -> bool {
    [&table::CLUSTERIPS4, &table::CLUSTERIPS6, &table::HAIRPIN4, &table::HAIRPIN6].iter().any(|s| std::ptr::eq(*s, set))
}

/// Identity of one programmed element: its set and key.
type ElemKey = (&'static str, [u8; MAX_KEY_LEN], u8);

fn ekey(set: &'static SetDef, e: &Elem) -> ElemKey {
    (set.name, e.key, e.klen)
}

/// Endpoint order of one (service port, family, range): indices are positions, kept stable
/// across changes so that one endpoint in or out touches O(1) elements.
type OrderKey = (Proto, u16, bool, bool);
type Order = Vec<(IpAddr, u16)>;

/// A service's row in the store: the service and its endpoint orders (so another process
/// rebuilds exactly the elements in the kernel).
#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    svc: Service,
    #[serde(default)]
    orders: Vec<(Proto, u16, bool, bool, Order)>,
}

impl Row {
    fn json(e: &Entry) -> Result<String> {
        let mut orders: Vec<(Proto, u16, bool, bool, Order)> =
            e.orders.iter().map(|((p, port, a, b), o)| (*p, *port, *a, *b, o.clone())).collect();
        orders.sort_unstable_by_key(|o| (o.0, o.1, o.2, o.3));
        serde_json::to_string(&Row { svc: e.svc.clone(), orders })
            .map_err(|err| Error::new(ErrorKind::Internal, format!("record service {}", e.svc.name), err))
    }
}

/// The services table as the store records it: the handle of the table in the kernel and its
/// kinds. A process that finds the same handle in the kernel trusts the table (every change to
/// it is made inside the store's transaction) instead of rebuilding it.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct TableRec {
    handle: u64,
    kinds: Vec<Kind>,
}

#[derive(Debug)]
struct Entry {
    svc: Service,
    orders: HashMap<OrderKey, Order>,
    elems: HashMap<ElemKey, (&'static SetDef, Elem)>,
}

/// What `State::elements` produces for one service.
struct Planned {
    elems: HashMap<ElemKey, (&'static SetDef, Elem)>,
    orders: HashMap<OrderKey, Order>,
}

#[derive(Debug)]
struct State {
    sock: NftSocket,
    table: ServiceTable,
    service_cidrs: Vec<IpNetwork>,
    services: HashMap<String, Entry>,
    /// Elements of the [`shared`] sets in the kernel, with the number of services that need
    /// each. Every other element is one service's (frontends are unique), so a change touches
    /// only that service's own maps and these few counts, however many services exist.
    shared: HashMap<ElemKey, u32>,
    frontends: HashMap<(IpAddr, Proto, u16), String>,
    node_ports: HashMap<(Proto, u16), String>,
    /// The kinds whose sets and rules are in the table.
    kinds: HashSet<Kind>,
    /// The table in the kernel is the one this state describes (as of `generation`).
    synced: bool,
    /// The store's services sequence number this memory reflects (None: not loaded yet).
    seq: Option<i64>,
    /// The table was rebuilt during the current call.
    rebuilt: bool,
    generation: Option<u32>,
    handle: u64,
}

/// Every element the services need, once.
fn all_elements(services: &HashMap<String, Entry>) -> HashMap<ElemKey, &(&'static SetDef, Elem)> {
    services.values().flat_map(|e| e.elems.iter().map(|(k, v)| (*k, v))).collect()
}

/// Stable endpoint order: survivors keep their index, holes are filled by new endpoints
/// first and then by the last ones.
fn stable_order(prev: Option<&Order>, want: &[(IpAddr, u16)]) -> Order {
    let want_set: HashSet<&(IpAddr, u16)> = want.iter().collect();
    let prev_set: HashSet<&(IpAddr, u16)> = prev.map(|p| p.iter().collect()).unwrap_or_default();
    let mut slots: Vec<Option<(IpAddr, u16)>> =
        prev.map(|p| p.iter().map(|x| want_set.contains(x).then_some(*x)).collect()).unwrap_or_default();
    let mut fresh = want.iter().filter(|x| !prev_set.contains(x)).copied();
    for s in slots.iter_mut().filter(|s| s.is_none()) {
        match fresh.next() {
            Some(n) => *s = Some(n),
            None => break,
        }
    }
    slots.extend(fresh.map(Some));
    loop {
        while matches!(slots.last(), Some(None)) {
            slots.pop();
        }
        match slots.iter().position(Option::is_none) {
            Some(i) => slots[i] = slots.pop().flatten(),
            None => break,
        }
    }
    slots.into_iter().flatten().collect()
}

impl State {
    /// Note a kind the elements use; its set and rules go into the batch if it is new.
    fn kind(&mut self, kind: Kind, new: &mut Vec<Kind>) -> Kind {
        if self.kinds.insert(kind) {
            new.push(kind);
        }
        kind
    }

    /// The elements service `svc` needs and its endpoint orders (kept stable from `prev`).
    fn elements(&mut self, svc: &Service, prev: Option<&Entry>, new_kinds: &mut Vec<Kind>) -> Planned {
        let mut out = HashMap::new();
        let mut orders = HashMap::new();
        let mut put = |(s, e): (&'static SetDef, Elem)| {
            out.insert(ekey(s, &e), (s, e));
        };
        let aff = match svc.affinity {
            Affinity::None => 0,
            Affinity::ClientIp { timeout_secs } => timeout_secs,
        };
        for &cip in &svc.cluster_ips {
            let v6 = cip.is_ipv6();
            put(table::clusterip_elem(cip));
            for (pi, sp) in svc.ports.iter().enumerate() {
                let pr = proto(sp.protocol);
                let mut all: Order = Vec::new();
                let mut local: Order = Vec::new();
                for e in svc.endpoints.iter().filter(|e| e.ready && e.ip.is_ipv6() == v6) {
                    let ep = (e.ip, e.ports.get(pi).copied().unwrap_or(sp.target_port));
                    if !all.contains(&ep) {
                        all.push(ep);
                        if e.local {
                            local.push(ep);
                        }
                    }
                }
                let ka = (pr, sp.port, v6, false);
                let kl = (pr, sp.port, v6, true);
                let all = stable_order(prev.and_then(|p| p.orders.get(&ka)), &all);
                let local = stable_order(prev.and_then(|p| p.orders.get(&kl)), &local);
                let externals = svc.external_ips.iter().filter(|x| x.is_ipv6() == v6);
                if all.is_empty() {
                    put(table::noeps_elem(cip, pr, sp.port));
                    for x in externals {
                        put(table::noeps_elem(*x, pr, sp.port));
                    }
                    if let Some(np) = sp.node_port {
                        put(table::noeps_nodeport_elem(pr, np));
                    }
                } else {
                    let n = all.len() as u32;
                    let internal = Kind { v6, nodeport: false, n, masq: false, affinity_secs: aff };
                    put(table::frontend_elem(&self.kind(internal, new_kinds), cip, pr, sp.port));
                    for (i, ep) in all.iter().enumerate() {
                        put(table::ep_elem(cip, pr, sp.port, i as u32, *ep));
                    }
                    // External traffic: policy Cluster masquerades and uses every endpoint,
                    // policy Local keeps the client's address and uses the local ones (or drops).
                    let (ext, masq) = match svc.external_traffic_policy {
                        TrafficPolicy::Cluster => (&all, true),
                        TrafficPolicy::Local => (&local, false),
                    };
                    let ext_kind = |nodeport| match ext.len() as u32 {
                        0 => Kind::drop(v6, nodeport),
                        n => Kind { v6, nodeport, n, masq, affinity_secs: aff },
                    };
                    for x in externals {
                        put(table::frontend_elem(&self.kind(ext_kind(false), new_kinds), *x, pr, sp.port));
                        for (i, ep) in ext.iter().enumerate() {
                            put(table::ep_elem(*x, pr, sp.port, i as u32, *ep));
                        }
                    }
                    if let Some(np) = sp.node_port {
                        put(table::nodeport_elem(&self.kind(ext_kind(true), new_kinds), pr, np));
                        for (i, ep) in ext.iter().enumerate() {
                            put(table::np_ep_elem(pr, np, i as u32, *ep));
                        }
                    }
                }
                orders.insert(ka, all);
                orders.insert(kl, local);
            }
            for e in svc.endpoints.iter().filter(|e| e.ready && e.local && e.ip.is_ipv6() == v6) {
                put(table::hairpin_elem(e.ip));
            }
        }
        Planned { elems: out, orders }
    }

    /// The kernel deletes and adds from one service's `old` to its `new` elements (counting
    /// the shared ones).
    #[expect(clippy::type_complexity, reason = "two element lists")]
    fn diff(
        &mut self,
        old: &HashMap<ElemKey, (&'static SetDef, Elem)>,
        new: &HashMap<ElemKey, (&'static SetDef, Elem)>,
    ) -> (Vec<(&'static SetDef, Elem)>, Vec<(&'static SetDef, Elem)>) {
        let mut dels = vec![];
        let mut adds = vec![];
        for (k, (s, e)) in old {
            if new.get(k).is_some_and(|(_, n)| n == e) {
                continue;
            }
            if !shared(s) {
                dels.push((*s, e.clone()));
            } else if let Some(n) = self.shared.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    self.shared.remove(k);
                    dels.push((*s, e.clone()));
                }
            }
        }
        for (k, (s, e)) in new {
            if old.get(k).is_some_and(|(_, o)| o == e) {
                continue;
            }
            if !shared(s) {
                adds.push((*s, e.clone()));
                continue;
            }
            let n = self.shared.entry(*k).or_insert(0);
            *n += 1;
            if *n == 1 {
                adds.push((*s, e.clone()));
            }
        }
        (dels, adds)
    }

    /// Whether the kernel's table is still ours, by the cheapest evidence: the generation has
    /// not moved since our last batch, or our table still has the handle we created it with.
    fn fresh(&mut self) -> std::result::Result<bool, NftError> {
        if !self.synced {
            return Ok(false);
        }
        let g = self.sock.generation()?;
        if Some(g) == self.generation {
            return Ok(true);
        }
        let ok = self.sock.services_table()? == Some(self.handle);
        if ok {
            self.generation = Some(g);
        }
        Ok(ok)
    }

    /// Program everything in memory into a fresh table (one batch).
    fn rebuild(&mut self) -> std::result::Result<(), NftError> {
        self.synced = false;
        let mut kinds: Vec<Kind> = self.kinds.iter().copied().collect();
        kinds.sort_unstable();
        let elems: Vec<(&'static SetDef, Elem)> = all_elements(&self.services).into_values().cloned().collect();
        self.handle = self.sock.services_rebuild(&self.table, &kinds, &elems)?;
        self.generation = Some(self.sock.generation()?);
        self.synced = true;
        self.rebuilt = true;
        Ok(())
    }

    /// Send one change; when our table was lost, rebuild instead (the state already holds
    /// the change).
    fn commit(
        &mut self,
        new_kinds: &[Kind],
        dels: &[(&'static SetDef, Elem)],
        adds: &[(&'static SetDef, Elem)],
    ) -> std::result::Result<(), NftError> {
        if !self.fresh()? {
            return self.rebuild();
        }
        if new_kinds.is_empty() && dels.is_empty() && adds.is_empty() {
            return Ok(());
        }
        let before = self.generation;
        match self.sock.services_apply(self.table.masq_mark, new_kinds, dels, adds) {
            Ok(()) => {
                // Our commit is exactly one generation step; anyone else's shows up as a gap.
                self.generation = before.map(|g| g.wrapping_add(1));
                Ok(())
            }
            Err(e) => {
                self.synced = false;
                Err(e)
            }
        }
    }

    fn check_conflicts(&self, svc: &Service) -> Result<()> {
        let op = || format!("set service {}", svc.name);
        for f in svc.frontends() {
            if let Some(holder) = self.frontends.get(&f).filter(|h| **h != svc.name) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    op(),
                    format!("{}/{} on {} is already served by service {holder}", f.2, f.1, f.0),
                ));
            }
        }
        for n in svc.node_ports() {
            if let Some(holder) = self.node_ports.get(&n).filter(|h| **h != svc.name) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    op(),
                    format!("node port {}/{} is already used by service {holder}", n.1, n.0),
                ));
            }
        }
        Ok(())
    }

    fn index(&mut self, svc: &Service, add: bool) {
        for f in svc.frontends() {
            if add {
                self.frontends.insert(f, svc.name.clone());
            } else {
                self.frontends.remove(&f);
            }
        }
        for n in svc.node_ports() {
            if add {
                self.node_ports.insert(n, svc.name.clone());
            } else {
                self.node_ports.remove(&n);
            }
        }
    }

    /// Replace (or with `None` remove) service `name`; validated by the caller.
    fn change(&mut self, name: &str, svc: Option<Service>) -> Result<()> {
        let op = match &svc {
            Some(_) => format!("set service {name}"),
            None => format!("remove service {name}"),
        };
        if let Some(s) = &svc {
            self.check_conflicts(s)?;
        }
        let old = self.services.remove(name);
        if old.is_none() && svc.is_none() {
            return Ok(());
        }
        let empty = HashMap::new();
        let old_elems = old.as_ref().map_or(&empty, |o| &o.elems);
        let mut new_kinds = vec![];
        let plan = match &svc {
            Some(s) => self.elements(s, old.as_ref(), &mut new_kinds),
            None => Planned { elems: HashMap::new(), orders: HashMap::new() },
        };
        let Planned { elems: new_elems, orders } = plan;
        let (mut dels, adds) = self.diff(old_elems, &new_elems);
        if let (Some(o), true) = (&old, self.synced) {
            // ClientIP affinity entries of removed endpoints would keep sending their clients
            // there until they time out: delete them in the same batch (a dump of the affinity
            // map, only when an affinity service loses an endpoint).
            if o.svc.affinity != Affinity::None {
                dels.extend(self.stale_affinity(o, svc.as_ref()));
            }
        }
        if let Some(o) = &old {
            self.index(&o.svc, false);
        }
        if let Some(s) = &svc {
            self.index(s, true);
        }
        // In memory first: a lost table is rebuilt from memory instead of changed.
        let new_svc = svc.is_some();
        if let Some(s) = svc {
            self.services.insert(name.to_string(), Entry { svc: s, orders, elems: new_elems });
        }
        match self.commit(&new_kinds, &dels, &adds) {
            Ok(()) => {
                if let Some(o) = old.as_ref().filter(|o| o.orders.keys().any(|k| k.0 == Proto::Udp)) {
                    let empty = HashMap::new();
                    let now = self.services.get(name).map(|e| &e.orders).unwrap_or(&empty).clone();
                    self.flush_removed_udp(o, &now);
                }
                Ok(())
            }
            Err(e) => {
                // Undo in memory: the kernel applied nothing of the batch.
                let new = if new_svc { self.services.remove(name) } else { None };
                self.diff(new.as_ref().map_or(&empty, |n| &n.elems), old_elems);
                for k in &new_kinds {
                    self.kinds.remove(k);
                }
                if let Some(n) = &new {
                    self.index(&n.svc, false);
                }
                if let Some(o) = old {
                    self.index(&o.svc, true);
                    self.services.insert(name.to_string(), o);
                }
                Err(e.into_error(op))
            }
        }
    }

    /// Affinity entries of `old` that point at endpoints `new` no longer has (all of them when
    /// `new` has no affinity). Entries are keyed by the address the client reached: a frontend
    /// of the service or, for a NodePort, any address that is no other service's frontend.
    fn stale_affinity(&mut self, old: &Entry, new: Option<&Service>) -> Vec<(&'static SetDef, Elem)> {
        let fronts: HashSet<(IpAddr, Proto, u16)> = old.svc.frontends().collect();
        let node_ports: HashSet<(Proto, u16)> = old.svc.node_ports().collect();
        let keep: HashSet<IpAddr> = new
            .filter(|n| n.affinity != Affinity::None)
            .map(|n| n.endpoints.iter().filter(|e| e.ready).map(|e| e.ip).collect())
            .unwrap_or_default();
        let others = &self.frontends;
        let mut out = vec![];
        for set in [&table::AFF4, &table::AFF6] {
            let Ok(elems) = self.sock.dump_elems(table::SERVICES_TABLE, set) else { continue };
            for (k, d) in elems {
                let Some(((ip, p, port), ep)) = table::parse_affinity(&k, &d) else { continue };
                let Some(p) = [Proto::Tcp, Proto::Udp, Proto::Sctp].into_iter().find(|x| x.number() == p) else {
                    continue;
                };
                let f = (ip, p, port);
                let ours = fronts.contains(&f) || (node_ports.contains(&(p, port)) && !others.contains_key(&f));
                if ours && !keep.contains(&ep) {
                    out.push((set, Elem::key(&k)));
                }
            }
        }
        out
    }

    /// UDP has no connection end: conntrack entries towards a removed endpoint keep steering
    /// their flow to it. Best-effort: an error only costs the stale flows.
    fn flush_removed_udp(&mut self, old: &Entry, now: &HashMap<OrderKey, Order>) {
        let still: HashSet<&(IpAddr, u16)> = now.values().flatten().collect();
        let mut gone: Vec<(IpAddr, u16)> = old
            .orders
            .iter()
            .filter(|(k, _)| k.0 == Proto::Udp)
            .flat_map(|(_, o)| o)
            .filter(|e| !still.contains(e))
            .copied()
            .collect();
        gone.sort();
        gone.dedup();
        if !gone.is_empty() {
            if let Err(e) = self.sock.flush_udp_to_endpoints(&gone) {
                tracing::warn!("flush UDP conntrack of removed endpoints of service {}: {e}", old.svc.name);
            }
        }
    }

    /// Make this memory the store's services. The kernel's table is trusted when it is the one
    /// the store recorded (same handle, every kind present); else the table is rebuilt from the
    /// rows in one batch. No services anywhere touches nothing.
    fn load(&mut self, rows: &ServiceRows<'_, '_>) -> Result<()> {
        let mut stored = vec![];
        for (name, json) in rows.load()? {
            stored.push(serde_json::from_str::<Row>(&json).map_err(|e| {
                Error::new(
                    ErrorKind::Inconsistent,
                    format!("read service {name}"),
                    format!("its row in the node's state database is damaged: {e}; it is kept as it is"),
                )
            })?);
        }
        if stored.is_empty() && self.services.is_empty() {
            return Ok(());
        }
        self.services.clear();
        self.shared.clear();
        self.frontends.clear();
        self.node_ports.clear();
        self.kinds.clear();
        self.synced = false;
        let mut new_kinds = vec![];
        for row in stored {
            let orders = row.orders.into_iter().map(|(p, port, a, b, o)| ((p, port, a, b), o)).collect();
            let prev = Entry { svc: row.svc.clone(), orders, elems: HashMap::new() };
            self.index(&row.svc, true);
            self.adopt(row.svc, Some(&prev), &mut new_kinds);
        }
        let op = "load services";
        let rec: Option<TableRec> = rows.table()?.and_then(|j| serde_json::from_str(&j).ok());
        let current = self.sock.services_table().map_err(|e| e.into_error(op))?;
        match rec {
            Some(t) if Some(t.handle) == current && self.kinds.iter().all(|k| t.kinds.contains(k)) => {
                self.kinds.extend(t.kinds);
                self.handle = t.handle;
                self.generation = Some(self.sock.generation().map_err(|e| e.into_error(op))?);
                self.synced = true;
                Ok(())
            }
            _ => self.rebuild().map_err(|e| e.into_error("load services: rebuild table inet podnet-services")),
        }
    }

    /// Plan `svc`'s elements (endpoint order kept from `prev`), count its shared elements and
    /// keep it in memory (the kernel is the caller's to change).
    fn adopt(&mut self, svc: Service, prev: Option<&Entry>, new_kinds: &mut Vec<Kind>) {
        let Planned { elems, orders } = self.elements(&svc, prev, new_kinds);
        for (k, (set, _)) in &elems {
            if shared(set) {
                *self.shared.entry(*k).or_insert(0) += 1;
            }
        }
        self.services.insert(svc.name.clone(), Entry { svc, orders, elems });
    }

    /// The table as the store should record it.
    fn table_rec(&self) -> TableRec {
        let mut kinds: Vec<Kind> = self.kinds.iter().copied().collect();
        kinds.sort_unstable();
        TableRec { handle: self.handle, kinds }
    }

    /// Replace every service with `svcs`: one batch with the difference when our table is
    /// intact, else one batch with the whole table.
    fn sync(&mut self, svcs: Vec<Service>) -> Result<()> {
        let op = "sync services";
        let mut names = HashSet::new();
        let mut frontends: HashMap<(IpAddr, Proto, u16), String> = HashMap::new();
        let mut node_ports: HashMap<(Proto, u16), String> = HashMap::new();
        for s in &svcs {
            if !names.insert(s.name.clone()) {
                return Err(Error::invalid(op, format!("service {} is listed twice", s.name)));
            }
            for f in s.frontends() {
                if let Some(h) = frontends.insert(f, s.name.clone()) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        op,
                        format!("{}/{} on {} is served by both {h} and {}", f.2, f.1, f.0, s.name),
                    ));
                }
            }
            for n in s.node_ports() {
                if let Some(h) = node_ports.insert(n, s.name.clone()) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        op,
                        format!("node port {}/{} is used by both {h} and {}", n.1, n.0, s.name),
                    ));
                }
            }
        }
        // Build the new state beside the old one, then send the difference.
        let old_services = std::mem::take(&mut self.services);
        let old_shared = std::mem::take(&mut self.shared);
        let old_kinds = self.kinds.clone();
        let mut new_kinds = vec![];
        for s in svcs {
            let prev = old_services.get(&s.name);
            self.adopt(s, prev, &mut new_kinds);
        }
        // Frontends may move between services here: compare the unions, not service by service.
        let (old_all, new_all) = (all_elements(&old_services), all_elements(&self.services));
        let mut dels = vec![];
        let mut adds = vec![];
        for (k, (s, e)) in &old_all {
            if new_all.get(k).is_none_or(|(_, n)| n != e) {
                dels.push((*s, e.clone()));
            }
        }
        for (k, (s, e)) in &new_all {
            if old_all.get(k).is_none_or(|(_, o)| o != e) {
                adds.push((*s, e.clone()));
            }
        }
        drop((old_all, new_all));
        self.frontends = frontends;
        self.node_ports = node_ports;
        match self.commit(&new_kinds, &dels, &adds) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.services = old_services;
                self.shared = old_shared;
                self.kinds = old_kinds;
                self.frontends.clear();
                self.node_ports.clear();
                let olds: Vec<Service> = self.services.values().map(|e| e.svc.clone()).collect();
                for s in &olds {
                    self.index(s, true);
                }
                Err(e.into_error(op))
            }
        }
    }
}

/// The node's services: their programmed state and the socket that programs them.
#[derive(Debug)]
pub(crate) struct Services {
    state: Arc<Mutex<State>>,
    base: Arc<Base>,
}

impl Services {
    /// Open the socket in the node's netns. The table is left alone until the first call.
    pub(crate) fn open(base: Arc<Base>) -> Result<Services> {
        let cfg = &base.cfg;
        let sock =
            NftSocket::open_in(&base.netns_file).map_err(|e| e.into_error("open nf_tables socket for services"))?;
        let table = ServiceTable {
            service_cidrs: cfg.service_cidrs.iter().copied().collect(),
            cluster_cidrs: cfg.cluster_cidrs.iter().copied().collect(),
            masq_mark: DEFAULT_SERVICE_MASQ_MARK,
        };
        let state = State {
            sock,
            table,
            service_cidrs: cfg.service_cidrs.clone(),
            services: HashMap::new(),
            shared: HashMap::new(),
            frontends: HashMap::new(),
            node_ports: HashMap::new(),
            kinds: HashSet::new(),
            synced: false,
            seq: None,
            rebuilt: false,
            generation: None,
            handle: 0,
        };
        Ok(Services { state: Arc::new(Mutex::new(state)), base })
    }

    /// Run `f` on the state, brought up to the store's services first, inside one store write
    /// transaction (committed when `f` succeeds), on a blocking thread (the socket calls block).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, &ServiceRows<'_, '_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (state, base) = (self.state.clone(), self.base.clone());
        tokio::task::spawn_blocking(move || {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let mut done = false;
            s.rebuilt = false;
            let r = base.store.services_txn(|rows| {
                let before = s.table_rec();
                let seq = rows.seq()?;
                if s.seq != Some(seq) {
                    s.load(rows)?;
                    s.seq = Some(seq);
                }
                let out = f(&mut s, rows)?;
                let now = s.table_rec();
                if now != before && s.synced {
                    let json = serde_json::to_string(&now)
                        .map_err(|e| Error::new(ErrorKind::Internal, "record services table", e))?;
                    rows.set_table(&json)?;
                }
                done = true;
                Ok(out)
            });
            if r.is_err() && done {
                // The kernel has the change and the store does not: reload on the next call.
                s.seq = None;
            }
            r
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "services", e))?
    }

    /// Add or replace a service.
    pub(crate) async fn set_service(&self, svc: Service) -> Result<()> {
        self.with(move |s, rows| {
            let op = format!("set service {}", svc.name);
            svc.validate(&s.service_cidrs).map_err(|m| Error::invalid(&op, m))?;
            let name = svc.name.clone();
            s.change(&name, Some(svc))?;
            rows.put(&name, &Row::json(&s.services[&name])?)?;
            s.seq = Some(rows.bump()?);
            Ok(())
        })
        .await
    }

    /// Remove a service; a missing one is success.
    pub(crate) async fn remove_service(&self, name: String) -> Result<()> {
        self.with(move |s, rows| {
            if !s.services.contains_key(&name) {
                return Ok(());
            }
            s.change(&name, None)?;
            rows.delete(&name)?;
            s.seq = Some(rows.bump()?);
            Ok(())
        })
        .await
    }

    /// Make the services exactly `svcs`.
    pub(crate) async fn sync_services(&self, svcs: Vec<Service>) -> Result<()> {
        self.with(move |s, rows| {
            for v in &svcs {
                v.validate(&s.service_cidrs).map_err(|m| Error::invalid(format!("sync services: {}", v.name), m))?;
            }
            s.sync(svcs)?;
            rows.clear()?;
            for (name, e) in &s.services {
                rows.put(name, &Row::json(e)?)?;
            }
            s.seq = Some(rows.bump()?);
            Ok(())
        })
        .await
    }

    /// Rebuild the table from the services unless the kernel still has the one we made.
    pub(crate) async fn repair(&self) -> Result<bool> {
        self.with(|s, _| {
            let ok = s.fresh().map_err(|e| e.into_error("repair services: read nf_tables"))?;
            if !ok && !s.services.is_empty() {
                s.rebuild().map_err(|e| e.into_error("repair services: rebuild table inet podnet-services"))?;
            }
            Ok(s.rebuilt)
        })
        .await
    }

    /// The services, by name.
    pub(crate) async fn list(&self) -> Result<Vec<Service>> {
        self.with(|s, _| {
            let mut all: Vec<Service> = s.services.values().map(|e| e.svc.clone()).collect();
            all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            Ok(all)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> (IpAddr, u16) {
        (s.parse().unwrap(), port)
    }

    #[test]
    fn stable_order_moves_one_endpoint() {
        let prev = vec![ep("10.0.0.1", 80), ep("10.0.0.2", 80), ep("10.0.0.3", 80), ep("10.0.0.4", 80)];
        // remove the second: the last one takes its slot, the others stay
        let got = stable_order(Some(&prev), &[ep("10.0.0.1", 80), ep("10.0.0.3", 80), ep("10.0.0.4", 80)]);
        assert_eq!(got, vec![ep("10.0.0.1", 80), ep("10.0.0.4", 80), ep("10.0.0.3", 80)]);
        // replace one: the new one takes the hole
        let got = stable_order(
            Some(&prev),
            &[ep("10.0.0.1", 80), ep("10.0.0.9", 80), ep("10.0.0.3", 80), ep("10.0.0.4", 80)],
        );
        assert_eq!(got, vec![ep("10.0.0.1", 80), ep("10.0.0.9", 80), ep("10.0.0.3", 80), ep("10.0.0.4", 80)]);
        assert_eq!(stable_order(None, &prev[..2]), prev[..2].to_vec());
        assert!(stable_order(Some(&prev), &[]).is_empty());
        let got = stable_order(Some(&prev), &[ep("10.0.0.4", 80)]);
        assert_eq!(got, vec![ep("10.0.0.4", 80)]);
    }

    fn svc() -> Service {
        Service {
            name: "default/web".into(),
            cluster_ips: vec!["10.96.0.10".parse().unwrap()],
            ports: vec![ServicePort { protocol: Protocol::Tcp, port: 80, target_port: 8080, node_port: Some(30080) }],
            external_ips: vec![],
            endpoints: vec![Endpoint { ip: "10.244.1.2".parse().unwrap(), ports: vec![], ready: true, local: true }],
            affinity: Affinity::None,
            external_traffic_policy: TrafficPolicy::Cluster,
        }
    }

    #[test]
    fn validation() {
        let cidrs: Vec<IpNetwork> = vec!["10.96.0.0/12".parse().unwrap()];
        assert_eq!(svc().validate(&cidrs), Ok(()));
        let bad = |f: fn(&mut Service)| {
            let mut s = svc();
            f(&mut s);
            s.validate(&cidrs).unwrap_err()
        };
        assert!(bad(|s| s.cluster_ips = vec!["10.0.0.1".parse().unwrap()]).contains("outside"));
        assert!(bad(|s| s.cluster_ips.clear()).contains("ClusterIP"));
        assert!(bad(|s| s.ports[0].port = 0).contains("1..=65535"));
        assert!(bad(|s| s.ports.push(s.ports[0].clone())).contains("twice"));
        assert!(bad(|s| s.name = "a b".into()).contains("name"));
        assert!(bad(|s| s.endpoints[0].ports = vec![1, 2]).contains("ports"));
        assert!(bad(|s| s.affinity = Affinity::ClientIp { timeout_secs: 0 }).contains("timeout"));
        assert!(bad(|s| s.external_ips = vec!["10.96.0.10".parse().unwrap()]).contains("ClusterIP"));
        assert!(svc().validate(&[]).unwrap_err().contains("no service CIDRs"));
    }
}
