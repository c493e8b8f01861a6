//! Privileged tests of host ports (nftables DNAT maps): an external client, the node itself
//! (node IP and localhost), other pods, the pod itself (hairpin) and a pod on another node reach a
//! pod through a host port, in TCP and UDP, IPv4 and IPv6, in bridge and routed pod modes.

use std::net::IpAddr;
use std::path::PathBuf;

use podnet::blocking::Node;
use podnet::{CrossNodeMode, ErrorKind, Peer, PodMode, PortMapping, Protocol, SandboxSpec};
use podnet_world::*;

fn pm(proto: Protocol, host_ip: Option<&str>, host: u16, cont: u16) -> PortMapping {
    PortMapping { protocol: proto, host_ip: host_ip.map(|s| s.parse().unwrap()), host_port: host, container_port: cont }
}

struct World2 {
    w: World,
    n1: Node,
    ns1: PathBuf,
    n2: Node,
    client: PathBuf,
}

/// node1 (pods in `mode`) with an external client on 192.168.200.0/24 + fd00:200::/64, and
/// node2 reachable over a VXLAN overlay on a direct veth underlay.
fn world(tag: &str, mode: PodMode) -> World2 {
    let mut w = World::new(tag);
    let ns1 = w.netns("node1");
    let ns2 = w.netns("node2");
    let client = w.netns("client");
    let (ext1, ext2) = (
        ["192.168.200.1/24", "192.168.201.1/24", "fd00:200::1/64"],
        ["192.168.200.2/24", "192.168.201.2/24", "fd00:200::2/64"],
    );
    link(&ns1, "ext0", &ext1, &client, "eth0", &ext2).unwrap();
    link(&ns1, "ul0", &["10.201.0.1/24"], &ns2, "ul0", &["10.201.0.2/24"]).unwrap();
    let mk = |name: &str, ns: &PathBuf, ul: &str, v4: &str, v6: &str, mode: PodMode| {
        w.node_config(name, ns)
            .mode(mode)
            .underlay(ul.parse().unwrap())
            .cross_node(CrossNodeMode::Overlay)
            .cluster_cidr("10.30.0.0/16".parse().unwrap())
            .cluster_cidr("fd00:30::/48".parse().unwrap())
            .pod_cidr(v4.parse().unwrap())
            .pod_cidr(v6.parse().unwrap())
    };
    let n1 = Node::open(mk("node1", &ns1, "10.201.0.1", "10.30.1.0/24", "fd00:30:0:1::/64", mode)).unwrap();
    let n2 = Node::open(mk("node2", &ns2, "10.201.0.2", "10.30.2.0/24", "fd00:30:0:2::/64", PodMode::Bridge)).unwrap();
    n1.add_peer(&Peer::new(
        "node2",
        "10.201.0.2".parse().unwrap(),
        vec!["10.30.2.0/24".parse().unwrap(), "fd00:30:0:2::/64".parse().unwrap()],
    ))
    .unwrap();
    n2.add_peer(&Peer::new(
        "node1",
        "10.201.0.1".parse().unwrap(),
        vec!["10.30.1.0/24".parse().unwrap(), "fd00:30:0:1::/64".parse().unwrap()],
    ))
    .unwrap();
    World2 { w, n1, ns1, n2, client }
}

