//! Privileged tests of paths between nodes: a cluster built inside the test out of network
//! namespaces. Three nodes share an underlay L2 segment (a bridge in an `underlay` netns); a
//! fourth sits on another subnet behind a `router` netns; an `internet` host hangs off the router.
//! Nodes alternate pod modes (bridge, routed) so both are exercised on the cluster.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use podnet::blocking::Node;
use podnet::{CrossNodeMode, Peer, PodMode, Sandbox, SandboxSpec};
use podnet_world::*;

struct Cluster {
    w: World,
    nodes: Vec<(String, Node, PathBuf, IpAddr)>,
    pods: Vec<Sandbox>,
    internet: PathBuf,
}

fn pod_cidrs(i: usize, dual: bool) -> Vec<String> {
    let mut v = vec![format!("10.10.{}.0/24", i + 1)];
    if dual {
        v.push(format!("fd00:10:0:{}::/64", i + 1));
    }
    v
}

fn build(tag: &str, mode: CrossNodeMode, n_nodes: usize, dual: bool) -> Cluster {
    let mut w = World::new(tag);
    let net = w.underlay_net(n_nodes);
    let internet = w.netns("internet");
    link(&net.router, "rt-inet", &["203.0.113.1/24"], &internet, "eth0", &["203.0.113.2/24"]).unwrap();
    in_ns(&internet, &["ip", "route", "add", "default", "via", "203.0.113.1"]);
    let mut nodes = vec![];
    for (i, (name, ns, addr)) in net.nodes.into_iter().enumerate() {
        let mut cfg = w
            .node_config(&name, &ns)
            .mode(if i % 2 == 0 { PodMode::Bridge } else { PodMode::Routed })
            .underlay(addr)
            .cross_node(mode)
            .cluster_cidr("10.10.0.0/16".parse().unwrap());
        if dual {
            cfg = cfg.cluster_cidr("fd00:10::/48".parse().unwrap());
        }
        for c in pod_cidrs(i, dual) {
            cfg = cfg.pod_cidr(c.parse().unwrap());
        }
        let node = Node::open(cfg).unwrap();
        nodes.push((name, node, ns, addr));
    }
    // Two pods per node, one in each pod mode, whatever the node's default.
    let mut pods = vec![];
    for (name, node, _, _) in &nodes {
        for mode in [PodMode::Bridge, PodMode::Routed] {
            let mut spec = SandboxSpec::new(format!("{name}-{}", if mode == PodMode::Bridge { "b" } else { "r" }));
            spec.mode = Some(mode);
            pods.push(node.create_sandbox(&spec).unwrap());
        }
    }
    Cluster { w, nodes, pods, internet }
}

fn peers_of(c: &Cluster, me: usize, dual: bool, only: &[usize]) -> Vec<Peer> {
    only.iter()
        .filter(|j| **j != me)
        .map(|j| {
            Peer::new(
                c.nodes[*j].0.clone(),
                c.nodes[*j].3,
                pod_cidrs(*j, dual).iter().map(|s| s.parse().unwrap()).collect(),
            )
        })
        .collect()
}

fn sync_all(c: &Cluster, dual: bool, members: &[usize]) {
    for i in members {
        let rep = c.nodes[*i].1.block_on(c.nodes[*i].1.inner().sync_peers(&peers_of(c, *i, dual, members))).unwrap();
        assert_eq!(rep.peers, members.len() - 1);
    }
}

