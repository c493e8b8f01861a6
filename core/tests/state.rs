//! Node state under crashes, races and damage (run as root: `cargo test`). The invariants:
//! an address is never held by two pods, nothing leaks, a live process's work in flight is
//! never undone, and damaged state is an error that changes nothing.
//!
//! `crash_recovery_converges` kills a child process (this test binary, running the library)
//! with SIGKILL at random points of creates (in netns podnet makes and in netns a "runtime" made,
//! bridge and routed, with and without host ports), deletes, port changes and peer changes,
//! then runs the documented recovery (open the node, `gc` with the runtime's live list) and
//! checks the kernel against the state. `PODNET_CRASH_ITERATIONS` sets how many kills (default 12; try 500 on demand).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use podnet::blocking::Node;
use podnet::{ErrorKind, NodeConfig, PodMode, PortMapping, Protocol, Sandbox, SandboxSpec};
use podnet_world::*;

fn cfg(w: &World, name: &str, ns: &Path) -> NodeConfig {
    NodeConfig::new(name)
        .netns(ns)
        .state_dir(w.state_dir(name))
        .netns_dir(w.netns_dir())
        .mode(PodMode::Bridge)
        .pod_cidr("10.31.0.0/24".parse().unwrap())
        .pod_cidr("fd00:31::/120".parse().unwrap())
}

/// A world with one node netns, both named `tag`, and a handle on the node there.
fn one_node(tag: &str) -> (World, PathBuf, Node) {
    let mut w = World::new(tag);
    let ns = w.netns(tag);
    let node = Node::open(cfg(&w, tag, &ns)).unwrap();
    (w, ns, node)
}

/// The crash test's node: an underlay too, so peers get a VXLAN overlay.
fn crash_cfg(w: &World, ns: &Path) -> NodeConfig {
    cfg(w, "crash", ns).underlay("192.0.2.1".parse().unwrap())
}

/// Peer `k` of the crash test.
fn crash_peer(k: usize) -> podnet::Peer {
    podnet::Peer::new(
        format!("p{k}"),
        format!("192.0.2.{}", 10 + k).parse().unwrap(),
        vec![format!("10.40.{k}.0/24").parse().unwrap()],
    )
}

/// Host veths podnet marked (the node's device group), read with `ip` (the oracle).
fn marked_links(ns: &Path, node: &str) -> HashMap<String, String> {
    let group = format!(" group {} ", podnet::internals::link_group(node));
    let out = in_ns(ns, &["ip", "-d", "-o", "link", "show"]);
    let mut m = HashMap::new();
    for line in out.lines() {
        let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()) else {
            continue;
        };
        if line.contains(&group) {
            m.insert(name, line.to_string());
        }
    }
    m
}

fn host_veth_count(ns: &Path) -> usize {
    in_ns(ns, &["ip", "-o", "link", "show", "type", "veth"]).lines().filter(|l| l.contains(": pn")).count()
}

/// Every address the kernel carries on pod interfaces, read inside each pod's netns.
fn pod_addresses(pods: &[Sandbox]) -> Vec<IpAddr> {
    let mut v = vec![];
    for sb in pods {
        let out = in_ns(&sb.netns_path, &["ip", "-o", "addr", "show", "dev", &sb.ifname]);
        for net in &sb.ips {
            if out.contains(&format!(" {}/", net.ip())) {
                v.push(net.ip());
            }
        }
    }
    v
}

