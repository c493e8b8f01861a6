//! Paths to other nodes' pods: VXLAN overlay entries (route + neighbour + FDB per peer) or
//! routed entries (one route per peer pod CIDR via the peer's underlay IP), chosen per peer by
//! the node's cross-node mode. Peer changes are O(1) kernel requests; `sync_peers` converges
//! the kernel to exactly a given list, removing whatever an earlier run left behind.

use std::collections::HashSet;
use std::net::IpAddr;

use futures_util::stream::{self, StreamExt};
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::AddressFamily;
use tracing::Instrument;

use std::sync::Arc;

use crate::base::Base;
use crate::config::{CrossNodeMode, Peer};
use crate::kernel::netlink::NetlinkError;
use crate::ports::Ports;
use crate::{Error, ErrorKind, Result};

/// Routes to peers carry this protocol number (per-pod routes use [`crate::kernel::netlink::ROUTE_PROTOCOL`]).
pub const PEER_ROUTE_PROTOCOL: u8 = 81;

/// How many kernel requests are in flight at once during a sync.
const CONCURRENCY: usize = 64;

/// Run `requests`, at most `CONCURRENCY` at a time, every one of them; the first error.
async fn all_ok<E>(
    requests: impl Iterator<Item = impl std::future::Future<Output = std::result::Result<(), E>>>,
) -> std::result::Result<(), E> {
    let errs: Vec<E> =
        stream::iter(requests).buffer_unordered(CONCURRENCY).filter_map(|r| async move { r.err() }).collect().await;
    errs.into_iter().next().map_or(Ok(()), Err)
}

/// Which path a peer pod CIDR takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Through the VXLAN device.
    Overlay,
    /// Straight to the peer's underlay IP.
    Routed,
}

/// What sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// Peers now configured.
    pub peers: usize,
    /// Kernel entries (routes, neighbours, FDB) added.
    pub added: usize,
    /// Stale kernel entries removed.
    pub removed: usize,
}

/// One kernel object a peer needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Entry {
    Route { dst: IpNetwork, via: IpAddr, oif: u32, onlink: bool },
    Neigh { ip: IpAddr, mac: [u8; 6] },
    Fdb { mac: [u8; 6], dst: IpAddr },
}

/// The peer component: other nodes' pod CIDRs in this node's kernel.
#[derive(Debug)]
pub(crate) struct Peers {
    base: Arc<Base>,
    ports: Arc<Ports>,
    /// Serializes peer changes (they share the VXLAN device's tables).
    lock: tokio::sync::Mutex<()>,
}

impl Peers {
    pub(crate) fn new(base: Arc<Base>, ports: Arc<Ports>) -> Peers {
        Peers { base, ports, lock: tokio::sync::Mutex::new(()) }
    }

