//! The node: one network namespace, its configuration, its netlink connection, its IPAM pools
//! and its sandbox records. The sandbox lifecycle (create, delete, check, list, gc) lives in
//! `sandbox.rs`; this file opens and initializes the node.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use std::sync::{Arc, Mutex};

use rtnetlink::sys::protocols::NETLINK_ROUTE;
use tracing::Instrument;

use crate::config::{NodeConfig, PodMode};
use crate::ipam::Pool;
use crate::kernel::netlink::Netlink;
use crate::kernel::netns;
use crate::store::Store;
use crate::{Error, ErrorKind, Result};

/// A step of sandbox creation at which a test can inject a failure to exercise rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailPoint {
    /// After the addresses were allocated.
    AfterIpam,
    /// After the netns was created.
    AfterNetns,
    /// After the veth pair was created.
    AfterVeth,
    /// After the host side was configured.
    AfterHost,
    /// After the pod side was configured.
    AfterPod,
    /// After the host ports were mapped.
    AfterPorts,
}

/// A node: every operation happens in its netns, from whichever thread calls, without ever
/// changing the calling thread's namespaces. Safe to share across tasks and threads (`Arc`);
/// calls for the same sandbox id serialize, different ids run in parallel.
#[derive(Debug)]
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) state_dir: PathBuf,
    pub(crate) netns_file: File,
    pub(crate) nl: Netlink,
    pub(crate) pools: Vec<Pool>,
    pub(crate) store: Store,
    pub(crate) bridge_index: tokio::sync::OnceCell<u32>,
    /// Underlay interface index and the node's underlay address with its prefix.
    pub(crate) underlay: Option<(u32, IpNetwork)>,
    /// VXLAN device index, when an overlay is configured.
    pub(crate) vxlan_index: Option<u32>,
    /// MTU of the bridge and the veths (the VXLAN MTU when an overlay is used).
    pub(crate) pod_mtu: u32,
    /// Serializes peer changes (they share the VXLAN device's tables).
    pub(crate) peer_lock: tokio::sync::Mutex<()>,
    pub(crate) locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) fail_point: Mutex<Option<FailPoint>>,
    pub(crate) netns_dir_ready: std::sync::OnceLock<()>,
    /// nftables socket and host-port index (set once at open).
    pub(crate) ports: std::sync::OnceLock<crate::ports::PortsCell>,
    /// Services: their programmed state and nf_tables socket.
    pub(crate) services: crate::services::Services,
}

impl Node {
    /// Open a node: validate the config, bind to its netns and initialize it (idempotent):
    /// forwarding on, and in bridge mode the bridge with the gateway addresses and MTU.
    ///
    /// Must be called from within a tokio runtime (the netlink connection is spawned on it);
    /// the blocking facade [`crate::blocking::Node`] owns one for you.
    pub async fn open(cfg: NodeConfig) -> Result<Node> {
        let span = tracing::info_span!("node_open", node = %cfg.name);
        async move {
            cfg.validate()?;
            let netns_file = match &cfg.netns {
                Some(p) => netns::open(p).map_err(|e| e.into_error(format!("open node netns {}", p.display())))?,
                None => netns::current().map_err(|e| e.into_error("open current netns"))?,
            };
            let state_dir = cfg.effective_state_dir();
            let store = Store::open(&state_dir)?;
            let mut pools = vec![];
            for p in &cfg.pools {
                let dir = state_dir.join("ipam").join(p.cidr.to_string().replace('/', "_"));
                pools.push(Pool::open(p, &dir).map_err(|e| e.into_error(format!("open pool {}", p.cidr)))?);
            }
            let sock = netns::netlink_socket_in(&netns_file, NETLINK_ROUTE)
                .map_err(|e| e.into_error("open netlink socket in node netns"))?;
            let nl = Netlink::from_socket(sock);
            let services = crate::services::Services::open(&netns_file, &cfg)?;
            let mut node = Node {
                cfg,
                state_dir,
                netns_file,
                nl,
                pools,
                store,
                bridge_index: tokio::sync::OnceCell::new(),
                underlay: None,
                vxlan_index: None,
                pod_mtu: 0,
                peer_lock: tokio::sync::Mutex::new(()),
                locks: Mutex::new(HashMap::new()),
                fail_point: Mutex::new(None),
                netns_dir_ready: std::sync::OnceLock::new(),
                ports: std::sync::OnceLock::new(),
                services,
            };
            node.init().await?;
            let ports = node.init_nft()?;
            let _ = node.ports.set(ports);
            node.save_config()?;
            Ok(node)
        }
        .instrument(span)
        .await
    }