/// The converged state: every listed sandbox is whole, nothing else podnet makes exists, and
/// no address is carried twice.
fn assert_converged(w: &World, ns: &Path, node: &Node, ctx: &str) {
    let name = node.inner().config().name.clone();
    let pods = node.list_sandboxes().unwrap();
    for sb in &pods {
        let rep = node.check_sandbox(&sb.id).unwrap();
        assert!(rep.is_ok(), "{ctx}: {} is not whole: {:?}", sb.id, rep.problems);
    }
    let mut pins: Vec<String> = w.pod_pins();
    pins.sort();
    let mut want: Vec<String> = pods
        .iter()
        .filter(|s| s.owns_netns)
        .map(|s| s.netns_path.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    want.sort();
    assert_eq!(pins, want, "{ctx}: pins");
    // Deleted pods' veths vanish with their netns, asynchronously.
    let owned: HashSet<&str> = pods.iter().map(|s| s.host_ifname.as_str()).collect();
    for _ in 0..300 {
        if marked_links(ns, &name).keys().all(|l| owned.contains(l.as_str())) && host_veth_count(ns) == owned.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let links: HashSet<String> = marked_links(ns, &name).into_keys().collect();
    assert_eq!(links, owned.iter().map(|s| s.to_string()).collect::<HashSet<_>>(), "{ctx}: marked veths");
    assert_eq!(host_veth_count(ns), owned.len(), "{ctx}: veths");
    let addrs = pod_addresses(&pods);
    let distinct: HashSet<&IpAddr> = addrs.iter().collect();
    assert_eq!(distinct.len(), addrs.len(), "{ctx}: an address is carried twice: {addrs:?}");
    assert_eq!(addrs.len(), pods.iter().map(|s| s.ips.len()).sum::<usize>(), "{ctx}: pod addresses");
    let c = podnet::internals::state_counts(&w.state_dir(&node.inner().config().name)).unwrap();
    assert_eq!(c.sandboxes, pods.len(), "{ctx}: {c:?}");
    assert_eq!(c.addresses, addrs.len(), "{ctx}: {c:?}");
    let ports: usize = pods.iter().map(|s| s.ports.len()).sum();
    assert_eq!(c.ports, ports, "{ctx}: {c:?}");
    let elems: usize = pods
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(move |m| s.ips.iter().filter(|n| m.host_ip.is_none_or(|h| h.is_ipv4() == n.is_ipv4())).count())
        })
        .sum();
    assert_eq!(hostport_elements(ns), elems, "{ctx}: host-port elements");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The netns the "runtime" made for crash-test pod `k` (even `k` only).
fn runtime_netns(w: &World, k: u64) -> PathBuf {
    w.dir.join("ns").join(format!("r{k}"))
}

/// The child: runs creates, deletes and port changes until it is killed.
#[test]
#[ignore = "child process of crash_recovery_converges"]
fn crash_child() {
    let Ok(world) = std::env::var("PODNET_CRASH_WORLD") else { return };
    let seed: u64 = std::env::var("PODNET_CRASH_SEED").unwrap().parse().unwrap();
    let w = World::attach(PathBuf::from(world));
    let ns = w.dir.join("ns").join("crash");
    let node = Node::open(crash_cfg(&w, &ns)).unwrap();
    let mut rng = Rng(seed);
    loop {
        let k = rng.below(12);
        let id = format!("c{k}");
        match rng.below(7) {
            5 => {
                let peers: Vec<podnet::Peer> = (0..6).filter(|_| rng.below(2) == 0).map(crash_peer).collect();
                let _ = node.sync_peers(&peers);
            }
            6 => {
                let k = rng.below(6) as usize;
                let _ =
                    if rng.below(2) == 0 { node.add_peer(&crash_peer(k)) } else { node.remove_peer(&format!("p{k}")) };
            }
            0 | 1 => {
                let mut spec = SandboxSpec::new(&id);
                spec.mode = Some(if rng.below(2) == 0 { PodMode::Bridge } else { PodMode::Routed });
                if k % 2 == 0 {
                    // Half the pods live in a netns the runtime made (as through the CNI plugin).
                    spec.netns = podnet::NetnsSpec::Path(runtime_netns(&w, k));
                }
                if rng.below(2) == 0 {
                    spec.ports = vec![PortMapping {
                        protocol: Protocol::Tcp,
                        host_ip: None,
                        host_port: 20000 + rng.below(12) as u16,
                        container_port: 80,
                    }];
                }
                let _ = node.create_sandbox(&spec);
            }
            2 | 3 => {
                let _ = node.delete_sandbox(&id);
            }
            _ => {
                let m = PortMapping {
                    protocol: Protocol::Udp,
                    host_ip: None,
                    host_port: 30000 + rng.below(12) as u16,
                    container_port: 53,
                };
                if rng.below(2) == 0 {
                    let _ = node.add_ports(&id, &[m]);
                } else {
                    let _ = node.remove_ports(&id, &[m]);
                }
            }
        }
    }
}

#[test]
fn crash_recovery_converges() {
    let iterations: usize = std::env::var("PODNET_CRASH_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let mut w = World::new("crash");
    let ns = w.netns("crash");
    let ul = w.netns("crash-ul");
    for k in (0..12).step_by(2) {
        assert_eq!(w.netns(&format!("r{k}")), runtime_netns(&w, k));
    }
    link(&ns, "ul0", &["192.0.2.1/24"], &ul, "ul1", &["192.0.2.2/24"]).unwrap();
    let seed0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed0);
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    for i in 0..iterations {
        let seed = rng.next() | 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("PODNET_CRASH_WORLD", &w.dir)
            .env("PODNET_CRASH_SEED", seed.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it open the node (a few ms) and then work for a random while.
        std::thread::sleep(Duration::from_millis(15 + rng.below(120)));
        // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        kills += usize::from(status.code().is_none());
        // The documented recovery: open the node (finishes dead owners' intents), then gc with
        // the runtime's live list (here: every sandbox the node lists).
        let node = Node::open(crash_cfg(&w, &ns)).unwrap();
        let live: Vec<String> = node.list_sandboxes().unwrap().into_iter().map(|s| s.id).collect();
        let live_refs: Vec<&str> = live.iter().map(|s| s.as_str()).collect();
        let rep = node.gc(&live_refs).unwrap();
        assert!(rep.errors.is_empty(), "iteration {i} (seed {seed}): gc errors {:?}", rep.errors);
        assert_converged(&w, &ns, &node, &format!("iteration {i} (seed {seed})"));
        // Peers: the agent's recovery is a sync to the set it wants; here, the set the node has.
        let peers = node.list_peers().unwrap();
        node.sync_peers(&peers).unwrap();
        let routes = in_ns(&ns, &["ip", "route", "show", "proto", "81"]).lines().count();
        let fdb =
            in_ns(&ns, &["bridge", "fdb", "show", "dev", "podnet.1"]).lines().filter(|l| l.contains(" dst ")).count();
        assert_eq!((routes, fdb), (peers.len(), peers.len()), "iteration {i} (seed {seed}): peer entries");
    }
    assert!(kills > 0, "the child was never killed mid-way");
    let node = Node::open(crash_cfg(&w, &ns)).unwrap();
    node.gc(&[]).unwrap();
    node.sync_peers(&[]).unwrap();
    assert_converged(&w, &ns, &node, "after gc of everything");
    assert!(w.state_files("crash").is_empty(), "{:?}", w.state_files("crash"));
}

#[test]
fn gc_never_undoes_creates_in_flight() {
    let mut w = World::new("gcrace");
    let ns = w.netns("gcrace");
    let creator = Node::open(cfg(&w, "gcrace", &ns)).unwrap();
    // A second node handle on the same state dir: another owner, as another process is.
    let collector = Node::open(cfg(&w, "gcrace", &ns)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stops the gc loop also when the creator panics, so the test fails instead of hanging.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let created = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // An operator's or a runtime's periodic `podnet gc --orphans-only`.
                let rep = collector.gc_orphans().unwrap();
                assert!(rep.sandboxes.is_empty(), "gc removed {:?}", rep.sandboxes);
                runs += 1;
            }
            runs
        });
        let _stop = StopOnDrop(&stop);
        let mut created = vec![];
        for i in 0..60u16 {
            let mut spec = SandboxSpec::new(format!("g{i}"));
            spec.ports =
                vec![PortMapping { protocol: Protocol::Tcp, host_ip: None, host_port: 21000 + i, container_port: 80 }];
            created.push(creator.create_sandbox(&spec).unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(gc.join().unwrap() > 0);
        created
    });
    let listed = creator.list_sandboxes().unwrap();
    assert_eq!(listed.len(), created.len(), "every create that succeeded is still there");
    assert_eq!(creator.list_ports().unwrap().len(), 60, "no host port lost");
    assert_converged(&w, &ns, &creator, "after the race");
    creator.gc(&[]).unwrap();
    assert_converged(&w, &ns, &creator, "after gc of everything");
}

