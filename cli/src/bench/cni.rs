//! `podnet bench cni`: per-pod ADD and DEL through the exec'd `podnet-cni` plugin versus the
//! reference chain (loopback + bridge + host-local + portmap, exec'd the way libcni chains
//! them), one hostPort per pod, measured in the same run inside a private network and mount
//! namespace (re-exec under `unshare`), so nothing on the machine changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podnet::internals::netns;
use serde_json::{json, Value};

use super::{timed_after_warmup, us, Stats};

/// Arguments of `podnet bench cni`.
#[derive(clap::Args, Debug)]
pub struct BenchCniArgs {
    /// Pods per side (plus one warm-up pod that creates the bridge and is not counted).
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Directory of the reference plugins (Debian's containernetworking-plugins).
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_path: PathBuf,
    /// The podnet-cni binary (default: next to this podnet binary).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Internal: already inside the private namespaces.
    #[arg(long, hide = true)]
    pub inside: bool,
}

const WORK: &str = "/run/podnet-bench-cni";

impl crate::cmd::Run for BenchCniArgs {
    fn run(self) -> i32 {
        let r = if self.inside { inside(&self) } else { outside(&self) };
        match r {
            Ok(()) => crate::output::EXIT_OK,
            Err(e) => crate::output::fail_text("bench", &e),
        }
    }
}

/// Check the inputs, then re-exec this command inside `unshare --net --mount`.
fn outside(a: &BenchCniArgs) -> Result<(), String> {
    if a.count == 0 || a.count > 20000 {
        return Err("--count must be 1..=20000".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let plugin = match &a.plugin {
        Some(p) => p.clone(),
        None => exe.with_file_name("podnet-cni"),
    };
    if !plugin.exists() {
        return Err(format!("{} not found: build it (cargo build --release -p podnet-cni)", plugin.display()));
    }
    for p in ["loopback", "bridge", "host-local", "portmap"] {
        if !a.cni_path.join(p).exists() {
            return Err(format!("{} not found: install containernetworking-plugins", a.cni_path.join(p).display()));
        }
    }
    let st = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["bench", "cni", "--inside", "--count", &a.count.to_string(), "--cni-path"])
        .arg(&a.cni_path)
        .arg("--plugin")
        .arg(&plugin)
        .status()
        .map_err(|e| format!("run unshare: {e}"))?;
    // The mount point the private namespace mounted its tmpfs on is an empty dir out here.
    let _ = std::fs::remove_dir(WORK);
    st.success().then_some(()).ok_or_else(|| "the benchmark inside the private namespaces failed".into())
}

/// Exec one plugin as libcni does and return its stdout (the result for ADD).
fn exec(
    bin: &Path,
    cni_path: &Path,
    cmd: &str,
    id: &str,
    ns: &Path,
    ifname: &str,
    conf: &Value,
) -> Result<Value, String> {
    let out = super::exec_cni(bin, cni_path, (cmd, id), ns, ifname, conf.to_string().as_bytes())?;
    if out.trim_ascii().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out).map_err(|e| format!("{} {cmd} output: {e}", bin.display()))
}

fn with(mut conf: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        conf[k] = v;
    }
    conf
}

/// Pod netns pins made the way a runtime makes them, before any timing.
fn pins(dir: &Path, tag: &str, n: usize) -> Result<Vec<PathBuf>, String> {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    (0..n)
        .map(|i| {
            let p = d.join(format!("{tag}-{i}"));
            netns::create(&p, || ()).map_err(|e| format!("create netns {}: {e}", p.display()))?;
            Ok(p)
        })
        .collect()
}

/// DEL every pod (the first is the warm-up), timed, each followed by the removal of its netns
/// (not timed) as a runtime does: the kernel's destruction of that netns (and of what is left
/// in it) runs in the background while the next DEL is timed, for both sides alike.
fn del_each(ns: &[PathBuf], mut del: impl FnMut(usize) -> Result<(), String>) -> Result<Stats, String> {
    let mut stats = Stats::default();
    for (i, p) in ns.iter().enumerate() {
        let t = Instant::now();
        del(i)?;
        if i > 0 {
            stats.push(us(t));
        }
        let _ = netns::remove(p);
    }
    Ok(stats)
}