    async fn init(&mut self) -> Result<()> {
        let has_v6 = self.pools.iter().any(|p| p.cidr().is_ipv6());
        let f = &self.netns_file;
        netns::write_sysctl(f, "net/ipv4/ip_forward", "1").map_err(|e| e.into_error("enable net.ipv4.ip_forward"))?;
        if has_v6 {
            netns::write_sysctl(f, "net/ipv6/conf/all/forwarding", "1")
                .map_err(|e| e.into_error("enable net.ipv6.conf.all.forwarding"))?;
        }
        self.nl.set_up_by_name("lo").await.map_err(|e| e.into_error("set lo up in node netns"))?;
        self.pod_mtu = self.cfg.mtu;
        self.init_underlay().await?;
        if self.cfg.mode == PodMode::Bridge {
            self.bridge().await?;
        }
        Ok(())
    }

    /// The node bridge, created on first use (at open in bridge mode; on a routed-mode node when
    /// the first bridge-mode sandbox arrives). Idempotent.
    pub(crate) async fn bridge(&self) -> Result<u32> {
        self.bridge_index.get_or_try_init(|| self.init_bridge()).await.copied()
    }

    async fn init_bridge(&self) -> Result<u32> {
        let name = self.cfg.bridge_name.clone();
        let op = || format!("ensure bridge {name}");
        let idx = self.nl.ensure_bridge(&name, self.pod_mtu).await.map_err(|e| e.into_error(op()))?;
        // A bridge without an explicit MAC takes the lowest port MAC, so the gateway's MAC
        // would change as pods come and go and every pod's ARP entry would go stale.
        // Set only when it differs: setting a MAC flushes the bridge's neighbour cache.
        let mac = stable_mac(0x02, &format!("bridge/{}", self.cfg.name));
        let cur = self.nl.link_by_index(idx).await.map_err(|e| e.into_error(op()))?;
        if cur.is_none_or(|l| l.mac != mac) {
            self.nl
                .handle()
                .link()
                .set(rtnetlink::LinkUnspec::new_with_index(idx).address(mac.to_vec()).build())
                .execute()
                .await
                .map_err(|e| crate::kernel::netlink::NetlinkError::from(e).into_error(op()))?;
        }
        // route_localnet: host ports on 127.0.0.1 are DNATed to pods behind the bridge, and the
        // kernel drops a loopback source leaving a non-loopback device unless it is on there.
        // proxy_arp: bridge pods reach routed-mode pods of the same CIDR (their /32 routes point
        // at their own veths) through the host, which answers ARP for them.
        let mut conf = rtnetlink::packet_route::link::InetDevConf::default();
        conf.route_localnet = 1;
        conf.proxy_arp = 1;
        self.nl.set_inet_devconf(idx, conf).await.map_err(|e| e.into_error(format!("configure {name}")))?;
        if self.pools.iter().any(|p| p.cidr().is_ipv6()) {
            // The IPv6 twin of proxy ARP: per-address proxy entries, answered when proxy_ndp is on.
            netns::write_sysctl(&self.netns_file, &format!("net/ipv6/conf/{name}/proxy_ndp"), "1")
                .map_err(|e| e.into_error(format!("enable proxy_ndp on {name}")))?;
        }
        for p in &self.pools {
            self.nl
                .add_address(idx, p.gateway(), p.cidr().prefix())
                .await
                .map_err(|e| e.into_error(format!("add gateway {} to bridge {name}", p.gateway())))?;
        }
        if self.pools.iter().any(|p| p.cidr().is_ipv6()) {
            // The kernel sends neighbour solicitations (for traffic it forwards onto the bridge)
            // only from a link-local address that has finished DAD, which the bridge's own
            // takes about a second to do. A fixed link-local without DAD is usable at once.
            self.nl
                .add_address(idx, std::net::IpAddr::V6(crate::pods::ROUTED_GW_V6), 64)
                .await
                .map_err(|e| e.into_error(format!("add link-local fe80::1 to bridge {name}")))?;
        }
        Ok(idx)
    }

    /// Record the config the node was opened with, so operator tools (`podnet ... --node N`)
    /// can reopen it by name.
    fn save_config(&self) -> Result<()> {
        let p = self.state_dir.join("node.json");
        let data = serde_json::to_vec_pretty(&self.cfg)
            .map_err(|e| Error::new(ErrorKind::Internal, "encode node config", e))?;
        crate::ipam::write_atomic(&p, &data).map_err(|e| Error::new(ErrorKind::Io, format!("save {}", p.display()), e))
    }