#[test]
fn two_creators_a_lister_and_a_deleter_share_a_state_dir() {
    let mut w = World::new("share");
    let ns = w.netns("share");
    let nodes: Vec<Node> = (0..4).map(|_| Node::open(cfg(&w, "share", &ns)).unwrap()).collect();
    std::thread::scope(|s| {
        for (t, n) in nodes[..2].iter().enumerate() {
            s.spawn(move || {
                for i in 0..40u16 {
                    let mut spec = SandboxSpec::new(format!("s{t}-{i}"));
                    // Both creators ask for the same host ports: exactly one wins each.
                    spec.ports = vec![PortMapping {
                        protocol: Protocol::Tcp,
                        host_ip: None,
                        host_port: 22000 + i,
                        container_port: 80,
                    }];
                    match n.create_sandbox(&spec) {
                        Ok(_) => {}
                        Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
                    }
                }
            });
        }
        s.spawn(|| {
            for _ in 0..40 {
                let _ = nodes[2].list_sandboxes().unwrap();
                let _ = nodes[2].list_ports().unwrap();
            }
        });
        s.spawn(|| {
            for i in 0..40u16 {
                nodes[3].delete_sandbox(&format!("s1-{i}")).unwrap();
            }
        });
    });
    let n = &nodes[0];
    let ports = n.list_ports().unwrap();
    let distinct: HashSet<u16> = ports.iter().map(|p| p.mapping.host_port).collect();
    assert_eq!(distinct.len(), ports.len(), "a host port mapped twice: {ports:?}");
    assert_converged(&w, &ns, n, "after the race");
    n.gc(&[]).unwrap();
    assert_converged(&w, &ns, n, "after gc of everything");
}

