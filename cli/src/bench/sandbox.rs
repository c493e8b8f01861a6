//! `podnet bench sandbox`: create then delete N sandboxes on a throwaway node, against the
//! bare kernel requests (the floor) and, with `--vs-cni`, the exec'd CNI reference chain.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podnet::blocking::Node;
use podnet::internals::netlink::Netlink;
use podnet::internals::netns;
use podnet::{PodMode, SandboxSpec};
use serde_json::{json, Value};

use super::{finish, run_worker, settle, timed, timed_after_warmup, us, worker_finish, BenchNode, Stats};
use crate::cmd::impl_run;
use crate::modes::parser;

/// Arguments of `podnet bench sandbox`.
#[derive(clap::Args, Debug)]
pub struct BenchSandboxArgs {
    /// Number of sandboxes.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Also measure the CNI reference chain (loopback + bridge + host-local), exec'd per pod.
    #[arg(long)]
    pub vs_cni: bool,
    /// Pod attachment mode.
    #[arg(long, default_value = PodMode::default().name(), value_parser = parser::<PodMode>())]
    pub mode: PodMode,
    /// CNI plugin directory.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_path: PathBuf,
    /// Skip the floor measurement (for profiling podnet alone).
    #[arg(long)]
    pub no_floor: bool,
}

/// podnet through its public Rust API.
fn run_podnet(count: usize, mode: PodMode) -> Result<(Stats, Stats), String> {
    let w = BenchNode::new("podnet")?;
    let node = Node::open(w.config(mode, "10.99.0.0/16")).map_err(|e| e.to_string())?;
    let create =
        timed(count, |i| node.create_sandbox(&SandboxSpec::new(format!("p{i}"))).map(drop).map_err(|e| e.to_string()))?;
    let delete = timed(count, |i| node.delete_sandbox(&format!("p{i}")).map_err(|e| e.to_string()))?;
    // Let the kernel finish destroying the pods (asynchronous, batched) before the next phase,
    // so one phase's cleanup does not slow the next one's creates.
    node.block_on(settle(node.inner().netlink(), 0));
    drop(node);
    Ok((create, delete))
}

/// The floor: the same kernel requests as a bridge-mode create, issued bare (no validation,
/// IPAM, records or locks), on the same kind of throwaway node.
fn run_floor(count: usize) -> Result<(Stats, Stats), String> {
    let w = BenchNode::new("floor")?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let (nl, br) = floor_node(&w).await?;
        let mut create = Stats::default();
        let mut pins = vec![];
        for i in 0..count {
            let t = Instant::now();
            pins.push(floor_create(&nl, br, &w, i).await?);
            create.push(us(t));
        }
        let mut delete = Stats::default();
        for p in &pins {
            let t = Instant::now();
            netns::remove(p).map_err(|e| e.to_string())?;
            delete.push(us(t));
        }
        settle(&nl, 0).await;
        Ok::<_, String>((create, delete))
    })
}

/// The floor's node: a netlink handle in the node netns and the bridge (with its gateway).
pub(super) async fn floor_node(w: &BenchNode) -> Result<(Netlink, u32), String> {
    let node_f = File::open(&w.ns).map_err(|e| e.to_string())?;
    let nl = Netlink::from_socket(netns::netlink_socket_in(&node_f, 0).map_err(|e| e.to_string())?);
    let br = nl.ensure_bridge("floor0", 1500).await.map_err(|e| e.to_string())?;
    nl.add_address(br, "10.98.0.1".parse().unwrap(), 16).await.map_err(|e| e.to_string())?;
    netns::ensure_dir(&w.world.netns_dir()).map_err(|e| e.to_string())?;
    Ok((nl, br))
}

