//! The sandbox lifecycle on one node: validate -> ipam -> netns -> veth -> host side -> pod
//! side -> record. Each step registers its undo; a failure runs the undos newest first and
//! returns the original error. Teardown is best-effort and idempotent.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::InetDevConf;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use tracing::Instrument;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::base::{Base, ROUTED_GW_V4, ROUTED_GW_V6};
use crate::config::fnv1a;
use crate::config::{NetnsSpec, PodMode, PortMapping, SandboxSpec};
use crate::ipam::Key;
use crate::kernel::netlink::Netlink;
use crate::kernel::netns;
use crate::ports::{PortEntry, Ports};
use crate::store::Sandbox;
use crate::{Error, ErrorKind, Result};
/// MAC of every routed-mode host veth: pods resolve the link-local gateway to it.
pub const ROUTED_HOST_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
/// Prefix of host-side veth names podnet creates.
pub const HOST_VETH_PREFIX: &str = "pn";

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// The sandbox id.
    pub id: String,
    /// One line per difference between the record and the kernel; empty when healthy.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// True when the kernel matches the record.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    /// Sandboxes deleted because they were not in the live list.
    pub sandboxes: Vec<String>,
    /// Orphaned address reservations released.
    pub ips: Vec<IpAddr>,
    /// Orphaned netns pins removed.
    pub netns: Vec<PathBuf>,
    /// Orphaned host veths deleted.
    pub links: Vec<String>,
    /// Errors met on the way (gc keeps going).
    pub errors: Vec<String>,
}

