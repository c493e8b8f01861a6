//! Privileged tests of the cluster agent against real etcd (Debian's `etcd-server`), all inside a
//! throwaway world: an underlay segment (a bridge in an `underlay` netns) with three nodes and
//! etcd on it, a fourth node behind a router. Each node runs an agent in-process; each agent
//! reaches etcd from its node's netns.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podnet::{NodeConfig, PodMode, SandboxSpec};
use podnet_cluster::agent::{flannel, Agent, AgentConfig, AgentStatus, EtcdStore, LeaseAttrs, Store, SubnetKey};
use podnet_world::*;

/// The network config of most tests: flannel's default VXLAN over 10.244.0.0/16.
const VXLAN: &str = r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}"#;
/// The dual-stack network config.
const DUAL: &str =
    r#"{"EnableIPv6": true, "Network": "10.244.0.0/16", "IPv6Network": "fd00:10::/48", "Backend": {"Type": "vxlan"}}"#;
const ETCD_IPS: [&str; 3] = ["10.200.1.2", "10.200.1.3", "10.200.1.4"];
const PREFIX: &str = "/coreos.com/network";

/// One etcd member, killed (and reaped) on drop.
struct Etcd {
    child: Option<Child>,
    args: Vec<String>,
    ns: PathBuf,
}

impl Etcd {
    fn start(ns: &Path, data: &Path, idx: usize, members: usize) -> Etcd {
        let ip = ETCD_IPS[idx];
        let cluster: Vec<String> = (0..members).map(|i| format!("e{i}=http://{}:2380", ETCD_IPS[i])).collect();
        let args = vec![
            format!("--name=e{idx}"),
            format!("--data-dir={}", data.join(format!("e{idx}")).display()),
            format!("--listen-client-urls=http://{ip}:2379"),
            format!("--advertise-client-urls=http://{ip}:2379"),
            format!("--listen-peer-urls=http://{ip}:2380"),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            format!("--initial-cluster={}", cluster.join(",")),
            "--initial-cluster-state=new".into(),
            "--log-level=error".into(),
        ];
        let mut e = Etcd { child: None, args, ns: ns.to_path_buf() };
        e.restart();
        e
    }

    fn restart(&mut self) {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.display()))
            .arg("etcd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server; scripts/setup.sh installs it)");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct World2 {
    w: World,
    ul: PathBuf,
    nodes: Vec<(String, PathBuf, IpAddr)>,
    rt: tokio::runtime::Runtime,
}

