//! Privileged tests of `podnet::nft` (run as root: `cargo test`; skipped otherwise).
//!
//! Each test builds throwaway network namespaces pinned under its own temp dir and removes them
//! on drop, also when it fails. Traffic only flows between namespaces the test made; the
//! machine's own netns, routes and firewall are never touched. `nft`, `ip` and `conntrack` are
//! exec'd (through `nsenter --net=<pin>`) as oracles and to build the topology only.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use podnet::internals::netns;
use podnet::internals::nft::{Cidrs, HostPort, NftSocket, Proto, Ruleset};
use podnet::ErrorKind;
use podnet_world::*;
use serde_json::Value;

// ---------- world ----------

/// The shared world when root; None (the test is skipped) otherwise.
fn world(tag: &str) -> Option<World> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {tag}: needs root");
        return None;
    }
    Some(World::new(&format!("nft-{tag}")))
}

/// A fresh netns of the world, with lo up and IPv6 DAD off.
fn netns(w: &mut World, name: &str) -> (PathBuf, File) {
    let p = w.netns(name);
    let f = File::open(&p).unwrap();
    for k in ["net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"] {
        netns::write_sysctl(&f, k, "0").unwrap();
    }
    ip(&p, "link set dev lo up");
    (p, f)
}

fn nft_text(pin: &Path) -> String {
    in_ns(pin, &["nft", "list", "table", "inet", "podnet"])
}

/// The objects of an `nft -j` listing of kind `kind` ("chain", "set", "map", "rule").
fn objects<'a>(j: &'a Value, kind: &str) -> Vec<&'a Value> {
    j["nftables"].as_array().unwrap().iter().filter_map(|o| o.get(kind)).collect()
}

fn tcp(host_ip: Option<&str>, host_port: u16, pod: &str, pod_port: u16) -> HostPort {
    HostPort {
        protocol: Proto::Tcp,
        host_ip: host_ip.map(|s| s.parse().unwrap()),
        host_port,
        pod_ip: pod.parse().unwrap(),
        pod_port,
    }
}

fn udp(host_port: u16, pod: &str, pod_port: u16) -> HostPort {
    HostPort { protocol: Proto::Udp, ..tcp(None, host_port, pod, pod_port) }
}

fn ruleset() -> Ruleset {
    Ruleset {
        pod_cidrs: Cidrs { v4: vec!["10.88.0.0/24".parse().unwrap()], v6: vec!["fd00:88::/64".parse().unwrap()] },
        cluster_cidrs: Cidrs {
            v4: vec!["10.88.0.0/16".parse().unwrap(), "10.96.0.0/12".parse().unwrap()],
            v6: vec!["fd00:88::/48".parse().unwrap()],
        },
        no_masq_hosts: vec!["169.254.0.1".parse().unwrap()],
        egress_masquerade: true,
        ..Ruleset::default()
    }
}

/// One netns with an nft socket in it.
fn single(tag: &str) -> Option<(World, PathBuf, NftSocket)> {
    let mut w = world(tag)?;
    let (pin, file) = netns(&mut w, "node");
    let sock = NftSocket::from_socket(netns::netlink_socket_in(&file, 12).unwrap()).unwrap();
    Some((w, pin, sock))
}

// ---------- table content ----------