    fn path_for(&self, peer: &Peer, cidr: &IpNetwork) -> Result<Path> {
        let (_, ul) = self.base.net_setup().underlay.ok_or_else(|| no_underlay(&peer.name))?;
        let same_family = peer.underlay_ip.is_ipv4() == cidr.is_ipv4();
        let on_link = ul.contains(peer.underlay_ip) && ul.is_ipv4() == peer.underlay_ip.is_ipv4();
        match self.base.cfg.cross_node {
            CrossNodeMode::Overlay => Ok(Path::Overlay),
            CrossNodeMode::Auto if on_link && same_family => Ok(Path::Routed),
            CrossNodeMode::Auto => Ok(Path::Overlay),
            CrossNodeMode::Routed if !on_link => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("add peer {}", peer.name),
                format!(
                    "{} is not on-link with this node's underlay {}: routed mode needs every peer on the same L2 segment (use auto or overlay)",
                    peer.underlay_ip,
                    ul.network().to_string() + "/" + &ul.prefix().to_string()
                ),
            )),
            CrossNodeMode::Routed if !same_family => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("add peer {}", peer.name),
                format!("pod CIDR {cidr} cannot be routed via the {} underlay address {}", if peer.underlay_ip.is_ipv4() { "IPv4" } else { "IPv6" }, peer.underlay_ip),
            )),
            CrossNodeMode::Routed => Ok(Path::Routed),
        }
    }

    /// The path each pod CIDR of `peer` takes (for status displays).
    pub(crate) fn paths(&self, peer: &Peer) -> Result<Vec<(IpNetwork, Path)>> {
        peer.pod_cidrs.iter().map(|c| Ok((*c, self.path_for(peer, c)?))).collect()
    }

    fn validate_peer(&self, peer: &Peer) -> Result<()> {
        let op = format!("validate peer {:?}", peer.name);
        crate::config::validate_name(&peer.name, "peer name").map_err(|m| Error::invalid(&op, m))?;
        if peer.name == self.base.cfg.name {
            return Err(Error::invalid(&op, "a node cannot be its own peer"));
        }
        if peer.pod_cidrs.is_empty() {
            return Err(Error::invalid(&op, "a peer needs at least one pod CIDR"));
        }
        for c in &peer.pod_cidrs {
            if c.ip() != c.network() {
                return Err(Error::invalid(&op, format!("pod CIDR {c} has host bits set")));
            }
            for p in &self.base.pools {
                let mine = p.cidr();
                if mine.is_ipv4() == c.is_ipv4() && (mine.contains(c.network()) || c.contains(mine.network())) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        op.clone(),
                        format!("pod CIDR {c} overlaps this node's {mine}"),
                    ));
                }
            }
        }
        if !crate::config::is_unicast_host(peer.underlay_ip) {
            return Err(Error::invalid(&op, format!("underlay IP {} is not a unicast address", peer.underlay_ip)));
        }
        if self.base.cfg.underlay.as_ref().is_some_and(|u| u.address == peer.underlay_ip) {
            return Err(Error::new(
                ErrorKind::Conflict,
                op,
                format!("underlay IP {} is this node's own", peer.underlay_ip),
            ));
        }
        if let Some(m) = peer.vtep_mac {
            if m[0] & 1 == 1 || m == [0; 6] {
                return Err(Error::invalid(&op, "VTEP MAC must be a unicast, non-zero address"));
            }
        }
        for c in &peer.pod_cidrs {
            self.path_for(peer, c)?;
        }
        if self.base.net_setup().vxlan_index.is_none()
            && peer.pod_cidrs.iter().any(|c| self.path_for(peer, c).ok() == Some(Path::Overlay))
        {
            return Err(Error::invalid(&op, "overlay path needed but the node has no VXLAN device"));
        }
        Ok(())
    }

    fn entries(&self, peer: &Peer) -> Result<Vec<Entry>> {
        let mut out = vec![];
        let mut fdb = false;
        for c in &peer.pod_cidrs {
            match self.path_for(peer, c)? {
                Path::Overlay => {
                    let vx = self.base.net_setup().vxlan_index.ok_or_else(|| no_underlay(&peer.name))?;
                    let gw = c.network();
                    out.push(Entry::Route { dst: *c, via: gw, oif: vx, onlink: true });
                    out.push(Entry::Neigh { ip: gw, mac: peer.mac() });
                    if !fdb {
                        out.push(Entry::Fdb { mac: peer.mac(), dst: peer.underlay_ip });
                        fdb = true;
                    }
                }
                Path::Routed => {
                    let (ul, _) = self.base.net_setup().underlay.ok_or_else(|| no_underlay(&peer.name))?;
                    out.push(Entry::Route { dst: *c, via: peer.underlay_ip, oif: ul, onlink: false });
                }
            }
        }
        Ok(out)
    }

    async fn apply(&self, e: &Entry) -> std::result::Result<(), NetlinkError> {
        let nl = &self.base.nl;
        match e {
            Entry::Route { dst, via, oif, onlink } => {
                nl.replace_gateway_route(dst.ip(), dst.prefix(), *via, *oif, *onlink, PEER_ROUTE_PROTOCOL).await
            }
            Entry::Neigh { ip, mac } => nl.replace_neighbour(self.vxlan(), *ip, mac).await,
            Entry::Fdb { mac, dst } => nl.fdb_replace(self.vxlan(), *mac, *dst).await,
        }
    }

    async fn unapply(&self, e: &Entry) -> std::result::Result<(), NetlinkError> {
        let nl = &self.base.nl;
        match e {
            Entry::Route { dst, .. } => nl.delete_route(dst.ip(), dst.prefix()).await,
            Entry::Neigh { ip, .. } => nl.delete_neighbour(self.vxlan(), *ip).await,
            Entry::Fdb { mac, dst } => nl.fdb_delete(self.vxlan(), *mac, *dst).await,
        }
    }

    /// The VXLAN device's index for neighbour and FDB entries (0 without one: such entries are
    /// only planned for an overlay path, which needs the device).
    fn vxlan(&self) -> u32 {
        self.base.net_setup().vxlan_index.unwrap_or(0)
    }

    /// Add or update one peer: O(1) kernel requests whatever the number of peers.
    pub(crate) async fn add(&self, peer: &Peer) -> Result<()> {
        let span = tracing::info_span!("add_peer", node = %self.base.cfg.name, peer = %peer.name);
        async {
            self.validate_peer(peer)?;
            let _g = self.lock.lock().await;
            let new: Vec<Entry> = self.entries(peer)?;
            let old_peer = self.base.store.peer(&peer.name)?;
            let old: Vec<Entry> = old_peer.as_ref().and_then(|p| self.entries(p).ok()).unwrap_or_default();
            let op = format!("add peer {}", peer.name);
            for e in old.iter().filter(|e| !new.contains(e)) {
                self.unapply(e).await.map_err(|err| err.into_error(format!("{op}: remove stale {e:?}")))?;
            }
            // Entries the record says are already in place are not re-sent: an update costs only
            // what changed. `sync_peers` is the repair path that compares with the kernel.
            for e in new.iter().filter(|e| !old.contains(e)) {
                self.apply(e).await.map_err(|err| err.into_error(format!("{op}: {e:?}")))?;
            }
            self.base.store.save_peer(peer)?;
            self.ports.no_masq_peer_changed(old_peer.map(|p| p.underlay_ip), Some(peer.underlay_ip))
        }
        .instrument(span)
        .await
    }

    /// Remove one peer's entries; unknown peers are success.
    pub(crate) async fn remove(&self, name: &str) -> Result<()> {
        let span = tracing::info_span!("remove_peer", node = %self.base.cfg.name, peer = %name);
        async {
            crate::config::validate_name(name, "peer name")
                .map_err(|m| Error::invalid(format!("remove peer {name:?}"), m))?;
            let _g = self.lock.lock().await;
            let old = self.base.store.peer(name)?;
            if let Some(p) = &old {
                for e in self.entries(p).unwrap_or_default() {
                    self.unapply(&e).await.map_err(|err| err.into_error(format!("remove peer {name}: {e:?}")))?;
                }
            }
            self.base.store.remove_peer(name).map_err(|e| e.context(format!("remove peer {name}")))?;
            self.ports.no_masq_peer_changed(old.map(|p| p.underlay_ip), None)
        }
        .instrument(span)
        .await
    }

    /// The peers this node is configured with.
    pub(crate) async fn list(&self) -> Result<Vec<Peer>> {
        self.base.store.peers()
    }

    /// Converge the node to exactly `peers`: add what is missing, fix what changed, and remove
    /// every peer route, neighbour and FDB entry not in the list, including ones an earlier run
    /// (or a crashed agent) left in the kernel.
    pub(crate) async fn sync(&self, peers: &[Peer]) -> Result<SyncReport> {
        let span = tracing::info_span!("sync_peers", node = %self.base.cfg.name, peers = peers.len());
        async {
            let mut names = HashSet::new();
            for p in peers {
                self.validate_peer(p)?;
                if !names.insert(p.name.as_str()) {
                    return Err(Error::invalid("sync peers", format!("peer {} listed twice", p.name)));
                }
            }
            let _g = self.lock.lock().await;
            let mut desired: HashSet<Entry> = HashSet::new();
            for p in peers {
                desired.extend(self.entries(p)?);
            }
            let actual = self.kernel_entries().await.map_err(|e| e.into_error("sync peers: read kernel state"))?;
            let stale: Vec<&Entry> = actual.iter().filter(|e| !desired.contains(e)).collect();
            let missing: Vec<&Entry> = desired.iter().filter(|e| !actual.contains(e)).collect();
            let mut rep = SyncReport { peers: peers.len(), added: missing.len(), removed: stale.len() };
            // Routes first: removing a stale route and then adding its replacement keeps the
            // window without a route as short as the requests.
            all_ok(stale.iter().map(|e| self.unapply(e)))
                .await
                .map_err(|e| e.into_error("sync peers: remove stale entry"))?;
            all_ok(missing.iter().map(|e| self.apply(e))).await.map_err(|e| e.into_error("sync peers: add entry"))?;
            let keep: HashSet<&str> = peers.iter().map(|p| p.name.as_str()).collect();
            let store = &self.base.store;
            for old in store.peers()? {
                if !keep.contains(old.name.as_str()) {
                    store.remove_peer(&old.name)?;
                }
            }
            for p in peers {
                if store.peer(&p.name)?.as_ref() != Some(p) {
                    store.save_peer(p)?;
                }
            }
            self.ports.no_masq_reset()?;
            rep.peers = peers.len();
            Ok(rep)
        }
        .instrument(span)
        .await
    }

    /// Every peer entry currently in the kernel: routes with our protocol, and the VXLAN
    /// device's neighbours and FDB entries (the device is ours alone).
    async fn kernel_entries(&self) -> std::result::Result<HashSet<Entry>, NetlinkError> {
        let mut out = HashSet::new();
        for v6 in [false, true] {
            for r in self.base.nl.routes(v6).await? {
                if r.header.protocol != RouteProtocol::Other(PEER_ROUTE_PROTOCOL) {
                    continue;
                }
                let (Some((d, plen)), Some(gw), Some(oif)) = (
                    crate::kernel::netlink::route_destination(&r),
                    crate::kernel::netlink::route_gateway(&r),
                    crate::kernel::netlink::route_oif(&r),
                ) else {
                    continue;
                };
                let Ok(dst) = IpNetwork::new(d, plen) else { continue };
                let onlink = r.header.flags.contains(rtnetlink::packet_route::route::RouteFlags::Onlink);
                out.insert(Entry::Route { dst, via: gw, oif, onlink });
            }
        }
        if let Some(vx) = self.base.net_setup().vxlan_index {
            for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
                for n in self.base.nl.neighbours(vx, fam).await? {
                    // Only permanent entries are podnet's; the kernel adds NOARP ones of its own
                    // (IPv6 multicast, e.g. ff02::16) that must be left alone.
                    if n.header.state != rtnetlink::packet_route::neighbour::NeighbourState::Permanent {
                        continue;
                    }
                    if let (Some(ip), Some(mac)) = ip_and_mac(&n) {
                        out.insert(Entry::Neigh { ip, mac });
                    }
                }
            }
            for n in self.base.nl.neighbours(vx, AddressFamily::Bridge).await? {
                if let (Some(dst), Some(mac)) = ip_and_mac(&n) {
                    out.insert(Entry::Fdb { mac, dst });
                }
            }
        }
        Ok(out)
    }
}

/// The address and MAC of a neighbour or FDB message. AF_BRIDGE (FDB) messages carry the
/// VTEP address as raw bytes, which the crate does not decode.
fn ip_and_mac(n: &rtnetlink::packet_route::neighbour::NeighbourMessage) -> (Option<IpAddr>, Option<[u8; 6]>) {
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) => ip = Some(IpAddr::V4(*x)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(x)) => ip = Some(IpAddr::V6(*x)),
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                ip = match b.len() {
                    4 => <[u8; 4]>::try_from(&b[..]).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(&b[..]).ok().map(IpAddr::from),
                    _ => None,
                }
            }
            NeighbourAttribute::LinkLayerAddress(m) => mac = <[u8; 6]>::try_from(&m[..]).ok(),
            _ => {}
        }
    }
    (ip, mac)
}

fn no_underlay(peer: &str) -> Error {
    Error::invalid(format!("add peer {peer}"), "the node has no underlay address configured")
}