    async fn init_underlay(&mut self) -> Result<()> {
        let Some(u) = self.cfg.underlay.clone() else { return Ok(()) };
        let op = format!("find underlay address {}", u.address);
        let links = self.nl.links().await.map_err(|e| e.into_error(op.clone()))?;
        let mut found = None;
        for l in &links {
            if u.interface.as_deref().is_some_and(|i| i != l.name) {
                continue;
            }
            let addrs = self.nl.addresses(l.index).await.map_err(|e| e.into_error(op.clone()))?;
            if let Some((ip, plen)) = addrs.into_iter().find(|(ip, _)| *ip == u.address) {
                let net = IpNetwork::new(ip, plen).map_err(|e| Error::new(ErrorKind::Internal, op.clone(), e))?;
                found = Some((l.clone(), net));
                break;
            }
        }
        let (ul, net) = found.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, op.clone(), "no interface in the node netns holds this address")
        })?;
        self.underlay = Some((ul.index, net));
        if self.cfg.cross_node == crate::config::CrossNodeMode::Routed {
            return Ok(());
        }
        // VXLAN adds 50 bytes over IPv4 (70 over IPv6); pods must fit inside.
        let overhead = if u.address.is_ipv4() { 50 } else { 70 };
        let vx_mtu = ul.mtu.saturating_sub(overhead);
        self.pod_mtu = self.pod_mtu.min(vx_mtu);
        let vx = &self.cfg.vxlan;
        let mac = crate::peers::vtep_mac(&self.cfg.name);
        let idx = self
            .nl
            .ensure_vxlan(&vx.device, vx.vni, vx.port, u.address, ul.index, vx_mtu, mac)
            .await
            .map_err(|e| e.into_error(format!("ensure VXLAN device {}", vx.device)))?;
        // The VTEP address is the pod CIDR's network address (flannel's convention): traffic
        // from the node to remote pods leaves with a source that routes back over the overlay.
        for p in &self.pools {
            let plen = if p.cidr().is_ipv4() { 32 } else { 128 };
            self.nl
                .add_address(idx, p.cidr().network(), plen)
                .await
                .map_err(|e| e.into_error(format!("add VTEP address to {}", vx.device)))?;
        }
        if vx.disable_tx_checksum_offload {
            crate::kernel::ethtool::disable_tx_checksum(&self.netns_file, &vx.device).map_err(|e| {
                Error::new(ErrorKind::Kernel, format!("disable TX checksum offload on {}", vx.device), e)
            })?;
        }
        self.vxlan_index = Some(idx);
        Ok(())
    }

    /// MTU of pod interfaces on this node.
    pub fn pod_mtu(&self) -> u32 {
        self.pod_mtu
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The node's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// The node's netns (an open fd on it).
    pub fn netns(&self) -> &File {
        &self.netns_file
    }

    /// The node's netlink connection (for tests and advanced callers).
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The gateway addresses pods use (bridge addresses in bridge mode).
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.pools.iter().map(|p| p.gateway()).collect()
    }

    /// Inject a failure at `point` in the next sandbox creations (None clears). For tests of
    /// rollback; a production caller never needs it.
    #[doc(hidden)]
    pub fn set_fail_point(&self, point: Option<FailPoint>) {
        *self.fail_point.lock().unwrap_or_else(|p| p.into_inner()) = point;
    }

    pub(crate) fn check_fail_point(&self, point: FailPoint) -> Result<()> {
        if *self.fail_point.lock().unwrap_or_else(|p| p.into_inner()) == Some(point) {
            return Err(Error::new(ErrorKind::Internal, format!("injected failure at {point:?}"), "fail point"));
        }
        Ok(())
    }

    /// Make the pin dir a shared mount point, once per node: the recursive propagation change
    /// walks every pin under it, so doing it per create would cost O(pods).
    pub(crate) fn ensure_netns_dir(&self) -> Result<()> {
        if self.netns_dir_ready.get().is_some() {
            return Ok(());
        }
        netns::ensure_dir(&self.cfg.netns_dir).map_err(|e| e.into_error("prepare netns dir"))?;
        let _ = self.netns_dir_ready.set(());
        Ok(())
    }

    /// Run `f` while holding sandbox `id`'s lock: calls for one id serialize, different ids
    /// run in parallel.
    pub(crate) async fn serialized<T>(&self, id: &str, f: impl std::future::Future<Output = T>) -> T {
        let lock = {
            let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(id.to_string()).or_default().clone()
        };
        let res = {
            let _g = lock.lock().await;
            f.await
        };
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and `lock` hold it: no one else waits, drop the entry so the map does
        // not grow with every sandbox ever seen.
        if Arc::strong_count(&lock) == 2 {
            m.remove(id);
        }
        res
    }
}

/// FNV-1a, 64 bit: stable across runs and versions (std's hasher is not).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A locally administered unicast MAC whose first byte is `first`, derived from `seed`.
pub(crate) fn stable_mac(first: u8, seed: &str) -> [u8; 6] {
    let h = fnv1a(seed.as_bytes()).to_be_bytes();
    [first, h[0], h[1], h[2], h[3], h[4]]
}