/// The underlay (bridge + router) and `n` node netns; etcd addresses live on the bridge.
fn world(tag: &str, n: usize) -> World2 {
    let mut w = World::new(tag);
    let UnderlayNet { ul, nodes, .. } = w.underlay_net(n);
    in_ns(&ul, &["ip", "link", "set", "lo", "up"]);
    for ip in ETCD_IPS {
        in_ns(&ul, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "br0"]);
    }
    in_ns(&ul, &["ip", "route", "add", "default", "via", "10.200.1.1"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    World2 { w, ul, nodes, rt }
}

fn endpoints(members: usize) -> Vec<String> {
    (0..members).map(|i| format!("http://{}:2379", ETCD_IPS[i])).collect()
}

impl World2 {
    /// An etcd cluster of `members` on the underlay holding the network config `config`, and a
    /// client of it from the underlay netns (the test's own view of the store) once it answers.
    fn etcd(&self, members: usize, config: &str) -> (Vec<Etcd>, EtcdStore) {
        let data = self.w.dir.join("etcd");
        let v: Vec<Etcd> = (0..members).map(|i| Etcd::start(&self.ul, &data, i, members)).collect();
        let st = self.rt.block_on(EtcdStore::connect(&endpoints(members), Some(&self.ul))).unwrap();
        wait_for("etcd to answer", Duration::from_secs(20), || self.rt.block_on(st.list("/")).is_ok());
        self.rt.block_on(st.put(&format!("{PREFIX}/config"), config.as_bytes(), 0)).unwrap();
        (v, st)
    }

    fn agent_cfg(&self, i: usize, ttl: Duration) -> AgentConfig {
        let (name, ns, addr) = &self.nodes[i];
        let node = NodeConfig::new(name)
            .netns(ns)
            .state_dir(self.w.state_dir(name))
            .netns_dir(self.w.netns_dir())
            .mode(if i % 2 == 0 { PodMode::Bridge } else { PodMode::Routed })
            .underlay(*addr);
        let mut c = AgentConfig::new(node);
        c.lease_ttl = ttl;
        c.state_file = Some(self.w.dir.join(format!("agent-{name}.json")));
        c.status_file = Some(self.w.dir.join(format!("agent-{name}.status.json")));
        c
    }

    fn start(&self, i: usize, members: usize, ttl: Duration) -> Agent {
        let cfg = self.agent_cfg(i, ttl);
        let ns = self.nodes[i].1.clone();
        Agent::start(cfg, move || async move { EtcdStore::connect(&endpoints(members), Some(&ns)).await }).unwrap()
    }

    /// An agent on node `i` (lease TTL 60 s) over etcd with test `hooks`; the hooks, shared
    /// with the store.
    fn start_hooked(&self, i: usize, hooks: Hooks) -> (Agent, Arc<Hooks>) {
        let (ns, hooks) = (self.nodes[i].1.clone(), Arc::new(hooks));
        let h = hooks.clone();
        let a = Agent::start(self.agent_cfg(i, Duration::from_secs(60)), move || async move {
            let inner = EtcdStore::connect(&endpoints(1), Some(&ns)).await?;
            Ok(Hooked { inner, hooks: h, watches: AtomicUsize::new(0) })
        })
        .unwrap();
        (a, hooks)
    }

    /// Agents on the first `n` nodes (lease TTL 60 s), each ready within `timeout`; their
    /// statuses then.
    fn start_ready(&self, n: usize, members: usize, timeout: Duration) -> (Vec<Agent>, Vec<AgentStatus>) {
        let agents: Vec<Agent> = (0..n).map(|i| self.start(i, members, Duration::from_secs(60))).collect();
        let ready = agents.iter().map(|a| a.wait_ready(timeout).unwrap()).collect();
        (agents, ready)
    }

    /// Wait until node `i`'s kernel has peer routes for exactly `n` peers.
    fn wait_peer_routes(&self, i: usize, n: usize, dual: bool) {
        let per = if dual { 2 } else { 1 };
        let routes = || {
            let r = in_ns(&self.nodes[i].1, &["ip", "-4", "route", "show", "proto", "81"]);
            let r6 = if dual {
                in_ns(&self.nodes[i].1, &["ip", "-6", "route", "show", "proto", "81"])
            } else {
                String::new()
            };
            r + &r6
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = routes();
            if r.lines().count() == n * per {
                return;
            }
            // What the kernel has, for the failure message (a flake seen once in CI).
            assert!(
                Instant::now() < deadline,
                "timed out after 15s waiting for {} to have {n} peers: routes\n{r}",
                self.nodes[i].0
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Pod {
    ns: PathBuf,
    ips: Vec<IpAddr>,
}

fn pod(w: &World2, a: &Agent, id: &str) -> Pod {
    let node = a.node().expect("node open");
    let sb = w.rt.block_on(node.create_sandbox(&SandboxSpec::new(id))).unwrap();
    Pod { ns: sb.netns_path.clone(), ips: sb.ips.iter().map(|n| n.ip()).collect() }
}

/// One pod on each of `agents`' nodes, named `prefix` and the agent's index.
fn pods<'a>(w: &World2, agents: impl IntoIterator<Item = &'a Agent>, prefix: &str) -> Vec<Pod> {
    agents.into_iter().enumerate().map(|(i, a)| pod(w, a, &format!("{prefix}{i}"))).collect()
}

/// TCP from every pod to every other pod, each family; the receiver sees the sender's own IP.
fn full_mesh(pods: &[Pod]) {
    for fam in 0..pods[0].ips.len() {
        for (d, dst) in pods.iter().enumerate() {
            let port = 7000 + fam as u16;
            let srv = echo_peer_server(&dst.ns, SocketAddr::new(dst.ips[fam], port), pods.len() - 1);
            for (s, src) in pods.iter().enumerate().filter(|(s, _)| *s != d) {
                let seen = tcp_ask(&src.ns, SocketAddr::new(dst.ips[fam], port))
                    .unwrap_or_else(|e| panic!("pod {s} -> pod {d} ({}): {e}", dst.ips[fam]));
                assert_eq!(seen, src.ips[fam].to_string());
            }
            srv.join().unwrap();
        }
    }
}

fn subnet_keys(w: &World2, st: &EtcdStore) -> Vec<(String, Vec<u8>, i64)> {
    let l = w.rt.block_on(st.list(&format!("{PREFIX}/subnets/"))).unwrap();
    l.kvs.into_iter().map(|kv| (kv.key, kv.value, kv.lease)).collect()
}

fn cluster(tag: &str, dual: bool) {
    let w = world(tag, 4);
    let (_etcd, st) = w.etcd(1, if dual { DUAL } else { VXLAN });
    let (agents, ready) = w.start_ready(4, 1, Duration::from_secs(20));
    for s in ready {
        assert!(s.key.is_some() && s.lease_id != 0, "{s:?}");
    }
    for i in 0..4 {
        w.wait_peer_routes(i, 3, dual);
    }
    // The keys are flannel's, byte for byte.
    let keys = subnet_keys(&w, &st);
    assert_eq!(keys.len(), 4, "{keys:?}");
    for (i, a) in agents.iter().enumerate() {
        let s = a.status();
        let (k, v, lease) = keys.iter().find(|(k, _, _)| Some(k) == s.key.as_ref()).expect("own key listed");
        let sk = SubnetKey::parse(k).unwrap();
        assert_eq!(k, &sk.key(PREFIX));
        assert_eq!(sk.v6.is_some(), dual, "{k}");
        assert!(sk.v4.prefix() == 24 && sk.v4.network().octets()[..2] == [10, 244], "{k}");
        assert_eq!(*lease, s.lease_id);
        let mac = flannel::format_mac(&podnet::vtep_mac(&w.nodes[i].0));
        let v6data = if dual { format!(r#","BackendV6Data":{{"VNI":1,"VtepMAC":"{mac}"}}"#) } else { String::new() };
        let want = format!(
            r#"{{"PublicIP":"{}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{mac}"}}{v6data}}}"#,
            w.nodes[i].2
        );
        assert_eq!(String::from_utf8_lossy(v), want);
        assert_eq!(LeaseAttrs::from_json(v).unwrap().to_json(), *v);
        // The kernel matches the store: the node's VXLAN device carries the lease's VtepMAC, and
        // every other node has an FDB entry for it towards this node's PublicIP.
        for (j, (_, ns, _)) in w.nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            let fdb = in_ns(ns, &["bridge", "fdb", "show", "dev", "podnet.1"]);
            assert!(fdb.contains(&format!("{mac} dst {}", w.nodes[i].2)), "node{} fdb: {fdb}", j + 1);
            let r = in_ns(ns, &["ip", "route", "show", "proto", "81"]);
            assert!(r.contains(&format!("{} via {} dev podnet.1 onlink", sk.v4, sk.v4.network())), "{r}");
        }
    }
    let status_file = w.w.dir.join("agent-node1.status.json");
    let s = podnet_cluster::agent::read_status(&status_file).unwrap();
    assert!(s.ready && s.peers == 3, "{s:?}");
    let pods = pods(&w, &agents, "p");
    assert_eq!(pods[0].ips.len(), if dual { 2 } else { 1 });
    full_mesh(&pods);
    for a in &agents {
        a.stop();
    }
}

#[test]
fn four_nodes_lease_publish_and_talk_v4() {
    cluster("agent4", false);
}

#[test]
fn four_nodes_lease_publish_and_talk_dual_stack() {
    cluster("agent6", true);
}

#[test]
fn host_gw_routes_on_link_peers_and_skips_the_one_behind_a_router() {
    let w = world("agenthg", 4);
    let (_etcd, st) = w.etcd(1, r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}}"#);
    let (agents, _) = w.start_ready(4, 1, Duration::from_secs(20));
    // node1..3 share the segment: routes via each other's PublicIP; node4 is behind a router,
    // so host-gw cannot reach it (nor it them): skipped, and it does not block the others.
    for i in 0..3 {
        w.wait_peer_routes(i, 2, false);
        let r = in_ns(&w.nodes[i].1, &["ip", "route", "show", "proto", "81"]);
        assert!(!r.contains("podnet.1") && r.contains("via 10.200.1.1"), "{r}");
    }
    assert_eq!(agents[3].status().peers, 0);
    let keys = subnet_keys(&w, &st);
    assert!(
        keys.iter().all(|(_, v, _)| String::from_utf8_lossy(v).ends_with(r#","BackendType":"host-gw"}"#)),
        "{keys:?}"
    );
    let pods = pods(&w, agents.iter().take(3), "h");
    full_mesh(&pods);
    for a in &agents {
        a.stop();
    }
}

#[test]
fn faults_etcd_down_restart_same_subnet_leave_and_expiry() {
    let w = world("agentf", 4);
    let (mut etcd, st) = w.etcd(1, VXLAN);
    let ttl = Duration::from_secs(60);
    let mut agents: Vec<Option<Agent>> = (0..3).map(|i| Some(w.start(i, 1, ttl))).collect();
    for a in agents.iter().flatten() {
        a.wait_ready(Duration::from_secs(20)).unwrap();
    }
    for i in 0..3 {
        w.wait_peer_routes(i, 2, false);
    }
    let pods = pods(&w, agents.iter().flatten(), "f");
    full_mesh(&pods);

    // 1. etcd unreachable: the data plane stays, the agents notice and keep retrying.
    etcd[0].kill();
    wait_for("agents to see etcd gone", Duration::from_secs(30), || {
        agents.iter().flatten().all(|a| !a.status().store_reachable)
    });
    for a in agents.iter().flatten() {
        assert!(a.status().ready, "ready stays: the node works without the store");
    }
    full_mesh(&pods);
    etcd[0].restart();
    // They resume: a node that joins now is programmed everywhere.
    let a4 = w.start(3, 1, ttl);
    a4.wait_ready(Duration::from_secs(30)).unwrap();
    for i in 0..4 {
        w.wait_peer_routes(i, 3, false);
    }
    for a in agents.iter().flatten() {
        assert!(a.status().store_reachable);
    }

    // 2. The agent of node2 dies (as kill -9: nothing is cleaned up) and restarts: same subnet,
    // same store lease (no write, so no other node sees a change) and its kernel entries are not
    // touched; while it was down node3 left, and the restart removes that stale peer.
    let before = agents[1].as_ref().unwrap().status();
    agents[1].take().unwrap().stop();
    let fdb_before = in_ns(&w.nodes[1].1, &["bridge", "fdb", "show", "dev", "podnet.1"]);
    let n3key = agents[2].as_ref().unwrap().status().key.unwrap();
    let n3 = SubnetKey::parse(&n3key).unwrap();
    let changes_node1 = agents[0].as_ref().unwrap().status().peer_changes;
    agents[2].take().unwrap().leave().unwrap();
    let revision_before = w.rt.block_on(st.list("/")).unwrap().revision;
    let a2 = w.start(1, 1, ttl);
    let after = a2.wait_ready(Duration::from_secs(20)).unwrap();
    assert_eq!((after.key.as_ref(), after.lease_id), (before.key.as_ref(), before.lease_id), "same subnet, same lease");
    assert_eq!(w.rt.block_on(st.list("/")).unwrap().revision, revision_before, "the restart wrote nothing to etcd");
    w.wait_peer_routes(1, 2, false);
    let r = in_ns(&w.nodes[1].1, &["ip", "route", "show", "proto", "81"]);
    assert!(!r.contains(&n3.v4.to_string()), "the stale peer from the dead run is gone: {r}");
    let fdb_after = in_ns(&w.nodes[1].1, &["bridge", "fdb", "show", "dev", "podnet.1"]);
    let n3mac = flannel::format_mac(&podnet::vtep_mac("node3"));
    let kept: Vec<&str> = fdb_before.lines().filter(|l| !l.contains(&n3mac)).collect();
    assert_eq!(kept, fdb_after.lines().collect::<Vec<_>>(), "the other peers' FDB entries are untouched");
    agents[1] = Some(a2);

    // 3. node3 left the cluster (key deleted): it is gone from every other node.
    for i in [0, 1, 3] {
        w.wait_peer_routes(i, 2, false);
        let fdb = in_ns(&w.nodes[i].1, &["bridge", "fdb", "show", "dev", "podnet.1"]);
        assert!(!fdb.contains(&n3mac), "node{} still has node3's FDB entry: {fdb}", i + 1);
        let nb = in_ns(&w.nodes[i].1, &["ip", "neigh", "show", "dev", "podnet.1"]);
        assert!(!nb.contains(&n3.v4.network().to_string()), "{nb}");
    }
    assert!(agents[0].as_ref().unwrap().status().peer_changes > changes_node1);

    // 4. A lease that expires (its agent died and never came back) disappears everywhere.
    a4.stop();
    let n4 = SubnetKey::parse(&a4.status().key.unwrap()).unwrap();
    drop(a4);
    let short = w.start(2, 1, Duration::from_secs(3));
    short.wait_ready(Duration::from_secs(20)).unwrap();
    for i in [0, 1] {
        w.wait_peer_routes(i, 3, false);
    }
    short.stop();
    let k = SubnetKey::parse(&short.status().key.unwrap()).unwrap();
    drop(short);
    wait_for("the short lease to expire everywhere", Duration::from_secs(20), || {
        [0, 1]
            .iter()
            .all(|i| !in_ns(&w.nodes[*i].1, &["ip", "route", "show", "proto", "81"]).contains(&k.v4.to_string()))
    });
    let _ = n4;
    for a in agents.iter().flatten() {
        a.stop();
    }
    drop(pods);
}

#[test]
fn racing_agents_one_wins_and_reservations_are_honoured() {
    let w = world("agentr", 3);
    // Three subnets in range; one is reserved (no lease) for another host.
    let (_etcd, st) = w.etcd(
        1,
        r#"{"Network": "10.244.0.0/16", "SubnetMin": "10.244.5.0", "SubnetMax": "10.244.7.0", "Backend": {"Type": "vxlan"}}"#,
    );
    let resv = r#"{"PublicIP":"10.200.1.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:99"}}"#;
    w.rt.block_on(st.put(&format!("{PREFIX}/subnets/10.244.6.0-24"), resv.as_bytes(), 0)).unwrap();
    // node3 has a reservation of its own: it must get exactly that one, without a lease.
    let mine = LeaseAttrs::for_node(
        "10.200.1.13".parse().unwrap(),
        &flannel::Backend::Vxlan { vni: 1, port: 8472, direct_routing: false },
        podnet::vtep_mac("node3"),
        false,
    );
    w.rt.block_on(st.put(&format!("{PREFIX}/subnets/10.244.7.0-24"), &mine.to_json(), 0)).unwrap();
    // node1 and node2 race for the one subnet left (10.244.5.0/24): exactly one wins.
    let a = [w.start(0, 1, Duration::from_secs(60)), w.start(1, 1, Duration::from_secs(60))];
    let a3 = w.start(2, 1, Duration::from_secs(60));
    let s3 = a3.wait_ready(Duration::from_secs(20)).unwrap();
    assert_eq!(s3.key.as_deref(), Some("/coreos.com/network/subnets/10.244.7.0-24"));
    assert_eq!(s3.lease_id, 0, "a reservation stays a reservation");
    wait_for("one racer to win", Duration::from_secs(20), || a.iter().filter(|x| x.status().ready).count() == 1);
    let (win, lose) = if a[0].status().ready { (&a[0], &a[1]) } else { (&a[1], &a[0]) };
    assert_eq!(win.status().key.as_deref(), Some("/coreos.com/network/subnets/10.244.5.0-24"));
    wait_for("the loser to report why", Duration::from_secs(10), || {
        lose.status().last_error.is_some_and(|e| e.contains("out of subnets"))
    });
    assert!(!lose.status().ready);
    let keys = subnet_keys(&w, &st);
    assert_eq!(keys.len(), 3, "{keys:?}");
    let resv_now = keys.iter().find(|k| k.0.ends_with("10.244.6.0-24")).unwrap();
    assert_eq!(resv_now.1, resv.as_bytes(), "another host's reservation is untouched");
    // The winner programmed the reserved host and node3 as peers.
    w.wait_peer_routes(if a[0].status().ready { 0 } else { 1 }, 2, false);
    for x in a.iter().chain([&a3]) {
        x.stop();
    }
}

#[test]
fn three_member_etcd_one_member_killed_no_disruption() {
    let w = world("agent3m", 4);
    let (mut etcd, _st) = w.etcd(3, VXLAN);
    let (agents, _) = w.start_ready(3, 3, Duration::from_secs(30));
    let pods = pods(&w, &agents, "m");
    // The member every client tries first dies.
    etcd[0].kill();
    full_mesh(&pods);
    let a4 = w.start(3, 3, Duration::from_secs(60));
    a4.wait_ready(Duration::from_secs(30)).unwrap();
    for i in 0..4 {
        w.wait_peer_routes(i, 3, false);
    }
    for a in &agents {
        let s = a.status();
        assert!(s.ready, "{s:?}");
    }
    let _ = Arc::new(());
    a4.stop();
    for a in &agents {
        a.stop();
    }
}

/// What a [`Hooked`] store does besides etcd's work, and what it saw.
#[derive(Default)]
struct Hooks {
    /// Report the first watch as fallen behind compaction (the agent must list again, make no
    /// kernel change when nothing changed, and resume watching).
    compact: bool,
    /// Make every listing after the first two (the lease pick) wait until `open` is set (the
    /// agent has its node open but cannot program its peers yet).
    hold: bool,
    open: AtomicBool,
    /// Before the first create of a dual-stack key, create another node's key for the same IPv6
    /// subnet with another IPv4 one (a node racing this one), and set `raced`.
    race_v6: bool,
    raced: AtomicBool,
    /// Listings so far.
    lists: AtomicUsize,
}

/// etcd with test [`Hooks`].
struct Hooked {
    inner: EtcdStore,
    hooks: Arc<Hooks>,
    watches: AtomicUsize,
}

struct MaybeCompacted {
    inner: podnet_cluster::agent::EtcdWatch,
    compacted: bool,
}

impl podnet_cluster::agent::StoreWatch for MaybeCompacted {
    async fn next(&mut self) -> podnet_cluster::agent::StoreResult<podnet_cluster::agent::WatchItem> {
        if std::mem::take(&mut self.compacted) {
            return Ok(podnet_cluster::agent::WatchItem::Compacted { compact_revision: 1 });
        }
        self.inner.next().await
    }
}

impl Store for Hooked {
    type Watch = MaybeCompacted;
    async fn get(&self, key: &str) -> podnet_cluster::agent::StoreResult<Option<podnet_cluster::agent::KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> podnet_cluster::agent::StoreResult<podnet_cluster::agent::Listing> {
        let n = self.hooks.lists.fetch_add(1, SeqCst);
        // acquire lists twice (before and after its create); hold the session's list after them.
        while n >= 2 && self.hooks.hold && !self.hooks.open.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.list(prefix).await
    }
    async fn watch(&self, prefix: &str, from: i64) -> podnet_cluster::agent::StoreResult<MaybeCompacted> {
        let first = self.watches.fetch_add(1, SeqCst) == 0;
        Ok(MaybeCompacted { inner: self.inner.watch(prefix, from).await?, compacted: first && self.hooks.compact })
    }
    async fn create(&self, key: &str, value: &[u8], lease: i64) -> podnet_cluster::agent::StoreResult<bool> {
        if self.hooks.race_v6 {
            let mine = SubnetKey::parse(key).filter(|k| k.v6.is_some());
            if let Some(k) = mine.filter(|_| !self.hooks.raced.swap(true, SeqCst)) {
                let racer = SubnetKey { v4: RACER_V4.parse().unwrap(), v6: k.v6 };
                let text = String::from_utf8_lossy(value).replace(UNDERLAY_IPS[0], RACER_IP);
                assert!(self.inner.create(&racer.key(PREFIX), text.as_bytes(), 0).await?);
            }
        }
        self.inner.create(key, value, lease).await
    }
    async fn put(&self, key: &str, value: &[u8], lease: i64) -> podnet_cluster::agent::StoreResult<()> {
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> podnet_cluster::agent::StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn grant(&self, ttl: Duration) -> podnet_cluster::agent::StoreResult<i64> {
        self.inner.grant(ttl).await
    }
    async fn keep_alive(&self, lease: i64) -> podnet_cluster::agent::StoreResult<Option<Duration>> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke(&self, lease: i64) -> podnet_cluster::agent::StoreResult<()> {
        self.inner.revoke(lease).await
    }
}

const RACER_V4: &str = "10.244.250.0/24";
const RACER_IP: &str = "10.200.1.99";

/// A dual-stack key names two subnets, and the store's create is atomic on the key only: a node
/// that races this one with another IPv4 subnet but the same IPv6 one gets its key too. The
/// younger key gives up and picks again, so no IPv6 (or IPv4) subnet is leased twice.
#[test]
fn dual_stack_race_for_one_subnet_the_older_key_keeps_it() {
    let w = world("agentrace", 1);
    let (_etcd, st) = w.etcd(1, DUAL);
    let (a, hooks) = w.start_hooked(0, Hooks { race_v6: true, ..Hooks::default() });
    a.wait_ready(Duration::from_secs(20)).unwrap();
    assert!(hooks.raced.load(SeqCst), "the race was staged");
    let keys = subnet_keys(&w, &st);
    assert_eq!(keys.len(), 2, "the racer's key and this node's, nothing given up left: {keys:?}");
    let mine = SubnetKey::parse(&a.status().key.unwrap()).unwrap();
    let racer = keys.iter().find_map(|(k, _, _)| SubnetKey::parse(k).filter(|k| k.v4.to_string() == RACER_V4)).unwrap();
    assert_ne!(mine.v6, racer.v6, "the IPv6 subnet is the older key's");
    assert_ne!(mine.v4, racer.v4);
    a.stop();
}

#[test]
fn compacted_watch_lists_again_and_resumes() {
    let w = world("agentc", 2);
    let (_etcd, st) = w.etcd(1, VXLAN);
    let a1 = w.start(0, 1, Duration::from_secs(60));
    a1.wait_ready(Duration::from_secs(20)).unwrap();
    let (a2, hooks) = w.start_hooked(1, Hooks { compact: true, ..Hooks::default() });
    a2.wait_ready(Duration::from_secs(20)).unwrap();
    // acquire lists twice (before and after its create), the first session once, the session
    // after the compaction once more.
    wait_for("a list after the compaction", Duration::from_secs(10), || hooks.lists.load(SeqCst) >= 4);
    w.wait_peer_routes(1, 1, false);
    assert_eq!(a2.status().peer_changes, 0);
    // Someone deletes node2's own key: it takes the same subnet again, loudly.
    let key2 = a2.status().key.unwrap();
    w.rt.block_on(st.delete(&key2)).unwrap();
    wait_for("node2 to re-create its key", Duration::from_secs(10), || {
        w.rt.block_on(st.get(&key2)).unwrap().is_some() && a2.status().lease_lost == 1
    });
    assert_eq!(a2.status().key.as_deref(), Some(key2.as_str()));
    // The watch resumed: node1 leaving reaches node2.
    a1.leave().unwrap();
    w.wait_peer_routes(1, 0, false);
    assert_eq!(a2.status().peer_changes, 1);
    a2.stop();
}

/// Until the agent has programmed its peers, its node refuses sandbox creates with NotReady
/// (and creates nothing); then they succeed. The lease publishes the node's own VTEP MAC.
#[test]
fn sandbox_creates_wait_for_readiness_and_the_lease_carries_the_nodes_vtep_mac() {
    let w = world("agentr", 1);
    let (_etcd, st) = w.etcd(1, VXLAN);
    let (a, hooks) = w.start_hooked(0, Hooks { hold: true, ..Hooks::default() });
    wait_for("the agent to open its node", Duration::from_secs(20), || a.node().is_some());
    let node = a.node().unwrap();
    assert!(!a.status().ready && !node.is_ready());
    let e = w.rt.block_on(node.create_sandbox(&SandboxSpec::new("early"))).unwrap_err();
    assert_eq!(e.kind(), podnet::ErrorKind::NotReady, "{e}");
    assert!(w.w.pod_pins().is_empty(), "a refused create leaves nothing");
    hooks.open.store(true, SeqCst);
    a.wait_ready(Duration::from_secs(20)).unwrap();
    assert!(node.is_ready());
    let p = pod(&w, &a, "early");
    assert!(!p.ips.is_empty());
    // The lease names the VTEP MAC the node reports (and its device carries).
    let key = a.status().key.unwrap();
    let kv = w.rt.block_on(st.get(&key)).unwrap().unwrap();
    let attrs = LeaseAttrs::from_json(&kv.value).unwrap();
    let mac = node.vtep_mac().expect("a VXLAN node");
    assert_eq!(attrs.vxlan().unwrap().vtep_mac, flannel::format_mac(&mac));
    w.rt.block_on(node.delete_sandbox("early")).unwrap();
    a.stop();
}