/// One pod of the floor: exactly the kernel requests a bridge-mode create sends, in the same
/// order. Returns the pod's pin.
pub(super) async fn floor_create(nl: &Netlink, br: u32, w: &BenchNode, i: usize) -> Result<PathBuf, String> {
    let pin = w.world.netns_dir().join(format!("f{i}"));
    let c = netns::create(&pin, podnet::internals::pod_netns_setup).map_err(|e| e.to_string())?;
    let pod = Netlink::from_socket(c.value.map_err(|e| e.to_string())?);
    let host = format!("fl{i}");
    let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 98, 0, 2)) + i as u32);
    let o = ip.octets();
    nl.create_veth_with(
        &host,
        None,
        "eth0",
        [0x0a, 0x58, o[0], o[1], o[2], o[3]],
        c.file.as_raw_fd(),
        1500,
        Some(br),
        false,
        0x7000_0001, // podnet marks its veths with a device group in the same request
    )
    .await
    .map_err(|e| e.to_string())?;
    // Host and pod side concurrently, requests pipelined, exactly as a create does.
    let host_side = async {
        let (a, b) = futures_util::join!(nl.prepare_bridge_port(&host), nl.set_up_by_name(&host));
        a.and(b).map_err(|e| e.to_string())
    };
    let pod_side = async {
        let (lo, pl) = futures_util::join!(pod.set_up_by_name("lo"), pod.link_by_name("eth0"));
        lo.map_err(|e| e.to_string())?;
        let pl = pl.map_err(|e| e.to_string())?.ok_or("no eth0")?;
        let (a, b) = futures_util::join!(pod.set_no_linklocal(pl.index, None), pod.set_up(pl.index));
        a.and(b).map_err(|e| e.to_string())?;
        let (a, r) = futures_util::join!(
            pod.add_address(pl.index, ip.into(), 16),
            pod.replace_default_route(pl.index, "10.98.0.1".parse().expect("static"))
        );
        a.and(r).map_err(|e| e.to_string())
    };
    let (h, p) = futures_util::join!(host_side, pod_side);
    h?;
    p?;
    Ok(pin)
}

/// The CNI chain, measured by a child `podnet bench cni-worker` (see `run_worker`).
fn run_cni(count: usize, cni_path: &Path) -> Result<(Stats, Stats), String> {
    let v =
        run_worker("cni-worker", &["--count", &count.to_string()], cni_path, &["loopback", "bridge", "host-local"])?;
    let get = |k: &str| -> Stats {
        Stats::from_vec(v[k].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default())
    };
    Ok((get("create"), get("delete")))
}

/// Arguments of the hidden `podnet bench cni-worker`.
#[derive(clap::Args, Debug)]
pub struct CniWorkerArgs {
    #[arg(long)]
    pub count: usize,
    #[arg(long)]
    pub cni_path: PathBuf,
}

// Runs inside `unshare --net --mount`: a private tmpfs on /run/netns and the IPAM dir.
impl_run!(CniWorkerArgs => worker_finish(cni_worker));

/// Run one CNI plugin command (stdin: `conf`) as a runtime would; its output on failure.
pub(super) fn exec_plugin(
    cni_path: &Path,
    plugin: &str,
    cmd: &str,
    id: &str,
    netns: &Path,
    conf: &str,
) -> Result<(), String> {
    let ifname = if plugin == "loopback" { "lo" } else { "eth0" };
    super::exec_cni(&cni_path.join(plugin), cni_path, (cmd, id), netns, ifname, conf.as_bytes()).map(drop)
}

/// The reference chain's configs (loopback; bridge + host-local).
pub(super) const CNI_LO: &str = r#"{"cniVersion":"1.0.0","name":"bench","type":"loopback"}"#;
pub(super) const CNI_BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"bench","type":"bridge","bridge":"cni0","isGateway":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.97.0.0/16"}]],"dataDir":"/run/podnet-cni-bench/ipam"}}"#;

/// Inside a worker's private namespaces: tmpfs on the netns and IPAM dirs, `lo` up.
pub(super) fn cni_worker_setup() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    let none: Option<&str> = None;
    for d in ["/run/netns", "/run/podnet-cni-bench"] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        mount(Some("tmpfs"), d, Some("tmpfs"), MsFlags::empty(), none)
            .map_err(|e| format!("mount tmpfs on {d}: {e}"))?;
    }
    ip(&["link", "set", "lo", "up"])
}