#[test]
fn ensure_table_builds_the_ruleset() {
    let Some((_w, pin, mut s)) = single("ruleset") else { return };
    assert!(!s.table_exists().unwrap());
    let ports = [
        tcp(None, 8080, "10.88.0.2", 80),
        tcp(Some("192.168.200.1"), 9090, "10.88.0.2", 80),
        tcp(None, 8080, "fd00:88::2", 80),
        tcp(Some("fd00:200::1"), 9090, "fd00:88::2", 80),
    ];
    s.ensure_table(&ruleset(), &ports).unwrap();
    assert!(s.table_exists().unwrap());
    let text = nft_text(&pin);
    eprintln!("{text}");

    let j = nft_table(&pin);
    let chains = objects(&j, "chain");
    let find = |n: &str| *chains.iter().find(|c| c["name"] == n).unwrap_or_else(|| panic!("chain {n}"));
    for (name, hook, prio) in
        [("prerouting", "prerouting", -100), ("output", "output", -100), ("postrouting", "postrouting", 100)]
    {
        let c = find(name);
        assert_eq!((c["type"].as_str(), c["hook"].as_str(), c["prio"].as_i64()), (Some("nat"), Some(hook), Some(prio)));
        assert_eq!(c["policy"], "accept");
    }
    assert!(find("hostports_dnat").get("hook").is_none());

    let maps = objects(&j, "map");
    let map = |n: &str| *maps.iter().find(|m| m["name"] == n).unwrap_or_else(|| panic!("map {n}"));
    assert_eq!(map("hostports")["type"], serde_json::json!(["inet_proto", "inet_service"]));
    assert_eq!(map("hostports")["map"], "ipv4_addr . inet_service"); // nft 1.0.6 renders data as text
    assert_eq!(map("hostports_ip")["type"], serde_json::json!(["ipv4_addr", "inet_proto", "inet_service"]));
    assert_eq!(map("hostports6")["map"], "ipv6_addr . inet_service");
    assert_eq!(map("hostports6_ip")["type"], serde_json::json!(["ipv6_addr", "inet_proto", "inet_service"]));
    assert_eq!(
        map("hostports")["elem"],
        serde_json::json!([[{"concat": ["tcp", 8080]}, {"concat": ["10.88.0.2", 80]}]])
    );
    assert_eq!(
        map("hostports_ip")["elem"],
        serde_json::json!([[{"concat": ["192.168.200.1", "tcp", 9090]}, {"concat": ["10.88.0.2", 80]}]])
    );
    assert_eq!(
        map("hostports6_ip")["elem"],
        serde_json::json!([[{"concat": ["fd00:200::1", "tcp", 9090]}, {"concat": ["fd00:88::2", 80]}]])
    );

    let sets = objects(&j, "set");
    let set = |n: &str| *sets.iter().find(|m| m["name"] == n).unwrap_or_else(|| panic!("set {n}"));
    assert_eq!(set("podnets4")["type"], "ipv4_addr");
    assert_eq!(set("podnets4")["flags"], serde_json::json!(["interval"]));
    assert_eq!(set("podnets4")["elem"], serde_json::json!([{"prefix": {"addr": "10.88.0.0", "len": 24}}]));
    assert_eq!(set("podnets6")["elem"], serde_json::json!([{"prefix": {"addr": "fd00:88::", "len": 64}}]));
    assert_eq!(
        set("clusternets4")["elem"],
        serde_json::json!([{"prefix": {"addr": "10.88.0.0", "len": 16}}, {"prefix": {"addr": "10.96.0.0", "len": 12}}])
    );
    assert_eq!(set("nomasqhosts4")["elem"], serde_json::json!(["169.254.0.1"]));
    assert!(set("nomasqhosts4").get("flags").is_none(), "a hash set, not an interval set");
    assert!(set("nomasqhosts6").get("elem").is_none());
    assert!(!sets.iter().any(|s| s["name"] == "nomasq4"), "the interval no-masq sets are gone");

    let rules = objects(&j, "rule");
    let count = |c: &str| rules.iter().filter(|r| r["chain"] == c).count();
    assert_eq!((count("hostports_dnat"), count("prerouting"), count("output"), count("postrouting")), (4, 1, 1, 5));
    // The rules as nft renders them: our encoding decompiles to the intended statements.
    for want in [
        "fib daddr type local jump hostports_dnat",
        "meta mark & 0x00002000 == 0x00002000 ip saddr 127.0.0.0/8 masquerade fully-random",
        "meta mark & 0x00002000 == 0x00002000 ip saddr @podnets4 masquerade fully-random",
        "meta mark & 0x00002000 == 0x00002000 ip6 saddr @podnets6 masquerade fully-random",
        "ip saddr @podnets4 ip daddr != @clusternets4 ip daddr != @nomasqhosts4 fib daddr type unicast masquerade fully-random",
        "ip6 saddr @podnets6 ip6 daddr != @clusternets6 ip6 daddr != @nomasqhosts6 fib daddr type unicast masquerade fully-random",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // nft prints the mark statement first, but it is encoded after the map lookup (a miss must
    // not leave the mark behind); see the unit test of the rule bytes.
    for want in [
        "meta nfproto ipv4 meta mark set meta mark | 0x00002000 dnat ip to ip daddr . meta l4proto . th dport map @hostports_ip",
        "meta nfproto ipv4 meta mark set meta mark | 0x00002000 dnat ip to meta l4proto . th dport map @hostports",
        "meta nfproto ipv6 meta mark set meta mark | 0x00002000 dnat ip6 to ip6 daddr . meta l4proto . th dport map @hostports6_ip",
        "meta nfproto ipv6 meta mark set meta mark | 0x00002000 dnat ip6 to meta l4proto . th dport map @hostports6",
    ] {
        assert!(text.lines().any(|l| l.trim() == want), "missing {want:?} in\n{text}");
    }

    // idempotent: same input, same listing (handles aside), same elements
    s.ensure_table(&ruleset(), &ports).unwrap();
    assert_eq!(nft_text(&pin), text);
    let mut want = ports.to_vec();
    want.sort();
    assert_eq!(s.list_ports().unwrap(), want);

    // re-ensure keeps exactly the ports passed in (resync: what list_ports returned)
    s.add_ports(&[tcp(None, 7000, "10.88.0.7", 70)]).unwrap();
    let current = s.list_ports().unwrap();
    s.ensure_table(&ruleset(), &current).unwrap();
    assert_eq!(s.list_ports().unwrap(), current);
    s.ensure_table(&ruleset(), &ports[..1]).unwrap();
    assert_eq!(s.list_ports().unwrap(), ports[..1].to_vec());

    // without egress masquerade the two egress rules are gone
    s.ensure_table(&Ruleset { egress_masquerade: false, ..ruleset() }, &[]).unwrap();
    assert_eq!(objects(&nft_table(&pin), "rule").iter().filter(|r| r["chain"] == "postrouting").count(), 3);

    s.delete_table().unwrap();
    assert!(!s.table_exists().unwrap());
    s.delete_table().unwrap();
    assert_eq!(s.list_ports().unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn thousand_ports_add_list_remove() {
    let Some((_w, _pin, mut s)) = single("thousand") else { return };
    s.ensure_table(&ruleset(), &[]).unwrap();
    let ports: Vec<HostPort> = (0..1000u16)
        .map(|i| HostPort {
            protocol: [Proto::Tcp, Proto::Udp, Proto::Sctp][usize::from(i % 3)],
            host_ip: (i % 4 == 0).then(|| "192.168.200.1".parse().unwrap()),
            host_port: 20_000 + i,
            pod_ip: IpAddr::V4(Ipv4Addr::new(10, 88, (i / 250) as u8, (i % 250) as u8 + 1)),
            pod_port: 1 + i,
        })
        .collect();
    s.add_ports(&ports).unwrap();
    s.add_ports(&ports).unwrap(); // identical re-add is success
    let mut want = ports.clone();
    want.sort();
    assert_eq!(s.list_ports().unwrap(), want);
    s.remove_ports(&ports).unwrap();
    assert!(s.list_ports().unwrap().is_empty());
    s.remove_ports(&ports).unwrap(); // already gone is success
}

#[test]
fn ten_thousand_ports_in_one_ensure() {
    // 10,000 IPv6 host-IP elements are ~760 KB: several NEWSETELEM messages in one batch, and
    // more than the default socket send buffer.
    let Some((_w, _pin, mut s)) = single("tenk") else { return };
    let ports: Vec<HostPort> = (0..10_000u16)
        .map(|i| HostPort {
            protocol: Proto::Tcp,
            host_ip: Some("fd00:200::1".parse().unwrap()),
            host_port: 30_000 + i,
            pod_ip: format!("fd00:88::{:x}", i + 1).parse().unwrap(),
            pod_port: 80,
        })
        .collect();
    s.ensure_table(&ruleset(), &ports).unwrap();
    let mut want = ports.clone();
    want.sort();
    assert_eq!(s.list_ports().unwrap(), want);
    s.ensure_table(&ruleset(), &ports).unwrap();
    assert_eq!(s.list_ports().unwrap().len(), 10_000);
    s.remove_ports(&ports).unwrap();
    assert!(s.list_ports().unwrap().is_empty());
}

#[test]
fn errors_name_the_element_and_batches_are_atomic() {
    let Some((_w, _pin, mut s)) = single("errors") else { return };
    // no table yet
    let e = s.add_ports(&[tcp(None, 8080, "10.88.0.2", 80)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().starts_with("add "), "{e}");

    s.ensure_table(&ruleset(), &[tcp(None, 8080, "10.88.0.2", 80)]).unwrap();
    let e = s.add_ports(&[tcp(None, 8080, "10.88.0.3", 80)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert_eq!(e.to_string(), "add element tcp/8080 -> 10.88.0.3:80 to map hostports: File exists (os error 17)");

    // the conflicting element is in the middle of a multi-element message: named precisely,
    // and nothing of the batch is applied
    let batch = [tcp(None, 8081, "10.88.0.4", 80), tcp(None, 8080, "10.88.0.5", 80), tcp(None, 8082, "10.88.0.4", 80)];
    let e = s.add_ports(&batch).unwrap_err();
    assert_eq!(e.to_string(), "add element tcp/8080 -> 10.88.0.5:80 to map hostports: File exists (os error 17)");
    assert_eq!(s.list_ports().unwrap(), vec![tcp(None, 8080, "10.88.0.2", 80)]);

    // validation happens before any syscall
    let e = s.add_ports(&[tcp(None, 0, "10.88.0.2", 80)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let top: podnet::Error = e.into();
    assert_eq!(top.kind(), ErrorKind::InvalidArgument);

    // re-pointing a port: remove + add
    s.remove_ports(&[tcp(None, 8080, "10.88.0.2", 80)]).unwrap();
    s.add_ports(&[tcp(None, 8080, "10.88.0.3", 80)]).unwrap();
    assert_eq!(s.list_ports().unwrap(), vec![tcp(None, 8080, "10.88.0.3", 80)]);
}

#[test]
fn legacy_delete_path_skips_missing_elements() {
    let Some((_w, _pin, mut s)) = single("legacy") else { return };
    s.ensure_table(&ruleset(), &[]).unwrap();
    let keep = tcp(None, 1000, "10.88.0.2", 80);
    let present: Vec<HostPort> = (0..300).map(|i| tcp(None, 2000 + i, "10.88.0.2", 80)).collect();
    s.add_ports(&present).unwrap();
    s.add_ports(&[keep]).unwrap();
    s.force_legacy_delete(true);
    let mut gone = present.clone();
    gone.extend((0..50).map(|i| udp(3000 + i, "10.88.0.2", 80))); // never added
    gone.insert(7, tcp(Some("192.168.0.1"), 1, "10.88.0.2", 80)); // never added, other map
    s.remove_ports(&gone).unwrap();
    assert_eq!(s.list_ports().unwrap(), vec![keep]);
}

#[test]
fn no_masq_hosts_add_remove_replace() {
    let Some((_w, pin, mut s)) = single("nomasq") else { return };
    s.ensure_table(&ruleset(), &[]).unwrap();
    let elems = |name: &str| -> Value {
        let j: Value =
            serde_json::from_str(&in_ns(&pin, &["nft", "-j", "list", "set", "inet", "podnet", name])).unwrap();
        objects(&j, "set")[0].get("elem").cloned().unwrap_or(Value::Null)
    };
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    s.add_no_masq_hosts(&[ip("192.168.1.11"), ip("fd00:1::1")]).unwrap();
    s.add_no_masq_hosts(&[ip("192.168.1.11")]).unwrap(); // re-adding is success
    assert_eq!(elems("nomasqhosts4"), serde_json::json!(["169.254.0.1", "192.168.1.11"]));
    assert_eq!(elems("nomasqhosts6"), serde_json::json!(["fd00:1::1"]));
    s.remove_no_masq_hosts(&[ip("169.254.0.1"), ip("10.9.9.9")]).unwrap(); // missing is success
    assert_eq!(elems("nomasqhosts4"), serde_json::json!(["192.168.1.11"]));
    s.set_no_masq_hosts(&[ip("10.1.2.3")]).unwrap();
    assert_eq!(elems("nomasqhosts4"), serde_json::json!(["10.1.2.3"]));
    assert_eq!(elems("nomasqhosts6"), Value::Null);
    s.force_legacy_delete(true);
    s.remove_no_masq_hosts(&[ip("10.1.2.3"), ip("10.1.2.4")]).unwrap();
    assert_eq!(elems("nomasqhosts4"), Value::Null);
}

// ---------- traffic ----------

/// Connect from inside `ns` to `to` and return the source address the server saw.
fn whoami(ns: &Path, to: &str) -> std::io::Result<String> {
    tcp_ask_timeout(ns, to.parse().unwrap(), Duration::from_secs(2)).map(|s| s.trim().to_string())
}

/// An echo server on every address of `ns`, until dropped.
fn echo(ns: &Path, port: u16, udp: bool) -> Echo {
    let any = sa(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port);
    if udp {
        Echo::udp(ns, any)
    } else {
        Echo::tcp(ns, any)
    }
}

/// The topology of notes/technical.md 3.3, in throwaway namespaces:
///   client (192.168.200.2, fd00:200::2) --vcli-- node (192.168.200.1, fd00:200::1)
///   node br0 (10.88.0.1, fd00:88::1) -- pod1 (10.88.0.2, fd00:88::2), pod2 (10.88.0.3)
struct Topo {
    node: (PathBuf, File),
    pod1: (PathBuf, File),
    pod2: (PathBuf, File),
    client: (PathBuf, File),
    // last: the namespaces go away after everything above is dropped
    _w: World,
}

fn topology(tag: &str) -> Option<Topo> {
    let mut w = world(tag)?;
    let node = netns(&mut w, "node");
    let pod1 = netns(&mut w, "pod1");
    let pod2 = netns(&mut w, "pod2");
    let client = netns(&mut w, "client");
    let n = &node.0;
    for (k, v) in
        [("net/ipv4/ip_forward", "1"), ("net/ipv6/conf/all/forwarding", "1"), ("net/ipv4/conf/all/route_localnet", "1")]
    {
        netns::write_sysctl(&node.1, k, v).unwrap();
    }
    ip(n, "link add name br0 type bridge");
    ip(n, "addr add 10.88.0.1/24 dev br0");
    ip(n, "addr add fd00:88::1/64 dev br0 nodad");
    ip(n, "link set dev br0 up");
    for (pod, host, addr4, addr6) in
        [(&pod1.0, "vpod1", "10.88.0.2/24", "fd00:88::2/64"), (&pod2.0, "vpod2", "10.88.0.3/24", "fd00:88::3/64")]
    {
        ip(n, &format!("link add name {host} type veth peer name eth0 netns {}", pod.display()));
        ip(n, &format!("link set dev {host} master br0"));
        ip(n, &format!("link set dev {host} type bridge_slave hairpin on"));
        ip(n, &format!("link set dev {host} up"));
        ip(pod, &format!("addr add {addr4} dev eth0"));
        ip(pod, &format!("addr add {addr6} dev eth0 nodad"));
        ip(pod, "link set dev eth0 up");
        ip(pod, "route add default via 10.88.0.1");
        ip(pod, "-6 route add default via fd00:88::1");
    }
    ip(n, &format!("link add name vcli type veth peer name eth0 netns {}", client.0.display()));
    ip(n, "addr add 192.168.200.1/24 dev vcli");
    ip(n, "addr add fd00:200::1/64 dev vcli nodad");
    ip(n, "link set dev vcli up");
    let c = &client.0;
    ip(c, "addr add 192.168.200.2/24 dev eth0");
    ip(c, "addr add fd00:200::2/64 dev eth0 nodad");
    ip(c, "link set dev eth0 up");
    // only used when the node does not masquerade (no-masq destinations)
    ip(c, "route add 10.88.0.0/16 via 192.168.200.1");
    ip(c, "-6 route add fd00:88::/48 via fd00:200::1");
    Some(Topo { node, pod1, pod2, client, _w: w })
}

#[test]
fn traffic_dnat_hairpin_and_masquerade() {
    let Some(t) = topology("traffic") else { return };
    let mut s = NftSocket::open_in(&t.node.1).unwrap();
    s.ensure_table(
        &ruleset(),
        &[
            tcp(None, 8080, "10.88.0.2", 80),
            tcp(Some("192.168.200.1"), 9090, "10.88.0.2", 80),
            tcp(None, 8080, "fd00:88::2", 80),
        ],
    )
    .unwrap();
    let _pod1 = echo(&t.pod1.0, 80, false);
    let _pod2 = echo(&t.pod2.0, 80, false);
    let _client = echo(&t.client.0, 7000, false);

    // external client keeps its address
    assert_eq!(whoami(&t.client.0, "192.168.200.1:8080").unwrap(), "192.168.200.2");
    assert_eq!(whoami(&t.client.0, "[fd00:200::1]:8080").unwrap(), "fd00:200::2");
    // host-IP-specific mapping answers on that IP only
    assert_eq!(whoami(&t.client.0, "192.168.200.1:9090").unwrap(), "192.168.200.2");
    let e = whoami(&t.node.0, "10.88.0.1:9090").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    // the node itself, on localhost (route_localnet) and on its own address
    assert_eq!(whoami(&t.node.0, "127.0.0.1:8080").unwrap(), "10.88.0.1");
    assert_eq!(whoami(&t.node.0, "192.168.200.1:8080").unwrap(), "192.168.200.1");
    // another pod, and the pod itself (hairpin through the bridge): masqueraded
    assert_eq!(whoami(&t.pod2.0, "10.88.0.1:8080").unwrap(), "10.88.0.1");
    assert_eq!(whoami(&t.pod1.0, "10.88.0.1:8080").unwrap(), "10.88.0.1");
    assert_eq!(whoami(&t.pod1.0, "192.168.200.1:8080").unwrap(), "10.88.0.1");

    // egress: leaving the cluster is masqueraded, pod to pod is not
    assert_eq!(whoami(&t.pod1.0, "192.168.200.2:7000").unwrap(), "192.168.200.1");
    assert_eq!(whoami(&t.pod1.0, "[fd00:200::2]:7000").unwrap(), "fd00:200::1");
    assert_eq!(whoami(&t.pod1.0, "10.88.0.3:80").unwrap(), "10.88.0.2");
    // a no-masq host keeps the pod address; the set can change at any time
    let peers: [IpAddr; 2] = ["192.168.200.2".parse().unwrap(), "fd00:200::2".parse().unwrap()];
    s.add_no_masq_hosts(&peers).unwrap();
    assert_eq!(whoami(&t.pod1.0, "192.168.200.2:7000").unwrap(), "10.88.0.2");
    assert_eq!(whoami(&t.pod1.0, "[fd00:200::2]:7000").unwrap(), "fd00:88::2");
    s.remove_no_masq_hosts(&peers).unwrap();
    assert_eq!(whoami(&t.pod1.0, "192.168.200.2:7000").unwrap(), "192.168.200.1");

    // A Service-style DNAT made by someone else (kube-proxy) to another pod must not be
    // masqueraded by the host-port rules: the backend sees the real pod address.
    in_ns(&t.node.0, &["nft", "add table ip kubeproxy"]);
    in_ns(&t.node.0, &["nft", "add chain ip kubeproxy pre { type nat hook prerouting priority -99; }"]);
    in_ns(&t.node.0, &["nft", "add rule ip kubeproxy pre ip daddr 10.96.0.10 tcp dport 80 dnat to 10.88.0.3:80"]);
    assert_eq!(whoami(&t.pod1.0, "10.96.0.10:80").unwrap(), "10.88.0.2");

    // removal takes effect for new connections
    s.remove_ports(&[tcp(None, 8080, "10.88.0.2", 80)]).unwrap();
    let e = whoami(&t.client.0, "192.168.200.1:8080").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");

    // Control for the Service check above: with the `ct status dnat ip saddr @podnets4
    // masquerade` rule of the first design, the same connection loses its source address.
    in_ns(&t.node.0, &["nft", "insert rule inet podnet postrouting ct status dnat ip saddr @podnets4 masquerade"]);
    assert_eq!(whoami(&t.pod1.0, "10.96.0.10:80").unwrap(), "10.88.0.1");
    s.delete_table().unwrap();
}

/// Count conntrack entries for UDP original destination port `port` in the netns.
fn conntrack_udp(pin: &Path, port: u16) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", pin.display()))
        .args(["--", "conntrack", "-L", "-p", "udp", "--orig-port-dst", &port.to_string()])
        .output()
        .expect("run conntrack");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn udp_conntrack_flush() {
    let Some(t) = topology("udp") else { return };
    let mut s = NftSocket::open_in(&t.node.1).unwrap();
    s.ensure_table(&ruleset(), &[]).unwrap();
    let _pod = echo(&t.pod1.0, 53, true);
    let flow = UdpFlow::new(&t.client.0, "192.168.200.2:40000".parse().unwrap(), "192.168.200.1:6000".parse().unwrap());
    let ask = || flow.ask();

    // Before the mapping: the node has no listener; conntrack remembers the flow un-NATed.
    assert_eq!(ask(), None);
    assert_eq!(conntrack_udp(&t.node.0, 6000).len(), 1);
    let port = udp(6000, "10.88.0.2", 53);
    s.add_ports(&[port]).unwrap();
    // The stale entry keeps steering the flow to the node, past the new DNAT...
    assert_eq!(ask(), None);
    // ...until it is flushed.
    assert_eq!(s.flush_udp_conntrack(&[port]).unwrap(), 1);
    assert!(conntrack_udp(&t.node.0, 6000).is_empty());
    assert_eq!(ask().as_deref(), Some("192.168.200.2"));
    let entries = conntrack_udp(&t.node.0, 6000);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].contains("src=10.88.0.2"), "{entries:?}");

    // Removal: without a flush the flow would keep going to the old pod.
    s.remove_ports(&[port]).unwrap();
    assert_eq!(s.flush_udp_conntrack(&[port]).unwrap(), 1);
    assert!(conntrack_udp(&t.node.0, 6000).is_empty());
    assert_eq!(ask(), None);
    // TCP mappings and other ports are left alone; nothing matching is success
    assert_eq!(s.flush_udp_conntrack(&[tcp(None, 6000, "10.88.0.2", 53), udp(6001, "10.88.0.2", 53)]).unwrap(), 0);
}