#[test]
fn delete_with_a_held_netns_never_gives_its_address_to_another_pod() {
    let mut w = World::new("held");
    let ns = w.netns("held");
    // A /29 hands out five addresses: the held one must not come back while held.
    let node = Node::open(
        NodeConfig::new("held")
            .netns(&ns)
            .state_dir(w.state_dir("held"))
            .netns_dir(w.netns_dir())
            .pod_cidr("10.32.0.0/29".parse().unwrap()),
    )
    .unwrap();
    let a = node.create_sandbox(&SandboxSpec::new("a")).unwrap();
    // A container still running in it: the netns outlives its pin.
    let holder = std::fs::File::open(&a.netns_path).unwrap();
    let held = PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), std::os::fd::AsRawFd::as_raw_fd(&holder)));
    node.delete_sandbox("a").unwrap();
    let mut others = vec![];
    for i in 0..4 {
        let sb = node.create_sandbox(&SandboxSpec::new(format!("o{i}"))).unwrap();
        assert_ne!(sb.ipv4(), a.ipv4(), "the held pod's address was handed out again");
        others.push(sb);
    }
    // Only the held pod's address is left: the create that finds the pool exhausted takes it
    // back (as gc would), deleting the interface out of the held netns first.
    let b = node.create_sandbox(&SandboxSpec::new("o4")).unwrap();
    assert_eq!(b.ipv4(), a.ipv4());
    let inside = in_ns(&held, &["ip", "-o", "link"]);
    assert!(!inside.contains(&a.ifname), "the pod's interface is gone from the held netns: {inside}");
    let e = node.create_sandbox(&SandboxSpec::new("o5")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exhausted, "{e}");
    drop(holder);
    node.gc(&[]).unwrap();
    assert_converged(&w, &ns, &node, "after gc of everything");
}

#[test]
fn gc_deletes_only_links_podnet_marked() {
    let (mut w, ns, node) = one_node("marked");
    // Someone else's link that merely looks like podnet's (pn + 12 hex digits).
    let other = w.netns("marked-other");
    veth(&ns, "pn0123456789ab", &other, "x0").unwrap();
    let a = node.create_sandbox(&SandboxSpec::new("m")).unwrap();
    let rep = node.gc(&["m"]).unwrap();
    assert!(rep.links.is_empty(), "{rep:?}");
    assert!(in_ns(&ns, &["ip", "-o", "link"]).contains("pn0123456789ab"), "a foreign link was deleted");
    // The just-deleted pod's dying veth is not reported as an orphan either.
    node.delete_sandbox("m").unwrap();
    let rep = node.gc(&[]).unwrap();
    assert!(!rep.links.contains(&a.host_ifname), "{rep:?}");
    assert!(in_ns(&ns, &["ip", "-o", "link"]).contains("pn0123456789ab"));
}

