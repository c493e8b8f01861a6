//! `podnet demo`: a two-node cluster built entirely inside throwaway network namespaces with the
//! library's own calls (no `ip`, no shell), every path proved with real TCP traffic, then torn
//! down and shown gone. Drop guards remove the world when anything fails half-way.

mod machine;
mod traffic;

use std::fs::File;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ipnetwork::IpNetwork;
use podnet::blocking::Node;
use podnet::internals::netlink::Netlink;
use podnet::internals::netns;
use podnet::{CrossNodeMode, Error, ErrorKind, NodeConfig, Peer, PodMode, PortMapping, Protocol, Result, Sandbox};
use podnet::{SandboxSpec, VxlanConfig};
use serde_json::{json, Value};

use self::machine::{leftovers, read_marker, remove_all, World};
use self::traffic::{checks, run_check, CheckResult, Server};
use crate::cmd::impl_run;
use crate::modes::{pod_mode_label, Named as _};
use crate::output::{emit, emit_json, finish, ms, Table, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_OK};

/// Arguments of `podnet demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Leave the cluster up to poke at with `ip netns`; remove it later with --cleanup.
    #[arg(long, conflicts_with = "cleanup")]
    pub keep: bool,
    /// Print the topology, the checks and the teardown as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Remove everything a kept (or interrupted) demo left, then show that nothing is left.
    #[arg(long)]
    pub cleanup: bool,
    /// Fail on purpose after step N (tests that a failed run leaves nothing).
    #[arg(long, hide = true, value_name = "N")]
    pub fail_after: Option<usize>,
}

const NETNS_DIR: &str = "/run/netns";
const STATE_ROOT: &str = "/run/podnet";
/// Pins of the demo's own namespaces (nodes, client): `ip netns` lists them.
const PIN_PREFIX: &str = "podnet-demo-";
/// What the demo records about the machine before touching it, so that teardown (or
/// `--cleanup` in a later process) can put `/run/netns` and `/run/podnet` back as they were.
const MARKER: &str = "/run/podnet/demo-cleanup.json";
const SERVER_PORT: u16 = 80;
const HOST_PORT: u16 = 8080;

const CLIENT_NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const CLUSTER_V4: &str = "10.244.0.0/16";
const CLUSTER_V6: &str = "fd00:244::/48";

