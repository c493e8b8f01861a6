//! `podnet bench ...`: benchmark programs (not tests), one file each. Each prints progress on
//! stderr and its result as one JSON line on stdout; the hidden workers run the CNI reference
//! plugins in a private namespace for the comparisons.

mod burst;
mod cni;
mod ipam;
mod overlay;
mod peers;
mod ports;
mod sandbox;
mod services;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use podnet::PodMode;
use podnet_world::World;
use serde_json::Value;

pub use self::stats::Stats;
use crate::output::{emit_json_line, fail_text, EXIT_OK};

commands! {
    /// Benchmarks.
    enum BenchCmd {
        /// Create then delete N sandboxes; compare with the bare kernel requests and the CNI chain.
        Sandbox(sandbox::BenchSandboxArgs),
        /// Sync N peers from empty, then time one peer change against N and against 10.
        Peers(peers::BenchPeersArgs),
        /// Bulk TCP pod to pod across two nodes over VXLAN, v4 and v6: podnet's device vs flannel's settings.
        Overlay(overlay::BenchOverlayArgs),
        /// Add then remove N host-port mappings; compare with the CNI portmap plugin.
        Ports(ports::BenchPortsArgs),
        /// N agents (own node netns each, in-process) join one etcd; then one more joins and leaves.
        Agent(crate::cmd::agent::BenchAgentArgs),
        /// ADD and DEL through the exec'd podnet-cni plugin vs the CNI reference chain.
        Cni(cni::BenchCniArgs),
        /// Allocate every node CIDR of a /8 and every service IP of a /12.
        Ipam(ipam::BenchIpamArgs),
        /// Program N services from empty, time one change at 100 and at N, and connects; compare
        /// with kube-proxy's nft -f and iptables-restore.
        Services(services::BenchServicesArgs),
        /// N sandboxes created at once (threads, and 4 processes); compare with the CNI chain.
        Burst(burst::BenchBurstArgs),
        #[command(hide = true)]
        BurstWorker(burst::BurstWorkerArgs),
        #[command(hide = true)]
        BurstCniWorker(burst::BurstCniWorkerArgs),
        #[command(hide = true)]
        PortmapWorker(ports::PortmapWorkerArgs),
        #[command(hide = true)]
        CniWorker(sandbox::CniWorkerArgs),
    }
}

/// A benchmark's outcome: its JSON result line, or `error (bench): ...` and exit 1.
fn finish(r: Result<Value, String>) -> i32 {
    match r.and_then(|v| emit_json_line(&v).map_err(|e| e.to_string())) {
        Ok(()) => EXIT_OK,
        Err(e) => fail_text("bench", &e),
    }
}

/// Wait (up to 60 s) until at most `keep` veths are left in a node netns: the kernel destroys
/// deleted pods' netns (and their veths) in the background, holding the rtnl lock for long
/// stretches, so one phase's cleanup must end before the next phase is timed.
async fn settle(nl: &podnet::internals::netlink::Netlink, keep: usize) {
    for _ in 0..6000 {
        match nl.links().await {
            Ok(l) if l.iter().filter(|l| l.kind.as_deref() == Some("veth")).count() > keep => {}
            _ => return,
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The runtime a benchmark drives its own netlink handles on: two workers, as the blocking
/// facade's.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())
}

/// A hidden worker's outcome: its JSON result, or the error text, on stdout for the parent.
fn worker_finish(r: Result<Value, String>) -> i32 {
    match r {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

/// Run `podnet bench <worker> ARGS... --cni-path DIR` in a private net + mount namespace (so
/// `ip netns add` and the plugins' files stay private) and parse the JSON it prints. The
/// plugins named must exist in `cni_path`.
fn run_worker(worker: &str, args: &[&str], cni_path: &Path, plugins: &[&str]) -> Result<Value, String> {
    for p in plugins {
        if !cni_path.join(p).exists() {
            return Err(format!(
                "{} not found: install Debian's containernetworking-plugins",
                cni_path.join(p).display()
            ));
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["bench", worker])
        .args(args)
        .arg("--cni-path")
        .arg(cni_path)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!("{worker} failed: {}", String::from_utf8_lossy(&out.stdout)));
    }
    serde_json::from_slice(out.stdout.trim_ascii()).map_err(|e| format!("{worker} output: {e}"))
}

/// Exec one CNI plugin as a runtime does (`conf` on stdin, the `CNI_*` variables) and return
/// its stdout; when it fails, its stdout and stderr are the error.
fn exec_cni(
    bin: &Path,
    cni_path: &Path,
    (cmd, id): (&str, &str),
    netns: &Path,
    ifname: &str,
    conf: &[u8],
) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", cni_path)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("exec {}: {e}", bin.display()))?;
    child.stdin.take().ok_or("stdin")?.write_all(conf).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} {cmd} {id}: {}{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// Microseconds since `t`.
fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Time `f(i)` for each `i` in `0..count`, in microseconds.
fn timed(count: usize, mut f: impl FnMut(usize) -> Result<(), String>) -> Result<Stats, String> {
    let mut s = Stats::default();
    for i in 0..count {
        let t = Instant::now();
        f(i)?;
        s.push(us(t));
    }
    Ok(s)
}

/// Like [`timed`], without the time of `f(0)`: that warm-up run pays the one-time costs (the
/// bridge, the first node open) the figures leave out.
fn timed_after_warmup(count: usize, mut f: impl FnMut(usize) -> Result<(), String>) -> Result<Stats, String> {
    if count > 0 {
        f(0)?;
    }
    timed(count.saturating_sub(1), |i| f(i + 1))
}

/// A throwaway node for a benchmark: a world (see `podnet-world`) with one netns, `node`.
struct BenchNode {
    world: World,
    ns: PathBuf,
}

impl BenchNode {
    fn new(tag: &str) -> Result<BenchNode, String> {
        let mut world = World::try_new(&format!("bench-{tag}"))?;
        let ns = world.try_netns("node")?;
        Ok(BenchNode { world, ns })
    }

    /// A node config living in the world.
    fn config(&self, mode: PodMode, cidr: &str) -> podnet::NodeConfig {
        self.world.node_config("bench", &self.ns).mode(mode).pod_cidr(cidr.parse().expect("static cidr"))
    }
}
