//! Privileged tests of services (table `inet podnet-services`) with real traffic: two nodes over
//! a VXLAN overlay, endpoints on both, an external client. ClusterIP (IPv4, IPv6) reaches every
//! endpoint with the client pod's own address, NodePort with policy Cluster and Local, hairpin,
//! refused and dropped destinations, repair after `nft flush ruleset`, a foreign table untouched.

// The shared throwaway-world helper (only World and in_ns are used, so that the file follows
// the helper wherever it lives).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podnet::blocking::Node;
use podnet::internals::netns;
use podnet::{
    Affinity, CrossNodeMode, Endpoint, ErrorKind, NodeConfig, Peer, PodMode, Protocol, SandboxSpec, Service,
    ServicePort, TrafficPolicy,
};
use podnet_world::*;

/// A TCP server answering every connection with "<name> <peer address>", until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &Path, port: u16, name: &str) -> Server {
        let f = File::open(ns).unwrap();
        let l = netns::run_in(&f, || TcpListener::bind(("::", port))).unwrap().unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = write!(c, "{name} {}", peer.ip().to_canonical());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Server { stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from `ns` to `to`; Ok((server name, address it saw)).
fn ask(ns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<(String, String)> {
    let f = File::open(ns).unwrap();
    netns::run_in(&f, move || -> std::io::Result<(String, String)> {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        let (a, b) = buf.split_once(' ').unwrap_or((&buf, ""));
        Ok((a.to_string(), b.to_string()))
    })
    .unwrap()
}

fn ok(ns: &Path, to: SocketAddr) -> (String, String) {
    ask(ns, to, Duration::from_secs(2)).unwrap_or_else(|e| panic!("connect to {to}: {e}"))
}

/// The connection is refused (an ICMP port unreachable or RST arrives), and how long it took.
fn refused(ns: &Path, to: SocketAddr) -> Duration {
    let t = Instant::now();
    let e = ask(ns, to, Duration::from_secs(2)).expect_err("expected a refusal");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{to}: {e}");
    t.elapsed()
}

/// Nothing answers (the packets are dropped).
fn dropped(ns: &Path, to: SocketAddr) {
    let e = ask(ns, to, Duration::from_millis(400)).expect_err("expected no answer");
    assert!(matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock), "{to}: {e}");
}

struct World2 {
    w: World,
    cfg1: NodeConfig,
    n1: Node,
    ns1: PathBuf,
    n2: Node,
    ns2: PathBuf,
    client: PathBuf,
}

/// node1 (bridge) with an external client on 192.168.200.0/24 + fd00:200::/64 (its default
/// route), node2 over a VXLAN overlay or routed; service CIDRs 10.96.0.0/16 and fd00:96::/112.
fn world(tag: &str) -> World2 {
    world_with(tag, CrossNodeMode::Overlay)
}

fn world_with(tag: &str, cross: CrossNodeMode) -> World2 {
    let mut w = World::new(tag);
    let ns1 = w.netns("node1");
    let ns2 = w.netns("node2");
    let client = w.netns("client");
    link_pair(&ns1, "ext0", &client, "eth0");
    in_ns(&ns1, &["ip", "addr", "add", "192.168.200.1/24", "dev", "ext0"]);
    in_ns(&ns1, &["ip", "addr", "add", "fd00:200::1/64", "dev", "ext0", "nodad"]);
    in_ns(&client, &["ip", "addr", "add", "192.168.200.2/24", "dev", "eth0"]);
    in_ns(&client, &["ip", "addr", "add", "fd00:200::2/64", "dev", "eth0", "nodad"]);
    // The node's default route: traffic to a service address nothing DNATed is routed there,
    // through the forward hook that rejects or drops it.
    in_ns(&ns1, &["ip", "route", "add", "default", "via", "192.168.200.2"]);
    in_ns(&ns1, &["ip", "-6", "route", "add", "default", "via", "fd00:200::2"]);
    link_pair(&ns1, "ul0", &ns2, "ul0");
    in_ns(&ns1, &["ip", "addr", "add", "10.201.0.1/24", "dev", "ul0"]);
    in_ns(&ns2, &["ip", "addr", "add", "10.201.0.2/24", "dev", "ul0"]);
    let mk = |name: &str, ns: &PathBuf, ul: &str, v4: &str, v6: &str| {
        NodeConfig::new(name)
            .netns(ns)
            .state_dir(w.state_dir(name))
            .netns_dir(w.netns_dir())
            .mode(PodMode::Bridge)
            .underlay(ul.parse().unwrap())
            .cross_node(cross)
            .cluster_cidr("10.30.0.0/16".parse().unwrap())
            .cluster_cidr("fd00:30::/48".parse().unwrap())
            .service_cidr("10.96.0.0/16".parse().unwrap())
            .service_cidr("fd00:96::/112".parse().unwrap())
            .pod_cidr(v4.parse().unwrap())
            .pod_cidr(v6.parse().unwrap())
    };
    let cfg1 = mk("node1", &ns1, "10.201.0.1", "10.30.1.0/24", "fd00:30:0:1::/64");
    let n1 = Node::open(cfg1.clone()).unwrap();
    let n2 = Node::open(mk("node2", &ns2, "10.201.0.2", "10.30.2.0/24", "fd00:30:0:2::/64")).unwrap();
    // A routed pair carries IPv4 only (an IPv6 pod CIDR cannot be routed via an IPv4 underlay).
    let v6 = cross == CrossNodeMode::Overlay;
    let cidrs = |v4: &str, v6net: &str| {
        let mut c = vec![v4.parse().unwrap()];
        if v6 {
            c.push(v6net.parse().unwrap());
        }
        c
    };
    n1.add_peer(&Peer::new("node2", "10.201.0.2".parse().unwrap(), cidrs("10.30.2.0/24", "fd00:30:0:2::/64"))).unwrap();
    n2.add_peer(&Peer::new("node1", "10.201.0.1".parse().unwrap(), cidrs("10.30.1.0/24", "fd00:30:0:1::/64"))).unwrap();
    World2 { w, cfg1, n1, ns1, n2, ns2, client }
}

/// A veth pair, `a_if` in `a` and `b_if` in `b`, both up.
fn link_pair(a: &Path, a_if: &str, b: &Path, b_if: &str) {
    in_ns(a, &["ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.display().to_string()]);
    in_ns(a, &["ip", "link", "set", a_if, "up"]);
    in_ns(b, &["ip", "link", "set", b_if, "up"]);
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn ep(ip: IpAddr, local: bool) -> Endpoint {
    Endpoint { ip, ports: vec![], ready: true, local }
}

fn web(endpoints: Vec<Endpoint>, policy: TrafficPolicy) -> Service {
    Service {
        name: "default/web".into(),
        cluster_ips: vec!["10.96.0.10".parse().unwrap(), "fd00:96::10".parse().unwrap()],
        ports: vec![ServicePort { protocol: Protocol::Tcp, port: 80, target_port: 8080, node_port: Some(30080) }],
        external_ips: vec![],
        endpoints,
        affinity: Affinity::None,
        external_traffic_policy: policy,
    }
}

/// The services table as nft lists it.
fn table(ns: &Path) -> String {
    in_ns(ns, &["nft", "list", "table", "inet", "podnet-services"])
}

/// How many elements the services' sets and maps hold (all but the configured CIDRs).
fn service_elements(ns: &Path) -> usize {
    let j: serde_json::Value =
        serde_json::from_str(&in_ns(ns, &["nft", "-j", "list", "table", "inet", "podnet-services"])).unwrap();
    let mut n = 0;
    for o in j["nftables"].as_array().unwrap() {
        let s = if o["set"].is_object() { &o["set"] } else { &o["map"] };
        let name = s["name"].as_str().unwrap_or("");
        if !name.contains("nets") {
            n += s["elem"].as_array().map_or(0, Vec::len);
        }
    }
    n
}

fn set(n: &Node, s: &Service) -> podnet::Result<()> {
    n.block_on(n.inner().set_service(s))
}

#[test]
fn services_end_to_end_overlay() {
    services_end_to_end(CrossNodeMode::Overlay);
}

#[test]
fn services_end_to_end_routed() {
    services_end_to_end(CrossNodeMode::Routed);
}

fn services_end_to_end(cross: CrossNodeMode) {
    let wd = world_with(&format!("svc-{cross:?}"), cross);
    let a = wd.n1.create_sandbox(&SandboxSpec::new("a")).unwrap();
    let b = wd.n1.create_sandbox(&SandboxSpec::new("b")).unwrap();
    let c = wd.n1.create_sandbox(&SandboxSpec::new("c")).unwrap();
    let r = wd.n2.create_sandbox(&SandboxSpec::new("r")).unwrap();
    let _sb = Server::start(&b.netns_path, 8080, "b");
    let _sc = Server::start(&c.netns_path, 8080, "c");
    let _sr = Server::start(&r.netns_path, 8080, "r");

    // A foreign table with its own NAT rule must survive every podnet change.
    in_ns(&wd.ns1, &["nft", "add table ip someone_else"]);
    in_ns(&wd.ns1, &["nft", "add chain ip someone_else pre { type nat hook prerouting priority -150; }"]);
    in_ns(&wd.ns1, &["nft", "add rule ip someone_else pre ip daddr 10.77.0.1 tcp dport 80 dnat to 10.30.2.0:1"]);
    let foreign = in_ns(&wd.ns1, &["nft", "list", "table", "ip", "someone_else"]);

    // remote IPv6 endpoints only over the overlay
    let remote_v6 = cross == CrossNodeMode::Overlay;
    let eps = |v6: bool| -> Vec<Endpoint> {
        let ip = |s: &podnet::Sandbox| if v6 { s.ipv6().unwrap() } else { s.ipv4().unwrap() };
        let mut e = vec![ep(ip(&b), true), ep(ip(&c), true)];
        if !v6 || remote_v6 {
            e.push(ep(ip(&r), false));
        }
        e
    };
    let mut all = eps(false);
    all.extend(eps(true));
    set(&wd.n1, &web(all.clone(), TrafficPolicy::Cluster)).unwrap();
    // operators read the rules with nft: the whole ruleset lists, service rules included
    let listed = in_ns(&wd.ns1, &["nft", "list", "ruleset"]);
    let n = all.iter().filter(|e| e.ip.is_ipv4()).count();
    for want in [
        "table inet podnet-services".to_string(),
        format!("ip daddr . meta l4proto . th dport @fe4-n{n} dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @eps4"),
        format!("meta l4proto . th dport @np4-n{n}-masq meta mark set meta mark | 0x00004000 dnat ip to meta l4proto . th dport . numgen random mod {n} map @npeps4"),
        "10.96.0.10 . tcp . 80 . 0x00000000 : ".to_string(),
        "ct state new jump check".to_string(),
    ] {
        assert!(listed.contains(&want), "`nft list ruleset` lacks {want:?}:\n{listed}");
    }

    // pod -> ClusterIP reaches every endpoint, and the endpoint sees the client pod's own IP
    for (v6, vip, me) in [(false, "10.96.0.10", a.ipv4().unwrap()), (true, "fd00:96::10", a.ipv6().unwrap())] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..60 {
            let (who, peer) = ok(&a.netns_path, sa(vip, 80));
            assert_eq!(peer, me.to_string(), "v6={v6}: the endpoint sees the client pod");
            *seen.entry(who).or_default() += 1;
        }
        eprintln!("distribution over 60 connections (v6={v6}): {seen:?}");
        assert_eq!(seen.len(), if v6 && !remote_v6 { 2 } else { 3 }, "every endpoint is reached: {seen:?}");
        assert!(seen.values().all(|n| *n >= 5), "roughly uniform: {seen:?}");
    }

    // NodePort from an external client, policy Cluster: any endpoint, masqueraded
    let mut seen = HashMap::new();
    for _ in 0..30 {
        let (who, peer) = ok(&wd.client, sa("192.168.200.1", 30080));
        assert_ne!(peer, "192.168.200.2", "policy Cluster masquerades");
        *seen.entry(who).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (_, peer) = ok(&wd.client, sa("fd00:200::1", 30080));
    assert_ne!(peer, "fd00:200::2");
    // ...on every local address of the node: its underlay address, from the other node
    let mut seen = HashMap::new();
    for _ in 0..30 {
        *seen.entry(ok(&wd.ns2, sa("10.201.0.1", 30080)).0).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // no NodePorts on localhost
    refused(&wd.ns1, sa("127.0.0.1", 30080));

    // an external IP (routed to node1 by the client) is served with the external policy
    in_ns(&wd.client, &["ip", "route", "add", "10.77.1.1/32", "via", "192.168.200.1"]);
    let mut ext = web(all.clone(), TrafficPolicy::Cluster);
    ext.external_ips = vec!["10.77.1.1".parse().unwrap()];
    set(&wd.n1, &ext).unwrap();
    let mut seen = HashMap::new();
    for _ in 0..30 {
        let (who, peer) = ok(&wd.client, sa("10.77.1.1", 80));
        assert_ne!(peer, "192.168.200.2", "policy Cluster masquerades");
        *seen.entry(who).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    ext.external_traffic_policy = TrafficPolicy::Local;
    set(&wd.n1, &ext).unwrap();
    for _ in 0..10 {
        let (who, peer) = ok(&wd.client, sa("10.77.1.1", 80));
        assert_eq!(peer, "192.168.200.2", "policy Local keeps the client's address");
        assert!(who == "b" || who == "c", "{who}");
    }

    // policy Local: local endpoints only, the client's address kept
    set(&wd.n1, &web(all.clone(), TrafficPolicy::Local)).unwrap();
    for _ in 0..20 {
        let (who, peer) = ok(&wd.client, sa("192.168.200.1", 30080));
        assert_eq!(peer, "192.168.200.2");
        assert!(who == "b" || who == "c", "{who}");
    }
    let (who, peer) = ok(&wd.client, sa("fd00:200::1", 30080));
    assert_eq!((who == "r", peer.as_str()), (false, "fd00:200::2"));
    // ...and dropped when no endpoint is local (ClusterIP traffic still reaches the remote one)
    let remote_only = vec![ep(r.ipv4().unwrap(), false)];
    set(&wd.n1, &web(remote_only.clone(), TrafficPolicy::Local)).unwrap();
    dropped(&wd.client, sa("192.168.200.1", 30080));
    assert_eq!(ok(&a.netns_path, sa("10.96.0.10", 80)).0, "r");

    // hairpin: a pod reaching itself through its service
    set(&wd.n1, &web(vec![ep(b.ipv4().unwrap(), true), ep(b.ipv6().unwrap(), true)], TrafficPolicy::Cluster)).unwrap();
    let (who, peer) = ok(&b.netns_path, sa("10.96.0.10", 80));
    assert_eq!(who, "b");
    assert_ne!(peer, b.ipv4().unwrap().to_string(), "hairpin is masqueraded");
    let (who, _) = ok(&b.netns_path, sa("fd00:96::10", 80));
    assert_eq!(who, "b");
    // the other pod still keeps its own address to the same service
    assert_eq!(ok(&a.netns_path, sa("10.96.0.10", 80)).1, a.ipv4().unwrap().to_string());

    // no ready endpoints: refused at once; unknown port: refused; unallocated address: dropped
    let mut none = web(vec![Endpoint { ready: false, ..ep(b.ipv4().unwrap(), true) }], TrafficPolicy::Cluster);
    set(&wd.n1, &none).unwrap();
    // Within 10 ms (the best of three tries: one try includes a thread entering the pod's
    // netns, which a loaded CI machine may delay).
    let t = (0..3).map(|_| refused(&a.netns_path, sa("10.96.0.10", 80))).min().unwrap();
    eprintln!("no endpoints: refused after {t:?}");
    assert!(t < Duration::from_millis(10), "{t:?}");
    refused(&wd.ns1, sa("10.96.0.10", 80));
    refused(&wd.client, sa("192.168.200.1", 30080));
    refused(&a.netns_path, sa("fd00:96::10", 80));
    none.endpoints = all.clone();
    set(&wd.n1, &none).unwrap();
    refused(&a.netns_path, sa("10.96.0.10", 81));
    refused(&a.netns_path, sa("fd00:96::10", 81));
    dropped(&a.netns_path, sa("10.96.0.99", 80));
    dropped(&a.netns_path, sa("fd00:96::99", 80));

    // the node itself reaches the ClusterIP too
    let (who, _) = ok(&wd.ns1, sa("10.96.0.10", 80));
    assert!(["b", "c", "r"].contains(&who.as_str()));

    // a second service on the same ClusterIP (another port) shares its address element
    let mut dns = web(all.clone(), TrafficPolicy::Cluster);
    dns.name = "default/dns".into();
    dns.node_ports_off();
    dns.ports[0].port = 53;
    set(&wd.n1, &dns).unwrap();
    ok(&a.netns_path, sa("10.96.0.10", 53));
    wd.n1.block_on(wd.n1.inner().remove_service("default/dns")).unwrap();
    let cips = in_ns(&wd.ns1, &["nft", "list", "set", "inet", "podnet-services", "clusterips4"]);
    assert!(cips.contains("10.96.0.10"), "{cips}");
    ok(&a.netns_path, sa("10.96.0.10", 80));
    refused(&a.netns_path, sa("10.96.0.10", 53));

    // validation: a distinct error, nothing changes
    let before = table(&wd.ns1);
    let elements = service_elements(&wd.ns1);
    let mut bad = web(all.clone(), TrafficPolicy::Cluster);
    bad.cluster_ips = vec!["10.99.0.1".parse().unwrap()];
    assert_eq!(set(&wd.n1, &bad).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut clash = web(all.clone(), TrafficPolicy::Cluster);
    clash.name = "default/other".into();
    assert_eq!(set(&wd.n1, &clash).unwrap_err().kind(), ErrorKind::Conflict);
    clash.cluster_ips = vec!["10.96.0.11".parse().unwrap()];
    assert_eq!(set(&wd.n1, &clash).unwrap_err().kind(), ErrorKind::Conflict, "same NodePort");
    assert_eq!(table(&wd.ns1), before);

    // every change above left the foreign table as it was
    assert_eq!(in_ns(&wd.ns1, &["nft", "list", "table", "ip", "someone_else"]), foreign);

    // someone flushes the whole ruleset: the node's repair restores service (and host ports)
    in_ns(&wd.ns1, &["nft", "flush", "ruleset"]);
    assert!(ask(&a.netns_path, sa("10.96.0.10", 80), Duration::from_millis(400)).is_err());
    let rep = wd.n1.repair().unwrap();
    assert!(rep.table_recreated && rep.services_rebuilt, "{rep:?}");
    assert!(!wd.n1.block_on(wd.n1.inner().repair_services()).unwrap(), "nothing to repair");
    assert!(!wd.n1.repair().unwrap().services_rebuilt, "nothing to repair");
    ok(&a.netns_path, sa("10.96.0.10", 80));
    // ... so does gc, which runs it
    in_ns(&wd.ns1, &["nft", "flush", "ruleset"]);
    let gc = wd.n1.gc_orphans().unwrap();
    assert!(gc.errors.is_empty(), "{gc:?}");
    assert_eq!(service_elements(&wd.ns1), elements, "the rebuilt table has the same elements");
    ok(&a.netns_path, sa("10.96.0.10", 80));
    // ... and repair_services alone
    in_ns(&wd.ns1, &["nft", "flush", "ruleset"]);
    assert!(wd.n1.block_on(wd.n1.inner().repair_services()).unwrap());
    ok(&a.netns_path, sa("10.96.0.10", 80));
    // ... and so does the next change
    in_ns(&wd.ns1, &["nft", "flush", "ruleset"]);
    clash.node_ports_off();
    set(&wd.n1, &clash).unwrap();
    ok(&a.netns_path, sa("10.96.0.10", 80));
    ok(&a.netns_path, sa("10.96.0.11", 80));
    assert_eq!(wd.n1.block_on(wd.n1.inner().list_services()).unwrap().len(), 2);

    // the flush took the foreign table too: make it again, it survives rebuilds and syncs
    in_ns(&wd.ns1, &["nft", "add table ip someone_else"]);
    in_ns(&wd.ns1, &["nft", "add chain ip someone_else pre { type nat hook prerouting priority -150; }"]);
    in_ns(&wd.ns1, &["nft", "add rule ip someone_else pre ip daddr 10.77.0.1 tcp dport 80 dnat to 10.30.2.0:1"]);
    for _ in 0..3 {
        set(&wd.n1, &web(eps(false), TrafficPolicy::Cluster)).unwrap();
        wd.n1.block_on(wd.n1.inner().remove_service("default/other")).unwrap();
        wd.n1.block_on(wd.n1.inner().sync_services(&[web(all.clone(), TrafficPolicy::Local)])).unwrap();
    }
    assert_eq!(in_ns(&wd.ns1, &["nft", "list", "table", "ip", "someone_else"]), foreign);

    // Another process (here: a second handle) shares the node's services through the store: it
    // lists them, trusts the table it finds (no rebuild: the handle stays), and its changes are
    // the first handle's too.
    let handle =
        || in_ns(&wd.ns1, &["nft", "-a", "list", "table", "inet", "podnet-services"]).lines().next().map(String::from);
    let before = handle();
    assert!(before.as_deref().is_some_and(|l| l.contains("# handle")), "{before:?}");
    let other = Node::open(wd.cfg1.clone()).unwrap();
    let mine = wd.n1.block_on(wd.n1.inner().list_services()).unwrap();
    assert_eq!(other.block_on(other.inner().list_services()).unwrap(), mine);
    set(&other, &clash).unwrap();
    assert_eq!(handle(), before, "the second handle changed the table in place");
    ok(&a.netns_path, sa("10.96.0.11", 80));
    assert_eq!(wd.n1.block_on(wd.n1.inner().list_services()).unwrap().len(), 2, "the first handle sees it");
    wd.n1.block_on(wd.n1.inner().remove_service(&clash.name)).unwrap();
    dropped(&a.netns_path, sa("10.96.0.11", 80));
    ok(&a.netns_path, sa("10.96.0.10", 80));
    let mut taken = clash.clone();
    taken.name = "default/taken".into();
    taken.cluster_ips = web(eps(false), TrafficPolicy::Cluster).cluster_ips;
    assert_eq!(set(&other, &taken).unwrap_err().kind(), ErrorKind::Conflict, "the other's services count");
    other.sync_services(&[]).unwrap();
    dropped(&a.netns_path, sa("10.96.0.10", 80));
    assert!(wd.n1.block_on(wd.n1.inner().list_services()).unwrap().is_empty());
    drop(other);
    for id in ["a", "b", "c"] {
        wd.n1.delete_sandbox(id).unwrap();
    }
    wd.n2.delete_sandbox("r").unwrap();
    drop(wd.w);
}

trait NoNodePorts {
    fn node_ports_off(&mut self);
}

impl NoNodePorts for Service {
    fn node_ports_off(&mut self) {
        for p in &mut self.ports {
            p.node_port = None;
        }
    }
}

/// A UDP server answering every datagram with its name, until dropped.
fn udp_server(ns: &Path, port: u16, name: &'static str) -> Server {
    let f = File::open(ns).unwrap();
    let u = netns::run_in(&f, || std::net::UdpSocket::bind(("::", port))).unwrap().unwrap();
    u.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !st.load(Ordering::Relaxed) {
            if let Ok((_, peer)) = u.recv_from(&mut buf) {
                let _ = u.send_to(name.as_bytes(), peer);
            }
        }
    });
    Server { stop, thread: Some(thread) }
}

#[test]
fn affinity_endpoint_removal_and_udp_conntrack() {
    let wd = world("svc-aff");
    let a = wd.n1.create_sandbox(&SandboxSpec::new("a")).unwrap();
    let b = wd.n1.create_sandbox(&SandboxSpec::new("b")).unwrap();
    let c = wd.n1.create_sandbox(&SandboxSpec::new("c")).unwrap();
    let _tb = Server::start(&b.netns_path, 8080, "b");
    let _tc = Server::start(&c.netns_path, 8080, "c");
    let _ub = udp_server(&b.netns_path, 5353, "b");
    let _uc = udp_server(&c.netns_path, 5353, "c");
    let both = vec![ep(b.ipv4().unwrap(), true), ep(c.ipv4().unwrap(), true)];
    let mut s = web(both.clone(), TrafficPolicy::Cluster);
    s.cluster_ips.truncate(1);
    s.ports.push(ServicePort { protocol: Protocol::Udp, port: 53, target_port: 5353, node_port: None });
    s.affinity = Affinity::ClientIp { timeout_secs: 30 };
    set(&wd.n1, &s).unwrap();
    let listed = in_ns(&wd.ns1, &["nft", "list", "ruleset"]);
    assert!(listed.contains("dnat ip to ip daddr . meta l4proto . th dport . ip saddr map @aff4"), "{listed}");
    assert!(listed.contains("update @aff4 { ct original ip daddr . meta l4proto . ct original proto-dst . ip saddr timeout 30s : ip daddr . udp dport }"), "{listed}");

    // ClientIP affinity: every connection of one client goes to the same endpoint
    let first = ok(&a.netns_path, sa("10.96.0.10", 80)).0;
    for _ in 0..20 {
        assert_eq!(ok(&a.netns_path, sa("10.96.0.10", 80)).0, first, "affinity sticks");
    }
    // its endpoint goes away: the client moves to the other one, and sticks there
    let other = if first == "b" { "c" } else { "b" };
    let keep: Vec<Endpoint> = both.iter().filter(|e| e.ip.to_string() != sa_ip(&first, &b, &c)).cloned().collect();
    s.endpoints = keep;
    set(&wd.n1, &s).unwrap();
    for _ in 0..10 {
        assert_eq!(ok(&a.netns_path, sa("10.96.0.10", 80)).0, other);
    }
    // the entry lives for the timeout after the last connection, then the client is free again
    s.endpoints = both.clone();
    s.affinity = Affinity::ClientIp { timeout_secs: 1 };
    wd.n1.set_service(&s).unwrap();
    ok(&a.netns_path, sa("10.96.0.10", 80));
    let aff = || in_ns(&wd.ns1, &["nft", "list", "map", "inet", "podnet-services", "aff4"]);
    assert!(aff().contains("expires"), "{}", aff());
    std::thread::sleep(Duration::from_millis(1600));
    assert!(!aff().contains("expires"), "{}", aff());
    s.affinity = Affinity::None;
    set(&wd.n1, &s).unwrap();

    // UDP: one client socket, one conntrack entry, one endpoint...
    let flow = UdpFlow::new(&a.netns_path, "0.0.0.0:40000".parse().unwrap(), "10.96.0.10:53".parse().unwrap());
    let ask_udp = || flow.ask();
    let first = ask_udp().expect("udp through the ClusterIP");
    for _ in 0..5 {
        assert_eq!(ask_udp().as_deref(), Some(first.as_str()), "conntrack pins the flow");
    }
    // ...until that endpoint is removed: its conntrack entry is flushed, the flow moves
    let keep: Vec<Endpoint> = both.iter().filter(|e| e.ip.to_string() != sa_ip(&first, &b, &c)).cloned().collect();
    s.endpoints = keep;
    set(&wd.n1, &s).unwrap();
    let now = ask_udp().expect("udp after the endpoint was removed");
    assert_ne!(now, first, "the flow left the removed endpoint");

    // removing the service removes every element
    wd.n1.block_on(wd.n1.inner().remove_service("default/web")).unwrap();
    wd.n1.block_on(wd.n1.inner().remove_service("default/web")).unwrap();
    assert_eq!(service_elements(&wd.ns1), 0, "{}", table(&wd.ns1));
    for id in ["a", "b", "c"] {
        wd.n1.delete_sandbox(id).unwrap();
    }
    drop(flow);
    drop(wd.n2);
    drop(wd.w);
}

/// The IP of the sandbox named `name` (b or c).
fn sa_ip(name: &str, b: &podnet::Sandbox, c: &podnet::Sandbox) -> String {
    if name == "b" { b.ipv4().unwrap() } else { c.ipv4().unwrap() }.to_string()
}
