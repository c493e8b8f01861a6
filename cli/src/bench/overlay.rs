//! `podnet bench overlay`: bulk TCP between a pod on each of two nodes over the VXLAN overlay,
//! built as the demo builds it (node1 bridge, node2 routed, one veth as the underlay), IPv4 and
//! IPv6, with podnet's VXLAN device as configured versus the same device with flannel's
//! offload settings (TX checksum offload on), alternated in the same run. The pre-5.7 workaround
//! (offload forced off) is measured too, for the record.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use podnet::blocking::Node;
use podnet::internals::{ethtool, netns};
use podnet::{Peer, PodMode, SandboxSpec};
use podnet_world::World;
use serde_json::{json, Value};

use super::finish;
use super::stats::Stats;
use crate::cmd::impl_run;

/// Arguments of `podnet bench overlay`.
#[derive(clap::Args, Debug)]
pub struct BenchOverlayArgs {
    /// Seconds of bulk TCP per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rounds; each round measures every setting once per family (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

impl_run!(BenchOverlayArgs => finish(bench));

const PORT: u16 = 5201;
/// Bytes per write: large, as iperf3's default for TCP (128 KiB).
const CHUNK: usize = 128 * 1024;

struct Cluster {
    nodes: [Node; 2],
    pods: [podnet::Sandbox; 2],
    _world: World,
}

/// Two nodes and one pod each, the demo's layout.
fn cluster() -> Result<Cluster, String> {
    let mut w = World::try_new("bench-overlay")?;
    let n1 = w.try_netns("node1")?;
    let n2 = w.try_netns("node2")?;
    podnet_world::link(&n1, "ul0", &["192.168.77.1/24"], &n2, "ul0", &["192.168.77.2/24"])?;
    let plan = [
        ("node1", &n1, "192.168.77.1", ["10.244.1.0/24", "fd00:244:0:1::/64"], PodMode::Bridge),
        ("node2", &n2, "192.168.77.2", ["10.244.2.0/24", "fd00:244:0:2::/64"], PodMode::Routed),
    ];
    let mut nodes = vec![];
    for (name, ns, ul, cidrs, mode) in &plan {
        let mut cfg = w
            .node_config(name, ns)
            .mode(*mode)
            .underlay(ul.parse().expect("static"))
            .cluster_cidr("10.244.0.0/16".parse().expect("static"))
            .cluster_cidr("fd00:244::/48".parse().expect("static"));
        for c in cidrs {
            cfg = cfg.pod_cidr(c.parse().expect("static"));
        }
        nodes.push(Node::open(cfg).map_err(|e| format!("open {name}: {e}"))?);
    }
    for (i, node) in nodes.iter().enumerate() {
        let (name, _, ul, cidrs, _) = &plan[1 - i];
        let peer =
            Peer::new(*name, ul.parse().expect("static"), cidrs.iter().map(|c| c.parse().expect("static")).collect());
        node.sync_peers(&[peer]).map_err(|e| format!("sync peers: {e}"))?;
    }
    let mut pods = vec![];
    for (i, node) in nodes.iter().enumerate() {
        pods.push(node.create_sandbox(&SandboxSpec::new(format!("bulk-{i}"))).map_err(|e| e.to_string())?);
    }
    let nodes: [Node; 2] = nodes.try_into().map_err(|_| "two nodes")?;
    let pods: [podnet::Sandbox; 2] = pods.try_into().map_err(|_| "two pods")?;
    Ok(Cluster { nodes, pods, _world: w })
}

/// Set TX checksum offload on both nodes' VXLAN devices.
fn set_offload(c: &Cluster, on: bool) -> Result<(), String> {
    for n in &c.nodes {
        let dev = &n.inner().config().vxlan.device;
        ethtool::set_tx_checksum(n.inner().netns(), dev, on).map_err(|e| format!("set tx checksum on {dev}: {e}"))?;
    }
    Ok(())
}

/// One bulk transfer from the pod in `from` to `to` for `secs`: Gbit/s as the receiver counted.
fn bulk(from: &Path, to_ns: &Path, to: IpAddr, secs: f64) -> Result<f64, String> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (src, dst) = (open(from)?, open(to_ns)?);
    let addr = SocketAddr::new(to, PORT);
    let listener = netns::run_in(&dst, || TcpListener::bind(addr))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("listen on {addr}: {e}"))?;
    let receiver = std::thread::spawn(move || -> std::io::Result<(u64, f64)> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        let t = Instant::now();
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok((total, t.elapsed().as_secs_f64()));
            }
            total += n as u64;
        }
    });
    let mut s = netns::run_in(&src, || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let buf = vec![0x5au8; CHUNK];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        s.write_all(&buf).map_err(|e| format!("send to {addr}: {e}"))?;
    }
    s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
    let (bytes, elapsed) =
        receiver.join().map_err(|_| "receiver panicked".to_string())?.map_err(|e| format!("receive: {e}"))?;
    Ok(bytes as f64 * 8.0 / elapsed / 1e9)
}