/// One node of the demo cluster.
struct NodePlan {
    name: &'static str,
    ns: &'static str,
    underlay: Ipv4Addr,
    cidrs: [&'static str; 2],
    mode: PodMode,
    pods: [&'static str; 2],
}

const fn node(
    n: u8,
    name: &'static str,
    ns: &'static str,
    cidrs: [&'static str; 2],
    mode: PodMode,
    pods: [&'static str; 2],
) -> NodePlan {
    NodePlan { name, ns, underlay: Ipv4Addr::new(192, 168, 77, n), cidrs, mode, pods }
}

const NODES: [NodePlan; 2] = [
    node(
        1,
        "demo-node1",
        "podnet-demo-node1",
        ["10.244.1.0/24", "fd00:244:0:1::/64"],
        PodMode::Bridge,
        ["web-1", "web-2"],
    ),
    node(
        2,
        "demo-node2",
        "podnet-demo-node2",
        ["10.244.2.0/24", "fd00:244:0:2::/64"],
        PodMode::Routed,
        ["web-3", "web-4"],
    ),
];
const CLIENT_NS: &str = "podnet-demo-client";
/// The pod that gets the hostPort.
const HOSTPORT_POD: &str = "web-1";

fn pin(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn state_dir(node: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(node)
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("demo constants parse")
}

fn io_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |e| match e.raw_os_error() {
        Some(n) => Error::with_errno(ErrorKind::from_errno(n), op, n, e),
        None => Error::new(ErrorKind::Io, op, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Progress (stderr) and the world

struct Progress {
    n: usize,
    total: usize,
    fail_after: Option<usize>,
}

impl Progress {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.n += 1;
        eprint!("[{}/{}] {what} ... ", self.n, self.total);
        let _ = std::io::stderr().flush();
        let t = Instant::now();
        let mut r = f();
        if r.is_ok() && self.fail_after == Some(self.n) {
            r = Err(Error::new(ErrorKind::Internal, "podnet demo", format!("injected failure after step {}", self.n)));
        }
        match &r {
            Ok(_) => eprintln!("ok ({})", ms(t.elapsed())),
            Err(_) => eprintln!("failed"),
        }
        r
    }
}

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0x70, 0x6e, 0x64, 0x00, last]
}

/// Wire the underlay (one veth pair node1 <-> node2) and the client (a veth off node1), with the
/// library's own netlink: the peer end of each veth is born inside the other namespace.
fn wire() -> Result<()> {
    let f = |name: &str| File::open(pin(name)).map_err(io_err(format!("open netns {name}")));
    let (n1, n2, cl) = (f(NODES[0].ns)?, f(NODES[1].ns)?, f(CLIENT_NS)?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io_err("start runtime"))?;
    rt.block_on(async {
        let nl = |f: &File, what: &str| -> Result<Netlink> {
            Ok(Netlink::from_socket(
                netns::netlink_socket_in(f, 0).map_err(|e| e.into_error(format!("netlink in {what}")))?,
            ))
        };
        let (nl1, nl2, nlc) = (nl(&n1, NODES[0].ns)?, nl(&n2, NODES[1].ns)?, nl(&cl, CLIENT_NS)?);
        let k = |op: &'static str| move |e: podnet::internals::netlink::NetlinkError| e.into_error(op);
        nl1.create_veth_with("ul0", Some(mac(1)), "ul0", mac(2), n2.as_raw_fd(), 1500, None, true, 0)
            .await
            .map_err(k("create underlay veth"))?;
        nl1.create_veth_with("cl0", Some(mac(3)), "eth0", mac(4), cl.as_raw_fd(), 1500, None, true, 0)
            .await
            .map_err(k("create client veth"))?;
        for (nl, ifname, ip, plen) in [
            (&nl1, "ul0", IpAddr::V4(NODES[0].underlay), 24),
            (&nl2, "ul0", IpAddr::V4(NODES[1].underlay), 24),
            (&nl1, "cl0", IpAddr::V4(CLIENT_NODE_IP), 24),
            (&nlc, "eth0", IpAddr::V4(CLIENT_IP), 24),
        ] {
            let l = nl.link_by_name(ifname).await.map_err(k("read link"))?.ok_or_else(|| {
                Error::new(ErrorKind::Internal, format!("wire {ifname}"), "link missing right after creation")
            })?;
            nl.set_up(l.index).await.map_err(k("set link up"))?;
            nl.add_address(l.index, ip, plen).await.map_err(k("add address"))?;
        }
        nlc.set_up_by_name("lo").await.map_err(k("set lo up in client"))?;
        Ok::<(), Error>(())
    })
}

fn node_config(p: &NodePlan) -> NodeConfig {
    let mut cfg = NodeConfig::new(p.name)
        .netns(pin(p.ns))
        .mode(p.mode)
        .underlay(IpAddr::V4(p.underlay))
        .cross_node(CrossNodeMode::Overlay)
        .cluster_cidr(parse(CLUSTER_V4))
        .cluster_cidr(parse(CLUSTER_V6));
    for c in p.cidrs {
        cfg = cfg.pod_cidr(parse(c));
    }
    cfg
}

fn peer_of(p: &NodePlan) -> Peer {
    Peer::new(p.name, IpAddr::V4(p.underlay), p.cidrs.iter().map(|c| parse(c)).collect())
}

fn hostport() -> PortMapping {
    PortMapping { protocol: Protocol::Tcp, host_ip: None, host_port: HOST_PORT, container_port: SERVER_PORT }
}

// ---------------------------------------------------------------------------------------------
// The picture

struct Shown {
    plan: &'static NodePlan,
    mtu: u32,
    pods: Vec<Sandbox>,
    paths: Vec<(IpNetwork, &'static str)>,
}

fn ips(sb: &Sandbox) -> String {
    sb.ips.iter().map(|n| n.ip().to_string()).collect::<Vec<_>>().join(" ")
}

fn picture(shown: &[Shown]) -> String {
    let mut s = String::new();
    let ipw = shown.iter().flat_map(|n| n.pods.iter().map(|p| ips(p).len())).max().unwrap_or(0);
    for n in shown {
        let p = n.plan;
        let mode = pod_mode_label(p.mode, &node_config(p).bridge_name);
        s.push_str(&format!(
            "{}  (netns {})  underlay {}  pods {}  mode {mode}  MTU {}\n",
            p.name,
            p.ns,
            p.underlay,
            p.cidrs.join(" "),
            n.mtu
        ));
        for (i, sb) in n.pods.iter().enumerate() {
            let branch = if i + 1 == n.pods.len() { "└─" } else { "├─" };
            let ports: Vec<String> = sb
                .ports
                .iter()
                .map(|m| format!("hostPort {} {} -> {}", m.protocol, m.host_port, m.container_port))
                .collect();
            let line = format!(
                "  {branch} {:<6} {:<ipw$}  netns pn-{}-{}  {}",
                sb.id,
                ips(sb),
                p.name,
                sb.id,
                ports.join(" ")
            );
            s.push_str(line.trim_end());
            s.push('\n');
        }
    }
    s.push_str(&format!("client  (netns {CLIENT_NS})  {CLIENT_IP} -- {CLIENT_NODE_IP} {}\n", NODES[0].name));
    let vx = VxlanConfig::default();
    let kinds = |n: &Shown| -> String {
        let mut k: Vec<&str> = n.paths.iter().map(|(_, k)| *k).collect();
        k.dedup();
        k.join("+")
    };
    let (a, b) = (&shown[0], &shown[1]);
    let how = if kinds(a) == kinds(b) { kinds(a) } else { format!("{} / {}", kinds(a), kinds(b)) };
    s.push_str(&format!(
        "paths: {} <-> {}  {how} (VXLAN {}, VNI {}, UDP {}) over {}/24; IPv4 and IPv6 pod traffic\n",
        a.plan.name,
        b.plan.name,
        vx.device,
        vx.vni,
        vx.port,
        Ipv4Addr::from(u32::from(a.plan.underlay) & !0xff)
    ));
    s
}

fn checks_table(results: &[CheckResult]) -> String {
    let mut t = Table::new(&["PATH", "FROM", "TO", "RESULT", "LATENCY", "NOTE"]);
    for r in results {
        t.row(vec![
            r.route.path.clone(),
            r.route.from.clone(),
            r.route.to.clone(),
            if r.ok { "ok" } else { "FAIL" }.into(),
            r.latency_ms.map(|l| format!("{l:.2} ms")).unwrap_or_default(),
            r.note.clone(),
        ]);
    }
    t.render()
}

// ---------------------------------------------------------------------------------------------
// The run

impl_run!(DemoArgs => finish(run));

fn run(a: &DemoArgs) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::new(
            ErrorKind::Permission,
            "podnet demo",
            "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN: it creates network namespaces)",
        ));
    }
    if a.cleanup {
        return cleanup(a.json);
    }
    let left = leftovers(None);
    if !left.is_empty() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            "podnet demo",
            format!(
                "an earlier demo is still up or left something behind ({}{}); remove it with `podnet demo --cleanup`",
                left[0],
                if left.len() > 1 { format!(" and {} more", left.len() - 1) } else { String::new() }
            ),
        ));
    }
    demo(a)
}

