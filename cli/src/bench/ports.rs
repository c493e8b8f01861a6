//! `podnet bench ports`: add N host-port mappings one call at a time, then remove them; with
//! `--vs-cni`, the CNI `portmap` plugin's per-pod cost at 100 and 1,000 existing mappings,
//! measured in the same run in a private network namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podnet::blocking::Node;
use podnet::{PodMode, PortMapping, Protocol, SandboxSpec};
use serde_json::{json, Value};

use super::sandbox::exec_plugin;
use super::{finish, run_worker, timed, us, worker_finish, BenchNode, Stats};
use crate::cmd::impl_run;

/// Arguments of `podnet bench ports`.
#[derive(clap::Args, Debug)]
pub struct BenchPortsArgs {
    /// Number of mappings.
    #[arg(long, default_value_t = 10000)]
    pub count: usize,
    /// Pods the mappings are spread over.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Also measure the CNI portmap plugin (exec'd per pod).
    #[arg(long)]
    pub vs_cni: bool,
    /// CNI plugin directory.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_path: PathBuf,
}

/// Arguments of the hidden `podnet bench portmap-worker`.
#[derive(clap::Args, Debug)]
pub struct PortmapWorkerArgs {
    #[arg(long)]
    pub cni_path: PathBuf,
    /// Existing-mapping levels at which to sample, e.g. 100,1000.
    #[arg(long, value_delimiter = ',')]
    pub levels: Vec<usize>,
    /// Samples per level.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
}

fn mapping(i: usize) -> PortMapping {
    PortMapping { protocol: Protocol::Tcp, host_ip: None, host_port: 10000 + i as u16, container_port: 80 }
}

impl_run!(BenchPortsArgs => finish(bench));

fn bench(a: &BenchPortsArgs) -> Result<Value, String> {
    if a.count == 0 || a.count > 50000 || a.pods == 0 {
        return Err("--count must be 1..=50000 and --pods at least 1".into());
    }
    let w = BenchNode::new("ports")?;
    let node = Node::open(w.config(PodMode::Bridge, "10.99.0.0/16")).map_err(|e| e.to_string())?;
    eprintln!("creating {} pods...", a.pods);
    for p in 0..a.pods {
        node.create_sandbox(&SandboxSpec::new(format!("p{p}"))).map_err(|e| e.to_string())?;
    }
    eprintln!("adding {} host ports one call at a time...", a.count);
    let ids: Vec<String> = (0..a.pods).map(|p| format!("p{p}")).collect();
    let pod = |i: usize| &ids[i % a.pods];
    let add = timed(a.count, |i| node.add_ports(pod(i), &[mapping(i)]).map(drop).map_err(|e| e.to_string()))?;
    let listed = node.list_ports().map_err(|e| e.to_string())?.len();
    eprintln!("removing them...");
    let del = timed(a.count, |i| node.remove_ports(pod(i), &[mapping(i)]).map(drop).map_err(|e| e.to_string()))?;
    for p in 0..a.pods {
        node.delete_sandbox(&format!("p{p}")).map_err(|e| e.to_string())?;
    }
    drop(node);
    drop(w);
    let mut out = json!({
        "count": a.count,
        "listed": listed,
        "add_p50_us": add.p50(), "add_p99_us": add.p99(),
        "add_first100_mean_us": add.first_mean(100), "add_last100_mean_us": add.last_mean(100),
        "last100_over_first100": add.last_mean(100) / add.first_mean(100),
        "remove_p50_us": del.p50(), "remove_p99_us": del.p99(),
    });
    if a.vs_cni {
        eprintln!("CNI portmap plugin at 100 and 1,000 existing mappings (exec'd, private netns)...");
        let v = run_portmap(&a.cni_path, &[100, 1000])?;
        let p100 = v["level_100"].as_f64().unwrap_or(f64::NAN);
        let p1000 = v["level_1000"].as_f64().unwrap_or(f64::NAN);
        out["cni_portmap_add_p50_us_at_100"] = json!(p100);
        out["cni_portmap_add_p50_us_at_1000"] = json!(p1000);
        out["speedup_at_1000"] = json!(p1000 / add.p50());
    }
    eprintln!(
        "add p50 {:.1} us (first100 {:.1}, last100 {:.1}); remove p50 {:.1} us",
        add.p50(),
        add.first_mean(100),
        add.last_mean(100),
        del.p50()
    );
    if listed != a.count {
        // The figures are printed before the verdict, as before.
        let _ = crate::output::emit_json_line(&out);
        return Err(format!("listed {listed} mappings, expected {}", a.count));
    }
    Ok(out)
}

fn run_portmap(cni_path: &Path, levels: &[usize]) -> Result<Value, String> {
    let lv: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
    run_worker("portmap-worker", &["--levels", &lv.join(",")], cni_path, &["portmap"])
}

// Inside `unshare --net --mount`: one netns file for CNI_NETNS, then portmap ADD per "pod" (one mapping each), sampling the cost once `level` mappings exist.
impl_run!(PortmapWorkerArgs => worker_finish(portmap_worker));

fn portmap_worker(a: &PortmapWorkerArgs) -> Result<Value, String> {
    let none: Option<&str> = None;
    std::fs::create_dir_all("/run/netns").map_err(|e| e.to_string())?;
    nix::mount::mount(Some("tmpfs"), "/run/netns", Some("tmpfs"), nix::mount::MsFlags::empty(), none)
        .map_err(|e| format!("mount tmpfs: {e}"))?;
    let st = Command::new("ip").args(["netns", "add", "pm"]).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("ip netns add failed".into());
    }
    let max = levels_max(&a.levels) + a.samples;
    let mut out = serde_json::Map::new();
    let mut cur = Stats::default();
    let mut li = 0;
    for i in 0..max {
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 97, 0, 2)) + i as u32);
        let conf = json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 20000 + i, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": {"cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pm"}],
                "ips": [{"address": format!("{ip}/16"), "interface": 0}]}
        })
        .to_string();
        let t = Instant::now();
        exec_plugin(&a.cni_path, "portmap", "ADD", &format!("{:064x}", i + 1), Path::new("/run/netns/pm"), &conf)?;
        let dt = us(t);
        if li < a.levels.len() && i >= a.levels[li] {
            cur.push(dt);
            if cur.len_samples() == a.samples {
                out.insert(format!("level_{}", a.levels[li]), json!(cur.p50()));
                cur = Stats::default();
                li += 1;
            }
        }
    }
    Ok(Value::Object(out))
}

fn levels_max(l: &[usize]) -> usize {
    l.iter().copied().max().unwrap_or(0)
}