fn bench(a: &BenchOverlayArgs) -> Result<Value, String> {
    if !(0.5..=60.0).contains(&a.seconds) || a.rounds == 0 || a.rounds > 20 {
        return Err("--seconds must be 0.5..=60 and --rounds 1..=20".into());
    }
    let c = cluster()?;
    let vx = &c.nodes[0].inner().config().vxlan;
    let podnet_off = vx.effective_disable_tx_checksum_offload();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    // The device exactly as podnet configured it, read back from the kernel.
    let podnet_on = ethtool::tx_checksum(c.nodes[0].inner().netns(), &vx.device).map_err(|e| e.to_string())?;
    if podnet_on == podnet_off {
        return Err(format!("{}: tx checksum {podnet_on} but podnet decided off={podnet_off}", vx.device));
    }
    eprintln!(
        "kernel {kernel}: podnet leaves TX checksum offload {} on {}; {} s per run, {} rounds",
        if podnet_on { "on" } else { "off" },
        vx.device,
        a.seconds,
        a.rounds
    );
    // settings: (label, tx checksum on)
    let settings = [("podnet", podnet_on), ("flannel", true), ("tx_off", false)];
    let (p0, p1) = (&c.pods[0], &c.pods[1]);
    let families: [(&str, IpAddr); 2] = [
        ("v4", p1.ips.iter().find(|n| n.is_ipv4()).ok_or("no v4 pod address")?.ip()),
        ("v6", p1.ips.iter().find(|n| n.is_ipv6()).ok_or("no v6 pod address")?.ip()),
    ];
    // Warm up (ARP/ND, FDB, TCP caches) once per family.
    for (_, to) in &families {
        bulk(&p0.netns_path, &p1.netns_path, *to, 0.3)?;
    }
    let mut runs: Vec<Vec<Vec<f64>>> = vec![vec![vec![]; settings.len()]; families.len()];
    for round in 0..a.rounds {
        for (si, (label, on)) in settings.iter().enumerate() {
            set_offload(&c, *on)?;
            for (fi, (fam, to)) in families.iter().enumerate() {
                let g = bulk(&p0.netns_path, &p1.netns_path, *to, a.seconds)?;
                eprintln!("round {} {label:8} {fam}: {g:.2} Gbit/s", round + 1);
                runs[fi][si].push(g);
            }
        }
    }
    // Leave the device as podnet configured it.
    set_offload(&c, podnet_on)?;
    let mut out = json!({
        "kernel": kernel,
        "podnet_tx_checksum_offload": podnet_on,
        "seconds": a.seconds,
        "rounds": a.rounds,
    });
    let mut all = [vec![], vec![], vec![]];
    for (fi, (fam, _)) in families.iter().enumerate() {
        let [p, f, off] = [0, 1, 2].map(|si| Stats::from_vec(runs[fi][si].clone()).median());
        for si in 0..3 {
            all[si].extend(runs[fi][si].iter().copied());
        }
        out[format!("podnet_gbps_{fam}")] = json!(round2(p));
        out[format!("flannel_gbps_{fam}")] = json!(round2(f));
        out[format!("tx_off_gbps_{fam}")] = json!(round2(off));
        out[format!("ratio_{fam}")] = json!(round2(p / f));
        let r = |si: usize| runs[fi][si].iter().map(|g| round2(*g)).collect::<Vec<_>>();
        out[format!("runs_{fam}")] = json!({"podnet": r(0), "flannel": r(1), "tx_off": r(2)});
    }
    let [p, f, off] = all.map(|v| Stats::from_vec(v).median());
    out["podnet_gbps"] = json!(round2(p));
    out["flannel_gbps"] = json!(round2(f));
    out["tx_off_gbps"] = json!(round2(off));
    out["ratio"] = json!(round2(p / f));
    eprintln!("podnet {p:.2} Gbit/s vs flannel {f:.2} (ratio {:.2}); offload forced off: {off:.2}", p / f);
    Ok(out)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