/// Every ordered pair of pods (each family) talks, and the receiver sees the sender's own IP.
fn assert_full_mesh(c: &Cluster, members: &[usize]) {
    let fams = c.pods[0].ips.len();
    for fam in 0..fams {
        for &dst in members {
            let dip = c.pods[dst].ips[fam].ip();
            let port = 7000 + fam as u16;
            let srv = echo_peer_server(&c.pods[dst].netns_path, sa(dip, port), members.len());
            for &src in members.iter().filter(|s| **s != dst) {
                let seen = tcp_ask(&c.pods[src].netns_path, sa(dip, port))
                    .unwrap_or_else(|e| panic!("pod {src} -> pod {dst} ({dip}): {e}"));
                assert_eq!(
                    seen,
                    c.pods[src].ips[fam].ip().to_string(),
                    "pod {src} -> pod {dst}: no NAT inside the cluster"
                );
            }
            // a remote node reaches the pod too
            let from_node = members.iter().copied().find(|n| *n != dst).unwrap();
            tcp_ask(&c.nodes[from_node].2, sa(dip, port))
                .unwrap_or_else(|e| panic!("node {from_node} -> pod {dst}: {e}"));
            srv.join().unwrap();
        }
    }
}

fn teardown(c: Cluster) {
    for (i, (_, node, ns, _)) in c.nodes.iter().enumerate() {
        node.delete_sandbox(&c.pods[2 * i].id).unwrap();
        node.delete_sandbox(&c.pods[2 * i + 1].id).unwrap();
        node.block_on(node.inner().sync_peers(&[])).unwrap();
        let r = in_ns(ns, &["ip", "route", "show", "proto", "81"]);
        assert!(r.trim().is_empty(), "peer routes left: {r}");
    }
    drop(c.w);
}

#[test]
fn overlay_dual_stack_across_subnets() {
    let c = build("overlay", CrossNodeMode::Overlay, 4, true);
    sync_all(&c, true, &[0, 1, 2, 3]);
    // kernel state: flannel-compatible VXLAN device and per-peer entries
    let ns1 = &c.nodes[0].2;
    let d = in_ns(ns1, &["ip", "-d", "link", "show", "podnet.1"]);
    assert!(d.contains("vxlan id 1 ") && d.contains("dstport 8472") && d.contains("nolearning"), "{d}");
    assert!(d.contains("mtu 1450"), "{d}");
    let fdb = in_ns(ns1, &["bridge", "fdb", "show", "dev", "podnet.1"]);
    for ip in &UNDERLAY_IPS[1..] {
        assert!(fdb.contains(&format!("dst {ip}")), "{fdb}");
    }
    let routes = in_ns(ns1, &["ip", "route", "show", "proto", "81"]);
    assert!(routes.contains("10.10.4.0/24 via 10.10.4.0 dev podnet.1 onlink"), "{routes}");
    let nb = in_ns(ns1, &["ip", "neigh", "show", "dev", "podnet.1"]);
    assert!(nb.contains("10.10.2.0 lladdr") && nb.contains("PERMANENT"), "{nb}");
    // TX checksum offload stays on from Linux 5.7 (the NAT zero-checksum fix), and with it
    // segmentation offload; flannel's accept_ra=0.
    let k = in_ns(ns1, &["ethtool", "-k", "podnet.1"]);
    if kernel_at_least(5, 7) {
        assert!(k.contains("tx-checksumming: on") && k.contains("generic-segmentation-offload: on"), "{k}");
    } else {
        assert!(k.contains("tx-checksumming: off"), "{k}");
    }
    assert_eq!(in_ns(ns1, &["cat", "/proc/sys/net/ipv6/conf/podnet.1/accept_ra"]).trim(), "0");
    // pods follow the VXLAN MTU
    let m = in_ns(&c.pods[0].netns_path, &["ip", "link", "show", "eth0"]);
    assert!(m.contains("mtu 1450"), "{m}");
    assert_full_mesh(&c, &[0, 1, 2, 3]);

    // egress: the 'internet' host sees each node's own IP (masquerade), never a pod IP
    let inet: IpAddr = "203.0.113.2".parse().unwrap();
    let srv = echo_peer_server(&c.internet, sa(inet, 80), c.pods.len());
    for (i, pod) in c.pods.iter().enumerate() {
        let seen = tcp_ask(&pod.netns_path, sa(inet, 80)).unwrap_or_else(|e| panic!("{} -> internet: {e}", pod.id));
        assert_eq!(seen, c.nodes[i / 2].3.to_string(), "{} leaves masqueraded as its node", pod.id);
    }
    srv.join().unwrap();

    // remove_peer cuts exactly that peer's pods
    let (n1, p) = (&c.nodes[0].1, &c.pods);
    n1.block_on(n1.inner().remove_peer("node2")).unwrap();
    let srv2 = echo_peer_server(&p[2].netns_path, sa(p[2].ips[0].ip(), 7100), 1);
    assert!(tcp_ask_timeout(&p[0].netns_path, sa(p[2].ips[0].ip(), 7100), Duration::from_millis(800)).is_err());
    let srv3 = echo_peer_server(&p[4].netns_path, sa(p[4].ips[0].ip(), 7100), 1);
    tcp_ask(&p[0].netns_path, sa(p[4].ips[0].ip(), 7100)).expect("node3 still reachable");
    srv3.join().unwrap();
    // unblock srv2's accept loop so the pod netns can go away
    tcp_ask(&c.nodes[1].2, sa(p[2].ips[0].ip(), 7100)).unwrap();
    srv2.join().unwrap();
    teardown(c);
}

