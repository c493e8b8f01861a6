//! The cluster agent: keeps one podnet node in a cluster through an existing store (etcd, in
//! flannel's layout). It leases the node's pod CIDR, opens the node with it, publishes the node,
//! and converges the node's peers to every other lease: `sync_peers` after each list, then one
//! `add_peer`/`remove_peer` per watched change. The data plane is never torn down because the
//! store is away; the agent retries with backoff and resumes.
//!
//! The store sits behind [`Store`], so a Kubernetes API backend can follow without touching the
//! logic here. [`EtcdStore`] (cargo feature `etcd`) is the etcd one.

#[cfg(feature = "etcd")]
mod etcd;
pub mod flannel;
mod store;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnetwork::IpNetwork;
use podnet::{CrossNodeMode, Error, ErrorKind, Node, NodeConfig, Peer};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdStore, EtcdWatch};
pub use flannel::{Backend, LeaseAttrs, NetConfig, SubnetKey};
pub use store::{KeyValue, Listing, Store, StoreError, StoreResult, StoreWatch, WatchEvent, WatchItem};

/// flannel's lease TTL (24 h): a node that stops renewing disappears from the others after this.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

/// How often a failed step is retried, at first and at most.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How many times a lease creation that lost a race is retried with a fresh pick (flannel: 10).
const RACE_RETRIES: usize = 10;

/// What the agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node: name, netns, state dir, pod mode, underlay (required, IPv4: it is the lease's
    /// `PublicIP`). Its pod CIDRs, VXLAN VNI/port and cross-node mode come from the store's
    /// network config and the lease; cluster CIDRs too when the template has none.
    pub node: NodeConfig,
    /// The store prefix (flannel's `/coreos.com/network`).
    pub prefix: String,
    /// TTL of the store lease the node's subnet key is bound to.
    pub lease_ttl: Duration,
    /// Where the agent remembers its subnet and lease across restarts (default
    /// `/run/podnet/agent/<node>.json`).
    pub state_file: Option<PathBuf>,
    /// Where the agent writes its status as JSON on every change, for `podnet agent status`
    /// (default: none).
    pub status_file: Option<PathBuf>,
}

impl AgentConfig {
    /// Defaults for `node`: flannel's prefix and TTL.
    pub fn new(node: NodeConfig) -> AgentConfig {
        AgentConfig {
            node,
            prefix: flannel::DEFAULT_PREFIX.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            state_file: None,
            status_file: None,
        }
    }

    /// The state file in use.
    pub fn effective_state_file(&self) -> PathBuf {
        self.state_file.clone().unwrap_or_else(|| PathBuf::from(format!("/run/podnet/agent/{}.json", self.node.name)))
    }

    fn public_ip(&self) -> Result<Ipv4Addr, Error> {
        match self.node.underlay.as_ref().map(|u| u.address) {
            Some(IpAddr::V4(a)) => Ok(a),
            Some(IpAddr::V6(a)) => Err(Error::invalid(
                "start agent",
                format!("underlay {a} is IPv6: flannel's lease records the node's IPv4 PublicIP"),
            )),
            None => Err(Error::invalid("start agent", "the node needs an underlay address (its PublicIP)")),
        }
    }

    fn subnets_prefix(&self) -> String {
        format!("{}/subnets/", self.prefix.trim_end_matches('/'))
    }
}

/// Where the agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the network config and leasing a subnet.
    Leasing,
    /// Subnet leased; opening the node and programming peers.
    Programming,
    /// Node and peers programmed; following changes.
    Ready,
    /// Stopped (the data plane stays as it was).
    Stopped,
}

/// The agent's state as a caller (or `podnet agent status`) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Node name.
    pub node: String,
    /// True once the subnet is leased and the node and its peers are programmed; stays true while
    /// the store is away (the data plane keeps working).
    pub ready: bool,
    /// Where the agent is.
    pub phase: Phase,
    /// The node's pod CIDRs (from the lease).
    pub pod_cidrs: Vec<IpNetwork>,
    /// The lease key.
    pub key: Option<String>,
    /// The store lease id the key is bound to (0: a reservation without lease).
    pub lease_id: i64,
    /// Peers programmed.
    pub peers: usize,
    /// Whether the last store request got an answer.
    pub store_reachable: bool,
    /// Store revision the node's peers reflect.
    pub revision: i64,
    /// How often the store lease was found lost while running (each time the same subnet was
    /// re-acquired).
    pub lease_lost: u64,
    /// Peer changes applied from the watch since start.
    pub peer_changes: u64,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// The agent's process id.
    pub pid: u32,
}

