//! `podnet demo`: a two-node cluster built entirely inside throwaway network namespaces with the
//! library's own calls (no `ip`, no shell), every path proved with real TCP traffic, then torn
//! down and shown gone. Drop guards remove the world when anything fails half-way.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use podnet::blocking::Node;
use podnet::internals::netlink::Netlink;
use podnet::internals::netns;
use podnet::{CrossNodeMode, Error, ErrorKind, NodeConfig, Peer, PodMode, PortMapping, Protocol, Result, Sandbox};
use podnet::{SandboxSpec, VxlanConfig};
use serde_json::{json, Value};

use crate::output::{emit, emit_json, fail, Table, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_OK};

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
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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

const NODES: [NodePlan; 2] = [
    NodePlan {
        name: "demo-node1",
        ns: "podnet-demo-node1",
        underlay: Ipv4Addr::new(192, 168, 77, 1),
        cidrs: ["10.244.1.0/24", "fd00:244:0:1::/64"],
        mode: PodMode::Bridge,
        pods: ["web-1", "web-2"],
    },
    NodePlan {
        name: "demo-node2",
        ns: "podnet-demo-node2",
        underlay: Ipv4Addr::new(192, 168, 77, 2),
        cidrs: ["10.244.2.0/24", "fd00:244:0:2::/64"],
        mode: PodMode::Routed,
        pods: ["web-3", "web-4"],
    },
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
// The machine before and after

/// How `/run/netns` and `/run/podnet` looked before the demo touched them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Before {
    netns_dir_existed: bool,
    netns_dir_was_mount: bool,
    state_root_existed: bool,
}

fn is_mount_point(p: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(p)))
        .unwrap_or(false)
}

fn is_demo_pod_pin(name: &str) -> bool {
    NODES.iter().any(|n| name.starts_with(&format!("pn-{}-", n.name)))
}

/// Everything of a demo still on the machine: pins, their mounts, state dirs, the marker, and
/// (when `before` says it was not there) the `/run/netns` mount, unless others use it now.
fn leftovers(before: Option<Before>) -> Vec<String> {
    let mut out = vec![];
    if let Some(b) = before {
        let empty = std::fs::read_dir(NETNS_DIR).map(|mut rd| rd.next().is_none()).unwrap_or(true);
        if !b.netns_dir_was_mount && empty && is_mount_point(NETNS_DIR) {
            out.push(format!("mount {NETNS_DIR} (made by the demo)"));
        }
    }
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
        names.sort();
        for n in names {
            if n.starts_with(PIN_PREFIX) || is_demo_pod_pin(&n) {
                out.push(format!("netns pin {NETNS_DIR}/{n}"));
            }
        }
    }
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in m.lines() {
            if let Some(mp) = l.split(' ').nth(4) {
                if let Some(n) = mp.strip_prefix(&format!("{NETNS_DIR}/")) {
                    if n.starts_with(PIN_PREFIX) || is_demo_pod_pin(n) {
                        out.push(format!("mount {mp}"));
                    }
                }
            }
        }
    }
    for n in &NODES {
        let d = state_dir(n.name);
        if d.exists() {
            out.push(format!("state dir {}", d.display()));
        }
    }
    if Path::new(MARKER).exists() {
        out.push(format!("marker {MARKER}"));
    }
    out
}

/// Remove whatever a demo left (best effort, keeps going), then put `/run/netns` and
/// `/run/podnet` back as `before` says they were. Returns what it removed and what failed.
fn remove_all(before: Option<Before>) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (vec![], vec![]);
    // Pods first, then the nodes and the client they hang off.
    let mut pins: Vec<PathBuf> = vec![];
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if is_demo_pod_pin(&n) {
                pins.push(e.path());
            }
        }
        pins.sort();
    }
    let mut nodes: Vec<PathBuf> = NODES.iter().map(|n| pin(n.ns)).collect();
    nodes.push(pin(CLIENT_NS));
    for p in pins.into_iter().chain(nodes) {
        let mounted = is_mount_point(&p.display().to_string());
        if !p.exists() && !mounted {
            continue;
        }
        match netns::remove(&p) {
            Ok(()) => removed.push(format!("netns {}", p.display())),
            Err(e) => errors.push(format!("remove netns {}: {e}", p.display())),
        }
    }
    for n in &NODES {
        let d = state_dir(n.name);
        if d.exists() {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => removed.push(format!("state dir {}", d.display())),
                Err(e) => errors.push(format!("remove {}: {e}", d.display())),
            }
        }
    }
    if let Some(b) = before {
        restore_dirs(b, &mut errors);
    }
    match std::fs::remove_file(MARKER) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("remove {MARKER}: {e}")),
    }
    if let Some(b) = before {
        if !b.state_root_existed {
            // Only when empty: a real node's state may have appeared meanwhile.
            let _ = std::fs::remove_dir(STATE_ROOT);
        }
    }
    (removed, errors)
}

