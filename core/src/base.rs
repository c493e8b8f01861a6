//! What every component of a node shares: its configuration, its netns and netlink connection,
//! its address pools and state store, and the node-level network it sets up once (forwarding,
//! the underlay and VXLAN device, the bridge): at open, or for an attached node at the first call
//! that needs it. Components hold an `Arc<Base>`; nothing here knows of sandboxes, peers or ports.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use rtnetlink::sys::protocols::NETLINK_ROUTE;

use crate::config::{stable_mac, vtep_mac, NodeConfig, PodMode};
use crate::ipam::Pool;
use crate::kernel::netlink::Netlink;
use crate::kernel::netns;
use crate::store::Store;
use crate::{Error, ErrorKind, Result};

/// Link-local gateway of routed pods (Calico's convention).
pub const ROUTED_GW_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);
/// IPv6 link-local gateway of routed pods (also the bridge's DAD-free link-local).
pub const ROUTED_GW_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// The shared part of a node: its kernel side and its state store.
#[derive(Debug)]
pub(crate) struct Base {
    net: Net,
    pub(crate) store: Store,
}

impl std::ops::Deref for Base {
    type Target = Net;
    fn deref(&self) -> &Net {
        &self.net
    }
}

impl Base {
    /// Set up the node's kernel side (unless `attach`: then at the first call that needs it),
    /// then open its store: an open that fails in the kernel (no such underlay, a bridge name
    /// taken) leaves no state dir behind.
    pub(crate) async fn open(cfg: NodeConfig, attach: bool) -> Result<Base> {
        let net = Net::open(cfg).await?;
        if !attach {
            net.ready().await?;
        }
        let store = Store::open(&net.state_dir, &net.pools)?;
        Ok(Base { net, store })
    }
}

/// What setting up the node-level network found and made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Underlay interface index and the node's underlay address with its prefix.
    pub(crate) underlay: Option<(u32, IpNetwork)>,
    /// VXLAN device index, when an overlay is configured.
    pub(crate) vxlan_index: Option<u32>,
    /// MTU of the bridge and the veths (the VXLAN MTU when an overlay is used).
    pub(crate) pod_mtu: u32,
}

/// The node-level network: netns, netlink, pools, and what `open` set up in the kernel.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) cfg: NodeConfig,
    pub(crate) state_dir: PathBuf,
    pub(crate) netns_file: File,
    pub(crate) nl: Netlink,
    pub(crate) pools: Vec<Pool>,
    bridge_index: tokio::sync::OnceCell<u32>,
    setup: tokio::sync::OnceCell<Setup>,
    netns_dir_ready: std::sync::OnceLock<()>,
}

impl Net {
    /// Bind to the node's netns and check its pools (the node-level network is set up by
    /// `ready`).
    async fn open(cfg: NodeConfig) -> Result<Net> {
        let netns_file = match &cfg.netns {
            Some(p) => netns::open(p).map_err(|e| e.into_error(format!("open node netns {}", p.display())))?,
            None => netns::current().map_err(|e| e.into_error("open current netns"))?,
        };
        let state_dir = cfg.effective_state_dir();
        let mut pools = vec![];
        for p in &cfg.pools {
            pools.push(Pool::new(p).map_err(|e| e.into_error(format!("open pool {}", p.cidr)))?);
        }
        let sock = netns::netlink_socket_in(&netns_file, NETLINK_ROUTE)
            .map_err(|e| e.into_error("open netlink socket in node netns"))?;
        Ok(Net {
            cfg,
            state_dir,
            netns_file,
            nl: Netlink::from_socket(sock),
            pools,
            bridge_index: tokio::sync::OnceCell::new(),
            setup: tokio::sync::OnceCell::new(),
            netns_dir_ready: std::sync::OnceLock::new(),
        })
    }

    /// Set up the node-level network, once (idempotent in the kernel too): forwarding, the
    /// underlay and VXLAN device, and in bridge mode the bridge. Every call that changes the
    /// node's network runs it first; deletes, reads and gc need none of it.
    pub(crate) async fn ready(&self) -> Result<Setup> {
        let s = self.setup().await?;
        if self.cfg.mode == PodMode::Bridge {
            self.bridge().await?;
        }
        Ok(s)
    }

    async fn setup(&self) -> Result<Setup> {
        self.setup.get_or_try_init(|| self.init()).await.copied()
    }

