//! Privileged tests of the sandbox lifecycle on one node (run as root: `cargo test`).
//! Each test builds its own throwaway namespaces under /tmp and removes them.

use std::net::IpAddr;

use podnet::blocking::Node;
use podnet::{ErrorKind, FailPoint, NodeConfig, PodMode, SandboxSpec};
use podnet_world::*;

fn node(w: &mut World, name: &str, mode: PodMode, cidrs: &[&str]) -> (Node, std::path::PathBuf) {
    let ns = w.netns(name);
    let mut cfg = w.node_config(name, &ns).mode(mode);
    for c in cidrs {
        cfg = cfg.pod_cidr(c.parse().unwrap());
    }
    (Node::open(cfg).unwrap(), ns)
}

/// A world with one bridge-mode node `n1` on `cidr`.
fn one_node(tag: &str, cidr: &str) -> (World, Node, std::path::PathBuf) {
    let mut w = World::new(tag);
    let (n, ns) = node(&mut w, "n1", PodMode::Bridge, &[cidr]);
    (w, n, ns)
}

fn links(ns: &std::path::Path) -> String {
    in_ns(ns, &["ip", "-o", "link", "show"])
}

fn host_veths(ns: &std::path::Path) -> usize {
    links(ns).lines().filter(|l| l.contains(": pn")).count()
}

