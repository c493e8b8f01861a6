//! `podnet bench burst`: N sandboxes created at once, as a node does after a restart or a
//! scale-up: from N threads of one process, from 4 processes sharing the node's state dir, and
//! (with `--vs-cni`) the CNI reference chain exec'd N times in parallel, in the same run. Every
//! address handed out is checked for duplicates.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Instant;

use podnet::blocking::Node;
use podnet::internals::netns;
use podnet::{PodMode, SandboxSpec};
use serde_json::{json, Value};

use super::sandbox::{cni_worker_setup, exec_plugin, floor_create, floor_node, ip, CNI_BRIDGE, CNI_LO};
use super::{finish, run_worker, settle, worker_finish, BenchNode};
use crate::cmd::impl_run;

/// Arguments of `podnet bench burst`.
#[derive(clap::Args, Debug)]
pub struct BenchBurstArgs {
    /// Sandboxes created at once.
    #[arg(long, default_value_t = 110)]
    pub pods: usize,
    /// Also measure the CNI reference chain (loopback + bridge + host-local), N execs at once.
    #[arg(long)]
    pub vs_cni: bool,
    /// CNI plugin directory.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_path: PathBuf,
}

const CIDR: &str = "10.98.0.0/16";
const PROCS: usize = 4;

impl_run!(BenchBurstArgs => finish(bench));

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Create `ids` at once from one thread each; the addresses handed out.
fn create_all(node: &Node, ids: &[String]) -> Result<Vec<String>, String> {
    let start = Barrier::new(ids.len());
    std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    node.create_sandbox(&SandboxSpec::new(id))
                        .map(|sb| sb.ipv4().map(|i| i.to_string()).unwrap_or_default())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| "a creating thread panicked".to_string())?.map_err(|e| e.to_string()))
            .collect()
    })
}

fn duplicates(ips: &[String]) -> usize {
    let distinct: HashSet<&String> = ips.iter().collect();
    ips.len() - distinct.len()
}

/// Podnet's threads phase: `n` sandboxes `<prefix>0..` at once from one thread each; adds the
/// duplicate addresses to `dups`, deletes them, waits for the kernel to destroy their netns, and
/// returns its milliseconds.
fn threads_phase(node: &Node, prefix: &str, n: usize, dups: &mut usize) -> Result<f64, String> {
    eprintln!("podnet: {n} sandboxes at once from {n} threads...");
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let t = Instant::now();
    let ips = create_all(node, &ids)?;
    let took = ms(t);
    *dups += duplicates(&ips);
    for id in &ids {
        node.delete_sandbox(id).map_err(|e| e.to_string())?;
    }
    node.block_on(settle(node.inner().netlink(), 1));
    Ok(took)
}

fn bench(a: &BenchBurstArgs) -> Result<Value, String> {
    if a.pods == 0 || a.pods > 4000 {
        return Err("--pods must be 1..=4000".into());
    }
    let w = BenchNode::new("burst")?;
    let cfg = w.config(PodMode::Bridge, CIDR);
    // One warm-up pod, so the one-time bridge and table set-up is not in the figure.
    let node = Node::open(cfg.clone()).map_err(|e| e.to_string())?;
    node.create_sandbox(&SandboxSpec::new("warm")).map_err(|e| e.to_string())?;

    // Where a phase sits in the run moves its figure by up to a fifth on this kind of VM (the
    // floor measured 113-124 ms third in the run, 127-168 ms first in a fresh process). So one
    // untimed floor burst goes first, then podnet's threads and the floor alternate A B B A,
    // which cancels a linear drift; each figure is the mean of its two runs.
    eprintln!("warm-up: one untimed floor burst...");
    floor_burst(a.pods)?;
    let mut dups = 0;
    let t1 = threads_phase(&node, "a", a.pods, &mut dups)?;
    eprintln!("floor: the same kernel requests as {} bridge-mode creates, bare, at once (twice)...", a.pods);
    let f1 = floor_burst(a.pods)?;
    let f2 = floor_burst(a.pods)?;
    let t2 = threads_phase(&node, "b", a.pods, &mut dups)?;
    let (burst_ms, floor_ms) = ((t1 + t2) / 2.0, (f1 + f2) / 2.0);

    eprintln!("podnet: {} sandboxes at once from {PROCS} processes...", a.pods);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cfg_json = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let n = a.pods / PROCS + usize::from(p < a.pods % PROCS);
            Command::new(&exe)
                .args(["bench", "burst-worker", "--prefix", &format!("p{p}-"), "--count", &n.to_string()])
                .env("PODNET_BURST_NODE", &cfg_json)
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut proc_ips = vec![];
    for c in children {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| format!("burst worker failed: {}", String::from_utf8_lossy(&out.stdout)))?;
        proc_ips.extend(v["ips"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(String::from)));
    }
    let burst_4proc_ms = ms(t);
    if proc_ips.len() != a.pods {
        return Err(format!("the processes created {} of {} sandboxes", proc_ips.len(), a.pods));
    }
    dups += duplicates(&proc_ips);
    node.gc(&[]).map_err(|e| e.to_string())?;
    node.block_on(settle(node.inner().netlink(), 0));

    let cni_ms = if a.vs_cni {
        eprintln!("cni: loopback + bridge + host-local, {} at once...", a.pods);
        let v = run_worker(
            "burst-cni-worker",
            &["--count", &a.pods.to_string()],
            &a.cni_path,
            &["loopback", "bridge", "host-local"],
        )?;
        v["burst_ms"].as_f64()
    } else {
        None
    };
    Ok(json!({
        "pods": a.pods,
        "burst_110_ms": burst_ms,
        "burst_110_runs_ms": [t1, t2],
        "burst_110_4proc_ms": burst_4proc_ms,
        "floor_burst_110_ms": floor_ms,
        "floor_burst_110_runs_ms": [f1, f2],
        "burst_over_floor": burst_ms / floor_ms,
        "cni_burst_110_ms": cni_ms,
        "speedup_vs_cni": cni_ms.map(|c| c / burst_ms),
        "duplicate_ips": dups,
    }))
}