#[test]
fn routed_peers_on_link_and_refuses_off_link() {
    let c = build("routed", CrossNodeMode::Routed, 4, false);
    sync_all(&c, false, &[0, 1, 2]);
    let routes = in_ns(&c.nodes[0].2, &["ip", "route", "show", "proto", "81"]);
    assert!(routes.contains("10.10.2.0/24 via 10.200.1.12 dev ul0"), "{routes}");
    assert!(!in_ns(&c.nodes[0].2, &["ip", "link"]).contains("podnet.1"), "no VXLAN device in routed mode");
    assert_full_mesh(&c, &[0, 1, 2]);
    // node4 is behind a router: refused with a clear error, nothing changed
    let n1 = &c.nodes[0].1;
    let p4 = Peer::new("node4", c.nodes[3].3, vec!["10.10.4.0/24".parse().unwrap()]);
    let e = n1.block_on(n1.inner().add_peer(&p4)).unwrap_err();
    assert_eq!(e.kind(), podnet::ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("not on-link"), "{e}");
    assert_eq!(in_ns(&c.nodes[0].2, &["ip", "route", "show", "proto", "81"]), routes);
    // node4 itself has no peers (it could only use a router); clean up
    teardown(c);
}

#[test]
fn auto_mixes_routed_and_overlay_and_sync_cleans_after_restart() {
    let mut c = build("auto", CrossNodeMode::Auto, 4, true);
    sync_all(&c, true, &[0, 1, 2, 3]);
    let routes = in_ns(&c.nodes[0].2, &["ip", "route", "show", "proto", "81"]);
    assert!(routes.contains("10.10.2.0/24 via 10.200.1.12 dev ul0"), "on-link peer routed: {routes}");
    assert!(routes.contains("10.10.4.0/24 via 10.10.4.0 dev podnet.1 onlink"), "off-link peer overlaid: {routes}");
    assert_full_mesh(&c, &[0, 1, 2, 3]);

    // simulated agent restart on node1: a stale entry from "an earlier run", then the node is
    // reopened and synced without node3
    let ns1 = c.nodes[0].2.clone();
    in_ns(&ns1, &["ip", "route", "add", "10.10.99.0/24", "via", "10.200.1.99", "dev", "ul0", "proto", "81"]);
    in_ns(
        &ns1,
        &["bridge", "fdb", "append", "0e:00:00:00:00:99", "dev", "podnet.1", "dst", "10.200.1.99", "self", "permanent"],
    );
    let cfg = c.nodes[0].1.inner().config().clone();
    let (name, old, ns, ip) = c.nodes.remove(0);
    drop(old);
    let reopened = Node::open(cfg).unwrap();
    c.nodes.insert(0, (name, reopened, ns, ip));
    // reopening changed nothing: the peers' permanent neighbour entries are still there
    let nb = in_ns(&ns1, &["ip", "neigh", "show", "dev", "podnet.1"]);
    assert!(nb.contains("10.10.4.0 lladdr") && nb.contains("PERMANENT"), "reopen flushed neighbours: {nb}");
    let n1 = &c.nodes[0].1;
    let rep = n1.block_on(n1.inner().sync_peers(&peers_of(&c, 0, true, &[0, 1, 3]))).unwrap();
    assert!(rep.removed >= 3, "{rep:?}");
    let routes = in_ns(&ns1, &["ip", "route", "show", "proto", "81"]);
    assert!(!routes.contains("10.10.99.0") && !routes.contains("10.10.3.0"), "{routes}");
    let fdb = in_ns(&ns1, &["bridge", "fdb", "show", "dev", "podnet.1"]);
    assert!(!fdb.contains("10.200.1.99") && !fdb.contains("10.200.1.13"), "{fdb}");
    assert!(fdb.contains("10.200.2.14"), "{fdb}");
    let names: Vec<_> = n1.block_on(n1.inner().list_peers()).unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["node2", "node4"]);
    teardown(c);
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r.trim().split(|c: char| !c.is_ascii_digit()).map(|x| x.parse::<u32>().unwrap_or(0));
    (it.next().unwrap(), it.next().unwrap()) >= (major, minor)
}