/// The live cluster: dropped (servers first, then nodes) before the world's pins go.
struct Cluster {
    servers: Vec<Server>,
    nodes: Vec<Node>,
    pods: Vec<Sandbox>,
}

fn demo(a: &DemoArgs) -> Result<i32> {
    let t0 = Instant::now();
    let mut world = World::new();
    let mut pr = Progress { n: 0, total: if a.keep { 7 } else { 8 }, fail_after: a.fail_after };
    pr.step(&format!("namespaces {}, {}, {CLIENT_NS}", NODES[0].ns, NODES[1].ns), || world.create_namespaces())?;
    pr.step("underlay veth node1 <-> node2 (192.168.77.0/24), client veth", wire)?;
    let nodes: Vec<Node> = pr.step("nodes: bridge node1, routed node2, VXLAN devices, nftables", || {
        std::thread::scope(|s| {
            let hs: Vec<_> = NODES.iter().map(|p| s.spawn(move || Node::open(node_config(p)))).collect();
            hs.into_iter()
                .map(|h| h.join().map_err(|_| Error::new(ErrorKind::Internal, "open node", "thread panicked"))?)
                .collect()
        })
    })?;
    let mut cl = Cluster { servers: vec![], nodes, pods: vec![] };
    pr.step("peers: each node syncs the other", || {
        for (i, n) in cl.nodes.iter().enumerate() {
            n.sync_peers(&[peer_of(&NODES[1 - i])])?;
        }
        Ok(())
    })?;
    let pods: Vec<Sandbox> = pr.step("pods: 2 per node, hostPort tcp 8080 -> web-1:80", || {
        std::thread::scope(|s| {
            // In order within a node (web-1 gets the first address), nodes in parallel.
            let hs: Vec<_> = NODES
                .iter()
                .zip(&cl.nodes)
                .map(|(p, n)| {
                    s.spawn(move || -> Result<Vec<Sandbox>> {
                        p.pods
                            .iter()
                            .map(|id| {
                                let mut spec = SandboxSpec::new(*id);
                                if *id == HOSTPORT_POD {
                                    spec.ports = vec![hostport()];
                                }
                                n.create_sandbox(&spec)
                            })
                            .collect()
                    })
                })
                .collect();
            let mut all = vec![];
            for h in hs {
                all.extend(
                    h.join().map_err(|_| Error::new(ErrorKind::Internal, "create sandbox", "thread panicked"))??,
                );
            }
            Ok(all)
        })
    })?;
    cl.pods = pods;
    let servers: Vec<Server> =
        pr.step("servers: a TCP listener in every pod", || cl.pods.iter().map(Server::start).collect())?;
    cl.servers = servers;
    let list = checks(&cl.pods);
    let results: Vec<CheckResult> = pr.step(&format!("checks: {} paths with real traffic", list.len()), || {
        Ok(list.iter().map(run_check).collect())
    })?;
    let all_ok = results.iter().all(|r| r.ok);
    let setup_and_checks = t0.elapsed();

    let shown: Vec<Shown> = NODES
        .iter()
        .zip(&cl.nodes)
        .enumerate()
        .map(|(i, (p, n))| Shown {
            plan: p,
            mtu: n.inner().pod_mtu(),
            pods: cl.pods.iter().filter(|sb| p.pods.contains(&sb.id.as_str())).cloned().collect(),
            paths: n
                .inner()
                .peer_paths(&peer_of(&NODES[1 - i]))
                .unwrap_or_default()
                .into_iter()
                .map(|(c, k)| (c, k.name()))
                .collect(),
        })
        .collect();
    let pic = picture(&shown);
    let table = checks_table(&results);
    if !a.json {
        emit(&format!("{pic}\n{table}"))?;
    }

    let mut teardown = json!(null);
    if a.keep {
        drop(cl);
        world.armed = false;
        if !a.json {
            emit(&keep_help())?;
        }
    } else {
        let t = Instant::now();
        let errors =
            pr.step("teardown: delete pods, sync empty peers, remove nodes", || Ok(tear_down(cl, &mut world)))?;
        let left = leftovers(Some(world.before));
        let took = t.elapsed();
        if !a.json {
            if left.is_empty() && errors.is_empty() {
                emit(&format!(
                    "\nteardown: nothing left (no {PIN_PREFIX}* or pn-demo-* pins or mounts in {NETNS_DIR}, no {STATE_ROOT}/demo-* state) in {}\n",
                    ms(took)
                ))?;
            } else {
                emit(&format!(
                    "\nteardown: LEFT BEHIND: {}\n",
                    left.iter().chain(&errors).cloned().collect::<Vec<_>>().join("; ")
                ))?;
            }
        }
        teardown = json!({"nothing_left": left.is_empty() && errors.is_empty(), "left": left, "errors": errors, "ms": took.as_secs_f64() * 1e3});
    }
    let total = t0.elapsed();
    if a.json {
        let nodes: Vec<Value> = shown
            .iter()
            .map(|n| {
                json!({
                    "name": n.plan.name,
                    "netns": n.plan.ns,
                    "underlay": n.plan.underlay,
                    "pod_cidrs": n.plan.cidrs,
                    "mode": n.plan.mode.name(),
                    "pod_mtu": n.mtu,
                    "pods": n.pods.iter().map(|sb| json!({
                        "id": sb.id,
                        "ips": sb.ips.iter().map(|i| i.ip()).collect::<Vec<_>>(),
                        "netns": sb.netns_path,
                        "host_ifname": sb.host_ifname,
                        "ports": sb.ports,
                    })).collect::<Vec<_>>(),
                    "paths": n.paths.iter().map(|(c, k)| json!({"cidr": c, "path": k})).collect::<Vec<_>>(),
                })
            })
            .collect();
        emit_json(&json!({
            "ok": all_ok && teardown.get("nothing_left").and_then(Value::as_bool).unwrap_or(true),
            "nodes": nodes,
            "client": {"netns": CLIENT_NS, "ip": CLIENT_IP, "node_ip": CLIENT_NODE_IP},
            "checks": results,
            "kept": a.keep,
            "teardown": teardown,
            "setup_and_checks_ms": setup_and_checks.as_secs_f64() * 1e3,
            "total_ms": total.as_secs_f64() * 1e3,
        }))?;
    } else {
        let failed = results.iter().filter(|r| !r.ok).count();
        let summary = if failed == 0 {
            format!("all {} checks ok", results.len())
        } else {
            format!("{failed} of {} checks FAILED", results.len())
        };
        emit(&format!("{summary}; {} total\n", ms(total)))?;
    }
    if teardown.get("nothing_left").and_then(Value::as_bool) == Some(false) {
        return Ok(EXIT_FAILED);
    }
    Ok(if all_ok { EXIT_OK } else { EXIT_CHECK_FAILED })
}