/// The floor of a burst: the kernel requests of `n` bridge-mode creates issued bare (see `bench
/// sandbox`'s floor) from `n` threads at once, on a node of their own, after one warm-up pod as
/// podnet's phase has. Its milliseconds.
fn floor_burst(n: usize) -> Result<f64, String> {
    let w = BenchNode::new("burst-floor")?;
    let rt = super::runtime()?;
    let (nl, br) = rt.block_on(floor_node(&w))?;
    rt.block_on(floor_create(&nl, br, &w, 0))?;
    let start = Barrier::new(n);
    let t = Instant::now();
    let pins = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=n)
            .map(|i| {
                let (start, rt, nl, w) = (&start, &rt, &nl, &w);
                s.spawn(move || {
                    start.wait();
                    rt.block_on(floor_create(nl, br, w, i))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| "a floor thread panicked".to_string())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    let floor_ms = ms(t);
    for p in &pins {
        netns::remove(p).map_err(|e| e.to_string())?;
    }
    netns::remove(&w.world.netns_dir().join("f0")).map_err(|e| e.to_string())?;
    rt.block_on(settle(&nl, 0));
    Ok(floor_ms)
}

/// Arguments of the hidden `podnet bench burst-worker` (one of the processes).
#[derive(clap::Args, Debug)]
pub struct BurstWorkerArgs {
    #[arg(long)]
    pub prefix: String,
    #[arg(long)]
    pub count: usize,
}

impl_run!(BurstWorkerArgs => worker_finish(burst_worker));

fn burst_worker(a: &BurstWorkerArgs) -> Result<Value, String> {
    let cfg = std::env::var("PODNET_BURST_NODE").map_err(|e| e.to_string())?;
    let cfg: podnet::NodeConfig = serde_json::from_str(&cfg).map_err(|e| e.to_string())?;
    let node = Node::open(cfg).map_err(|e| e.to_string())?;
    let ids: Vec<String> = (0..a.count).map(|i| format!("{}{i}", a.prefix)).collect();
    Ok(json!({ "ips": create_all(&node, &ids)? }))
}

/// Arguments of the hidden `podnet bench burst-cni-worker`: those of the sandbox benchmark's
/// CNI worker (how many pods, where the plugins are).
#[derive(clap::Args, Debug)]
pub struct BurstCniWorkerArgs {
    #[command(flatten)]
    pub chain: super::sandbox::CniWorkerArgs,
}

// Runs inside `unshare --net --mount` (see `run_worker`): the chain, N pods at once.
impl_run!(BurstCniWorkerArgs => worker_finish(burst_cni_worker));

fn burst_cni_worker(a: &BurstCniWorkerArgs) -> Result<Value, String> {
    let a = &a.chain;
    cni_worker_setup()?;
    let (lo, br) = (CNI_LO, CNI_BRIDGE);
    let one = |i: usize| -> Result<(), String> {
        let name = format!("cni-{i}");
        let ns = PathBuf::from("/run/netns").join(&name);
        let id = format!("{:064x}", i + 1);
        ip(&["netns", "add", &name])?;
        exec_plugin(&a.cni_path, "loopback", "ADD", &id, &ns, lo)?;
        exec_plugin(&a.cni_path, "bridge", "ADD", &id, &ns, br)
    };
    // Warm-up pod: creates cni0 so the figure excludes the one-time bridge creation.
    one(0)?;
    let start = Barrier::new(a.count);
    let t = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (1..=a.count)
            .map(|i| {
                let (start, one) = (&start, &one);
                s.spawn(move || {
                    start.wait();
                    one(i)
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().map_err(|_| "a CNI thread panicked".to_string())?)
    })?;
    Ok(json!({ "burst_ms": ms(t) }))
}
