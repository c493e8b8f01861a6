//! `podnet agent run|status`: the cluster agent as a foreground daemon (logs via tracing, SIGTERM
//! or SIGINT stop it and leave the data plane and the lease up), its status, and
//! `podnet bench agent`: N agents joining one etcd.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use podnet::internals::netlink::{self, Netlink};
use podnet::internals::netns;
use podnet::{Error, NodeConfig, PodMode};
use podnet_cluster::agent::{self, Agent, AgentConfig, EtcdStore, Store};
use serde_json::json;

use crate::bench::Stats;
use crate::output::{emit, emit_json, fail, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_OK};

/// `podnet agent ...`
#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub cmd: AgentCmd,
}

/// Agent commands.
#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Run the agent in the foreground: lease this node's pod CIDR from etcd (flannel's layout),
    /// open the node with it, publish it and keep every other node programmed as a peer.
    Run(Box<RunArgs>),
    /// Show the status a running agent reports (exit 3 when not ready).
    Status(StatusArgs),
}

/// Arguments of `podnet agent run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Node name [default: $PODNET_NODE, else the host name].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// etcd client endpoints (http://IP:PORT; repeat or comma-separate).
    #[arg(long = "etcd-endpoints", value_name = "URL", required = true, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// The store prefix (flannel's).
    #[arg(long, value_name = "PREFIX", default_value = agent::flannel::DEFAULT_PREFIX)]
    pub prefix: String,
    /// The node's underlay IPv4 address: the lease's PublicIP.
    #[arg(long, value_name = "IP")]
    pub underlay: Ipv4Addr,
    /// The interface holding the underlay address [default: found by address].
    #[arg(long = "underlay-interface", value_name = "IFNAME")]
    pub underlay_interface: Option<String>,
    /// How pods attach.
    #[arg(long, value_name = "MODE", default_value = "bridge", value_parser = ["bridge", "routed"])]
    pub mode: String,
    /// The node's network namespace (a pinned netns file) [default: the caller's]; etcd is
    /// reached from it.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// Where pod namespaces are pinned [default: /run/netns].
    #[arg(long = "netns-dir", value_name = "DIR")]
    pub netns_dir: Option<PathBuf>,
    /// The node's state directory [default: /run/podnet/NAME].
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// MTU of the bridge and the veths (lowered to fit the overlay).
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// TTL of the etcd lease the node's key is bound to, in seconds (flannel: 86400).
    #[arg(long = "lease-ttl", value_name = "SECONDS", default_value_t = 86400)]
    pub lease_ttl: u64,
    /// Where the agent remembers its subnet [default: /run/podnet/agent/NAME.json].
    #[arg(long = "state-file", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Where the agent writes its status [default: /run/podnet/agent/NAME.status.json].
    #[arg(long = "status-file", value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

/// Arguments of `podnet agent status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Node name [default: $PODNET_NODE, else the host name].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The status file [default: /run/podnet/agent/NAME.status.json].
    #[arg(long = "status-file", value_name = "FILE")]
    pub status_file: Option<PathBuf>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

fn node_name(n: &Option<String>) -> String {
    n.clone()
        .or_else(|| std::env::var("PODNET_NODE").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "default".into())
}

fn status_path(name: &str, p: &Option<PathBuf>) -> PathBuf {
    p.clone().unwrap_or_else(|| PathBuf::from(format!("/run/podnet/agent/{name}.status.json")))
}

/// Run `podnet agent ...`.
impl super::Run for AgentArgs {
    fn run(self) -> i32 {
        run(self)
    }
}

/// `podnet agent ...`.
pub fn run(a: AgentArgs) -> i32 {
    match a.cmd {
        AgentCmd::Run(r) => run_agent(&r),
        AgentCmd::Status(s) => status(&s),
    }
}