/// `ip ARGS` (the reference runtimes' way of making a netns).
pub(super) fn ip(args: &[&str]) -> Result<(), String> {
    let s = Command::new("ip").args(args).status().map_err(|e| e.to_string())?;
    s.success().then_some(()).ok_or_else(|| format!("ip {args:?} failed"))
}

fn cni_worker(a: &CniWorkerArgs) -> Result<Value, String> {
    cni_worker_setup()?;
    let (lo, br, run) = (CNI_LO, CNI_BRIDGE, ip);
    // Warm-up pod: creates cni0 so the figures exclude the one-time bridge creation.
    let pod = |i: usize| (format!("cni-{i}"), PathBuf::from(format!("/run/netns/cni-{i}")), format!("{:064x}", i + 1));
    let create = timed_after_warmup(a.count + 1, |i| {
        let (name, ns, id) = pod(i);
        run(&["netns", "add", &name])?;
        exec_plugin(&a.cni_path, "loopback", "ADD", &id, &ns, lo)?;
        exec_plugin(&a.cni_path, "bridge", "ADD", &id, &ns, br)
    })?;
    let delete = timed_after_warmup(a.count + 1, |i| {
        let (name, ns, id) = pod(i);
        exec_plugin(&a.cni_path, "bridge", "DEL", &id, &ns, br)?;
        exec_plugin(&a.cni_path, "loopback", "DEL", &id, &ns, lo)?;
        run(&["netns", "del", &name])
    })?;
    Ok(json!({"create": create.samples(), "delete": delete.samples()}))
}

impl_run!(BenchSandboxArgs => finish(bench));

fn bench(a: &BenchSandboxArgs) -> Result<Value, String> {
    let mode = a.mode;
    if a.count < 2 {
        return Err("--count must be at least 2".into());
    }
    eprintln!("podnet: creating and deleting {} sandboxes ({:?} mode)...", a.count, mode);
    let (c, d) = run_podnet(a.count, mode)?;
    let (fc, fd) = if a.no_floor {
        (Stats::from_vec(vec![f64::NAN]), Stats::from_vec(vec![f64::NAN]))
    } else {
        eprintln!("floor: the same kernel requests, bare...");
        run_floor(a.count)?
    };
    let mut out = json!({
        "count": a.count,
        "mode": mode.name(),
        "create_p50_us": c.p50(), "create_p99_us": c.p99(),
        "delete_p50_us": d.p50(), "delete_p99_us": d.p99(),
        "create_first100_mean_us": c.first_mean(100), "create_last100_mean_us": c.last_mean(100),
        "floor_create_p50_us": fc.p50(), "floor_create_p99_us": fc.p99(), "floor_delete_p50_us": fd.p50(),
        "overhead_vs_floor": c.p50() / fc.p50(),
        "last100_over_first100": c.last_mean(100) / c.first_mean(100),
    });
    if a.vs_cni {
        eprintln!("CNI chain (loopback + bridge + host-local, exec'd)...");
        let (cc, cd) = run_cni(a.count, &a.cni_path)?;
        out["cni_create_p50_us"] = json!(cc.p50());
        out["cni_create_p99_us"] = json!(cc.p99());
        out["cni_delete_p50_us"] = json!(cd.p50());
        out["cni_delete_p99_us"] = json!(cd.p99());
        out["cni_create_first100_mean_us"] = json!(cc.first_mean(100));
        out["cni_create_last100_mean_us"] = json!(cc.last_mean(100));
        out["speedup_create_p50"] = json!(cc.p50() / c.p50());
        out["speedup_delete_p50"] = json!(cd.p50() / d.p50());
    }
    eprintln!(
        "create p50 {:.0} us p99 {:.0} us (floor p50 {:.0} us); delete p50 {:.0} us",
        c.p50(),
        c.p99(),
        fc.p50(),
        d.p50()
    );
    Ok(out)
}