/// Tear down through the library (as a runtime would), then remove the namespaces and state.
fn tear_down(cl: Cluster, world: &mut World) -> Vec<String> {
    let Cluster { servers, nodes, pods } = cl;
    drop(servers);
    let mut errors = vec![];
    for (p, n) in NODES.iter().zip(&nodes) {
        for id in p.pods {
            if let Err(e) = n.delete_sandbox(id) {
                errors.push(e.to_string());
            }
        }
        if let Err(e) = n.sync_peers(&[]) {
            errors.push(e.to_string());
        }
    }
    drop(pods);
    drop(nodes);
    errors.extend(world.remove());
    errors
}

fn keep_help() -> String {
    let n1 = NODES[0].ns;
    format!(
        "\nkept: the cluster stays up. Poke at it:\n  ip netns\n  ip netns exec {n1} ip route\n  ip netns exec {n1} ip -d link show podnet.1\n  ip netns exec {n1} bridge fdb show dev podnet.1\n  ip netns exec {n1} nft list table inet podnet\n  ip netns exec pn-{}-web-1 ip addr\nremove it: podnet demo --cleanup\n",
        NODES[0].name
    )
}

/// `podnet demo --cleanup`: remove what a kept or interrupted demo left.
fn cleanup(json_out: bool) -> Result<i32> {
    let before = read_marker();
    let (removed, errors) = remove_all(before);
    let left = leftovers(before);
    let ok = errors.is_empty() && left.is_empty();
    if json_out {
        emit_json(&json!({"removed": removed, "errors": errors, "left": left, "nothing_left": ok}))?;
    } else {
        let mut s = String::new();
        for r in &removed {
            s.push_str(&format!("removed {r}\n"));
        }
        if ok {
            s.push_str(&format!(
                "nothing left (no {PIN_PREFIX}* or pn-demo-* pins or mounts in {NETNS_DIR}, no {STATE_ROOT}/demo-* state)\n"
            ));
        }
        emit(&s)?;
    }
    if ok {
        return Ok(EXIT_OK);
    }
    let msg = left.iter().chain(&errors).cloned().collect::<Vec<_>>().join("; ");
    Err(Error::new(ErrorKind::Io, "podnet demo --cleanup", format!("could not remove everything: {msg}")))
}

#[cfg(test)]
mod tests {
    use super::machine::is_demo_pod_pin;
    use super::*;

    #[test]
    fn pod_pins_are_recognized_by_node() {
        assert!(is_demo_pod_pin("pn-demo-node1-web-1"));
        assert!(is_demo_pod_pin("pn-demo-node2-x"));
        assert!(!is_demo_pod_pin("pn-node1-web-1"));
        assert!(!is_demo_pod_pin("pn-demo-node3-web-1"));
    }

    #[test]
    fn constants_are_a_valid_cluster() {
        for p in &NODES {
            node_config(p).validate().unwrap();
        }
    }
}