/// Host veth name: deterministic from (id, ifname), IFNAMSIZ-safe (14 bytes).
pub fn host_veth_name(id: &str, ifname: &str) -> String {
    let h = fnv1a(format!("{id}\0{ifname}").as_bytes());
    format!("{HOST_VETH_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

/// MAC of the pod interface: `0a:58:<IPv4>` as the CNI bridge plugin does (stable for the
/// address), or derived from the id for IPv6-only pods.
fn pod_mac(id: &str, ifname: &str, ips: &[IpAddr]) -> [u8; 6] {
    if let Some(IpAddr::V4(a)) = ips.iter().find(|i| i.is_ipv4()) {
        let o = a.octets();
        return [0x0a, 0x58, o[0], o[1], o[2], o[3]];
    }
    crate::config::stable_mac(0x0a, &format!("pod/{id}/{ifname}"))
}

fn mac_str(m: &[u8]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Runs on the thread that just created the pod netns: open the pod's netlink socket there (it
/// is born in the new netns, no second hop).
pub fn pod_netns_setup() -> std::io::Result<rtnetlink::sys::Socket> {
    rtnetlink::sys::Socket::new(NETLINK_ROUTE)
}

enum Undo {
    ReleaseIps(Key),
    RemoveNetns(PathBuf),
    DeleteLink(String),
    DeleteProxy(u32, IpAddr),
    RemovePorts(String, Vec<IpNetwork>, Vec<crate::config::PortMapping>),
}

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

/// The sandbox component: the lifecycle of every pod of the node.
#[derive(Debug)]
pub(crate) struct Pods {
    base: Arc<Base>,
    ports: Arc<Ports>,
    /// Per-sandbox locks: calls for one id serialize, different ids run in parallel.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fail_point: Mutex<Option<FailPoint>>,
}

impl Pods {
    pub(crate) fn new(base: Arc<Base>, ports: Arc<Ports>) -> Pods {
        Pods { base, ports, locks: Mutex::new(HashMap::new()), fail_point: Mutex::new(None) }
    }

    /// Inject a failure at `point` in the next creations (None clears).
    pub(crate) fn set_fail_point(&self, point: Option<FailPoint>) {
        *self.fail_point.lock().unwrap_or_else(|p| p.into_inner()) = point;
    }

    fn check_fail_point(&self, point: FailPoint) -> Result<()> {
        if *self.fail_point.lock().unwrap_or_else(|p| p.into_inner()) == Some(point) {
            return Err(Error::new(ErrorKind::Internal, format!("injected failure at {point:?}"), "fail point"));
        }
        Ok(())
    }

    /// Run `f` while holding sandbox `id`'s lock: calls for one id serialize, different ids
    /// run in parallel.
    async fn serialized<T>(&self, id: &str, f: impl std::future::Future<Output = T>) -> T {
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

    fn pin_path(&self, id: &str) -> PathBuf {
        self.base.cfg.netns_dir.join(format!("pn-{}-{id}", self.base.cfg.name))
    }

    /// Create a sandbox (idempotent: the same spec again returns the same sandbox).
    pub(crate) async fn create(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        let span = tracing::info_span!("create_sandbox", node = %self.base.cfg.name, id = %spec.id);
        async {
            spec.validate(&self.base.cfg)?;
            self.serialized(&spec.id, self.create_locked(spec)).await
        }
        .instrument(span)
        .await
    }

    async fn create_locked(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        let op = format!("create sandbox {}", spec.id);
        if let Some(mut existing) = self.base.store.load(&spec.id)? {
            existing.ports = self.ports.of(&spec.id);
            let same_ns = match &spec.netns {
                NetnsSpec::Create => existing.owns_netns,
                NetnsSpec::Path(p) => !existing.owns_netns && &existing.netns_path == p,
            };
            let same_ips = spec.ips.iter().all(|ip| existing.ips.iter().any(|n| n.ip() == *ip));
            let same_ports =
                spec.ports.iter().all(|p| existing.ports.contains(p)) && spec.ports.len() == existing.ports.len();
            let same_mode = spec.mode.unwrap_or(self.base.cfg.mode) == existing.mode;
            if existing.ifname == spec.ifname && same_ns && same_ips && same_ports && same_mode {
                tracing::debug!("sandbox exists with the same spec; returning it");
                return Ok(existing);
            }
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                op,
                format!("sandbox {} exists with a different spec (delete it first)", spec.id),
            ));
        }
        let mut undo: Vec<Undo> = vec![];
        match self.create_steps(spec, &mut undo).await {
            Ok(sb) => Ok(sb),
            Err(e) => {
                tracing::warn!(error = %e, "create failed; rolling back");
                self.rollback(undo).await;
                Err(e.context(op))
            }
        }
    }

    async fn rollback(&self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            let r = match u {
                Undo::ReleaseIps(key) => self.release_all(&key),
                Undo::RemoveNetns(p) => netns::remove(&p).map_err(|e| e.into_error("remove netns")),
                Undo::DeleteLink(name) => {
                    self.base.nl.delete_link(&name).await.map_err(|e| e.into_error(format!("delete {name}")))
                }
                Undo::DeleteProxy(br, ip) => self
                    .base
                    .nl
                    .delete_proxy_neighbour(br, ip)
                    .await
                    .map_err(|e| e.into_error(format!("delete proxy {ip}"))),
                Undo::RemovePorts(id, ips, ports) => self.ports.unmap(&id, &ips, &ports).await,
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "rollback step failed");
            }
        }
    }

    fn release_all(&self, key: &Key) -> Result<()> {
        let mut first_err = None;
        for p in &self.base.pools {
            if let Err(e) = p.release(key) {
                first_err.get_or_insert(e.into_error(format!("release address of {key}")));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn create_steps(&self, spec: &SandboxSpec, undo: &mut Vec<Undo>) -> Result<Sandbox> {
        let key = Key::new(&spec.id, &spec.ifname);
        let mode = spec.mode.unwrap_or(self.base.cfg.mode);
        let routed = mode == PodMode::Routed;
        let bridge = if routed { None } else { Some(self.base.bridge().await?) };

        // 1. addresses, one per pool
        undo.push(Undo::ReleaseIps(key.clone()));
        let mut ips: Vec<IpAddr> = vec![];
        for p in &self.base.pools {
            let req = spec.ips.iter().copied().find(|ip| ip.is_ipv4() == p.cidr().is_ipv4());
            let ip = p.allocate(&key, req).map_err(|e| e.into_error(format!("allocate address from {}", p.cidr())))?;
            ips.push(ip);
        }
        self.check_fail_point(FailPoint::AfterIpam)?;

        // 2. netns: create + pin (the pod's netlink socket is born inside), or adopt
        let (netns_path, ns_file, sock, owns) = match &spec.netns {
            NetnsSpec::Create => {
                self.base.ensure_netns_dir()?;
                let pin = self.pin_path(&spec.id);
                let created = match netns::create(&pin, pod_netns_setup) {
                    Ok(c) => c,
                    Err(netns::NetnsError::Exists(_)) => {
                        // A pin without a record: left by a crash or a failed delete. It is ours
                        // by name; replace it.
                        netns::remove(&pin).map_err(|e| e.into_error("remove stale netns pin"))?;
                        netns::create(&pin, pod_netns_setup)
                            .map_err(|e| e.into_error(format!("create netns {}", pin.display())))?
                    }
                    Err(e) => return Err(e.into_error(format!("create netns {}", pin.display()))),
                };
                undo.push(Undo::RemoveNetns(pin.clone()));
                let sock =
                    created.value.map_err(|e| Error::new(ErrorKind::Io, "open netlink socket in pod netns", e))?;
                (pin, created.file, sock, true)
            }
            NetnsSpec::Path(p) => {
                let f = netns::open(p).map_err(|e| e.into_error(format!("open netns {}", p.display())))?;
                let sock = netns::netlink_socket_in(&f, NETLINK_ROUTE)
                    .map_err(|e| e.into_error("open netlink socket in pod netns"))?;
                (p.clone(), f, sock, false)
            }
        };
        let pod_nl = Netlink::from_socket(sock);
        self.check_fail_point(FailPoint::AfterNetns)?;

        // 3. veth, pod end born in the pod netns
        let host = host_veth_name(&spec.id, &spec.ifname);
        let mac = pod_mac(&spec.id, &spec.ifname, &ips);
        let host_mac = routed.then_some(ROUTED_HOST_MAC);
        let veth_op = || format!("create veth {host} for sandbox {}", spec.id);
        let mut r = self
            .base
            .nl
            .create_veth_with(&host, host_mac, &spec.ifname, mac, ns_file.as_raw_fd(), self.base.pod_mtu, bridge, false)
            .await;
        if matches!(&r, Err(e) if e.is_exists()) {
            // The name is deterministic. If no live record uses it, it is the previous
            // incarnation's veth still being destroyed with its netns: delete it now.
            if self.base.store.list()?.iter().any(|s| s.host_ifname == host) {
                return Err(Error::new(ErrorKind::Conflict, veth_op(), format!("{host} belongs to another sandbox")));
            }
            self.base.nl.delete_link(&host).await.map_err(|e| e.into_error(format!("delete stale {host}")))?;
            r = self
                .base
                .nl
                .create_veth_with(
                    &host,
                    host_mac,
                    &spec.ifname,
                    mac,
                    ns_file.as_raw_fd(),
                    self.base.pod_mtu,
                    bridge,
                    false,
                )
                .await;
        }
        r.map_err(|e| e.into_error(veth_op()))?;
        undo.push(Undo::DeleteLink(host.clone()));
        drop(ns_file);
        self.check_fail_point(FailPoint::AfterVeth)?;

        // 4 + 5. host side and pod side: two sockets, configured concurrently. Within each side,
        // requests that do not need an earlier answer are sent back to back (`join!` polls in
        // order, and the kernel handles one socket's messages in the order they arrive).
        let mut prefixed: Vec<IpNetwork> = vec![];
        let mut gateways: Vec<IpAddr> = vec![];
        for (ip, p) in ips.iter().zip(&self.base.pools) {
            let plen = match (routed, ip) {
                (true, IpAddr::V4(_)) => 32,
                (true, IpAddr::V6(_)) => 128,
                (false, _) => p.cidr().prefix(),
            };
            prefixed.push(IpNetwork::new(*ip, plen).map_err(|e| Error::new(ErrorKind::Internal, "prefix", e))?);
            gateways.push(match (routed, ip) {
                (true, IpAddr::V4(_)) => IpAddr::V4(ROUTED_GW_V4),
                (true, IpAddr::V6(_)) => IpAddr::V6(ROUTED_GW_V6),
                (false, _) => p.gateway(),
            });
        }
        let host_side = async {
            if !routed {
                let (a, b) =
                    futures_util::join!(self.base.nl.prepare_bridge_port(&host), self.base.nl.set_up_by_name(&host));
                a.map_err(|e| e.into_error(format!("configure bridge port {host}")))?;
                b.map_err(|e| e.into_error(format!("set {host} up")))?;
                return Ok(());
            }
            let host_link = self
                .base
                .nl
                .link_by_name(&host)
                .await
                .map_err(|e| e.into_error(format!("read back {host}")))?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("read back {host}"), "veth vanished"))?;
            let mut conf = InetDevConf::default();
            conf.proxy_arp = 1;
            conf.route_localnet = 1; // localhost host ports are DNATed out of this veth
            let (a, b) = futures_util::join!(
                self.base.nl.set_no_linklocal(host_link.index, Some(conf)),
                self.base.nl.set_up(host_link.index)
            );
            a.map_err(|e| e.into_error(format!("configure {host}")))?;
            b.map_err(|e| e.into_error(format!("set {host} up")))?;
            for ip in &ips {
                let plen = if ip.is_ipv4() { 32 } else { 128 };
                // Static neighbour: the host never waits for ARP/NDP to reach the pod.
                let (r, n) = futures_util::join!(
                    self.base.nl.replace_link_route(host_link.index, *ip, plen),
                    self.base.nl.replace_neighbour(host_link.index, *ip, &mac)
                );
                r.map_err(|e| e.into_error(format!("route {ip} via {host}")))?;
                n.map_err(|e| e.into_error(format!("neighbour {ip} on {host}")))?;
                // Bridge pods of this node find a routed pod's IPv6 address through the host.
                if let (IpAddr::V6(_), Some(br)) = (ip, self.base.bridge_if_created()) {
                    self.base
                        .nl
                        .add_proxy_neighbour(br, *ip)
                        .await
                        .map_err(|e| e.into_error(format!("proxy NDP entry for {ip}")))?;
                    undo.push(Undo::DeleteProxy(br, *ip));
                }
            }
            Ok::<(), Error>(())
        };
        let pod_op = |what: &str| format!("{what} in sandbox {}", spec.id);
        let pod_side = async {
            let (lo, link) = futures_util::join!(pod_nl.set_up_by_name("lo"), pod_nl.link_by_name(&spec.ifname));
            lo.map_err(|e| e.into_error(pod_op("set lo up")))?;
            let pod_link = link
                .map_err(|e| e.into_error(pod_op("read back pod interface")))?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, pod_op("read back pod interface"), "missing"))?;
            // No IPv6 link-local in the pod: otherwise every new pod's DAD, MLD reports and router
            // solicitations are flooded by the node bridge to every other pod (O(pods) per pod,
            // measured: create p50 grew 5x from the first to the 1,000th pod). Pods need none: the
            // IPv6 gateway is a static neighbour (routed) or found by NDP from the global address.
            // It must be set before the link goes up, hence the order.
            let (a, b) =
                futures_util::join!(pod_nl.set_no_linklocal(pod_link.index, None), pod_nl.set_up(pod_link.index));
            a.map_err(|e| e.into_error(pod_op("disable IPv6 link-local")))?;
            b.map_err(|e| e.into_error(pod_op("set interface up")))?;
            for (net, gw) in prefixed.iter().zip(&gateways) {
                let neigh = async {
                    if routed {
                        pod_nl.replace_neighbour(pod_link.index, *gw, &ROUTED_HOST_MAC).await
                    } else {
                        Ok(())
                    }
                };
                let (a, n, r) = futures_util::join!(
                    pod_nl.add_address(pod_link.index, net.ip(), net.prefix()),
                    neigh,
                    pod_nl.replace_default_route(pod_link.index, *gw)
                );
                a.map_err(|e| e.into_error(pod_op(&format!("add address {net}"))))?;
                n.map_err(|e| e.into_error(pod_op(&format!("neighbour {gw}"))))?;
                r.map_err(|e| e.into_error(pod_op(&format!("default route via {gw}"))))?;
            }
            Ok::<_, Error>(pod_link)
        };
        let (host_res, pod_res) = futures_util::join!(host_side, pod_side);
        host_res?;
        self.check_fail_point(FailPoint::AfterHost)?;
        let pod_link = pod_res?;
        // Close the pod socket now: an open socket would keep the netns alive after delete.
        drop(pod_nl);
        self.check_fail_point(FailPoint::AfterPod)?;

        let sb = Sandbox {
            id: spec.id.clone(),
            ifname: spec.ifname.clone(),
            netns_path,
            owns_netns: owns,
            host_ifname: host,
            mac: mac_str(&pod_link.mac),
            ips: prefixed,
            gateways,
            mode,
            ports: spec.ports.clone(),
            labels: spec.labels.clone(),
        };

        // 6. host ports
        if !sb.ports.is_empty() {
            self.ports.map(&sb.id, &sb.ips, &sb.ports).await?;
            undo.push(Undo::RemovePorts(sb.id.clone(), sb.ips.clone(), sb.ports.clone()));
        }
        self.check_fail_point(FailPoint::AfterPorts)?;

        // 7. the record: from here on delete/check/gc know the sandbox
        self.base.store.save(&sb)?;
        Ok(sb)
    }

    /// Delete a sandbox: unmap ports, release addresses, remove the netns (the kernel then
    /// destroys the veth pair with it), remove the record. Idempotent: already-gone parts are
    /// success; every step runs even if one fails, and the errors are returned together.
    ///
    /// When it returns Ok the addresses are free, the state is gone and a create with the same
    /// id succeeds, even though the kernel may still be finishing the veth's destruction.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        let span = tracing::info_span!("delete_sandbox", node = %self.base.cfg.name, id = %id);
        async {
            crate::config::validate_name(id, "sandbox id")
                .map_err(|m| Error::invalid(format!("delete sandbox {id:?}"), m))?;
            self.serialized(id, self.delete_locked(id)).await
        }
        .instrument(span)
        .await
    }

    async fn delete_locked(&self, id: &str) -> Result<()> {
        let rec = self.base.store.load(id)?.map(|mut r| {
            r.ports = self.ports.of(id);
            r
        });
        let mut errors: Vec<Error> = vec![];
        if let Some(r) = rec.as_ref().filter(|r| !r.ports.is_empty()) {
            if let Err(e) = self.ports.unmap(id, &r.ips, &r.ports).await {
                errors.push(e);
            }
        }
        if let (Some(r), Some(br)) = (rec.as_ref().filter(|r| r.mode == PodMode::Routed), self.base.bridge_if_created())
        {
            for net in r.ips.iter().filter(|n| n.is_ipv6()) {
                if let Err(e) = self.base.nl.delete_proxy_neighbour(br, net.ip()).await {
                    errors.push(e.into_error(format!("delete proxy NDP entry {}", net.ip())));
                }
            }
        }
        let ifname = rec.as_ref().map(|r| r.ifname.clone()).unwrap_or_else(|| "eth0".into());
        if let Err(e) = self.release_all(&Key::new(id, &ifname)) {
            errors.push(e);
        }
        match &rec {
            Some(r) if !r.owns_netns => {
                // Not our netns: remove our veth explicitly (gone already is fine).
                if let Err(e) = self.base.nl.delete_link(&r.host_ifname).await {
                    errors.push(e.into_error(format!("delete {}", r.host_ifname)));
                }
            }
            _ => {
                let pin = rec.as_ref().map(|r| r.netns_path.clone()).unwrap_or_else(|| self.pin_path(id));
                if let Err(e) = netns::remove(&pin) {
                    errors.push(e.into_error(format!("remove netns {}", pin.display())));
                }
            }
        }
        if errors.is_empty() {
            self.base.store.remove(id)?;
            return Ok(());
        }
        let msg = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        let kind = errors[0].kind();
        Err(Error::new(kind, format!("delete sandbox {id}"), msg))
    }

    /// The record of one sandbox.
    pub(crate) async fn get(&self, id: &str) -> Result<Sandbox> {
        crate::config::validate_name(id, "sandbox id").map_err(|m| Error::invalid(format!("get sandbox {id:?}"), m))?;
        let mut sb = self
            .base
            .store
            .load(id)?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("get sandbox {id}"), "no such sandbox"))?;
        sb.ports = self.ports.of(id);
        Ok(sb)
    }

    /// All sandboxes of this node, sorted by id.
    pub(crate) async fn list(&self) -> Result<Vec<Sandbox>> {
        let mut v = self.base.store.list()?;
        for sb in &mut v {
            sb.ports = self.ports.of(&sb.id);
        }
        Ok(v)
    }

    /// Compare one sandbox's kernel state with its record and say what differs.
    pub(crate) async fn check(&self, id: &str) -> Result<CheckReport> {
        let span = tracing::info_span!("check_sandbox", node = %self.base.cfg.name, id = %id);
        async {
            let sb = self.get(id).await?;
            let mut problems = vec![];
            let key = Key::new(&sb.id, &sb.ifname);
            for net in &sb.ips {
                let held =
                    self.base.pools.iter().find(|p| p.cidr().is_ipv4() == net.is_ipv4()).and_then(|p| p.get(&key));
                if held != Some(net.ip()) {
                    problems.push(format!("address {} is not reserved for {key}", net.ip()));
                }
            }
            match self.base.nl.link_by_name(&sb.host_ifname).await {
                Ok(Some(l)) => {
                    if !l.up {
                        problems.push(format!("host veth {} is down", sb.host_ifname));
                    }
                    if let (PodMode::Bridge, Some(b)) = (sb.mode, self.base.bridge_if_created()) {
                        if l.controller != Some(b) {
                            problems.push(format!(
                                "host veth {} is not attached to {}",
                                sb.host_ifname, self.base.cfg.bridge_name
                            ));
                        }
                    }
                    if sb.mode == PodMode::Routed {
                        let routes = self.base.nl.routes(false).await.unwrap_or_default();
                        let routes6 = self.base.nl.routes(true).await.unwrap_or_default();
                        for net in &sb.ips {
                            let found = routes.iter().chain(routes6.iter()).any(|r| {
                                crate::kernel::netlink::route_destination(r) == Some((net.ip(), net.prefix()))
                                    && crate::kernel::netlink::route_oif(r) == Some(l.index)
                            });
                            if !found {
                                problems.push(format!("host route to {net} via {} is missing", sb.host_ifname));
                            }
                        }
                    }
                }
                Ok(None) => problems.push(format!("host veth {} is missing", sb.host_ifname)),
                Err(e) => problems.push(format!("read host veth {}: {e}", sb.host_ifname)),
            }
            match netns::open(&sb.netns_path) {
                Err(e) => problems.push(format!("netns {}: {e}", sb.netns_path.display())),
                Ok(f) => match netns::netlink_socket_in(&f, NETLINK_ROUTE) {
                    Err(e) => problems.push(format!("open netlink in netns: {e}")),
                    Ok(sock) => {
                        let pod = Netlink::from_socket(sock);
                        match pod.link_by_name(&sb.ifname).await {
                            Ok(Some(l)) => {
                                if !l.up {
                                    problems.push(format!("{} is down in the pod", sb.ifname));
                                }
                                let addrs = pod.addresses(l.index).await.unwrap_or_default();
                                for net in &sb.ips {
                                    if !addrs.contains(&(net.ip(), net.prefix())) {
                                        problems.push(format!("address {net} missing on {} in the pod", sb.ifname));
                                    }
                                }
                                for (gw, v6) in sb.gateways.iter().map(|g| (g, g.is_ipv6())) {
                                    let routes = pod.routes(v6).await.unwrap_or_default();
                                    let ok = routes.iter().any(|r| {
                                        crate::kernel::netlink::route_destination(r).is_none()
                                            && r.header.destination_prefix_length == 0
                                            && crate::kernel::netlink::route_gateway(r) == Some(*gw)
                                    });
                                    if !ok {
                                        problems.push(format!("default route via {gw} missing in the pod"));
                                    }
                                }
                            }
                            Ok(None) => problems.push(format!("{} is missing in the pod", sb.ifname)),
                            Err(e) => problems.push(format!("read {} in the pod: {e}", sb.ifname)),
                        }
                    }
                },
            }
            if !sb.ports.is_empty() {
                problems.extend(self.ports.check(&sb).await);
            }
            Ok(CheckReport { id: sb.id, problems })
        }
        .instrument(span)
        .await
    }

    /// Remove every sandbox whose id is not in `live`, and every orphan podnet left behind
    /// (address reservations, netns pins and host veths without a record).
    pub(crate) async fn gc(&self, live: &[&str]) -> Result<GcReport> {
        let span = tracing::info_span!("gc", node = %self.base.cfg.name, live = live.len());
        async {
            let live: HashSet<&str> = live.iter().copied().collect();
            let mut rep = GcReport::default();
            for sb in self.base.store.list()? {
                if !live.contains(sb.id.as_str()) {
                    match self.delete(&sb.id).await {
                        Ok(()) => rep.sandboxes.push(sb.id),
                        Err(e) => rep.errors.push(e.to_string()),
                    }
                }
            }
            let records = self.base.store.list()?;
            let known: HashSet<&str> = records.iter().map(|s| s.id.as_str()).collect();
            for p in &self.base.pools {
                for (ip, holder) in p.list().map_err(|e| e.into_error("list addresses"))? {
                    let orphan = match &holder {
                        Some(k) => !known.contains(k.id.as_str()) && !live.contains(k.id.as_str()),
                        None => true,
                    };
                    if orphan {
                        match p.release_ip(ip) {
                            Ok(()) => rep.ips.push(ip),
                            Err(e) => rep.errors.push(e.to_string()),
                        }
                    }
                }
            }
            let prefix = format!("pn-{}-", self.base.cfg.name);
            if let Ok(rd) = std::fs::read_dir(&self.base.cfg.netns_dir) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if let Some(id) = name.strip_prefix(&prefix) {
                        if !known.contains(id) && !live.contains(id) {
                            match netns::remove(&e.path()) {
                                Ok(()) => rep.netns.push(e.path()),
                                Err(err) => rep.errors.push(err.to_string()),
                            }
                        }
                    }
                }
            }
            let owned: HashSet<&str> = records.iter().map(|s| s.host_ifname.as_str()).collect();
            let live_hosts: HashSet<String> = live.iter().map(|id| host_veth_name(id, "eth0")).collect();
            for l in self.base.nl.links().await.map_err(|e| e.into_error("list links"))? {
                if l.kind.as_deref() == Some("veth")
                    && l.name.len() == HOST_VETH_PREFIX.len() + 12
                    && l.name.starts_with(HOST_VETH_PREFIX)
                    && !owned.contains(l.name.as_str())
                    && !live_hosts.contains(&l.name)
                {
                    match self.base.nl.delete_link(&l.name).await {
                        Ok(()) => rep.links.push(l.name),
                        Err(e) => rep.errors.push(e.into_error(format!("delete {}", l.name)).to_string()),
                    }
                }
            }
            Ok(rep)
        }
        .instrument(span)
        .await
    }

    /// Add host ports to an existing sandbox (idempotent for mappings it already has).
    pub(crate) async fn add_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.serialized(id, async {
            let mut sb = self.get(id).await?;
            let mut spec = SandboxSpec::new(id);
            spec.ports = ports.to_vec();
            spec.validate(&self.base.cfg)?;
            let new: Vec<PortMapping> = ports.iter().filter(|m| !sb.ports.contains(m)).copied().collect();
            if new.is_empty() {
                return Ok(sb);
            }
            self.ports.map(id, &sb.ips, &new).await?;
            sb.ports.extend(new.iter().copied());
            Ok(sb)
        })
        .await
    }

    /// Remove host ports from a sandbox; mappings it does not have are ignored.
    pub(crate) async fn remove_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.serialized(id, async {
            let mut sb = self.get(id).await?;
            let gone: Vec<PortMapping> = ports.iter().filter(|m| sb.ports.contains(m)).copied().collect();
            self.ports.unmap(id, &sb.ips, &gone).await?;
            sb.ports.retain(|m| !gone.contains(m));
            Ok(sb)
        })
        .await
    }

    /// Every host port mapped on this node.
    pub(crate) async fn list_ports(&self) -> Result<Vec<PortEntry>> {
        let mut out = vec![];
        for sb in self.list().await? {
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
}