fn run_agent(a: &RunArgs) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    let name = node_name(&a.node);
    let mut node = NodeConfig::new(&name).mode(if a.mode == "routed" { PodMode::Routed } else { PodMode::Bridge });
    node.underlay = Some(podnet::Underlay { address: IpAddr::V4(a.underlay), interface: a.underlay_interface.clone() });
    node.netns = a.netns.clone();
    node.state_dir = a.state_dir.clone();
    if let Some(d) = &a.netns_dir {
        node.netns_dir = d.clone();
    }
    if let Some(m) = a.mtu {
        node.mtu = m;
    }
    let mut cfg = AgentConfig::new(node);
    cfg.prefix = a.prefix.clone();
    cfg.lease_ttl = Duration::from_secs(a.lease_ttl);
    cfg.state_file = a.state_file.clone();
    cfg.status_file = Some(status_path(&name, &a.status_file));
    if let Err(e) = EtcdStore::check_endpoints(&a.etcd_endpoints) {
        return fail(&e);
    }
    let endpoints = a.etcd_endpoints.clone();
    let ns = a.netns.clone();
    let agent = match Agent::start(cfg, move || async move { EtcdStore::connect(&endpoints, ns.as_deref()).await }) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::new(podnet::ErrorKind::Io, "start runtime", e)),
    };
    let sig = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    });
    match sig {
        Ok(s) => tracing::info!(signal = s, "stopping; the data plane and the lease stay"),
        Err(e) => return fail(&Error::new(podnet::ErrorKind::Io, "wait for signals", e)),
    }
    agent.stop();
    EXIT_OK
}

fn status(a: &StatusArgs) -> i32 {
    let name = node_name(&a.node);
    let s = match agent::read_status(&status_path(&name, &a.status_file)) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if a.json {
        if let Err(e) = emit_json(&serde_json::to_value(&s).unwrap_or_default()) {
            return fail(&e);
        }
    } else {
        let cidrs: Vec<String> = s.pod_cidrs.iter().map(|c| c.to_string()).collect();
        let shown = emit(&format!(
            "node:       {}\nready:      {}\nphase:      {:?}\npod CIDRs:  {}\nkey:        {}\nlease:      {:x}\npeers:      {}\nstore:      {}\nrevision:   {}\nlease lost: {}\nlast error: {}\n",
            s.node,
            s.ready,
            s.phase,
            if cidrs.is_empty() { "-".into() } else { cidrs.join(", ") },
            s.key.as_deref().unwrap_or("-"),
            s.lease_id,
            s.peers,
            if s.store_reachable { "reachable" } else { "unreachable" },
            s.revision,
            s.lease_lost,
            s.last_error.as_deref().unwrap_or("-"),
        ));
        if let Err(e) = shown {
            return fail(&e);
        }
    }
    if s.ready {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    }
}

/// Arguments of `podnet bench agent`.
#[derive(Args, Debug)]
pub struct BenchAgentArgs {
    /// Agents that join at once (each with its own node netns, in-process).
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Times one more node joins (and leaves again).
    #[arg(long, default_value_t = 20)]
    pub joins: usize,
}

/// etcd in the bench's underlay netns, killed on drop.
struct EtcdProc(Child);

impl Drop for EtcdProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bench's world: a tmpfs dir with netns pins, removed on drop.
struct World {
    dir: PathBuf,
    pins: Vec<PathBuf>,
}

impl Drop for World {
    fn drop(&mut self) {
        let pods = self.dir.join("netns");
        if let Ok(rd) = std::fs::read_dir(&pods) {
            for e in rd.flatten() {
                let _ = netns::remove(&e.path());
            }
        }
        let _ = nix::mount::umount2(&pods, nix::mount::MntFlags::MNT_DETACH);
        for p in self.pins.drain(..) {
            let _ = netns::remove(&p);
        }
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 1, 0)) + i as u32)
}

const ETCD_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