/// A forced TX checksum setting wins over the kernel's; the node reports its VTEP MAC; a node
/// made not ready refuses creates with NotReady and changes nothing.
#[test]
fn vxlan_settings_vtep_mac_and_readiness_gate() {
    let mut w = World::new("vxsettings");
    let ns = w.netns("node1");
    underlay(&ns, "10.200.0.1/24").unwrap();
    let mut cfg =
        w.node_config("n1", &ns).pod_cidr("10.10.1.0/24".parse().unwrap()).underlay("10.200.0.1".parse().unwrap());
    cfg.vxlan.disable_tx_checksum_offload = Some(true);
    let node = Node::open(cfg.clone()).unwrap();
    let k = in_ns(&ns, &["ethtool", "-k", "podnet.1"]);
    assert!(k.contains("tx-checksumming: off"), "forced off: {k}");
    assert_eq!(in_ns(&ns, &["cat", "/proc/sys/net/ipv6/conf/podnet.1/accept_ra"]).trim(), "0");
    let mac = node.inner().vtep_mac().expect("overlay node has a VTEP MAC");
    assert_eq!(mac, podnet::vtep_mac("n1"));
    let shown = in_ns(&ns, &["ip", "link", "show", "podnet.1"]);
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert!(shown.contains(&format!("link/ether {} ", hex.join(":"))), "the device carries the reported MAC: {shown}");

    assert!(node.inner().is_ready());
    node.inner().set_ready(false).unwrap();
    // The gate holds for every client of the node (another handle here; a CNI plugin process
    // in cni/tests), while the handle that closed it lives.
    let other = Node::open(cfg.clone()).unwrap();
    for n in [&node, &other] {
        assert!(!n.inner().is_ready());
        let e = n.create_sandbox(&SandboxSpec::new("early")).unwrap_err();
        assert_eq!(e.kind(), podnet::ErrorKind::NotReady, "{e}");
        assert_eq!(e.kind().as_str(), "not_ready");
    }
    assert!(w.pod_pins().is_empty(), "a refused create leaves nothing");
    assert!(node.list_sandboxes().unwrap().is_empty());
    node.inner().set_ready(true).unwrap();
    let sb = other.create_sandbox(&SandboxSpec::new("early")).unwrap();
    other.delete_sandbox(&sb.id).unwrap();
    // A handle that closes the gate and goes away (a process that dies) takes its gate along.
    let gone = Node::open(cfg).unwrap();
    gone.inner().set_ready(false).unwrap();
    assert!(!other.inner().is_ready());
    drop(gone);
    assert!(other.inner().is_ready());
    drop((node, other));

    // A node without a VXLAN device (no underlay) has no VTEP MAC.
    let ns2 = w.netns("node2");
    let plain = Node::open(w.node_config("n2", &ns2).pod_cidr("10.10.2.0/24".parse().unwrap())).unwrap();
    assert_eq!(plain.inner().vtep_mac(), None);
}
