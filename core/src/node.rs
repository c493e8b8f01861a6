//! The node: the public face of the library. A `Node` is assembled from owned parts, each in its
//! own folder: the shared base (config, netns, netlink, pools, store), host ports, peers and
//! pods. This file opens it and routes each public call to the component that owns it.

use std::fs::File;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ipnetwork::IpNetwork;
use tracing::Instrument;

use crate::base::Base;
use crate::config::Peer;
use crate::config::{NodeConfig, PortMapping, SandboxSpec};
use crate::peers::{Path, Peers, SyncReport};
use crate::pods::{CheckReport, FailPoint, GcReport, Pods};
use crate::ports::{PortEntry, Ports, RepairReport};
use crate::services::{Service, Services};
use crate::store::Sandbox;
use crate::Result;

/// A node: every operation happens in its netns, from whichever thread calls, without ever
/// changing the calling thread's namespaces. Safe to share across tasks and threads (`Arc`);
/// calls for the same sandbox id serialize, different ids run in parallel.
#[derive(Debug)]
pub struct Node {
    base: Arc<Base>,
    ports: Arc<Ports>,
    peers: Peers,
    pods: Pods,
    services: Services,
    /// Whether sandbox creates are accepted ([`Node::set_ready`]).
    ready: AtomicBool,
}

impl Node {
    /// Open a node: validate the config, bind to its netns and initialize it (idempotent):
    /// forwarding on, in bridge mode the bridge with the gateway addresses and MTU, the VXLAN
    /// device when an underlay is configured, and podnet's nftables table with every recorded
    /// host port.
    ///
    /// Must be called from within a tokio runtime (the netlink connection is spawned on it);
    /// the blocking facade [`crate::blocking::Node`] owns one for you.
    pub async fn open(cfg: NodeConfig) -> Result<Node> {
        Node::open_with(cfg, false).await
    }

    /// Open a node some earlier [`Node::open`] set up, without setting up its node-level
    /// network now: for a short-lived process that deletes, checks, lists or collects (the CNI
    /// plugin's DEL, CHECK and GC), which need none of it. Store, host ports and recovery are as
    /// with `open`. The first call that changes the node's network (a create, host ports, peers,
    /// services, repair) sets it up, as `open` would have; until then [`Node::pod_mtu`] is the
    /// configured MTU, [`Node::vtep_mac`] is `None` and [`Node::peer_paths`] knows no underlay.
    pub async fn attach(cfg: NodeConfig) -> Result<Node> {
        Node::open_with(cfg, true).await
    }

    async fn open_with(cfg: NodeConfig, attach: bool) -> Result<Node> {
        let span = tracing::info_span!("node_open", node = %cfg.name, attach);
        async move {
            cfg.validate()?;
            let base = Arc::new(Base::open(cfg, attach).await?);
            let services = Services::open(base.clone())?;
            let ports = Arc::new(Ports::open(base.clone())?);
            base.store.save_config(&base.cfg)?;
            let node = Node {
                peers: Peers::new(base.clone(), ports.clone()),
                pods: Pods::new(base.clone(), ports.clone()),
                services,
                base,
                ports,
                ready: AtomicBool::new(true),
            };
            // Finish what processes that died mid-way left (never a live process's work).
            node.pods.recover().await?;
            Ok(node)
        }
        .instrument(span)
        .await
    }

    // --- sandboxes (pods/)