fn build(n: usize, rt: &tokio::runtime::Runtime) -> Result<(World, PathBuf, Vec<PathBuf>), String> {
    let dir = PathBuf::from(format!("/tmp/podnet-bench-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let none: Option<&str> = None;
    nix::mount::mount(Some("tmpfs"), &dir, Some("tmpfs"), nix::mount::MsFlags::empty(), none)
        .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
    let mut w = World { dir: dir.clone(), pins: vec![] };
    let ul = dir.join("underlay");
    netns::create(&ul, || ()).map_err(|e| format!("create underlay netns: {e}"))?;
    w.pins.push(ul.clone());
    let ulf = std::fs::File::open(&ul).map_err(|e| e.to_string())?;
    let mut nodes = vec![];
    let mut files = vec![];
    for i in 0..n {
        let p = dir.join(format!("n{i}"));
        netns::create(&p, || ()).map_err(|e| format!("create node netns: {e}"))?;
        w.pins.push(p.clone());
        files.push(std::fs::File::open(&p).map_err(|e| e.to_string())?);
        nodes.push(p);
    }
    rt.block_on(async {
        let e = |e: netlink::NetlinkError| e.to_string();
        let nl = Netlink::from_socket(netns::netlink_socket_in(&ulf, 0).map_err(|e| e.to_string())?);
        nl.set_up_by_name("lo").await.map_err(e)?;
        let br = nl.ensure_bridge("br0", 1500).await.map_err(e)?;
        nl.add_address(br, IpAddr::V4(ETCD_IP), 16).await.map_err(e)?;
        for (i, f) in files.iter().enumerate() {
            let mac = [0x02, 0xbe, 0, 0, (i >> 8) as u8, i as u8];
            nl.create_veth_with(&format!("u{i}"), None, "ul0", mac, f.as_raw_fd(), 1500, Some(br), true, 0)
                .await
                .map_err(e)?;
            let n = Netlink::from_socket(netns::netlink_socket_in(f, 0).map_err(|e| e.to_string())?);
            n.set_up_by_name("lo").await.map_err(e)?;
            n.set_up_by_name("ul0").await.map_err(e)?;
            let l = n.link_by_name("ul0").await.map_err(e)?.ok_or("ul0 missing")?;
            n.add_address(l.index, IpAddr::V4(node_ip(i)), 16).await.map_err(e)?;
        }
        Ok::<(), String>(())
    })?;
    Ok((w, ul, nodes))
}

fn start_etcd(ul: &Path, data: &Path) -> Result<EtcdProc, String> {
    let url = |p: u16| format!("http://{ETCD_IP}:{p}");
    Command::new("nsenter")
        .arg(format!("--net={}", ul.display()))
        .arg("etcd")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={}", url(2379)))
        .arg(format!("--advertise-client-urls={}", url(2379)))
        .arg(format!("--listen-peer-urls={}", url(2380)))
        .arg(format!("--initial-advertise-peer-urls={}", url(2380)))
        .arg(format!("--initial-cluster=default={}", url(2380)))
        .arg("--log-level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(EtcdProc)
        .map_err(|e| format!("start etcd (Debian package etcd-server): {e}"))
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Run `podnet bench agent`.
impl super::Run for BenchAgentArgs {
    fn run(self) -> i32 {
        bench(&self)
    }
}

/// `podnet bench agent`.
pub fn bench(a: &BenchAgentArgs) -> i32 {
    match bench_inner(a) {
        Ok(ok) => {
            if ok {
                EXIT_OK
            } else {
                EXIT_CHECK_FAILED
            }
        }
        Err(e) => {
            eprintln!("error (io): bench agent: {e}");
            EXIT_FAILED
        }
    }
}

fn bench_inner(a: &BenchAgentArgs) -> Result<bool, String> {
    let n = a.nodes.max(2);
    let rt = crate::bench::runtime()?;
    let (w, ul, nodes) = build(n + 1, &rt)?;
    let _etcd = start_etcd(&ul, &w.dir.join("etcd"))?;
    let endpoints = vec![format!("http://{ETCD_IP}:2379")];
    let st = rt.block_on(EtcdStore::connect(&endpoints, Some(&ul))).map_err(|e| e.to_string())?;
    wait("etcd", Duration::from_secs(20), || rt.block_on(st.list("/")).is_ok())?;
    rt.block_on(st.put("/coreos.com/network/config", br#"{"Network": "10.0.0.0/8", "Backend": {"Type": "vxlan"}}"#, 0))
        .map_err(|e| e.to_string())?;
    let start = |i: usize| -> Result<Agent, String> {
        let name = format!("n{i}");
        let node = NodeConfig::new(&name)
            .netns(&nodes[i])
            .state_dir(w.dir.join("state").join(&name))
            .netns_dir(w.dir.join("netns"))
            .underlay(IpAddr::V4(node_ip(i)));
        let mut cfg = AgentConfig::new(node);
        cfg.lease_ttl = Duration::from_secs(600);
        cfg.state_file = Some(w.dir.join("agent").join(format!("{name}.json")));
        let (eps, ns) = (endpoints.clone(), nodes[i].clone());
        Agent::start(cfg, move || async move { EtcdStore::connect(&eps, Some(&ns)).await }).map_err(|e| e.to_string())
    };
    eprintln!("bench agent: {n} agents join one etcd");
    let t0 = Instant::now();
    let agents: Vec<Agent> = (0..n).map(start).collect::<Result<_, _>>()?;
    wait("every node to program every other", Duration::from_secs(120), || {
        agents.iter().all(|g| {
            let s = g.status();
            s.ready && s.peers == n - 1
        })
    })?;
    let join_all = t0.elapsed();
    // Kernel entries read back equal what the store says.
    let listing = rt.block_on(st.list("/coreos.com/network/subnets/")).map_err(|e| e.to_string())?;
    let all: std::collections::BTreeSet<String> =
        listing.kvs.iter().filter_map(|kv| agent::SubnetKey::parse(&kv.key)).map(|k| k.v4.to_string()).collect();
    let mut kernel_ok = all.len() == n;
    for g in &agents {
        let node = g.node().ok_or("node not open")?;
        let routes = rt.block_on(node.netlink().routes(false)).map_err(|e| e.to_string())?;
        let have: std::collections::BTreeSet<String> = routes
            .iter()
            .filter(|r| u8::from(r.header.protocol) == podnet::internals::PEER_ROUTE_PROTOCOL)
            .filter_map(netlink::route_destination)
            .map(|(ip, p)| format!("{ip}/{p}"))
            .collect();
        let own = g.status().pod_cidrs[0].to_string();
        let want: std::collections::BTreeSet<String> = all.iter().filter(|c| **c != own).cloned().collect();
        kernel_ok &= have == want;
    }
    // One more node joins, then leaves, repeatedly.
    let mut join = Stats::default();
    let mut leave = Stats::default();
    let mut writes = Stats::default();
    for _ in 0..a.joins {
        let rev0 = rt.block_on(st.list("/coreos.com/network/subnets/")).map_err(|e| e.to_string())?.revision;
        let g = start(n)?;
        wait("the new node's key", Duration::from_secs(30), || g.status().key.is_some())?;
        let t = Instant::now();
        wait("every node to program the new one", Duration::from_secs(30), || {
            agents.iter().all(|x| x.status().peers == n)
        })?;
        join.push(ms(t.elapsed()));
        g.wait_ready(Duration::from_secs(30)).map_err(|e| e.to_string())?;
        let rev1 = rt.block_on(st.list("/coreos.com/network/subnets/")).map_err(|e| e.to_string())?.revision;
        writes.push((rev1 - rev0) as f64);
        let t = Instant::now();
        g.leave().map_err(|e| e.to_string())?;
        wait("every node to remove it", Duration::from_secs(30), || agents.iter().all(|x| x.status().peers == n - 1))?;
        leave.push(ms(t.elapsed()));
        drop(g);
    }
    for g in &agents {
        g.stop();
    }
    drop(agents);
    let out = json!({
        "bench": "agent",
        "nodes": n,
        "joins": a.joins,
        "join_all_ms": ms(join_all),
        "new_node_converge_p50_ms": join.p50(),
        "new_node_converge_p99_ms": join.p99(),
        "node_leave_converge_ms": leave.p50(),
        "node_leave_converge_p99_ms": leave.p99(),
        "etcd_writes_per_join": writes.p50(),
        "kernel_matches_store": kernel_ok,
    });
    println!("{out}");
    Ok(kernel_ok)
}