    /// What the setup found, or (not set up yet: an attached node that has made no change)
    /// what it starts from.
    pub(crate) fn net_setup(&self) -> Setup {
        self.setup.get().copied().unwrap_or_else(|| self.bare_setup())
    }

    /// No underlay, no VXLAN device, the configured MTU.
    fn bare_setup(&self) -> Setup {
        Setup { underlay: None, vxlan_index: None, pod_mtu: self.cfg.mtu }
    }

    async fn init(&self) -> Result<Setup> {
        let has_v6 = self.pools.iter().any(|p| p.cidr().is_ipv6());
        let f = &self.netns_file;
        netns::write_sysctl(f, "net/ipv4/ip_forward", "1").map_err(|e| e.into_error("enable net.ipv4.ip_forward"))?;
        if has_v6 {
            netns::write_sysctl(f, "net/ipv6/conf/all/forwarding", "1")
                .map_err(|e| e.into_error("enable net.ipv6.conf.all.forwarding"))?;
        }
        self.nl.set_up_by_name("lo").await.map_err(|e| e.into_error("set lo up in node netns"))?;
        self.init_underlay().await
    }

    /// The node bridge, created on first use (at open in bridge mode; on a routed-mode node when
    /// the first bridge-mode sandbox arrives). Idempotent.
    pub(crate) async fn bridge(&self) -> Result<u32> {
        self.bridge_index
            .get_or_try_init(|| async { self.init_bridge(self.setup().await?.pod_mtu).await })
            .await
            .copied()
    }

    async fn init_bridge(&self, pod_mtu: u32) -> Result<u32> {
        let name = self.cfg.bridge_name.clone();
        let op = || format!("ensure bridge {name}");
        let idx = self.nl.ensure_bridge(&name, pod_mtu).await.map_err(|e| e.into_error(op()))?;
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
                .add_address(idx, std::net::IpAddr::V6(ROUTED_GW_V6), 64)
                .await
                .map_err(|e| e.into_error(format!("add link-local fe80::1 to bridge {name}")))?;
        }
        Ok(idx)
    }

    async fn init_underlay(&self) -> Result<Setup> {
        let mut setup = self.bare_setup();
        let Some(u) = self.cfg.underlay.clone() else { return Ok(setup) };
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
        setup.underlay = Some((ul.index, net));
        if self.cfg.cross_node == crate::config::CrossNodeMode::Routed {
            return Ok(setup);
        }
        // VXLAN adds 50 bytes over IPv4 (70 over IPv6); pods must fit inside.
        let overhead = if u.address.is_ipv4() { 50 } else { 70 };
        let vx_mtu = ul.mtu.saturating_sub(overhead);
        setup.pod_mtu = setup.pod_mtu.min(vx_mtu);
        let vx = &self.cfg.vxlan;
        let mac = vtep_mac(&self.cfg.name);
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
        // flannel's setting: a tunnel device takes no router advertisements (a rogue RA on the
        // overlay must not add addresses or default routes). The kernel accepts no IPv6 devconf
        // over netlink (inet6_set_link_af knows only the token and addr_gen_mode), hence the
        // sysctl; a kernel without IPv6 has nothing to turn off.
        let ra = format!("net/ipv6/conf/{}/accept_ra", vx.device);
        if let Err(e) = netns::write_sysctl(&self.netns_file, &ra, "0") {
            if std::path::Path::new("/proc/sys/net/ipv6").exists() {
                return Err(e.into_error(format!("set accept_ra=0 on {}", vx.device)));
            }
        }
        // Off only where the kernel still corrupts NATed zero UDP checksums (see VxlanConfig).
        if vx.effective_disable_tx_checksum_offload() {
            crate::kernel::ethtool::disable_tx_checksum(&self.netns_file, &vx.device).map_err(|e| {
                Error::new(ErrorKind::Kernel, format!("disable TX checksum offload on {}", vx.device), e)
            })?;
        }
        setup.vxlan_index = Some(idx);
        Ok(setup)
    }

    /// The bridge's index if it exists (never creates it): known once this process set it up,
    /// else looked up (another process may have made it).
    pub(crate) async fn bridge_if_exists(&self) -> Option<u32> {
        if let Some(i) = self.bridge_index.get() {
            return Some(*i);
        }
        self.nl.link_by_name(&self.cfg.bridge_name).await.ok().flatten().map(|l| l.index)
    }

    /// The gateway addresses pods use (bridge addresses in bridge mode).
    pub(crate) fn gateways(&self) -> Vec<IpAddr> {
        self.pools.iter().map(|p| p.gateway()).collect()
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
}