#[test]
fn create_verifies_the_kernel_not_just_the_record() {
    let (w, ns, node) = one_node("verify");
    let a = node.create_sandbox(&SandboxSpec::new("v")).unwrap();
    // As after a killed delete or a reboot that kept the state: the netns is gone.
    podnet::internals::netns::remove(&a.netns_path).unwrap();
    let b = node.create_sandbox(&SandboxSpec::new("v")).unwrap();
    assert!(node.check_sandbox("v").unwrap().is_ok(), "{:?}", node.check_sandbox("v"));
    assert_eq!(b.id, a.id);
    node.gc(&[]).unwrap();
    assert_converged(&w, &ns, &node, "after gc of everything");
}

#[test]
fn damaged_state_is_an_error_that_changes_nothing() {
    let (w, ns, node) = one_node("damage");
    let a = node.create_sandbox(&SandboxSpec::new("d")).unwrap();
    let db = w.state_dir("damage").join("state.db");
    // A damaged record: list and gc fail naming it, and the pod stays up.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute("UPDATE sandboxes SET record = '{not json' WHERE id = 'd'", []).unwrap();
    }
    let e = node.list_sandboxes().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inconsistent, "{e}");
    assert!(e.to_string().contains("sandbox d"), "{e}");
    assert!(node.gc(&[]).is_err());
    assert!(a.netns_path.exists(), "the live pod was not torn down");
    // A damaged database: open fails naming the file, which stays as it was.
    drop(node);
    for f in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(w.state_dir("damage").join(f));
    }
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let e = Node::open(cfg(&w, "damage", &ns)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inconsistent, "{e}");
    assert!(e.to_string().contains("state.db"), "{e}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192]);
    assert!(a.netns_path.exists());
    podnet::internals::netns::remove(&a.netns_path).unwrap();
}

#[test]
fn bad_node_and_sandbox_input_is_refused_up_front() {
    let mut w = World::new("badin");
    let ns = w.netns("badin");
    // A failed open leaves no state dir.
    let e = Node::open(cfg(&w, "badin", &ns).underlay("192.0.2.99".parse().unwrap())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!w.state_dir("badin").exists(), "a failed open created the state dir");
    let node = Node::open(cfg(&w, "badin", &ns)).unwrap();
    // The pin name pn-<node>-<id> must fit a file name: refused before any kernel work.
    let long = "x".repeat(128);
    let n2 = "n".repeat(128);
    let e = Node::open(cfg(&w, &n2, &ns)).unwrap().create_sandbox(&SandboxSpec::new(&long)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("pin name"), "{e}");
    // A host IP of a family the pod has no address in could never forward.
    let cfg4 = |cidr: &str| {
        let mut c = w.node_config("badin4", &ns).pod_cidr(cidr.parse().unwrap());
        c.bridge_name = "podnet4".into();
        c
    };
    let v4only = Node::open(cfg4("10.33.0.0/24")).unwrap();
    v4only.create_sandbox(&SandboxSpec::new("p")).unwrap();
    let m = PortMapping {
        protocol: Protocol::Tcp,
        host_ip: Some("fd00::1".parse().unwrap()),
        host_port: 8080,
        container_port: 80,
    };
    assert_eq!(v4only.add_ports("p", &[m]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    // Reopening with a pod CIDR that drops reserved addresses is refused.
    let e = Node::open(cfg4("10.34.0.0/24")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // A peer claiming this node's own underlay IP, and a bridge name another link holds.
    let ul = w.netns("badin-ul");
    link(&ns, "ul0", &["192.0.2.10/24"], &ul, "ul1", &["192.0.2.11/24"]).unwrap();
    let with_ul = Node::open(
        w.node_config("badin6", &ns)
            .pod_cidr("10.35.0.0/24".parse().unwrap())
            .underlay("192.0.2.10".parse().unwrap())
            .mode(PodMode::Routed),
    )
    .unwrap();
    let me = podnet::Peer::new("other", "192.0.2.10".parse().unwrap(), vec!["10.36.0.0/24".parse().unwrap()]);
    assert_eq!(with_ul.add_peer(&me).unwrap_err().kind(), ErrorKind::Conflict);
    let mut taken = w.node_config("badin7", &ns).pod_cidr("10.37.0.0/24".parse().unwrap());
    taken.bridge_name = "ul0".into();
    let e = Node::open(taken).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("not a bridge"), "{e}");
    v4only.gc(&[]).unwrap();
    node.gc(&[]).unwrap();
}