impl AgentStatus {
    fn new(node: &str) -> AgentStatus {
        AgentStatus {
            node: node.into(),
            ready: false,
            phase: Phase::Leasing,
            pod_cidrs: vec![],
            key: None,
            lease_id: 0,
            peers: 0,
            store_reachable: false,
            revision: 0,
            lease_lost: 0,
            peer_changes: 0,
            last_error: None,
            pid: std::process::id(),
        }
    }
}

/// What the agent remembers across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedState {
    subnet: SubnetKey,
    lease_id: i64,
}

/// The subnet the node holds.
#[derive(Debug, Clone)]
struct Held {
    key: SubnetKey,
    lease: i64,
}

/// How the agent is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Stop following the store; keep lease and data plane.
    Stop,
    /// Also revoke the lease and delete the key.
    Leave,
}

/// A running agent. It runs on a thread of its own with its own tokio runtime, so it needs
/// nothing from the caller (a C or Go runtime can start it as it is) and the node it opens lives
/// as long as the agent does.
pub struct Agent {
    status: watch::Receiver<AgentStatus>,
    exit: watch::Sender<Option<Exit>>,
    done: Mutex<Option<std::sync::mpsc::Receiver<Result<(), Error>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    node: Arc<Mutex<Option<Arc<Node>>>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("status", &*self.status.borrow()).finish_non_exhaustive()
    }
}

impl Agent {
    /// Validate `cfg` and start the agent; it works in the background from then on (see
    /// [`Agent::status`], [`Agent::ready`]). `store` is built by `make_store` on the agent's
    /// own runtime (store clients bind to the runtime that creates them).
    pub fn start<S, F, Fut>(cfg: AgentConfig, make_store: F) -> Result<Agent, Error>
    where
        S: Store,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<S, Error>>,
    {
        let public_ip = cfg.public_ip()?;
        podnet::validate_name(&cfg.node.name, "node name").map_err(|m| Error::invalid("start agent", m))?;
        if !cfg.prefix.starts_with('/') {
            return Err(Error::invalid("start agent", format!("prefix {:?} must start with '/'", cfg.prefix)));
        }
        if cfg.lease_ttl < Duration::from_secs(2) {
            return Err(Error::invalid("start agent", "lease TTL must be at least 2 s"));
        }
        let (status_tx, status) = watch::channel(AgentStatus::new(&cfg.node.name));
        let (exit, exit_rx) = watch::channel(None);
        let (done_tx, done) = std::sync::mpsc::channel();
        let node = Arc::new(Mutex::new(None));
        let node2 = node.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, "start agent runtime", e))?;
        let thread = std::thread::Builder::new()
            .name(format!("podnet-agent-{}", cfg.node.name).chars().take(15).collect())
            .spawn(move || {
                let r = rt.block_on(async move {
                    let store = match make_store().await {
                        Ok(s) => Arc::new(s),
                        Err(e) => {
                            // Nothing to retry with: say why and stop.
                            status_tx.send_modify(|s| {
                                s.phase = Phase::Stopped;
                                s.last_error = Some(format!("cannot create the store client: {e}"));
                            });
                            return Err(e);
                        }
                    };
                    let runner = Runner {
                        public_ip,
                        cfg,
                        store,
                        status: status_tx,
                        node: node2,
                        net: None,
                        held: None,
                        peers: HashMap::new(),
                    };
                    runner.run(exit_rx).await
                });
                let _ = done_tx.send(r);
            })
            .map_err(|e| Error::new(ErrorKind::Io, "start agent thread", e))?;
        Ok(Agent { status, exit, done: Mutex::new(Some(done)), thread: Mutex::new(Some(thread)), node })
    }

    /// The current status.
    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// Wait until the agent is ready, up to `timeout` (then an error of kind `Io` carrying the
    /// agent's last error). Blocks the calling thread.
    pub fn wait_ready(&self, timeout: Duration) -> Result<AgentStatus, Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let s = self.status();
            if s.ready {
                return Ok(s);
            }
            if s.phase == Phase::Stopped || std::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Io,
                    "wait for agent",
                    format!(
                        "not ready after {timeout:?} (phase {:?}): {}",
                        s.phase,
                        s.last_error.as_deref().unwrap_or("no error reported")
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`Agent::wait_ready`] for async callers (any runtime).
    pub async fn ready(&self, timeout: Duration) -> Result<AgentStatus, Error> {
        let mut rx = self.status.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| s.ready || s.phase == Phase::Stopped)).await;
        self.wait_ready(Duration::ZERO)
    }

    /// A receiver of every status change.
    pub fn subscribe(&self) -> watch::Receiver<AgentStatus> {
        self.status.clone()
    }

    /// The node, once the agent has opened it; usable while the agent runs (its kernel
    /// connection lives on the agent's runtime). Until the agent is first ready its sandbox
    /// creates fail with `ErrorKind::NotReady` ([`Node::set_ready`]).
    pub fn node(&self) -> Option<Arc<Node>> {
        self.node.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn finish(&self, how: Exit) -> Result<(), Error> {
        let _ = self.exit.send(Some(how));
        let r = match self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(rx) => rx.recv().unwrap_or(Ok(())),
            None => Ok(()),
        };
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        r
    }

    /// Stop following the store (blocks until the agent's thread ended). The data plane and the
    /// lease stay: a restarted agent finds its lease and subnet again, and the other nodes keep
    /// their routes to this one. Idempotent.
    pub fn stop(&self) {
        let _ = self.finish(Exit::Stop);
    }

    /// Stop and leave the cluster: revoke the lease and delete the key, so every other node
    /// removes this one. The local data plane stays.
    pub fn leave(&self) -> Result<(), Error> {
        self.finish(Exit::Leave)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Runner<S: Store> {
    cfg: AgentConfig,
    public_ip: Ipv4Addr,
    store: Arc<S>,
    status: watch::Sender<AgentStatus>,
    node: Arc<Mutex<Option<Arc<Node>>>>,
    net: Option<NetConfig>,
    held: Option<Held>,
    /// The peers programmed, by peer name, as last applied.
    peers: HashMap<String, Peer>,
}

/// Why a session ended.
#[derive(Debug)]
enum Stop {
    /// Fine; list again (compaction).
    Relist,
    /// A failure; back off and retry.
    Failed(String, bool),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Failed(e.to_string(), e.unavailable)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e.to_string(), false)
    }
}

