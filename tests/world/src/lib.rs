//! Throwaway worlds for podnet's own tests and benchmarks: named network namespaces (nodes, pods,
//! underlay, router, client) pinned on a tmpfs, veth links and addresses between them, and the
//! traffic helpers the tests assert with. Everything is removed on drop, also when a test panics.
//!
//! A world lives in a private mount namespace of the thread that made it (and of the threads and
//! processes that thread starts): its tmpfs and the netns pins on it are invisible to the rest of
//! the machine, and if the process dies before the drop (kill -9) the kernel drops the mounts,
//! and with them the namespaces, together with the mount namespace (an empty dir under /tmp is
//! all that can be left). `/run` is an empty tmpfs in there, so even a node left at the default
//! `/run/netns` and `/run/podnet` stays inside the world. Nothing here touches the machine's own
//! netns, routes, firewall or `/run`. Links and addresses are made with podnet's own netlink;
//! `ip`/`nft` run through [`in_ns`] only as oracles.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use podnet::internals::netlink::{Netlink, NetlinkError};
use podnet::internals::netns;
use podnet::NodeConfig;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One `#[test]` per case, each calling a shared test body:
/// `cases! { bridge_ipv4 => two_pods_talk(PodMode::Bridge, &["10.20.1.0/24"]); }`.
#[macro_export]
macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {$(
        #[test]
        fn $name() {
            $body;
        }
    )*};
}

/// The nodes' underlay addresses in [`World::underlay_net`]: three on the bridge, one behind
/// the router.
pub const UNDERLAY_IPS: [&str; 4] = ["10.200.1.11", "10.200.1.12", "10.200.1.13", "10.200.2.14"];

/// What [`World::underlay_net`] built.
#[derive(Debug)]
pub struct UnderlayNet {
    /// The netns holding the bridge `br0`.
    pub ul: PathBuf,
    /// The router's netns.
    pub router: PathBuf,
    /// Each node's name, netns and underlay address.
    pub nodes: Vec<(String, PathBuf, IpAddr)>,
}

/// A tmpfs dir holding the world's netns pins (`ns/<name>`), pod pins (`netns/`) and node state
/// (`state/<node>`), in a private mount namespace; removed on drop.
#[derive(Debug)]
pub struct World {
    /// The world's root (a tmpfs mount point).
    pub dir: PathBuf,
    pins: Vec<PathBuf>,
    /// False in a child process that only uses its parent's world: it removes nothing.
    owned: bool,
}

impl World {
    /// A new world (panics when it cannot be made: tests run as root).
    pub fn new(tag: &str) -> World {
        World::try_new(tag).unwrap_or_else(|e| panic!("build test world {tag}: {e}"))
    }