/// Undo what `netns::ensure_dir` did to `/run/netns` (a shared self-bind mount, as iproute2
/// makes), but only when it is empty: someone else may have pinned a netns meanwhile.
fn restore_dirs(b: Before, errors: &mut Vec<String>) {
    let empty = std::fs::read_dir(NETNS_DIR).map(|mut rd| rd.next().is_none()).unwrap_or(false);
    if !empty {
        return;
    }
    if !b.netns_dir_was_mount && is_mount_point(NETNS_DIR) {
        if let Err(e) = nix::mount::umount2(NETNS_DIR, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("unmount {NETNS_DIR}: {e}"));
        }
    }
    if !b.netns_dir_existed {
        let _ = std::fs::remove_dir(NETNS_DIR);
    }
}

fn read_marker() -> Option<Before> {
    std::fs::read(MARKER).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The drop guard of the whole demo: unless disarmed (`--keep`), removes everything.
struct World {
    before: Before,
    armed: bool,
}

impl World {
    /// Record the machine's state before touching it. Disarmed until the demo owns something.
    fn new() -> World {
        let before = Before {
            netns_dir_existed: Path::new(NETNS_DIR).exists(),
            netns_dir_was_mount: is_mount_point(NETNS_DIR),
            state_root_existed: Path::new(STATE_ROOT).exists(),
        };
        World { before, armed: false }
    }

    /// Create the pinned namespaces. The first pin is created with O_EXCL, so it doubles as the
    /// lock: a demo racing this one fails there and removes nothing of ours. From then on the
    /// guard is armed, and the marker records `before` for a later `--cleanup`.
    fn create_namespaces(&mut self) -> Result<()> {
        netns::ensure_dir(Path::new(NETNS_DIR)).map_err(|e| e.into_error(format!("prepare {NETNS_DIR}")))?;
        for (i, name) in NODES.iter().map(|n| n.ns).chain([CLIENT_NS]).enumerate() {
            netns::create(&pin(name), || ()).map_err(|e| e.into_error(format!("create netns {name}")))?;
            if i == 0 {
                self.armed = true;
                std::fs::create_dir_all(STATE_ROOT).map_err(io_err(format!("create {STATE_ROOT}")))?;
                let data = serde_json::to_vec(&self.before)
                    .map_err(|e| Error::new(ErrorKind::Internal, "encode marker", e))?;
                std::fs::write(MARKER, data).map_err(io_err(format!("write {MARKER}")))?;
            }
        }
        Ok(())
    }

    /// Remove everything now; returns the errors.
    fn remove(&mut self) -> Vec<String> {
        self.armed = false;
        remove_all(Some(self.before)).1
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.armed {
            let (_, errors) = remove_all(Some(self.before));
            for e in errors {
                eprintln!("error (io): demo cleanup: {e}");
            }
        }
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

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.0} ms")
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
        nl1.create_veth("ul0", Some(mac(1)), "ul0", mac(2), n2.as_raw_fd(), 1500, None)
            .await
            .map_err(k("create underlay veth"))?;
        nl1.create_veth("cl0", Some(mac(3)), "eth0", mac(4), cl.as_raw_fd(), 1500, None)
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
// Traffic

/// A TCP server inside a pod: answers each connection with "<pod id> <peer IP>" and closes.
/// Dropping it shuts the listener down (which wakes the blocked accept), so no socket keeps the
/// pod's netns alive afterwards.
struct Server {
    listener: Arc<TcpListener>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(sb: &Sandbox) -> Result<Server> {
        let f = File::open(&sb.netns_path).map_err(io_err(format!("open netns of {}", sb.id)))?;
        // [::] also accepts IPv4 (bindv6only is 0 in a fresh netns); peers then read as
        // v4-mapped and are shown canonical.
        let l = netns::run_in(&f, || TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, SERVER_PORT)))
            .map_err(|e| e.into_error(format!("enter netns of {}", sb.id)))?
            .map_err(io_err(format!("listen on port {SERVER_PORT} in {}", sb.id)))?;
        let listener = Arc::new(l);
        let (l2, id) = (listener.clone(), sb.id.clone());
        let thread = std::thread::spawn(move || loop {
            match l2.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = writeln!(s, "{id} {}", peer.ip().to_canonical());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        });
        Ok(Server { listener, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from inside `ns` to `to` and read the server's answer; the latency covers connect
/// and the answer, not the thread that enters the netns.
fn ask(ns: &Path, to: SocketAddr) -> std::result::Result<(String, Duration), String> {
    let f = File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
    netns::run_in(&f, move || -> std::io::Result<(String, Duration)> {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
        s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok((buf, t.elapsed()))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// What the server must have seen as the client's address.
#[derive(Clone, Copy)]
enum Seen {
    /// Exactly this address (no NAT on the way).
    Exactly(IpAddr),
    /// Anything (masqueraded on purpose, or the node's own choice of source).
    Any,
}

struct Check {
    path: String,
    from: String,
    from_ns: PathBuf,
    to: String,
    addr: SocketAddr,
    server: String,
    seen: Seen,
}

#[derive(serde::Serialize)]
struct CheckResult {
    path: String,
    from: String,
    to: String,
    ok: bool,
    latency_ms: Option<f64>,
    server_saw: Option<String>,
    note: String,
}

fn run_check(c: &Check) -> CheckResult {
    let mut r = CheckResult {
        path: c.path.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
        ok: false,
        latency_ms: None,
        server_saw: None,
        note: String::new(),
    };
    match ask(&c.from_ns, c.addr) {
        Err(e) => r.note = e,
        Ok((answer, d)) => {
            r.latency_ms = Some((d.as_secs_f64() * 1e6).round() / 1e3);
            let mut parts = answer.split_whitespace();
            let (who, saw) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            r.server_saw = Some(saw.to_string());
            if who != c.server {
                r.note = format!("answered by {who:?}, expected {}", c.server);
            } else {
                match c.seen {
                    Seen::Exactly(ip) if saw != ip.to_string() => {
                        r.note = format!("server saw {saw}, expected {ip} (unwanted NAT)");
                    }
                    Seen::Exactly(_) => {
                        r.ok = true;
                        r.note = format!("source kept ({saw})");
                    }
                    Seen::Any => {
                        r.ok = true;
                        r.note = format!("server saw {saw}");
                    }
                }
                if r.ok && d >= Duration::from_millis(900) {
                    // The kernel's first try was lost and its 1 s retransmission timer fired.
                    r.note.push_str("; a first packet was retransmitted");
                }
            }
        }
    }
    r
}

fn pod<'a>(pods: &'a [Sandbox], id: &str) -> &'a Sandbox {
    pods.iter().find(|p| p.id == id).expect("demo pod exists")
}

fn v4(sb: &Sandbox) -> IpAddr {
    sb.ipv4().expect("demo pods are dual-stack")
}

fn v6(sb: &Sandbox) -> IpAddr {
    sb.ipv6().expect("demo pods are dual-stack")
}

fn checks(pods: &[Sandbox]) -> Vec<Check> {
    let p2p = |path: &str, from: &str, to: &str, v6_: bool| {
        let (f, t) = (pod(pods, from), pod(pods, to));
        let (fip, tip) = if v6_ { (v6(f), v6(t)) } else { (v4(f), v4(t)) };
        Check {
            path: path.to_string(),
            from: format!("{from} {fip}"),
            from_ns: f.netns_path.clone(),
            to: format!("{to} {tip}"),
            addr: SocketAddr::new(tip, SERVER_PORT),
            server: to.to_string(),
            seen: Seen::Exactly(fip),
        }
    };
    let web1 = pod(pods, HOSTPORT_POD);
    let node1 = &NODES[0];
    vec![
        p2p("pod -> pod, same node (bridge)", "web-2", "web-1", false),
        p2p("pod -> pod, same node (bridge), IPv6", "web-2", "web-1", true),
        p2p("pod -> pod, same node (routed)", "web-4", "web-3", false),
        p2p("pod -> pod, same node (routed), IPv6", "web-4", "web-3", true),
        p2p("pod -> pod, node1 -> node2 (VXLAN)", "web-1", "web-3", false),
        p2p("pod -> pod, node2 -> node1 (VXLAN)", "web-4", "web-2", false),
        p2p("pod -> pod, node1 -> node2 (VXLAN), IPv6", "web-2", "web-4", true),
        p2p("pod -> pod, node2 -> node1 (VXLAN), IPv6", "web-3", "web-1", true),
        {
            let t = pod(pods, "web-3");
            Check {
                path: "node -> remote pod (VXLAN)".into(),
                from: node1.name.into(),
                from_ns: pin(node1.ns),
                to: format!("web-3 {}", v4(t)),
                addr: SocketAddr::new(v4(t), SERVER_PORT),
                server: "web-3".into(),
                seen: Seen::Any,
            }
        },
        Check {
            path: "external client -> hostPort".into(),
            from: format!("client {CLIENT_IP}"),
            from_ns: pin(CLIENT_NS),
            to: format!("{} {CLIENT_NODE_IP}:{HOST_PORT}", node1.name),
            addr: SocketAddr::new(IpAddr::V4(CLIENT_NODE_IP), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Exactly(IpAddr::V4(CLIENT_IP)),
        },
        Check {
            path: "node -> localhost hostPort".into(),
            from: node1.name.into(),
            from_ns: pin(node1.ns),
            to: format!("127.0.0.1:{HOST_PORT}"),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Any,
        },
        Check {
            path: "pod -> own hostPort via node IP (hairpin)".into(),
            from: format!("{HOSTPORT_POD} {}", v4(web1)),
            from_ns: web1.netns_path.clone(),
            to: format!("{} {}:{HOST_PORT}", node1.name, node1.underlay),
            addr: SocketAddr::new(IpAddr::V4(node1.underlay), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Any,
        },
    ]
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
        let mode = match p.mode {
            PodMode::Bridge => "bridge (podnet0)",
            PodMode::Routed => "routed",
        };
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
            r.path.clone(),
            r.from.clone(),
            r.to.clone(),
            if r.ok { "ok" } else { "FAIL" }.into(),
            r.latency_ms.map(|l| format!("{l:.2} ms")).unwrap_or_default(),
            r.note.clone(),
        ]);
    }
    t.render()
}

// ---------------------------------------------------------------------------------------------
// The run

/// Run `podnet demo`.
pub fn run(a: &DemoArgs) -> i32 {
    if !nix::unistd::geteuid().is_root() {
        return fail(&Error::new(
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
        return fail(&Error::new(
            ErrorKind::AlreadyExists,
            "podnet demo",
            format!(
                "an earlier demo is still up or left something behind ({}{}); remove it with `podnet demo --cleanup`",
                left[0],
                if left.len() > 1 { format!(" and {} more", left.len() - 1) } else { String::new() }
            ),
        ));
    }
    match demo(a) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
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
                .map(|(c, k)| {
                    (
                        c,
                        match k {
                            podnet::PeerPath::Overlay => "overlay",
                            podnet::PeerPath::Routed => "routed",
                        },
                    )
                })
                .collect(),
        })
        .collect();
    let pic = picture(&shown);
    let table = checks_table(&results);
    if !a.json {
        emit(&format!("{pic}\n{table}"));
    }

    let mut teardown = json!(null);
    if a.keep {
        drop(cl);
        world.armed = false;
        if !a.json {
            emit(&keep_help());
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
                ));
            } else {
                emit(&format!(
                    "\nteardown: LEFT BEHIND: {}\n",
                    left.iter().chain(&errors).cloned().collect::<Vec<_>>().join("; ")
                ));
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
                    "mode": match n.plan.mode { PodMode::Bridge => "bridge", PodMode::Routed => "routed" },
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
        }));
    } else {
        let failed = results.iter().filter(|r| !r.ok).count();
        let summary = if failed == 0 {
            format!("all {} checks ok", results.len())
        } else {
            format!("{failed} of {} checks FAILED", results.len())
        };
        emit(&format!("{summary}; {} total\n", ms(total)));
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
fn cleanup(json_out: bool) -> i32 {
    let before = read_marker();
    let (removed, errors) = remove_all(before);
    let left = leftovers(before);
    let ok = errors.is_empty() && left.is_empty();
    if json_out {
        emit_json(&json!({"removed": removed, "errors": errors, "left": left, "nothing_left": ok}));
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
        emit(&s);
    }
    if ok {
        return EXIT_OK;
    }
    let msg = left.iter().chain(&errors).cloned().collect::<Vec<_>>().join("; ");
    fail(&Error::new(ErrorKind::Io, "podnet demo --cleanup", format!("could not remove everything: {msg}")))
}

#[cfg(test)]
mod tests {
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