impl<S: Store> Runner<S> {
    fn set(&self, f: impl FnOnce(&mut AgentStatus)) {
        self.status.send_modify(f);
        if let Some(p) = &self.cfg.status_file {
            let s = self.status.borrow().clone();
            if let Err(e) = write_json(p, &s) {
                tracing::warn!(path = %p.display(), error = %e, "cannot write the agent status file");
            }
        }
    }

    /// Run sessions until told to end.
    async fn run(mut self, mut stop: watch::Receiver<Option<Exit>>) -> Result<(), Error> {
        let mut backoff = BACKOFF_MIN;
        loop {
            let r = tokio::select! {
                r = self.session() => r,
                _ = stop.wait_for(|s| s.is_some()) => break,
            };
            match r {
                Stop::Relist => {
                    tracing::info!(node = %self.cfg.node.name, "watch history compacted; listing again");
                    backoff = BACKOFF_MIN;
                }
                Stop::Failed(msg, unavailable) => {
                    tracing::warn!(node = %self.cfg.node.name, error = %msg, retry_in = ?backoff, "agent step failed; the data plane stays as it is");
                    self.set(|s| {
                        s.last_error = Some(msg);
                        if unavailable {
                            s.store_reachable = false;
                        }
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| s.is_some()) => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        let mut r = Ok(());
        if *stop.borrow() == Some(Exit::Leave) {
            if let Some(h) = &self.held {
                let key = h.key.key(&self.cfg.prefix);
                let res = async {
                    if h.lease != 0 {
                        self.store.revoke(h.lease).await?;
                    }
                    self.store.delete(&key).await
                }
                .await;
                match res {
                    Ok(()) => tracing::info!(node = %self.cfg.node.name, key = %key, "left the cluster"),
                    Err(e) => r = Err(Error::new(ErrorKind::Io, "leave the cluster", e)),
                }
            }
        }
        self.set(|s| {
            s.phase = Phase::Stopped;
            s.ready = false;
        });
        r
    }

    /// One pass: make sure of the lease and the node, list, sync, then follow the watch until
    /// it breaks.
    async fn session(&mut self) -> Stop {
        match self.session_inner().await {
            Ok(()) => Stop::Relist,
            Err(e) => e,
        }
    }

    async fn session_inner(&mut self) -> Result<(), Stop> {
        if self.net.is_none() {
            let key = format!("{}/config", self.cfg.prefix.trim_end_matches('/'));
            let kv = self.store.get(&key).await?;
            self.set(|s| s.store_reachable = true);
            let kv = kv.ok_or_else(|| {
                Stop::Failed(format!("no network config at {key}: write flannel's net-conf JSON there"), false)
            })?;
            let net = NetConfig::parse(&kv.value)
                .map_err(|m| Stop::Failed(format!("network config at {key}: {m}"), false))?;
            self.net = Some(net);
        }
        match &self.held {
            None => self.acquire().await?,
            Some(_) => self.renew().await?,
        }
        if self.node().is_none() {
            self.set(|s| s.phase = Phase::Programming);
            self.open_node().await?;
        }
        let listing = self.store.list(&self.cfg.subnets_prefix()).await?;
        self.set(|s| s.store_reachable = true);
        let mut wanted: HashMap<String, Peer> = HashMap::new();
        let mut own_listed = false;
        // Oldest first: of two leases that claim a common subnet (a race another node is about
        // to lose and undo), the older one is the peer.
        let mut kvs: Vec<&KeyValue> = listing.kvs.iter().collect();
        kvs.sort_by_key(|kv| kv.create_revision);
        for kv in kvs {
            match self.classify(kv) {
                Some(Ok(p)) if wanted.values().any(|q| peers_overlap(q, &p)) => {
                    tracing::warn!(node = %self.cfg.node.name, key = %kv.key, "ignoring a lease whose subnet an older lease holds");
                }
                Some(Ok(p)) => {
                    wanted.insert(p.name.clone(), p);
                }
                Some(Err(())) => {
                    own_listed = true;
                    self.own_key_changed(kv).await?;
                }
                None => {}
            }
        }
        if !own_listed {
            // Deleted while the watch was down: take the same subnet again, then list anew.
            tracing::error!(node = %self.cfg.node.name, "this node's lease key is gone; re-acquiring the same subnet (never renumbering a live node)");
            self.reclaim().await?;
            return Ok(());
        }
        if self.status.borrow().ready && wanted == self.peers {
            // Nothing changed while the watch was down: no kernel work at all.
        } else {
            let mut list: Vec<Peer> = wanted.values().cloned().collect();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let node = self.node().expect("opened above");
            let rep = node.sync_peers(&list).await?;
            tracing::info!(node = %self.cfg.node.name, peers = rep.peers, added = rep.added, removed = rep.removed, revision = listing.revision, "peers synced");
            self.peers = wanted;
        }
        if let Some(node) = self.node() {
            node.set_ready(true)?;
        }
        let n = self.peers.len();
        self.set(|s| {
            s.ready = true;
            s.phase = Phase::Ready;
            s.peers = n;
            s.revision = listing.revision;
            s.last_error = None;
        });
        let mut watch = self.store.watch(&self.cfg.subnets_prefix(), listing.revision + 1).await?;
        let every = (self.cfg.lease_ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(300));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                item = watch.next() => match item? {
                    WatchItem::Compacted { compact_revision } => {
                        tracing::warn!(node = %self.cfg.node.name, compact_revision, "watch fell behind compaction");
                        return Ok(());
                    }
                    WatchItem::Events { events, revision } => {
                        for e in events {
                            self.apply(e).await?;
                        }
                        let n = self.peers.len();
                        self.set(|s| { s.revision = revision; s.peers = n; s.store_reachable = true; });
                    }
                },
                _ = tick.tick() => self.renew().await?,
            }
        }
    }

    fn node(&self) -> Option<Arc<Node>> {
        self.node.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn net(&self) -> &NetConfig {
        self.net.as_ref().expect("read before use")
    }

    fn my_attrs(&self) -> LeaseAttrs {
        // The node's own VTEP MAC once it is open; before that (the first lease is taken before
        // the node opens with its subnet) the same derivation the node uses.
        let mac = self.node().and_then(|n| n.vtep_mac()).unwrap_or_else(|| podnet::vtep_mac(&self.cfg.node.name));
        LeaseAttrs::for_node(self.public_ip, &self.net().backend, mac, self.net().ipv6.is_some())
    }

    /// A listed key: `Some(Ok(peer))` for another node's lease, `Some(Err(()))` for our own key,
    /// `None` for anything that is not a usable lease (logged).
    fn classify(&self, kv: &KeyValue) -> Option<Result<Peer, ()>> {
        let key = SubnetKey::parse(&kv.key)?;
        if self.held.as_ref().is_some_and(|h| h.key == key) {
            return Some(Err(()));
        }
        let peer = self.peer_of(&key, &kv.value).and_then(|p| {
            // A peer this node cannot reach (host-gw across a router) is skipped, as flannel
            // skips it, instead of failing the sync of every other peer.
            match self.node().map(|n| n.peer_paths(&p)) {
                Some(Err(e)) => Err(e.to_string()),
                _ => Ok(p),
            }
        });
        match peer {
            Ok(p) => Some(Ok(p)),
            Err(why) => {
                tracing::warn!(node = %self.cfg.node.name, key = %kv.key, reason = %why, "ignoring lease");
                None
            }
        }
    }

    fn peer_of(&self, key: &SubnetKey, value: &[u8]) -> Result<Peer, String> {
        let a = LeaseAttrs::from_json(value)?;
        if a.public_ip.is_unspecified() || a.public_ip.is_loopback() || a.public_ip.is_multicast() {
            return Err(format!("PublicIP {} is not a unicast address", a.public_ip));
        }
        if a.public_ip == self.public_ip {
            return Err(format!("PublicIP {} is this node's own address", a.public_ip));
        }
        let mut cidrs = vec![IpNetwork::V4(key.v4)];
        if let (Some(v6), Some(_)) = (key.v6, &self.net().ipv6) {
            cidrs.push(IpNetwork::V6(v6));
        }
        if let Some(h) = &self.held {
            if h.key.v4.overlaps(key.v4) || matches!((h.key.v6, key.v6), (Some(a), Some(b)) if a.overlaps(b)) {
                return Err(format!("overlaps this node's subnet {}", h.key.name()));
            }
        }
        let vtep_mac = match self.net().backend {
            Backend::Vxlan { .. } => {
                let d = a.vxlan().ok_or("BackendData has no VXLAN VtepMAC")?;
                let m =
                    flannel::parse_mac(&d.vtep_mac).ok_or_else(|| format!("VtepMAC {:?} is not a MAC", d.vtep_mac))?;
                if m[0] & 1 == 1 || m == [0; 6] {
                    return Err(format!("VtepMAC {} is not a unicast address", d.vtep_mac));
                }
                Some(m)
            }
            Backend::HostGw => None,
        };
        Ok(Peer { name: key.peer_name(), underlay_ip: IpAddr::V4(a.public_ip), pod_cidrs: cidrs, vtep_mac })
    }

    /// One watched change: O(1) kernel requests.
    async fn apply(&mut self, e: WatchEvent) -> Result<(), Stop> {
        match e {
            WatchEvent::Put(kv) => match self.classify(&kv) {
                // An unchanged value (a renewal by put) costs no kernel request.
                Some(Ok(p)) if self.peers.get(&p.name) == Some(&p) => {}
                // A lease for a subnet a known peer holds: a race its node loses and undoes.
                Some(Ok(p)) if self.peers.values().any(|q| q.name != p.name && peers_overlap(q, &p)) => {
                    tracing::warn!(node = %self.cfg.node.name, key = %kv.key, "ignoring a lease whose subnet an older lease holds");
                }
                Some(Ok(p)) => {
                    let node = self.node().expect("open");
                    node.add_peer(&p).await?;
                    tracing::info!(node = %self.cfg.node.name, peer = %p.name, underlay = %p.underlay_ip, "peer added");
                    self.peers.insert(p.name.clone(), p);
                    self.set(|s| s.peer_changes += 1);
                }
                Some(Err(())) => self.own_key_changed(&kv).await?,
                None => {}
            },
            WatchEvent::Delete(key) => {
                let Some(k) = SubnetKey::parse(&key) else { return Ok(()) };
                if self.held.as_ref().is_some_and(|h| h.key == k) {
                    tracing::error!(node = %self.cfg.node.name, key = %key, "this node's lease key was deleted; re-acquiring the same subnet (never renumbering a live node)");
                    self.reclaim().await?;
                } else if self.peers.remove(&k.peer_name()).is_some() {
                    let node = self.node().expect("open");
                    node.remove_peer(&k.peer_name()).await?;
                    tracing::info!(node = %self.cfg.node.name, peer = %k.peer_name(), "peer removed");
                    self.set(|s| s.peer_changes += 1);
                }
            }
        }
        Ok(())
    }

    /// Someone wrote our key: fine if it still names us, a loud conflict otherwise.
    async fn own_key_changed(&mut self, kv: &KeyValue) -> Result<(), Stop> {
        match LeaseAttrs::from_json(&kv.value) {
            Ok(a) if a.public_ip == self.public_ip => Ok(()),
            Ok(a) => {
                let msg = format!(
                    "conflict: this node's subnet key {} now names PublicIP {}; podnet will not renumber a live node: resolve it in the store",
                    kv.key, a.public_ip
                );
                tracing::error!(node = %self.cfg.node.name, "{msg}");
                Err(Stop::Failed(msg, false))
            }
            Err(e) => Err(Stop::Failed(format!("this node's key {} holds a bad value: {e}", kv.key), false)),
        }
    }

    /// Lease a subnet: ours by PublicIP, else the one in the state file if free, else a random
    /// pick among the first free ones; creation is a transaction on "key absent".
    async fn acquire(&mut self) -> Result<(), Stop> {
        self.set(|s| s.phase = Phase::Leasing);
        let saved: Option<SavedState> =
            std::fs::read(self.cfg.effective_state_file()).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let attrs = self.my_attrs();
        let value = attrs.to_json();
        for _ in 0..RACE_RETRIES {
            let listing = self.store.list(&self.cfg.subnets_prefix()).await?;
            self.set(|s| s.store_reachable = true);
            let mut taken = vec![];
            let mut mine = None;
            for kv in &listing.kvs {
                let Some(k) = SubnetKey::parse(&kv.key) else { continue };
                taken.push((k, kv.clone()));
                if LeaseAttrs::from_json(&kv.value).is_ok_and(|a| a.public_ip == self.public_ip) {
                    mine = Some((k, kv.clone()));
                }
            }
            // 1. The lease that names our PublicIP.
            if let Some((k, kv)) = mine {
                if self.net().compatible(&k) {
                    let lease = if kv.lease == 0 {
                        // A reservation: keep it one.
                        if kv.value != value {
                            self.store.put(&kv.key, &value, 0).await?;
                        }
                        0
                    } else if saved.as_ref().is_some_and(|s| s.lease_id == kv.lease)
                        && self.store.keep_alive(kv.lease).await?.is_some()
                    {
                        // Our own live lease from before a restart: no write, so no other node
                        // sees a change.
                        if kv.value != value {
                            self.store.put(&kv.key, &value, kv.lease).await?;
                        }
                        kv.lease
                    } else {
                        let lease = self.store.grant(self.cfg.lease_ttl).await?;
                        self.store.put(&kv.key, &value, lease).await?;
                        lease
                    };
                    tracing::info!(node = %self.cfg.node.name, subnet = %k.name(), lease = format!("{lease:x}"), "reusing the lease that names this node's PublicIP");
                    return self.held(k, lease);
                }
                tracing::warn!(node = %self.cfg.node.name, key = %kv.key, "the lease naming this node's PublicIP does not fit the network config; deleting it");
                self.store.delete(&kv.key).await?;
                continue;
            }
            // 2. The subnet from the state file, if still free; 3. a random free one.
            let is_free = |k: &SubnetKey| !taken.iter().any(|(t, _)| subnets_overlap(t, k));
            let pick = match saved.as_ref().map(|s| s.subnet).filter(|k| self.net().compatible(k) && is_free(k)) {
                Some(k) => {
                    tracing::info!(node = %self.cfg.node.name, subnet = %k.name(), "reusing the subnet from the state file");
                    k
                }
                None => self.pick(&taken)?,
            };
            let lease = self.store.grant(self.cfg.lease_ttl).await?;
            let key = pick.key(&self.cfg.prefix);
            if self.store.create(&key, &value, lease).await? {
                // The create is atomic on the key, and a dual-stack key names two subnets: a node
                // racing us may have created another key for the same IPv4 or IPv6 subnet. The
                // older key holds it; the younger one gives its key up and picks again.
                let after = self.store.list(&self.cfg.subnets_prefix()).await?;
                let mine = after.kvs.iter().find(|kv| kv.key == key).map_or(i64::MAX, |kv| kv.create_revision);
                let older = after.kvs.iter().any(|kv| {
                    kv.key != key
                        && kv.create_revision < mine
                        && SubnetKey::parse(&kv.key).is_some_and(|k| subnets_overlap(&k, &pick))
                });
                if !older {
                    tracing::info!(node = %self.cfg.node.name, subnet = %pick.name(), lease = format!("{lease:x}"), "leased a subnet");
                    return self.held(pick, lease);
                }
                tracing::info!(node = %self.cfg.node.name, subnet = %pick.name(), "another node's older key holds one of these subnets; giving the key up");
            }
            // Lost a race for this subnet: drop the unused lease and pick again.
            let _ = self.store.revoke(lease).await;
            tracing::info!(node = %self.cfg.node.name, subnet = %pick.name(), "another node took the subnet first; picking again");
        }
        Err(Stop::Failed(format!("no subnet leased after {RACE_RETRIES} races with other nodes"), false))
    }

    fn pick(&self, taken: &[(SubnetKey, KeyValue)]) -> Result<SubnetKey, Stop> {
        let net = self.net();
        let v4_taken: Vec<_> = taken.iter().map(|(k, _)| k.v4).collect();
        let v6_taken: Vec<_> = taken.iter().filter_map(|(k, _)| k.v6).collect();
        let free4 = net.free_v4(&v4_taken, flannel::PICK_AMONG);
        let free6 = net.free_v6(&v6_taken, flannel::PICK_AMONG);
        if free4.is_empty() || (net.ipv6.is_some() && free6.is_empty()) {
            return Err(Stop::Failed(format!("out of subnets in {} (all leased or reserved)", net.network), false));
        }
        let mut rng = crate::rng::SplitMix64::from_entropy();
        let v4 = free4[rng.below(free4.len() as u64) as usize];
        let v6 = (!free6.is_empty()).then(|| free6[rng.below(free6.len() as u64) as usize]);
        Ok(SubnetKey { v4, v6 })
    }

    fn held(&mut self, key: SubnetKey, lease: i64) -> Result<(), Stop> {
        if let Some(node) = self.node() {
            // The node is open with its pod CIDRs: never renumber it.
            let have: Vec<IpNetwork> = node.config().pools.iter().map(|p| p.cidr).collect();
            let want = cidrs(&key);
            if have != want {
                return Err(Stop::Failed(
                    format!(
                        "the store now gives this node {} but it runs with {:?}; not renumbering a live node",
                        key.name(),
                        have
                    ),
                    false,
                ));
            }
        }
        let state = SavedState { subnet: key, lease_id: lease };
        let path = self.cfg.effective_state_file();
        if let Err(e) = write_json(&path, &state) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the agent state file");
        }
        let name = key.key(&self.cfg.prefix);
        self.set(|s| {
            s.key = Some(name);
            s.lease_id = lease;
            s.pod_cidrs = cidrs(&key);
        });
        self.held = Some(Held { key, lease });
        Ok(())
    }

    /// Keep the store lease alive; if it is gone, take the same subnet again.
    async fn renew(&mut self) -> Result<(), Stop> {
        let Some(h) = self.held.clone() else { return Ok(()) };
        if h.lease == 0 {
            return Ok(());
        }
        match self.store.keep_alive(h.lease).await? {
            Some(_) => {
                self.set(|s| s.store_reachable = true);
                Ok(())
            }
            None => {
                tracing::error!(node = %self.cfg.node.name, subnet = %h.key.name(), lease = format!("{:x}", h.lease), "this node's store lease is gone; re-acquiring the same subnet (never renumbering a live node)");
                self.reclaim().await
            }
        }
    }

    /// Take the held subnet again after losing its lease.
    async fn reclaim(&mut self) -> Result<(), Stop> {
        let h = self.held.clone().expect("held");
        self.set(|s| s.lease_lost += 1);
        let key = h.key.key(&self.cfg.prefix);
        let value = self.my_attrs().to_json();
        let lease = self.store.grant(self.cfg.lease_ttl).await?;
        if !self.store.create(&key, &value, lease).await? {
            let _ = self.store.revoke(lease).await;
            return match self.store.get(&key).await? {
                Some(kv) => {
                    self.own_key_changed(&kv).await?;
                    // It names us (a restart of ours, or an operator's reservation): adopt it.
                    self.store.put(&key, &value, kv.lease).await?;
                    self.held(h.key, kv.lease)
                }
                None => Err(Stop::Failed(format!("{key} vanished while re-acquiring it; retrying"), true)),
            };
        }
        tracing::warn!(node = %self.cfg.node.name, subnet = %h.key.name(), lease = format!("{lease:x}"), "re-acquired the same subnet");
        self.held(h.key, lease)
    }

    async fn open_node(&mut self) -> Result<(), Stop> {
        let h = self.held.clone().expect("held");
        let net = self.net().clone();
        let mut nc = self.cfg.node.clone();
        nc.pools.clear();
        for c in cidrs(&h.key) {
            nc = nc.pod_cidr(c);
        }
        if nc.cluster_cidrs.is_empty() {
            nc.cluster_cidrs.push(IpNetwork::V4(net.network));
            if let Some(p) = &net.ipv6 {
                nc.cluster_cidrs.push(IpNetwork::V6(p.network));
            }
        }
        match net.backend {
            Backend::Vxlan { vni, port, direct_routing } => {
                nc.vxlan.vni = vni;
                nc.vxlan.port = port;
                nc.cross_node = if direct_routing { CrossNodeMode::Auto } else { CrossNodeMode::Overlay };
            }
            Backend::HostGw => nc.cross_node = CrossNodeMode::Routed,
        }
        let node = Node::open(nc).await?;
        // No pod before the peers are programmed: creates fail with NotReady until then.
        node.set_ready(false)?;
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(node));
        Ok(())
    }
}

/// Do two peers' pod CIDRs overlap?
fn peers_overlap(a: &Peer, b: &Peer) -> bool {
    a.pod_cidrs.iter().any(|x| {
        b.pod_cidrs.iter().any(|y| match (x, y) {
            (IpNetwork::V4(x), IpNetwork::V4(y)) => x.overlaps(*y),
            (IpNetwork::V6(x), IpNetwork::V6(y)) => x.overlaps(*y),
            _ => false,
        })
    })
}

/// Do two leases claim a common IPv4 or IPv6 subnet?
fn subnets_overlap(a: &SubnetKey, b: &SubnetKey) -> bool {
    a.v4.overlaps(b.v4) || matches!((a.v6, b.v6), (Some(x), Some(y)) if x.overlaps(y))
}

fn cidrs(k: &SubnetKey) -> Vec<IpNetwork> {
    let mut v = vec![IpNetwork::V4(k.v4)];
    if let Some(v6) = k.v6 {
        v.push(IpNetwork::V6(v6));
    }
    v
}

fn write_json<T: Serialize>(path: &std::path::Path, v: &T) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Read the status a running agent wrote to `path` (for `podnet agent status`). An agent whose
/// process is gone is reported not ready, whatever the file says.
pub fn read_status(path: &std::path::Path) -> Result<AgentStatus, Error> {
    let op = format!("read agent status {}", path.display());
    let b = std::fs::read(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
        Error::new(kind, &op, e)
    })?;
    let mut s: AgentStatus = serde_json::from_slice(&b).map_err(|e| Error::new(ErrorKind::Inconsistent, &op, e))?;
    if s.phase != Phase::Stopped && !std::path::Path::new(&format!("/proc/{}", s.pid)).exists() {
        s.ready = false;
        s.phase = Phase::Stopped;
        s.last_error = Some(format!("the agent (pid {}) is not running", s.pid));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoStore;

    struct NoWatch;

    impl StoreWatch for NoWatch {
        async fn next(&mut self) -> StoreResult<WatchItem> {
            Err(StoreError::unavailable("watch", "no store"))
        }
    }

    fn down<T>() -> StoreResult<T> {
        Err(StoreError::unavailable("test", "no store"))
    }

    impl Store for NoStore {
        type Watch = NoWatch;
        async fn get(&self, _: &str) -> StoreResult<Option<KeyValue>> {
            down()
        }
        async fn list(&self, _: &str) -> StoreResult<Listing> {
            down()
        }
        async fn watch(&self, _: &str, _: i64) -> StoreResult<NoWatch> {
            down()
        }
        async fn create(&self, _: &str, _: &[u8], _: i64) -> StoreResult<bool> {
            down()
        }
        async fn put(&self, _: &str, _: &[u8], _: i64) -> StoreResult<()> {
            down()
        }
        async fn delete(&self, _: &str) -> StoreResult<()> {
            down()
        }
        async fn grant(&self, _: Duration) -> StoreResult<i64> {
            down()
        }
        async fn keep_alive(&self, _: i64) -> StoreResult<Option<Duration>> {
            down()
        }
        async fn revoke(&self, _: i64) -> StoreResult<()> {
            down()
        }
    }

    fn start(cfg: AgentConfig) -> Result<Agent, Error> {
        Agent::start(cfg, || async { Ok(NoStore) })
    }

    #[test]
    fn bad_configs_are_refused_before_anything_starts() {
        let base = || AgentConfig::new(NodeConfig::new("n1").underlay("10.0.0.1".parse().unwrap()));
        let e = start(AgentConfig::new(NodeConfig::new("n1"))).unwrap_err();
        assert!(e.kind() == ErrorKind::InvalidArgument && e.to_string().contains("underlay"), "{e}");
        let e = start(AgentConfig::new(NodeConfig::new("n1").underlay("fd00::1".parse().unwrap()))).unwrap_err();
        assert!(e.to_string().contains("IPv4 PublicIP"), "{e}");
        let mut c = base();
        c.prefix = "coreos.com/network".into();
        assert_eq!(start(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let mut c = base();
        c.lease_ttl = Duration::from_secs(1);
        assert_eq!(start(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let c = AgentConfig::new(NodeConfig::new("../x").underlay("10.0.0.1".parse().unwrap()));
        assert_eq!(start(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn an_unreachable_store_is_reported_not_ready_and_stop_ends_the_agent() {
        let mut c = AgentConfig::new(NodeConfig::new("n1").underlay("10.0.0.1".parse().unwrap()));
        let dir = std::env::temp_dir().join(format!("podnet-agent-unit-{}", std::process::id()));
        c.status_file = Some(dir.join("s.json"));
        c.state_file = Some(dir.join("a.json"));
        let a = start(c).unwrap();
        let e = a.wait_ready(Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("no store"), "{e}");
        let s = a.status();
        assert!(!s.ready && !s.store_reachable && s.phase == Phase::Leasing, "{s:?}");
        let from_file = read_status(&dir.join("s.json")).unwrap();
        assert!(!from_file.ready && from_file.last_error.is_some());
        a.stop();
        a.stop();
        assert_eq!(a.status().phase, Phase::Stopped);
        assert_eq!(read_status(&dir.join("s.json")).unwrap().phase, Phase::Stopped);
        // A status file left by a process that is gone reads as not ready.
        let mut dead = from_file.clone();
        dead.ready = true;
        dead.phase = Phase::Ready;
        dead.pid = u32::MAX;
        write_json(&dir.join("dead.json"), &dead).unwrap();
        let r = read_status(&dir.join("dead.json")).unwrap();
        assert!(!r.ready && r.last_error.unwrap().contains("not running"));
        assert_eq!(read_status(&dir.join("missing.json")).unwrap_err().kind(), ErrorKind::NotFound);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