    /// A new world; `tag` names its dir (`/tmp/podnet-<tag>-<pid>-<n>`).
    pub fn try_new(tag: &str) -> Result<World, String> {
        private_mounts()?;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/podnet-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // Production state lives on tmpfs (/run); so does the world's, and one lazy unmount then
        // takes everything away.
        let none: Option<&str> = None;
        mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::empty(), none)
            .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        Ok(World { dir, pins: vec![], owned: true })
    }

    /// The world a parent process made, seen from a child it started (which inherits the
    /// parent's mount namespace): for tests that kill children mid-way. Removes nothing on drop.
    pub fn attach(dir: PathBuf) -> World {
        World { dir, pins: vec![], owned: false }
    }

    /// A fresh netns pinned at `<dir>/ns/<name>` (a node, the underlay, a router, a client...).
    pub fn netns(&mut self, name: &str) -> PathBuf {
        self.try_netns(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`World::netns`], returning the error.
    pub fn try_netns(&mut self, name: &str) -> Result<PathBuf, String> {
        let d = self.dir.join("ns");
        std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        let p = d.join(name);
        netns::create(&p, || ()).map_err(|e| format!("create netns {name}: {e}"))?;
        self.pins.push(p.clone());
        Ok(p)
    }

    /// The multi-node underlay: an `underlay` netns whose bridge `br0` is the segment
    /// 10.200.1.0/24, a `router` netns on it (10.200.1.1, forwarding) that also routes
    /// 10.200.2.0/24, and the first `n` of four node netns (`node1`..) with their `ul0`: nodes 1-3
    /// on the bridge, node 4 behind the router, each at its [`UNDERLAY_IPS`] address with its
    /// default route via the router.
    pub fn underlay_net(&mut self, n: usize) -> UnderlayNet {
        let ul = self.netns("underlay");
        let router = self.netns("router");
        in_ns(&ul, &["ip", "link", "add", "br0", "type", "bridge"]);
        in_ns(&ul, &["ip", "link", "set", "br0", "up"]);
        link(&router, "rt-ul", &["10.200.1.1/24"], &ul, "ul-rt", &[]).unwrap();
        in_ns(&ul, &["ip", "link", "set", "ul-rt", "master", "br0"]);
        in_ns(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut nodes = vec![];
        for (i, addr) in UNDERLAY_IPS.iter().copied().enumerate().take(n) {
            let name = format!("node{}", i + 1);
            let ns = self.netns(&name);
            let cidr = format!("{addr}/24");
            let gateway = if i < 3 {
                let port = format!("ul-n{}", i + 1);
                link(&ns, "ul0", &[&cidr], &ul, &port, &[]).unwrap();
                in_ns(&ul, &["ip", "link", "set", &port, "master", "br0"]);
                "10.200.1.1"
            } else {
                link(&ns, "ul0", &[&cidr], &router, "rt-n4", &["10.200.2.1/24"]).unwrap();
                "10.200.2.1"
            };
            in_ns(&ns, &["ip", "route", "add", "default", "via", gateway]);
            nodes.push((name, ns, addr.parse().unwrap()));
        }
        UnderlayNet { ul, router, nodes }
    }

    /// Where nodes of this world pin their pods' namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// The state dir of node `node`.
    pub fn state_dir(&self, node: &str) -> PathBuf {
        self.dir.join("state").join(node)
    }

    /// A node config living in this world: node `name` in the netns pinned at `ns`, with its
    /// state and pod pins under the world's dir.
    pub fn node_config(&self, name: &str, ns: &Path) -> NodeConfig {
        NodeConfig::new(name).netns(ns).state_dir(self.state_dir(name)).netns_dir(self.netns_dir())
    }

    /// Names of the pins under the pod netns dir, sorted.
    pub fn pod_pins(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.netns_dir())
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// What a node's state still holds: sandbox rows, reserved addresses and host ports (the
    /// reservations of deleted sandboxes waiting for their veth to vanish are not counted: the
    /// next gc releases them), and files other than the database, the node config and the live
    /// owners' files.
    pub fn state_files(&self, node: &str) -> Vec<String> {
        let dir = self.state_dir(node);
        let mut out = vec![];
        walk(&dir, &mut out);
        out.retain(|f| {
            let name = f.rsplit('/').next().unwrap_or("");
            !(name.starts_with("state.db") || name == "node.json" || f.contains("/owners/"))
        });
        if dir.join("state.db").exists() {
            match podnet::internals::state_counts(&dir) {
                Ok(c) if c.sandboxes + c.addresses + c.ports > 0 => out.push(format!("{c:?}")),
                Ok(_) => {}
                Err(e) => out.push(format!("read state: {e}")),
            }
        }
        out
    }

    /// Mount points left below the pod netns dir (as this thread's mount namespace sees them).
    pub fn pod_mounts(&self) -> Vec<String> {
        let prefix = format!("{}/", self.netns_dir().display());
        std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|mp| mp.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // Pod pins first, then the netns dir's own shared bind mount, then the world's netns.
        for name in self.pod_pins() {
            let _ = netns::remove(&self.netns_dir().join(name));
        }
        let _ = umount2(&self.netns_dir(), MntFlags::MNT_DETACH);
        for p in self.pins.drain(..).rev() {
            if let Err(e) = netns::remove(&p) {
                eprintln!("cleanup {}: {e}", p.display());
            }
        }
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Move the calling thread into a mount namespace of its own, with nothing propagating back, and
/// shadow `/run` there with an empty tmpfs: a node a test forgets to point at the world's dirs
/// (default `/run/netns`, `/run/podnet`) still leaves nothing on the machine.
fn private_mounts() -> Result<(), String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "a mount namespace for the test thread, not a network namespace switch"
    )]
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount ns: {e}"))?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("make mounts private: {e}"))?;
    mount(Some("tmpfs"), "/run", Some("tmpfs"), MsFlags::empty(), none).map_err(|e| format!("shadow /run: {e}"))
}

