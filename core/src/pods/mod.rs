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
use crate::store::{Entry, Phase, Sandbox};
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
fn pod_mac(spec: &SandboxSpec, ips: &[IpAddr]) -> [u8; 6] {
    if let Some(m) = spec.mac {
        return m;
    }
    let (id, ifname) = (&spec.id, &spec.ifname);
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
        let mode = spec.mode.unwrap_or(self.base.cfg.mode);
        loop {
            let Some(e) = self.settled(&spec.id).await? else { break };
            let existing = e.sandbox;
            let same_ns = match &spec.netns {
                NetnsSpec::Create => existing.owns_netns,
                NetnsSpec::Path(p) => !existing.owns_netns && &existing.netns_path == p,
            };
            let same_ips = spec.ips.iter().all(|ip| existing.ips.iter().any(|n| n.ip() == *ip));
            let same_ports =
                spec.ports.iter().all(|p| existing.ports.contains(p)) && spec.ports.len() == existing.ports.len();
            let same_mac = spec.mac.is_none_or(|m| existing.mac == mac_str(&m));
            if !(existing.ifname == spec.ifname
                && same_ns
                && same_ips
                && same_ports
                && same_mac
                && mode == existing.mode)
            {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    op,
                    format!("sandbox {} exists with a different spec (delete it first)", spec.id),
                ));
            }
            // The record alone proves nothing (a killed delete, a reboot that kept the state):
            // return it only when its kernel objects are there, else rebuild from scratch.
            let problems = self.kernel_problems(&existing).await;
            if problems.is_empty() {
                tracing::debug!("sandbox exists with the same spec; returning it");
                return Ok(existing);
            }
            tracing::warn!(problems = ?problems, "sandbox record without its kernel objects; recreating");
            self.take_down(&Entry { sandbox: existing, phase: Phase::Ready, owner: None, seq: e.seq }).await?;
        }
        // A specific address asked for may be a deleted pod's whose veth is gone by now.
        self.reap(!spec.ips.is_empty()).await;
        let host = host_veth_name(&spec.id, &spec.ifname);
        let routed = mode == PodMode::Routed;
        let (netns_path, owns) = match &spec.netns {
            NetnsSpec::Create => (self.pin_path(&spec.id), true),
            NetnsSpec::Path(p) => (p.clone(), false),
        };
        let pools = &self.base.pools;
        let record = |ips: Vec<IpAddr>| -> Result<Sandbox> {
            let mut prefixed = vec![];
            let mut gateways = vec![];
            for (ip, p) in ips.iter().zip(pools) {
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
            Ok(Sandbox {
                id: spec.id.clone(),
                ifname: spec.ifname.clone(),
                netns_path: netns_path.clone(),
                owns_netns: owns,
                host_ifname: host.clone(),
                mac: mac_str(&pod_mac(spec, &ips)),
                ips: prefixed,
                gateways,
                mode,
                ports: spec.ports.clone(),
                labels: spec.labels.clone(),
            })
        };
        // The durable intent: from here on a crash at any point is finished by the next call
        // for this id, gc or open.
        let begin = || self.base.store.begin_create(&spec.id, &spec.ifname, pools, &spec.ips, &spec.ports, record);
        let sb = match begin() {
            // Deleted pods' addresses may be draining still: release those whose veth is gone
            // (or delete it) without waiting for the grace, and try once more.
            Err(e) if e.kind() == ErrorKind::Exhausted && !self.reap(true).await.is_empty() => begin(),
            other => other,
        }
        .map_err(|e| e.context(&op))?;
        let res = match self.create_steps(spec, &sb).await {
            Ok(()) => self.base.store.mark_ready(&sb),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => Ok(sb),
            Err(e) => {
                tracing::warn!(error = %e, "create failed; rolling back");
                if let Err(te) = self.teardown(&sb).await {
                    tracing::error!(error = %te, "rollback incomplete; gc or the next call for the id finishes it");
                    let _ = self.base.store.disown(&sb.id);
                }
                Err(e.context(op))
            }
        }
    }

    /// The row of `id` once no live owner is working on it: waits for another process's create
    /// or delete of the same id to finish, and finishes (tears down) one whose owner died.
    /// Returns the `ready` row, or None when there is none (any more).
    async fn settled(&self, id: &str) -> Result<Option<Entry>> {
        let mut wait = std::time::Duration::from_millis(1);
        let deadline = std::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let Some(e) = self.base.store.entry(id)? else { return Ok(None) };
            if e.phase == Phase::Ready {
                return Ok(Some(e));
            }
            match e.owner.as_deref() {
                Some(o) if o != self.base.store.me() && self.base.store.owner_alive(o) => {
                    if std::time::Instant::now() > deadline {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!("sandbox {id}"),
                            "another process has been creating or deleting it for too long",
                        ));
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_millis(50));
                }
                _ => {
                    // Its owner died mid-way (or gave it up): finish it by tearing it down.
                    self.take_down(&e).await?;
                }
            }
        }
    }

    /// Take over the row `e` (as read, owner included) and tear its sandbox down: the work of an
    /// owner that died, or a delete. False when someone else took the row first. A teardown that
    /// fails leaves the row unowned, so the next call for the id, gc or open finishes it.
    async fn take_down(&self, e: &Entry) -> Result<bool> {
        let id = &e.sandbox.id;
        if !self.base.store.claim(e, Phase::Deleting)? {
            return Ok(false);
        }
        if e.phase != Phase::Ready {
            tracing::info!(id = %id, phase = ?e.phase, "finishing the interrupted work of a dead owner");
        }
        self.teardown(&e.sandbox).await.inspect_err(|_| {
            let _ = self.base.store.disown(id);
        })?;
        Ok(true)
    }

    /// Remove a sandbox's kernel objects and forget it: host-port elements, proxy NDP entries,
    /// then the pin (the kernel destroys the netns and the veth with it, in batches) or, in a
    /// netns podnet did not make, the veth itself. Its addresses stay reserved until the veth is
    /// verified gone (`reap`). Every step treats "already gone" as success; runs them all and
    /// returns the errors together, keeping the row when one failed.
    async fn teardown(&self, sb: &Sandbox) -> Result<()> {
        let mut errors: Vec<Error> = vec![];
        if !sb.ports.is_empty() {
            if let Err(e) = self.ports.unprogram(&sb.id, &sb.ips, &sb.ports).await {
                errors.push(e);
            }
        }
        let routed_v6 = sb.mode == PodMode::Routed && sb.ips.iter().any(|n| n.is_ipv6());
        if let Some(br) = if routed_v6 { self.base.bridge_if_exists().await } else { None } {
            for net in sb.ips.iter().filter(|n| n.is_ipv6()) {
                if let Err(e) = self.base.nl.delete_proxy_neighbour(br, net.ip()).await {
                    errors.push(e.into_error(format!("delete proxy NDP entry {}", net.ip())));
                }
            }
        }
        // Dropping our pin leaves the veth to the kernel, which destroys it with the netns, in
        // batches. In a netns the runtime made (and removes right after this call) the host
        // end is set down at once, which cuts the pod off, and left to go with that netns:
        // deleting it here would wait about 20 ms for RCU. Either way the addresses drain until
        // the veth is verified gone (`reap`, which deletes it after DRAIN_GRACE if something
        // still holds the netns); one already gone frees them at once.
        let mut veth_gone = false;
        if sb.owns_netns {
            if let Err(e) = netns::remove(&sb.netns_path) {
                errors.push(e.into_error(format!("remove netns {}", sb.netns_path.display())));
            }
        } else {
            match self.base.nl.set_down_by_name(&sb.host_ifname).await {
                Ok(there) => veth_gone = !there,
                Err(e) => errors.push(e.into_error(format!("set {} down", sb.host_ifname))),
            }
        }
        if errors.is_empty() {
            return self.base.store.finish_teardown(&sb.id, &sb.host_ifname, veth_gone);
        }
        let msg = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        Err(Error::new(errors[0].kind(), format!("tear down sandbox {}", sb.id), msg))
    }

    /// Release the addresses of deleted sandboxes whose host veth is gone. A veth still there
    /// after `DRAIN_GRACE` (or at once with `force`) belongs to a netns something else holds
    /// open (a container still running, an nsenter): delete it, which takes the pod's interface
    /// and with it the address out of that netns, then release. Returns the released addresses.
    pub(crate) async fn reap(&self, force: bool) -> Vec<IpAddr> {
        let grace = DRAIN_GRACE.as_millis() as i64;
        match self.base.store.oldest_draining_ms() {
            Ok(Some(age)) if force || age >= grace => {}
            _ => return vec![],
        }
        let (Ok(draining), Ok(rows)) = (self.base.store.draining(), self.base.store.entries()) else { return vec![] };
        // A sandbox created since under the same (id, ifname) has the same veth name; its create
        // deleted the old veth before making its own.
        let in_use: HashSet<&str> = rows.iter().map(|e| e.sandbox.host_ifname.as_str()).collect();
        let now = crate::store::now_ms();
        let mut released = vec![];
        for d in draining {
            if !force && d.since_ms + grace > now {
                continue;
            }
            let gone = in_use.contains(d.link.as_str())
                || match self.base.nl.link_by_name(&d.link).await {
                    Ok(None) => true,
                    Ok(Some(_)) => self.base.nl.delete_link(&d.link).await.is_ok(),
                    Err(_) => false,
                };
            if gone {
                match self.base.store.release_draining(&d.link) {
                    Ok(ips) => released.extend(ips),
                    Err(e) => tracing::warn!(error = %e, "release draining addresses"),
                }
            }
        }
        released
    }

    /// Finish every intent whose owner died (at node open).
    pub(crate) async fn recover(&self) -> Result<()> {
        for e in self.base.store.in_flight()? {
            if e.owner.as_deref().is_some_and(|o| self.base.store.owner_alive(o)) {
                continue;
            }
            if let Err(err) = self.take_down(&e).await {
                tracing::warn!(error = %err, "recovery incomplete");
            }
        }
        self.reap(false).await;
        Ok(())
    }

    /// What is missing of a recorded sandbox's kernel objects (cheap: the netns and the veth).
    async fn kernel_problems(&self, sb: &Sandbox) -> Vec<String> {
        let mut problems = vec![];
        if let Err(e) = netns::open(&sb.netns_path) {
            problems.push(format!("netns {}: {e}", sb.netns_path.display()));
        }
        match self.base.nl.link_by_name(&sb.host_ifname).await {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!("host veth {} is missing", sb.host_ifname)),
            Err(e) => problems.push(format!("read host veth {}: {e}", sb.host_ifname)),
        }
        problems
    }

    /// The kernel steps of a create whose addresses and host ports `sb` has reserved. On error
    /// the caller tears down whatever was made (`teardown` knows every step by its names).
    async fn create_steps(&self, spec: &SandboxSpec, sb: &Sandbox) -> Result<()> {
        let routed = sb.mode == PodMode::Routed;
        let bridge = if routed { None } else { Some(self.base.bridge().await?) };
        let ips: Vec<IpAddr> = sb.ips.iter().map(|n| n.ip()).collect();
        self.check_fail_point(FailPoint::AfterIpam)?;

        // 1. netns: create + pin (the pod's netlink socket is born inside), or adopt
        let (ns_file, sock) = match &spec.netns {
            NetnsSpec::Create => {
                self.base.ensure_netns_dir()?;
                let pin = sb.netns_path.clone();
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
                let sock =
                    created.value.map_err(|e| Error::new(ErrorKind::Io, "open netlink socket in pod netns", e))?;
                (created.file, sock)
            }
            NetnsSpec::Path(p) => {
                let f = netns::open(p).map_err(|e| e.into_error(format!("open netns {}", p.display())))?;
                let sock = netns::netlink_socket_in(&f, NETLINK_ROUTE)
                    .map_err(|e| e.into_error("open netlink socket in pod netns"))?;
                (f, sock)
            }
        };
        let pod_nl = Netlink::from_socket(sock);
        self.check_fail_point(FailPoint::AfterNetns)?;

        // 2. veth, pod end born in the pod netns
        let host = sb.host_ifname.clone();
        let mac = pod_mac(spec, &ips);
        let host_mac = routed.then_some(ROUTED_HOST_MAC);
        let group = link_group(&self.base.cfg.name);
        let veth_op = || format!("create veth {host} for sandbox {}", spec.id);
        let create = || {
            self.base.nl.create_veth_with(
                &host,
                host_mac,
                &spec.ifname,
                mac,
                ns_file.as_raw_fd(),
                self.base.net_setup().pod_mtu,
                bridge,
                false,
                group,
            )
        };
        let mut r = create().await;
        if matches!(&r, Err(e) if e.is_exists()) {
            // The name is deterministic, and this id's row is ours: it is the previous
            // incarnation's veth (still being destroyed with its netns, or held by a netns
            // something keeps open). Delete it now; its draining addresses are then released.
            if self.base.store.entries()?.iter().any(|e| e.sandbox.host_ifname == host && e.sandbox.id != sb.id) {
                return Err(Error::new(ErrorKind::Conflict, veth_op(), format!("{host} belongs to another sandbox")));
            }
            self.base.nl.delete_link(&host).await.map_err(|e| e.into_error(format!("delete stale {host}")))?;
            r = create().await;
        }
        if matches!(&r, Err(e) if e.is_exists()) && !self.reap(true).await.is_empty() {
            // The pod-side name is taken: by a deleted pod's interface still draining in this
            // netns (a runtime attaching a new container to the netns it kept). Reclaimed.
            r = create().await;
        }
        r.map_err(|e| e.into_error(veth_op()))?;
        drop(ns_file);
        self.check_fail_point(FailPoint::AfterVeth)?;

        // 3 + 4. host side and pod side: two sockets, configured concurrently. Within each side,
        // requests that do not need an earlier answer are sent back to back (`join!` polls in
        // order, and the kernel handles one socket's messages in the order they arrive).
        let prefixed = &sb.ips;
        let gateways = &sb.gateways;
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
                if let Some(br) = if ip.is_ipv6() { self.base.bridge_if_exists().await } else { None } {
                    self.base
                        .nl
                        .add_proxy_neighbour(br, *ip)
                        .await
                        .map_err(|e| e.into_error(format!("proxy NDP entry for {ip}")))?;
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
            for (net, gw) in prefixed.iter().zip(gateways) {
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
        pod_res?;
        // Close the pod socket now: an open socket would keep the netns alive after delete.
        drop(pod_nl);
        self.check_fail_point(FailPoint::AfterPod)?;

        // 5. host ports (reserved with the addresses)
        if !sb.ports.is_empty() {
            self.ports.program(&sb.id, &sb.ips, &sb.ports).await?;
        }
        self.check_fail_point(FailPoint::AfterPorts)?;
        Ok(())
    }

    /// Delete a sandbox: unmap its host ports, remove the netns (the kernel then destroys the
    /// veth pair with it, in batches) or, in an adopted netns, the veth, and forget it. Its
    /// addresses stay reserved until the veth is verified gone (the next creates, gc or open
    /// release them), so no other pod can get them while a netns something still holds carries
    /// them. Idempotent: an unknown id is success; every step runs even if one fails, and the
    /// errors are returned together. When it returns Ok a create with the same id succeeds.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        let span = tracing::info_span!("delete_sandbox", node = %self.base.cfg.name, id = %id);
        async {
            crate::config::validate_sandbox_id(&self.base.cfg.name, id)
                .map_err(|m| Error::invalid(format!("delete sandbox {id:?}"), m))?;
            self.serialized(id, self.delete_locked(id)).await
        }
        .instrument(span)
        .await
    }

    async fn delete_locked(&self, id: &str) -> Result<()> {
        let op = format!("delete sandbox {id}");
        let Some(e) = self.settled(id).await.map_err(|e| e.context(&op))? else {
            // No record: a pin of that name is ours all the same (left by a crash of an earlier
            // version or a hand-made copy); removing it is what the caller asked for.
            let pin = self.pin_path(id);
            return netns::remove(&pin).map_err(|e| e.into_error(format!("{op}: remove netns {}", pin.display())));
        };
        // The durable intent first: a kill from here on is finished by the next call, gc or open.
        if !self.base.store.claim(&e, Phase::Deleting)? {
            return Err(Error::new(ErrorKind::Conflict, op, "another process took this sandbox meanwhile"));
        }
        if let Err(err) = self.teardown(&e.sandbox).await {
            let _ = self.base.store.disown(id);
            return Err(err.context(op));
        }
        Ok(())
    }

    /// The record of one sandbox.
    pub(crate) async fn get(&self, id: &str) -> Result<Sandbox> {
        crate::config::validate_name(id, "sandbox id").map_err(|m| Error::invalid(format!("get sandbox {id:?}"), m))?;
        match self.base.store.entry(id)? {
            Some(e) if e.phase == Phase::Ready => Ok(e.sandbox),
            _ => Err(Error::new(ErrorKind::NotFound, format!("get sandbox {id}"), "no such sandbox")),
        }
    }

    /// All (fully created) sandboxes of this node, sorted by id.
    pub(crate) async fn list(&self) -> Result<Vec<Sandbox>> {
        Ok(self.base.store.entries()?.into_iter().filter(|e| e.phase == Phase::Ready).map(|e| e.sandbox).collect())
    }

    /// Compare one sandbox's kernel state with its record and say what differs.
    pub(crate) async fn check(&self, id: &str) -> Result<CheckReport> {
        let span = tracing::info_span!("check_sandbox", node = %self.base.cfg.name, id = %id);
        async {
            let sb = self.get(id).await?;
            let mut problems = vec![];
            let key = Key::new(&sb.id, &sb.ifname);
            for net in &sb.ips {
                let held = match self.base.pools.iter().find(|p| p.cidr().is_ipv4() == net.is_ipv4()) {
                    Some(p) => self.base.store.address_of(p, &key)?,
                    None => None,
                };
                if held != Some(net.ip()) {
                    problems.push(format!("address {} is not reserved for {key}", net.ip()));
                }
            }
            match self.base.nl.link_by_name(&sb.host_ifname).await {
                Ok(Some(l)) => {
                    if !l.up {
                        problems.push(format!("host veth {} is down", sb.host_ifname));
                    }
                    let bridge = if sb.mode == PodMode::Bridge { self.base.bridge_if_exists().await } else { None };
                    if let Some(b) = bridge {
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

    /// Remove every sandbox whose id is not in `live`, finish the interrupted work of dead
    /// owners, and remove every orphan podnet left behind: netns pins and marked host veths
    /// without a sandbox, and the reservations of deleted sandboxes whose veth is gone (or,
    /// held by someone's open netns, is deleted now). Never touches a create or delete a live
    /// process is running, nor a sandbox created after gc started.
    ///
    /// `live` None keeps every sandbox (orphans only).
    pub(crate) async fn gc(&self, live: Option<&[&str]>) -> Result<GcReport> {
        let span = tracing::info_span!("gc", node = %self.base.cfg.name, live = live.map(|l| l.len()));
        async {
            let keep_all = live.is_none();
            let live: HashSet<&str> = live.unwrap_or_default().iter().copied().collect();
            let mut rep = GcReport::default();
            let started = self.base.store.seq()?;
            for e in self.base.store.entries()? {
                let id = e.sandbox.id.as_str();
                let dead_intent =
                    e.phase != Phase::Ready && e.owner.as_deref().is_none_or(|o| !self.base.store.owner_alive(o));
                let unwanted = e.phase == Phase::Ready && !keep_all && e.seq <= started && !live.contains(id);
                if !(dead_intent || unwanted) {
                    continue;
                }
                // The claim fails when the row moved on since it was read.
                let res = self.serialized(id, self.take_down(&e));
                match res.await {
                    Ok(true) => rep.sandboxes.push(id.to_string()),
                    Ok(false) => {}
                    Err(err) => rep.errors.push(err.to_string()),
                }
            }
            // What exists in the kernel first, the rows second: a create writes its row before
            // it makes its pin and veth, so anything listed here whose create is in flight has
            // its row by the time the rows are read.
            let prefix = format!("pn-{}-", self.base.cfg.name);
            let pins: Vec<(String, PathBuf)> = std::fs::read_dir(&self.base.cfg.netns_dir)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|d| {
                            let name = d.file_name().to_string_lossy().to_string();
                            name.strip_prefix(&prefix).map(|id| (id.to_string(), d.path()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let links = self.base.nl.links().await.map_err(|e| e.into_error("list links"))?;
            let rows = self.base.store.entries()?;
            let draining: HashSet<String> = self.base.store.draining()?.into_iter().map(|d| d.link).collect();
            let known: HashSet<&str> = rows.iter().map(|e| e.sandbox.id.as_str()).collect();
            for (id, path) in pins {
                if !known.contains(id.as_str()) && !live.contains(id.as_str()) {
                    match netns::remove(&path) {
                        Ok(()) => rep.netns.push(path),
                        Err(err) => rep.errors.push(err.to_string()),
                    }
                }
            }
            let owned: HashSet<&str> = rows.iter().map(|e| e.sandbox.host_ifname.as_str()).collect();
            let marker = link_group(&self.base.cfg.name);
            for l in links {
                let ours = l.group == marker && l.name.starts_with(HOST_VETH_PREFIX);
                if ours && !owned.contains(l.name.as_str()) && !draining.contains(&l.name) {
                    match self.base.nl.delete_link(&l.name).await {
                        Ok(()) => rep.links.push(l.name),
                        Err(e) => rep.errors.push(e.into_error(format!("delete {}", l.name)).to_string()),
                    }
                }
            }
            rep.ips = self.reap(true).await;
            // Host-port elements of a port change killed between the store and the kernel:
            // `open` no longer rebuilds an existing table, so gc puts back what is missing.
            if let Err(e) = self.ports.repair().await {
                rep.errors.push(e.to_string());
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
            self.base.store.add_ports(id, &new).map_err(|e| e.context(format!("add host ports to {id}")))?;
            if let Err(e) = self.ports.program(id, &sb.ips, &new).await {
                let _ = self.base.store.remove_ports(id, &new);
                return Err(e);
            }
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
            self.ports.unprogram(id, &sb.ips, &gone).await?;
            self.base.store.remove_ports(id, &gone)?;
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

/// How long a deleted sandbox's addresses wait for its veth to vanish on its own before the
/// veth is deleted explicitly (the kernel destroys an unheld netns in batches, within ms).
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a call waits for another process's create or delete of the same id.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The device group every host veth of node `node` is created in: podnet's mark (the top
/// nibble 0x7 says podnet, the rest is the node's name hashed), so gc deletes only links podnet
/// made for this node. Shown by `ip -d link` as `group <n>`.
pub fn link_group(node: &str) -> u32 {
    0x7000_0000 | (fnv1a(format!("podnet/{node}").as_bytes()) as u32 & 0x0fff_ffff)
}