    /// Create a sandbox (idempotent: the same spec again returns the same sandbox). While the
    /// node is not ready ([`Node::set_ready`]) every create fails with
    /// [`crate::ErrorKind::NotReady`] and changes nothing.
    pub async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        if let Some(why) = self.not_ready()? {
            return Err(crate::Error::new(crate::ErrorKind::NotReady, format!("create sandbox {}", spec.id), why));
        }
        self.base.ready().await?;
        self.pods.create(spec).await
    }

    /// Delete a sandbox: unmap ports, release addresses, remove the netns (the kernel then
    /// destroys the veth pair with it), remove the record. Idempotent: already-gone parts are
    /// success; every step runs even if one fails, and the errors are returned together.
    ///
    /// When it returns Ok the addresses are free, the state is gone and a create with the same
    /// id succeeds, even though the kernel may still be finishing the veth's destruction.
    pub async fn delete_sandbox(&self, id: &str) -> Result<()> {
        self.pods.delete(id).await
    }

    /// The record of one sandbox.
    pub async fn get_sandbox(&self, id: &str) -> Result<Sandbox> {
        self.pods.get(id).await
    }

    /// All sandboxes of this node, sorted by id.
    pub async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        self.pods.list().await
    }

    /// Compare one sandbox's kernel state with its record and say what differs.
    pub async fn check_sandbox(&self, id: &str) -> Result<CheckReport> {
        self.pods.check(id).await
    }

    /// Remove every sandbox whose id is not in `live`, and every orphan podnet left behind:
    /// the interrupted creates and deletes of processes that died, netns pins and podnet-marked
    /// host veths without a sandbox, and the reservations of deleted sandboxes whose veth is
    /// gone. A create or delete a live process is running is never touched, nor a sandbox whose
    /// create started after this call. `live` must hold every sandbox whose create the runtime
    /// has started (its own sandbox store does); to remove only orphans, use [`Node::gc_orphans`].
    pub async fn gc(&self, live: &[&str]) -> Result<GcReport> {
        self.gc_then_repair_services(Some(live)).await
    }

    /// Remove only what no sandbox owns (as [`Node::gc`] does), keeping every sandbox: safe to
    /// run at any time, from any process, while others create and delete.
    pub async fn gc_orphans(&self) -> Result<GcReport> {
        self.gc_then_repair_services(None).await
    }

    /// gc (which repairs the host-port table), then the services table: a flushed ruleset is
    /// restored by either.
    async fn gc_then_repair_services(&self, live: Option<&[&str]>) -> Result<GcReport> {
        let mut rep = self.pods.gc(live).await?;
        if let Err(e) = self.services.repair().await {
            rep.errors.push(e.to_string());
        }
        Ok(rep)
    }

    // --- host ports (ports/, per sandbox through pods/)

    /// Add host ports to an existing sandbox (idempotent for mappings it already has).
    pub async fn add_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.base.ready().await?;
        self.pods.add_ports(id, ports).await
    }

    /// Remove host ports from a sandbox; mappings it does not have are ignored.
    pub async fn remove_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.pods.remove_ports(id, ports).await
    }

    /// Every host port mapped on this node.
    pub async fn list_ports(&self) -> Result<Vec<PortEntry>> {
        self.pods.list_ports().await
    }

    /// Re-install podnet's nftables table and every recorded host port if someone flushed the
    /// ruleset (or deleted elements), and the services table from the services this handle
    /// programmed ([`Node::repair_services`]). Other tables are never touched.
    pub async fn repair(&self) -> Result<RepairReport> {
        self.base.ready().await?;
        let mut rep = self.ports.repair().await?;
        rep.services_rebuilt = self.services.repair().await?;
        Ok(rep)
    }

    // --- peers (peers/)

    /// Add or update one peer: O(1) kernel requests whatever the number of peers.
    pub async fn add_peer(&self, peer: &Peer) -> Result<()> {
        self.base.ready().await?;
        self.peers.add(peer).await
    }

    /// Remove one peer's entries; unknown peers are success.
    pub async fn remove_peer(&self, name: &str) -> Result<()> {
        self.base.ready().await?;
        self.peers.remove(name).await
    }

    /// Converge the node to exactly `peers`: add what is missing, fix what changed, and remove
    /// every peer route, neighbour and FDB entry not in the list, including ones an earlier run
    /// (or a crashed agent) left in the kernel.
    pub async fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport> {
        self.base.ready().await?;
        self.peers.sync(peers).await
    }

    /// The peers this node is configured with.
    pub async fn list_peers(&self) -> Result<Vec<Peer>> {
        self.base.ready().await?;
        self.peers.list().await
    }

    /// The path each pod CIDR of `peer` takes (for status displays).
    pub fn peer_paths(&self, peer: &Peer) -> Result<Vec<(IpNetwork, Path)>> {
        self.peers.paths(peer)
    }

    // --- services (services/)

    /// Add or replace a service: validated (ClusterIPs in the node's service CIDRs, ports in
    /// range, no IP/port/protocol or NodePort another service holds), then programmed as the
    /// difference to its previous version in one nf_tables batch. Invalid input is
    /// `InvalidArgument`, a clash `Conflict`; either changes nothing.
    pub async fn set_service(&self, svc: &Service) -> Result<()> {
        self.base.ready().await?;
        self.services.set_service(svc.clone()).await
    }

    /// Remove a service (its elements, and UDP conntrack entries towards its endpoints).
    /// A missing service is success.
    pub async fn remove_service(&self, name: &str) -> Result<()> {
        self.services.remove_service(name.to_string()).await
    }

    /// Make the node's services exactly `svcs` (all validated first; nothing changes on error).
    pub async fn sync_services(&self, svcs: &[Service]) -> Result<()> {
        self.base.ready().await?;
        self.services.sync_services(svcs.to_vec()).await
    }

    /// Re-install the services table if someone removed or replaced it (`nft flush ruleset`);
    /// returns whether it was rebuilt. Every service change does the same check first.
    pub async fn repair_services(&self) -> Result<bool> {
        self.base.ready().await?;
        self.services.repair().await
    }

    /// The services this node serves, by name.
    pub async fn list_services(&self) -> Result<Vec<Service>> {
        self.services.list().await
    }

    // --- the node itself

    /// MTU of pod interfaces on this node.
    pub fn pod_mtu(&self) -> u32 {
        self.base.net_setup().pod_mtu
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.base.cfg
    }

    /// The node's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.base.state_dir
    }

    /// The node's netns (an open fd on it).
    pub fn netns(&self) -> &File {
        &self.base.netns_file
    }

    /// The node's own VTEP MAC (what peers must program for it), when it has a VXLAN device.
    pub fn vtep_mac(&self) -> Option<[u8; 6]> {
        self.base.net_setup().vxlan_index.map(|_| crate::config::vtep_mac(&self.base.cfg.name))
    }

    /// Accept sandbox creates (`true`, the state after [`Node::open`]) or refuse them with
    /// [`crate::ErrorKind::NotReady`] (`false`). A cluster agent opens the node not ready and
    /// makes it ready once the node's subnet is leased and its peers are programmed, so no pod is
    /// created half-connected. The gate holds for every client of the node, in this process and
    /// in others (a CNI plugin, the CLI), while this `Node` value lives: it is kept in the node's
    /// state with this handle as its owner, and a process that dies takes its gate with it.
    /// Deletes, reads and peers are never refused. Fails only when the state cannot be written
    /// (then only this `Node` value is gated).
    pub fn set_ready(&self, ready: bool) -> crate::Result<()> {
        self.ready.store(ready, Ordering::Release);
        self.base.store.set_gate((!ready).then(|| self.not_ready_reason()).as_deref())
    }

    fn not_ready_reason(&self) -> String {
        format!("node {} is not ready for pods yet (its cluster agent is still starting)", self.base.cfg.name)
    }

    /// Whether sandbox creates are accepted now, by this value's gate and every other live
    /// client's (see [`Node::set_ready`]); a state that cannot be read counts as not ready.
    pub fn is_ready(&self) -> bool {
        matches!(self.not_ready(), Ok(None))
    }

    /// How long ago host ports were last removed on this node, by any process (None: never, or
    /// unknown). Removing nf_tables elements leaves the kernel a deferred free to do for one RCU
    /// grace period, and the last close of any nf_tables socket in the node's netns waits for
    /// it: a short-lived process (the CNI plugin) uses this to tell whether its exit would wait.
    pub fn since_host_ports_removed(&self) -> Option<std::time::Duration> {
        let at = self.base.store.ports_removed_ms().ok().flatten()?;
        u64::try_from(crate::store::now_ms() - at).ok().map(std::time::Duration::from_millis)
    }

    /// Why creates are refused, if they are.
    fn not_ready(&self) -> crate::Result<Option<String>> {
        if !self.ready.load(Ordering::Acquire) {
            return Ok(Some(self.not_ready_reason()));
        }
        self.base.store.gate()
    }

    /// The node's netlink connection (podnet's own tools and tests).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn netlink(&self) -> &crate::kernel::netlink::Netlink {
        &self.base.nl
    }

    /// The gateway addresses pods use (bridge addresses in bridge mode).
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.base.gateways()
    }

    /// Inject a failure at `point` in the next sandbox creations (None clears). For tests of
    /// rollback; a production caller never needs it.
    #[doc(hidden)]
    pub fn set_fail_point(&self, point: Option<FailPoint>) {
        self.pods.set_fail_point(point);
    }
}