fn walk(p: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wiring, with podnet's own netlink

/// Run `f` on a netlink connection inside the netns pinned at `ns`.
fn with_netlink<T, F, Fut>(ns: &Path, what: &str, f: F) -> Result<T, String>
where
    F: FnOnce(Netlink) -> Fut,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let file = File::open(ns).map_err(|e| format!("{what}: open {}: {e}", ns.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{what}: start runtime: {e}"))?;
    rt.block_on(async {
        let sock = netns::netlink_socket_in(&file, 0).map_err(|e| format!("{what}: {e}"))?;
        f(Netlink::from_socket(sock)).await.map_err(|e| format!("{what}: {e}"))
    })
}

/// A locally administered MAC no other world link has.
fn next_mac() -> [u8; 6] {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u32;
    let [_, a, b, c] = (n ^ (std::process::id() << 12)).to_be_bytes();
    [0x02, 0x77, 0x6f, a, b, c]
}

/// A veth pair, `a_if` in `a` and `b_if` in `b` (the same netns is fine), both ends up.
pub fn veth(a: &Path, a_if: &str, b: &Path, b_if: &str) -> Result<(), String> {
    let bf = File::open(b).map_err(|e| format!("open {}: {e}", b.display()))?;
    let mac = next_mac();
    with_netlink(a, &format!("create veth {a_if}/{b_if}"), |nl| async move {
        nl.create_veth_with(a_if, None, b_if, mac, bf.as_raw_fd(), 1500, None, true, 0).await
    })?;
    with_netlink(b, &format!("set {b_if} up"), |nl| async move { nl.set_up_by_name(b_if).await })
}

/// Add addresses (`10.0.0.1/24`, `fd00::1/64`; IPv6 without DAD) to `ifname` inside `ns`.
pub fn addrs(ns: &Path, ifname: &str, cidrs: &[&str]) -> Result<(), String> {
    let nets: Vec<IpNetwork> =
        cidrs.iter().map(|c| c.parse().map_err(|e| format!("address {c}: {e}"))).collect::<Result<_, _>>()?;
    with_netlink(ns, &format!("add addresses to {ifname}"), |nl| async move {
        let l = nl.link_by_name(ifname).await?.ok_or_else(|| NetlinkError::Missing(ifname.to_string()))?;
        for n in nets {
            nl.add_address(l.index, n.ip(), n.prefix()).await?;
        }
        Ok(())
    })
}

/// A veth link between two namespaces with addresses on each end.
pub fn link(a: &Path, a_if: &str, a_addrs: &[&str], b: &Path, b_if: &str, b_addrs: &[&str]) -> Result<(), String> {
    veth(a, a_if, b, b_if)?;
    addrs(a, a_if, a_addrs)?;
    addrs(b, b_if, b_addrs)
}

/// A node's underlay NIC stand-in: a veth pair `ul0`/`ul0p` inside `ns` (this kernel has no dummy
/// links), both up, with `cidr` on `ul0`.
pub fn underlay(ns: &Path, cidr: &str) -> Result<(), String> {
    veth(ns, "ul0", ns, "ul0p")?;
    addrs(ns, "ul0", &[cidr])
}

/// Delete a link inside `ns` (behind podnet's back).
pub fn delete_link(ns: &Path, name: &str) -> Result<(), String> {
    with_netlink(ns, &format!("delete {name}"), |nl| async move { nl.delete_link(name).await })
}

// ---------------------------------------------------------------------------------------------
// Oracles

/// Run a command inside a netns (a test oracle) and return its stdout; panics on failure.
pub fn in_ns(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("--")
        .args(args)
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `ip ARGS` inside a netns (`ip(ns, "link set dev lo up")`); panics on failure.
pub fn ip(ns: &Path, args: &str) -> String {
    let mut cmd = vec!["ip"];
    cmd.extend(args.split_whitespace());
    in_ns(ns, &cmd)
}

/// podnet's nftables table in `ns` as `nft -j` prints it.
pub fn nft_table(ns: &Path) -> serde_json::Value {
    serde_json::from_str(&in_ns(ns, &["nft", "-j", "list", "table", "inet", "podnet"])).unwrap()
}

/// How many elements podnet's host-port maps hold in `ns`, by `nft -j`.
pub fn hostport_elements(ns: &Path) -> usize {
    nft_table(ns)["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("map"))
        .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with("hostports")))
        .map(|m| m["elem"].as_array().map_or(0, |e| e.len()))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// `SocketAddr::new`, shorter.
pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// An echo server inside a netns: answers each TCP connection (or UDP datagram) with the
/// client's address as it saw it (canonical: no v4-mapped form), then closes the connection.
/// It stops after its limit, or when joined or dropped, so no socket keeps the netns alive.
#[derive(Debug)]
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    /// A TCP echo server on `addr` (`[::]:port` takes both families) until dropped.
    pub fn tcp(ns: &Path, addr: SocketAddr) -> Echo {
        Echo::start(ns, addr, false, None)
    }

    /// A UDP echo server on `addr` until dropped.
    pub fn udp(ns: &Path, addr: SocketAddr) -> Echo {
        Echo::start(ns, addr, true, None)
    }

    fn start(ns: &Path, addr: SocketAddr, udp: bool, limit: Option<usize>) -> Echo {
        let f = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        // With a limit the server also gives up after 15 s (a test that failed half-way).
        let deadline = limit.map(|_| Instant::now() + Duration::from_secs(15));
        let more = move |served: usize| {
            !st.load(Ordering::Relaxed)
                && limit.is_none_or(|n| served < n)
                && deadline.is_none_or(|d| Instant::now() < d)
        };
        let thread = if udp {
            let s = netns::run_in(&f, || UdpSocket::bind(addr)).unwrap().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            std::thread::spawn(move || {
                let (mut served, mut buf) = (0, [0u8; 64]);
                while more(served) {
                    if let Ok((_, peer)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(peer.ip().to_canonical().to_string().as_bytes(), peer);
                        served += 1;
                    }
                }
            })
        } else {
            let l = netns::run_in(&f, || TcpListener::bind(addr)).unwrap().unwrap();
            l.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                let mut served = 0;
                while more(served) {
                    match l.accept() {
                        Ok((mut c, peer)) => {
                            let _ = c.set_nonblocking(false);
                            let _ = c.write_all(peer.ip().to_canonical().to_string().as_bytes());
                            served += 1;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Echo { stop, thread: Some(thread) }
    }

    /// Stop the server and wait for its thread.
    pub fn join(mut self) -> std::thread::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(Ok(()), JoinHandle::join)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP echo server that closes after `n` connections (or 15 s).
pub fn echo_peer_server(ns: &Path, addr: SocketAddr, n: usize) -> Echo {
    Echo::start(ns, addr, false, Some(n))
}

/// A UDP echo server that closes after `n` datagrams (or 15 s).
pub fn udp_echo_server(ns: &Path, addr: SocketAddr, n: usize) -> Echo {
    Echo::start(ns, addr, true, Some(n))
}

/// Connect from inside `ns` to `to`, return what the server said (the IP it saw us as).
pub fn tcp_ask(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    tcp_ask_timeout(ns, to, Duration::from_secs(3))
}

/// Like [`tcp_ask`] with a connect timeout.
pub fn tcp_ask_timeout(ns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let f = File::open(ns)?;
    netns::run_in(&f, move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Send a datagram from inside `ns` to `to` (up to four tries) and return the answer.
pub fn udp_ask(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let f = File::open(ns)?;
    netns::run_in(&f, move || -> std::io::Result<String> {
        let bind: SocketAddr = if to.is_ipv4() { sa([0u8; 4].into(), 0) } else { sa([0u16; 8].into(), 0) };
        let s = UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 64];
        for _ in 0..4 {
            s.send_to(b"?", to)?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no UDP answer"))
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// A UDP socket inside a netns, connected to one address: every datagram it sends is one
/// flow (same source port), so a test can watch what the kernel does to that flow.
#[derive(Debug)]
pub struct UdpFlow(UdpSocket);

impl UdpFlow {
    /// Bind `from` inside `ns` and connect to `to`; answers are awaited 500 ms.
    pub fn new(ns: &Path, from: SocketAddr, to: SocketAddr) -> UdpFlow {
        let f = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
        let s = netns::run_in(&f, || -> std::io::Result<UdpSocket> {
            let u = UdpSocket::bind(from)?;
            u.connect(to)?;
            u.set_read_timeout(Some(Duration::from_millis(500)))?;
            Ok(u)
        })
        .unwrap()
        .unwrap();
        UdpFlow(s)
    }

    /// Send one datagram and return the answer; `None` when none came in time.
    pub fn ask(&self) -> Option<String> {
        self.0.send(b"?").ok()?;
        let mut buf = [0u8; 64];
        let n = self.0.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Randomized robustness

/// How many inputs a randomized robustness test tries: `PODNET_FUZZ_ITERS`, default 20,000.
pub fn fuzz_iterations() -> usize {
    std::env::var("PODNET_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000)
}

/// xorshift64: deterministic per seed, so a failing input can be made again.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