fn host_port_paths(mode: PodMode) {
    let wd = world(&format!("hp-{mode:?}"), mode);
    let mut spec = SandboxSpec::new("web");
    spec.ports = vec![
        pm(Protocol::Tcp, None, 8080, 80),
        pm(Protocol::Udp, None, 5353, 53),
        pm(Protocol::Tcp, Some("192.168.201.1"), 9090, 90),
    ];
    let web = wd.n1.create_sandbox(&spec).unwrap();
    let other = wd.n1.create_sandbox(&SandboxSpec::new("other")).unwrap();
    let remote = wd.n2.create_sandbox(&SandboxSpec::new("remote")).unwrap();
    let v4 = web.ipv4().unwrap();
    let v6 = web.ipv6().unwrap();
    let node_v4: IpAddr = "192.168.200.1".parse().unwrap();
    let node_v6: IpAddr = "fd00:200::1".parse().unwrap();

    // TCP 8080 -> 80: many clients, one listener per family serving them all
    let srv4 = echo_peer_server(&web.netns_path, sa(v4, 80), 5);
    assert_eq!(
        tcp_ask(&wd.client, sa(node_v4, 8080)).expect("client -> node:8080"),
        "192.168.200.2",
        "pod sees the client's IP"
    );
    tcp_ask(&wd.ns1, sa(node_v4, 8080)).expect("node -> own IP:8080");
    tcp_ask(&wd.ns1, sa("127.0.0.1".parse().unwrap(), 8080)).expect("node -> 127.0.0.1:8080");
    tcp_ask(&other.netns_path, sa(node_v4, 8080)).expect("other pod -> node:8080");
    tcp_ask(&web.netns_path, sa(node_v4, 8080)).expect("hairpin: pod -> its own host port");
    srv4.join().unwrap();
    let srv4 = echo_peer_server(&web.netns_path, sa(v4, 80), 1);
    tcp_ask(&remote.netns_path, sa("10.201.0.1".parse().unwrap(), 8080)).expect("pod on node2 -> node1:8080");
    srv4.join().unwrap();
    let srv6 = echo_peer_server(&web.netns_path, sa(v6, 80), 2);
    assert_eq!(tcp_ask(&wd.client, sa(node_v6, 8080)).expect("client -> [node v6]:8080"), "fd00:200::2");
    tcp_ask(&wd.ns1, sa(node_v6, 8080)).expect("node -> own v6:8080");
    srv6.join().unwrap();

    // UDP 5353 -> 53
    let u4 = udp_echo_server(&web.netns_path, sa(v4, 53), 1);
    assert_eq!(udp_ask(&wd.client, sa(node_v4, 5353)).expect("udp v4"), "192.168.200.2");
    u4.join().unwrap();
    let u6 = udp_echo_server(&web.netns_path, sa(v6, 53), 1);
    assert_eq!(udp_ask(&wd.client, sa(node_v6, 5353)).expect("udp v6"), "fd00:200::2");
    u6.join().unwrap();

    // host-IP-specific: 192.168.201.1:9090 answers, 192.168.200.1:9090 does not
    let s9 = echo_peer_server(&web.netns_path, sa(v4, 90), 1);
    tcp_ask(&wd.client, sa("192.168.201.1".parse().unwrap(), 9090)).expect("host-IP mapping");
    assert!(tcp_ask_timeout(&wd.client, sa(node_v4, 9090), std::time::Duration::from_millis(500)).is_err());
    s9.join().unwrap();

    // conflicts: same port (wildcard vs anything) refused, naming the holder; nothing changes
    let before = hostport_elements(&wd.ns1);
    let mut c = SandboxSpec::new("clash");
    c.ports = vec![pm(Protocol::Tcp, Some("192.168.200.1"), 8080, 80)];
    let e = wd.n1.create_sandbox(&c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("sandbox web"), "{e}");
    c.ports = vec![pm(Protocol::Tcp, None, 9090, 80)];
    assert_eq!(wd.n1.create_sandbox(&c).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(hostport_elements(&wd.ns1), before);
    assert!(wd.n1.get_sandbox("clash").is_err(), "failed create rolled back");
    // a different protocol on the same port is fine; add/remove later
    let s = wd.n1.add_ports("other", &[pm(Protocol::Udp, None, 8080, 8080)]).unwrap();
    assert_eq!(s.ports.len(), 1);
    assert_eq!(wd.n1.list_ports().unwrap().len(), 4);
    wd.n1.remove_ports("other", &s.ports).unwrap();
    assert!(wd.n1.check_sandbox("web").unwrap().is_ok());

    // another owner's table (kube-proxy, iptables-nft) is never touched by podnet
    in_ns(&wd.ns1, &["nft", "add", "table", "ip", "someone_else"]);
    in_ns(&wd.ns1, &["nft", "add", "chain", "ip", "someone_else", "c"]);
    wd.n1.repair().unwrap();
    wd.n1.add_ports("other", &[pm(Protocol::Tcp, None, 7070, 70)]).unwrap();
    wd.n1.remove_ports("other", &[pm(Protocol::Tcp, None, 7070, 70)]).unwrap();
    assert!(in_ns(&wd.ns1, &["nft", "list", "tables"]).contains("table ip someone_else"));

    // someone flushes the whole ruleset: check notices, repair restores service
    in_ns(&wd.ns1, &["nft", "flush", "ruleset"]);
    assert!(!wd.n1.check_sandbox("web").unwrap().is_ok());
    let rep = wd.n1.repair().unwrap();
    assert!(rep.table_recreated, "{rep:?}");
    let srv = echo_peer_server(&web.netns_path, sa(v4, 80), 1);
    tcp_ask(&wd.client, sa(node_v4, 8080)).expect("after repair");
    srv.join().unwrap();

    // teardown: no element left
    for id in ["web", "other"] {
        wd.n1.delete_sandbox(id).unwrap();
    }
    wd.n2.delete_sandbox("remote").unwrap();
    assert_eq!(hostport_elements(&wd.ns1), 0, "{}", in_ns(&wd.ns1, &["nft", "list", "table", "inet", "podnet"]));
    drop(wd.w);
}

cases! {
    host_ports_bridge_mode => host_port_paths(PodMode::Bridge);
    host_ports_routed_mode => host_port_paths(PodMode::Routed);
}

#[test]
fn egress_is_masqueraded_cluster_traffic_is_not() {
    let wd = world("egress", PodMode::Bridge);
    let a = wd.n1.create_sandbox(&SandboxSpec::new("a")).unwrap();
    let b = wd.n2.create_sandbox(&SandboxSpec::new("b")).unwrap();
    // the client stands in for the internet: it only knows node1's address
    let srv = echo_peer_server(&wd.client, sa("192.168.200.2".parse().unwrap(), 4000), 1);
    assert_eq!(tcp_ask(&a.netns_path, sa("192.168.200.2".parse().unwrap(), 4000)).unwrap(), "192.168.200.1");
    srv.join().unwrap();
    let srv = echo_peer_server(&wd.client, sa("fd00:200::2".parse().unwrap(), 4000), 1);
    assert_eq!(tcp_ask(&a.netns_path, sa("fd00:200::2".parse().unwrap(), 4000)).unwrap(), "fd00:200::1");
    srv.join().unwrap();
    // pod -> pod across nodes and pod -> peer node keep the pod's IP
    let srv = echo_peer_server(&b.netns_path, sa(b.ipv4().unwrap(), 4001), 1);
    assert_eq!(tcp_ask(&a.netns_path, sa(b.ipv4().unwrap(), 4001)).unwrap(), a.ipv4().unwrap().to_string());
    srv.join().unwrap();
    let ns2 = wd.w.dir.join("ns").join("node2");
    let srv = echo_peer_server(&ns2, sa("10.201.0.2".parse().unwrap(), 4002), 1);
    assert_eq!(tcp_ask(&a.netns_path, sa("10.201.0.2".parse().unwrap(), 4002)).unwrap(), a.ipv4().unwrap().to_string());
    srv.join().unwrap();
    wd.n1.delete_sandbox("a").unwrap();
    wd.n2.delete_sandbox("b").unwrap();
    drop(wd.w);
}

#[test]
fn ports_survive_a_node_restart_and_gc_removes_them() {
    let mut w = World::new("hp-restart");
    let ns = w.netns("node1");
    let cfg = w.node_config("node1", &ns).pod_cidr("10.31.0.0/24".parse().unwrap());
    let n = Node::open(cfg.clone()).unwrap();
    let mut spec = SandboxSpec::new("keep");
    spec.ports = vec![pm(Protocol::Tcp, None, 8443, 443)];
    n.create_sandbox(&spec).unwrap();
    drop(n);
    in_ns(&ns, &["nft", "flush", "ruleset"]);
    let n = Node::open(cfg).unwrap();
    assert_eq!(n.list_ports().unwrap().len(), 1);
    assert_eq!(n.get_sandbox("keep").unwrap().ports, spec.ports);
    assert_eq!(hostport_elements(&ns), 1, "reopening rebuilt the table with the recorded port");
    assert!(n.check_sandbox("keep").unwrap().is_ok());
    n.gc(&[]).unwrap();
    assert_eq!(hostport_elements(&ns), 0);
    assert!(w.state_files("node1").is_empty(), "{:?}", w.state_files("node1"));
}