fn inside(a: &BenchCniArgs) -> Result<(), String> {
    let none: Option<&str> = None;
    std::fs::create_dir_all(WORK).map_err(|e| e.to_string())?;
    nix::mount::mount(Some("tmpfs"), WORK, Some("tmpfs"), nix::mount::MsFlags::empty(), none)
        .map_err(|e| format!("mount tmpfs on {WORK}: {e}"))?;
    let work = Path::new(WORK);
    let lo_up = Command::new("ip").args(["link", "set", "lo", "up"]).status().map_err(|e| e.to_string())?;
    if !lo_up.success() {
        return Err("ip link set lo up failed".into());
    }
    let n = a.count + 1; // pod 0 is the warm-up
    let port = |i: usize, base: usize| json!({"portMappings": [{"hostPort": base + i, "containerPort": 80, "protocol": "tcp"}]});
    let id = |i: usize| format!("{:064x}", i + 1);

    eprintln!("podnet-cni: ADD then DEL {} pods (exec'd, one hostPort each)...", a.count);
    let podnet_conf = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "podnet", "podCIDRs": ["10.98.0.0/16"],
        "stateDir": work.join("podnet"), "netnsDir": work.join("pins"),
        "capabilities": {"portMappings": true},
    });
    let ns = pins(work, "pn", n)?;
    let confs: Vec<Value> =
        (0..n).map(|i| with(podnet_conf.clone(), json!({"runtimeConfig": port(i, 20000)}))).collect();
    let podnet_cni =
        |cmd, i: usize| exec(&a.plugin_path(), &a.cni_path, cmd, &id(i), &ns[i], "eth0", &confs[i]).map(drop);
    let p_add = timed_after_warmup(n, |i| podnet_cni("ADD", i))?;
    // With every pod in place: the exec floor (VERSION answers without opening the node) and
    // exec + Node::open (STATUS opens the node and lists the sandboxes), to split ADD's cost.
    let (mut p_version, mut p_status) = (Stats::default(), Stats::default());
    let status_conf = with(podnet_conf.clone(), json!({"cniVersion": "1.1.0"}));
    for _ in 0..20 {
        let t = Instant::now();
        exec(&a.plugin_path(), &a.cni_path, "VERSION", "", work, "", &json!({"cniVersion": "1.0.0"}))?;
        p_version.push(us(t));
        let t = Instant::now();
        exec(&a.plugin_path(), &a.cni_path, "STATUS", "", work, "", &status_conf)?;
        p_status.push(us(t));
    }
    let p_del = del_each(&ns, |i| podnet_cni("DEL", i))?;

    eprintln!("reference chain: loopback + bridge + host-local + portmap, ADD then DEL {} pods...", a.count);
    let lo = json!({"cniVersion": "1.0.0", "name": "bench", "type": "loopback"});
    let br = json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
        "isGateway": true, "hairpinMode": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.97.0.0/16"}]], "dataDir": work.join("ipam")}});
    let pm = json!({"cniVersion": "1.0.0", "name": "bench", "type": "portmap", "snat": true,
        "capabilities": {"portMappings": true}});
    let bin = |p: &str| a.cni_path.join(p);
    let ns = pins(work, "ch", n)?;
    let mut results = vec![];
    let c_add = timed_after_warmup(n, |i| {
        exec(&bin("loopback"), &a.cni_path, "ADD", &id(i), &ns[i], "lo", &lo)?;
        let r = exec(&bin("bridge"), &a.cni_path, "ADD", &id(i), &ns[i], "eth0", &br)?;
        let pmc = with(pm.clone(), json!({"runtimeConfig": port(i, 40000), "prevResult": r}));
        results.push(exec(&bin("portmap"), &a.cni_path, "ADD", &id(i), &ns[i], "eth0", &pmc)?);
        Ok(())
    })?;
    // libcni deletes in reverse order, each plugin given the cached result.
    let del_confs: Vec<_> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let prev = json!({"prevResult": r});
            let pmc = with(pm.clone(), json!({"runtimeConfig": port(i, 40000), "prevResult": r}));
            (pmc, with(br.clone(), prev.clone()), with(lo.clone(), prev))
        })
        .collect();
    let c_del = del_each(&ns, |i| {
        let (pmc, br, lo) = &del_confs[i];
        exec(&bin("portmap"), &a.cni_path, "DEL", &id(i), &ns[i], "eth0", pmc)?;
        exec(&bin("bridge"), &a.cni_path, "DEL", &id(i), &ns[i], "eth0", br)?;
        exec(&bin("loopback"), &a.cni_path, "DEL", &id(i), &ns[i], "lo", lo).map(drop)
    })?;

    let out = json!({
        "count": a.count,
        "podnet_cni_add_p50_us": p_add.p50(), "podnet_cni_add_p99_us": p_add.p99(),
        "podnet_cni_del_p50_us": p_del.p50(), "podnet_cni_del_p99_us": p_del.p99(),
        "podnet_cni_add_first100_mean_us": p_add.first_mean(100),
        "podnet_cni_add_last100_mean_us": p_add.last_mean(100),
        "podnet_cni_version_p50_us": p_version.p50(),
        "podnet_cni_status_p50_us": p_status.p50(),
        "chain_add_p50_us": c_add.p50(), "chain_add_p99_us": c_add.p99(),
        "chain_del_p50_us": c_del.p50(), "chain_del_p99_us": c_del.p99(),
        "chain_add_first100_mean_us": c_add.first_mean(100),
        "chain_add_last100_mean_us": c_add.last_mean(100),
        "speedup_add_p50": c_add.p50() / p_add.p50(),
        "speedup_del_p50": c_del.p50() / p_del.p50(),
    });
    eprintln!(
        "ADD p50 podnet-cni {:.0} us vs chain {:.0} us ({:.1}x); DEL p50 {:.0} us vs {:.0} us ({:.1}x)",
        p_add.p50(),
        c_add.p50(),
        c_add.p50() / p_add.p50(),
        p_del.p50(),
        c_del.p50(),
        c_del.p50() / p_del.p50()
    );
    println!("{out}");
    Ok(())
}

impl BenchCniArgs {
    fn plugin_path(&self) -> PathBuf {
        self.plugin.clone().unwrap_or_else(|| {
            std::env::current_exe().map(|e| e.with_file_name("podnet-cni")).unwrap_or_else(|_| "podnet-cni".into())
        })
    }
}