/// Wait until the kernel finished destroying deleted pods' veths (asynchronous, batched).
fn wait_veths_gone(ns: &std::path::Path) {
    for _ in 0..300 {
        if host_veths(ns) == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("host veths left: {}", links(ns));
}

fn assert_clean(w: &World, ns: &std::path::Path, node: &str) {
    wait_veths_gone(ns);
    assert!(w.pod_pins().is_empty(), "pins left: {:?}", w.pod_pins());
    assert!(w.state_files(node).is_empty(), "state left: {:?}", w.state_files(node));
    assert!(w.pod_mounts().is_empty(), "mounts left: {:?}", w.pod_mounts());
}

fn two_pods_talk(mode: PodMode, cidrs: &[&str]) {
    let mut w = World::new(&format!("talk-{mode:?}"));
    let (n, ns) = node(&mut w, "n1", mode, cidrs);
    // A node has an address of its own (its underlay IP); in routed mode there is no bridge
    // address, so give the test node one on lo as a real node would have on its NIC.
    in_ns(&ns, &["ip", "addr", "add", "192.168.50.1/32", "dev", "lo"]);
    in_ns(&ns, &["ip", "addr", "add", "fd00:50::1/128", "dev", "lo"]);
    let a = n.create_sandbox(&SandboxSpec::new("pod-a")).unwrap();
    let b = n.create_sandbox(&SandboxSpec::new("pod-b")).unwrap();
    assert_eq!(a.ips.len(), cidrs.len());
    assert_ne!(a.ips, b.ips);

    // kernel state: pod side
    let out = in_ns(&a.netns_path, &["ip", "-o", "addr", "show", "dev", "eth0"]);
    for net in &a.ips {
        assert!(out.contains(&net.to_string()), "{net} missing: {out}");
    }
    let lo = in_ns(&a.netns_path, &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP") || lo.contains("UNKNOWN"), "{lo}");
    let r4 = in_ns(&a.netns_path, &["ip", "route", "show", "default"]);
    if a.ipv4().is_some() {
        assert!(r4.contains(&format!("via {}", a.gateways[0])), "{r4}");
    }
    // host side
    let hl = links(&ns);
    assert!(hl.contains(&a.host_ifname), "{hl}");
    if mode == PodMode::Bridge {
        let bl = in_ns(&ns, &["bridge", "-d", "link", "show", "dev", &a.host_ifname]);
        assert!(bl.contains("hairpin on"), "{bl}");
        assert!(bl.contains("master podnet0"), "{bl}");
    } else {
        let rt = in_ns(&ns, &["ip", "route", "show", "dev", &a.host_ifname]);
        assert!(rt.contains(&a.ipv4().or(a.ipv6()).unwrap().to_string()), "{rt}");
    }
    assert!(n.check_sandbox("pod-a").unwrap().is_ok());

    // traffic: pod -> pod (each family), node -> pod, pod -> gateway
    for (ai, bi) in a.ips.iter().zip(&b.ips) {
        let srv = echo_peer_server(&b.netns_path, sa(bi.ip(), 8080), 1);
        let seen = tcp_ask(&a.netns_path, sa(bi.ip(), 8080)).expect("pod a -> pod b");
        assert_eq!(seen, ai.ip().to_string(), "b sees a's own IP (no NAT)");
        srv.join().unwrap();
        let srv = echo_peer_server(&a.netns_path, sa(ai.ip(), 8081), 1);
        tcp_ask(&ns, sa(ai.ip(), 8081)).expect("node -> pod");
        srv.join().unwrap();
    }
    if mode == PodMode::Bridge {
        for gw in n.inner().gateways() {
            let srv = echo_peer_server(&ns, sa(gw, 9090), 1);
            let seen = tcp_ask(&a.netns_path, sa(gw, 9090)).expect("pod -> gateway");
            assert!(a.ips.iter().any(|i| i.ip().to_string() == seen));
            srv.join().unwrap();
        }
    }

    n.delete_sandbox("pod-a").unwrap();
    n.delete_sandbox("pod-a").unwrap(); // idempotent
    n.delete_sandbox("pod-b").unwrap();
    assert!(n.list_sandboxes().unwrap().is_empty());
    assert_clean(&w, &ns, "n1");
    if mode == PodMode::Routed {
        let rt = in_ns(&ns, &["ip", "route", "show", "proto", "80"]);
        assert!(rt.trim().is_empty(), "routes left: {rt}");
    }
}

cases! {
    bridge_ipv4 => two_pods_talk(PodMode::Bridge, &["10.20.1.0/24"]);
    bridge_dual_stack => two_pods_talk(PodMode::Bridge, &["10.20.2.0/24", "fd00:20:2::/64"]);
    bridge_ipv6_only => two_pods_talk(PodMode::Bridge, &["fd00:20:3::/64"]);
    routed_ipv4 => two_pods_talk(PodMode::Routed, &["10.20.4.0/24"]);
    routed_dual_stack => two_pods_talk(PodMode::Routed, &["10.20.5.0/24", "fd00:20:5::/64"]);
}

#[test]
fn create_is_idempotent_and_recreate_works() {
    let (w, n, ns) = one_node("idem", "10.21.0.0/24");
    let a = n.create_sandbox(&SandboxSpec::new("x")).unwrap();
    let again = n.create_sandbox(&SandboxSpec::new("x")).unwrap();
    assert_eq!(a, again);
    let mut other = SandboxSpec::new("x");
    other.ifname = "eth1".into();
    assert_eq!(n.create_sandbox(&other).unwrap_err().kind(), ErrorKind::AlreadyExists);
    // delete + immediate re-create with the same id (host veth name may still be dying)
    for _ in 0..5 {
        n.delete_sandbox("x").unwrap();
        let b = n.create_sandbox(&SandboxSpec::new("x")).unwrap();
        assert_eq!(b.host_ifname, a.host_ifname);
        assert!(n.check_sandbox("x").unwrap().is_ok());
    }
    n.delete_sandbox("x").unwrap();
    assert_clean(&w, &ns, "n1");
}

/// `Node::attach` (a short-lived process's open) leaves the node-level network as it is:
/// deletes, checks and lists need none of it; the first create sets it up as `open` would.
#[test]
fn attach_sets_up_the_node_network_only_when_a_change_needs_it() {
    let (w, n, ns) = one_node("attach", "10.21.5.0/24");
    n.create_sandbox(&SandboxSpec::new("a")).unwrap();
    let cfg = n.inner().config().clone();
    let br = cfg.bridge_name.clone();
    let gateway = |ns: &std::path::Path| in_ns(ns, &["ip", "-o", "addr", "show", "dev", &br]).contains("10.21.5.1/24");
    // Something took the bridge's gateway address away: `attach` does not put it back.
    in_ns(&ns, &["ip", "addr", "del", "10.21.5.1/24", "dev", &br]);
    let attached = n.block_on(podnet::Node::attach(cfg.clone())).unwrap();
    assert!(!gateway(&ns), "attach changed the bridge");
    assert_eq!(attached.pod_mtu(), cfg.mtu);
    assert!(n.block_on(attached.check_sandbox("a")).unwrap().is_ok());
    n.block_on(attached.delete_sandbox("a")).unwrap();
    assert!(!gateway(&ns), "a delete set the node up");
    // A create does: the bridge has its gateway again and the new pod works.
    let b = n.block_on(attached.create_sandbox(&SandboxSpec::new("b"))).unwrap();
    assert!(gateway(&ns), "create did not set the node up: {}", links(&ns));
    assert_eq!(b.gateways, vec!["10.21.5.1".parse::<IpAddr>().unwrap()]);
    assert!(n.block_on(attached.check_sandbox("b")).unwrap().is_ok());
    n.block_on(attached.delete_sandbox("b")).unwrap();
    drop(attached);
    drop(n);
    assert_clean(&w, &ns, "n1");
}

/// Every process on the node can tell how long ago host ports were removed (the kernel then has
/// a deferred nf_tables free pending for a grace period; see podnet-cni's linger).
#[test]
fn the_node_records_when_host_ports_were_last_removed() {
    let (w, n, ns) = one_node("portsgone", "10.21.6.0/24");
    assert_eq!(n.inner().since_host_ports_removed(), None);
    let mut spec = SandboxSpec::new("a");
    spec.ports.push(podnet::PortMapping {
        protocol: podnet::Protocol::Tcp,
        host_ip: None,
        host_port: 31600,
        container_port: 80,
    });
    n.create_sandbox(&spec).unwrap();
    n.create_sandbox(&SandboxSpec::new("b")).unwrap();
    n.delete_sandbox("b").unwrap();
    assert_eq!(n.inner().since_host_ports_removed(), None, "a sandbox without ports");
    n.delete_sandbox("a").unwrap();
    let since = n.inner().since_host_ports_removed().expect("recorded");
    assert!(since < std::time::Duration::from_secs(10), "{since:?}");
    drop(n);
    assert_clean(&w, &ns, "n1");
}

#[test]
fn requested_ip_and_conflicts() {
    let (w, n, ns) = one_node("req", "10.22.0.0/24");
    let mut s = SandboxSpec::new("a");
    s.ips = vec!["10.22.0.77".parse().unwrap()];
    let a = n.create_sandbox(&s).unwrap();
    assert_eq!(a.ipv4(), Some("10.22.0.77".parse::<IpAddr>().unwrap()));
    let mut s2 = SandboxSpec::new("b");
    s2.ips = vec!["10.22.0.77".parse().unwrap()];
    let e = n.create_sandbox(&s2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("a/eth0"), "{e}");
    s2.ips = vec!["10.23.0.5".parse().unwrap()];
    assert_eq!(n.create_sandbox(&s2).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(n.list_sandboxes().unwrap().len(), 1, "failed creates change nothing");
    n.delete_sandbox("a").unwrap();
    assert_clean(&w, &ns, "n1");
}

#[test]
fn bad_input_changes_nothing() {
    let (w, n, ns) = one_node("bad", "10.24.0.0/24");
    let before = links(&ns);
    let long = "x".repeat(200);
    for id in ["", "a/b", "..", "../../etc", "a..b", long.as_str(), "sp ace"] {
        let e = n.create_sandbox(&SandboxSpec::new(id)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
    }
    let mut s = SandboxSpec::new("ok");
    s.ifname = "averyveryverylongname".into();
    assert_eq!(n.create_sandbox(&s).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut s = SandboxSpec::new("ok");
    s.netns = podnet::NetnsSpec::Path("/etc/hostname".into());
    let e = n.create_sandbox(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(links(&ns), before);
    assert!(w.state_files("n1").is_empty(), "{:?}", w.state_files("n1"));
    assert!(w.pod_pins().is_empty());
    // bad node configs
    let e = Node::open(NodeConfig::new("n2").pod_cidr("10.1.0.1/24".parse().unwrap())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn rollback_at_every_step() {
    let mut w = World::new("rollback");
    for mode in [PodMode::Bridge, PodMode::Routed] {
        let name = format!("n{mode:?}");
        let (n, ns) = node(&mut w, &name, mode, &["10.25.0.0/24", "fd00:25::/64"]);
        for fp in [
            FailPoint::AfterIpam,
            FailPoint::AfterNetns,
            FailPoint::AfterVeth,
            FailPoint::AfterHost,
            FailPoint::AfterPod,
            FailPoint::AfterPorts,
        ] {
            n.inner().set_fail_point(Some(fp));
            let e = n.create_sandbox(&SandboxSpec::new("rb")).unwrap_err();
            assert!(e.to_string().contains("injected"), "{e}");
            n.inner().set_fail_point(None);
            assert!(n.list_sandboxes().unwrap().is_empty());
            assert!(w.pod_pins().is_empty(), "{fp:?}: {:?}", w.pod_pins());
            assert!(w.state_files(&name).is_empty(), "{fp:?}: {:?}", w.state_files(&name));
            // The rollback drops the pin; the kernel destroys the netns and the veth with it.
            wait_veths_gone(&ns);
        }
        // and then it works
        n.create_sandbox(&SandboxSpec::new("rb")).unwrap();
        n.delete_sandbox("rb").unwrap();
        assert_clean(&w, &ns, &name);
    }
}

#[test]
fn adopted_netns_is_left_alone() {
    let (mut w, n, ns) = one_node("adopt", "10.26.0.0/24");
    let pod_ns = w.netns("runtime-made");
    let mut s = SandboxSpec::new("ad");
    s.netns = podnet::NetnsSpec::Path(pod_ns.clone());
    let sb = n.create_sandbox(&s).unwrap();
    assert!(!sb.owns_netns);
    assert!(in_ns(&pod_ns, &["ip", "-o", "addr"]).contains(&sb.ips[0].to_string()));
    n.delete_sandbox("ad").unwrap();
    assert!(pod_ns.exists(), "the runtime's netns stays");
    // Cut off at once (host end down); the interface would go with the runtime's netns. Here
    // something still holds it, so the address stays reserved until podnet deletes the veth:
    // after the grace on a later call, or at once by gc.
    assert!(in_ns(&pod_ns, &["ip", "-o", "link", "show", "eth0"]).contains("NO-CARRIER"));
    let again = n.create_sandbox(&SandboxSpec::new("other")).unwrap();
    assert_ne!(again.ips[0], sb.ips[0], "a draining address is not given again");
    n.delete_sandbox("other").unwrap();
    let rep = n.gc_orphans().unwrap();
    assert!(rep.ips.contains(&sb.ips[0].ip()), "{rep:?}");
    assert!(!in_ns(&pod_ns, &["ip", "-o", "link"]).contains("eth0"));
    wait_veths_gone(&ns);
    // netns vanished before delete: still succeeds
    let pod_ns2 = w.netns("runtime-made-2");
    let mut s = SandboxSpec::new("ad2");
    s.netns = podnet::NetnsSpec::Path(pod_ns2.clone());
    n.create_sandbox(&s).unwrap();
    podnet::internals::netns::remove(&pod_ns2).unwrap();
    n.delete_sandbox("ad2").unwrap();
    assert_clean(&w, &ns, "n1");
}

#[test]
fn gc_removes_everything_not_live() {
    let (w, n, ns) = one_node("gc", "10.27.0.0/24");
    for i in 0..5 {
        n.create_sandbox(&SandboxSpec::new(format!("g{i}"))).unwrap();
    }
    let rep = n.gc(&["g1", "g3"]).unwrap();
    assert_eq!(rep.sandboxes, vec!["g0", "g2", "g4"]);
    let ids: Vec<_> = n.list_sandboxes().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec!["g1", "g3"]);
    n.gc(&[]).unwrap();
    assert_clean(&w, &ns, "n1");
}

#[test]
fn concurrent_creates_from_many_threads() {
    let (w, n, ns) = one_node("conc", "10.28.0.0/22");
    let n = std::sync::Arc::new(n);
    let mut hs = vec![];
    for t in 0..8 {
        let n = n.clone();
        hs.push(std::thread::spawn(move || {
            (0..10)
                .map(|i| n.create_sandbox(&SandboxSpec::new(format!("c{t}-{i}"))).unwrap().ips[0].ip())
                .collect::<Vec<_>>()
        }));
    }
    let mut all = std::collections::HashSet::new();
    for h in hs {
        for ip in h.join().unwrap() {
            assert!(all.insert(ip));
        }
    }
    assert_eq!(all.len(), 80);
    let mut hs = vec![];
    for t in 0..8 {
        let n = n.clone();
        hs.push(std::thread::spawn(move || (0..10).for_each(|i| n.delete_sandbox(&format!("c{t}-{i}")).unwrap())));
    }
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_clean(&w, &ns, "n1");
}

/// Pods of both modes on one node (the node's default and an override) reach each other, the
/// gateway side and the node, in IPv4 and IPv6.
fn mixed(node_mode: PodMode) {
    let mut w = World::new(&format!("mixed-{node_mode:?}"));
    let (n, ns) = node(&mut w, "n1", node_mode, &["10.29.0.0/24", "fd00:29::/64"]);
    in_ns(&ns, &["ip", "addr", "add", "192.168.50.1/32", "dev", "lo"]);
    let mut pods = vec![];
    for mode in [PodMode::Bridge, PodMode::Routed] {
        let mut spec = SandboxSpec::new(format!("{mode:?}").to_lowercase());
        spec.mode = Some(mode);
        let sb = n.create_sandbox(&spec).unwrap();
        assert_eq!(sb.mode, mode);
        assert!(n.check_sandbox(&sb.id).unwrap().is_ok(), "{:?}", n.check_sandbox(&sb.id));
        pods.push(sb);
    }
    for fam in 0..2 {
        for (a, b) in [(0, 1), (1, 0)] {
            let dip = pods[b].ips[fam].ip();
            let srv = echo_peer_server(&pods[b].netns_path, sa(dip, 6000), 1);
            let seen = tcp_ask(&pods[a].netns_path, sa(dip, 6000))
                .unwrap_or_else(|e| panic!("{} -> {}: {e}", pods[a].id, dip));
            assert_eq!(seen, pods[a].ips[fam].ip().to_string());
            srv.join().unwrap();
        }
    }
    for p in &pods {
        n.delete_sandbox(&p.id).unwrap();
    }
    let proxies = in_ns(&ns, &["ip", "-6", "neigh", "show", "proxy"]);
    assert!(proxies.trim().is_empty(), "proxy entries left: {proxies}");
    assert_clean(&w, &ns, "n1");
}

cases! {
    mixed_modes_on_a_bridge_node => mixed(PodMode::Bridge);
    mixed_modes_on_a_routed_node => mixed(PodMode::Routed);
}
