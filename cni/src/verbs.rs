//! The CNI verbs over podnet's node API: each call opens the node named by the config, makes one
//! library call and returns. Calls from any number of processes (and other clients of the node)
//! are made safe by the node's store: its transactions and per-sandbox intents.

use podnet::{ErrorKind, Node, NodeConfig};
use serde_json::Value;

use crate::conf::{label, pool_capacity, sandbox_id, Env, NetConf, Version};
use crate::error::{code, CniError};
use crate::result::{add_result, compare_prev};

/// The node of this one call, on a current-thread runtime: every netlink answer is handled on
/// the calling thread, no runtime worker threads are started, and no answer waits for one to be
/// scheduled (the blocking facade's runtime has two). The runtime is leaked on purpose (the
/// process exits right after the call; shutting it down would wait for its tasks). The node is
/// dropped at the end of the call: that closes the state database (the last connection folds
/// the write-ahead log into it, so the next process does not replay it) and removes this
/// process's owner file.
struct Opened {
    rt: &'static tokio::runtime::Runtime,
    node: Node,
}

impl Opened {
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// How recent a removal of host ports (by any process) makes this process's exit wait for the
/// kernel's deferred nf_tables free: a grace period is about 10 ms here; generous for a loaded
/// machine.
const RECENT_REMOVAL: std::time::Duration = std::time::Duration::from_millis(250);

impl Drop for Opened {
    /// The last close of an nf_tables socket in the node netns waits for the deferred free that
    /// removing host ports leaves the kernel (one RCU grace period), holding the netns's commit
    /// mutex: when host ports were removed lately (by this DEL, or another process), leave the
    /// closing to a detached child that does it once nf_tables is quiet (see `linger`).
    fn drop(&mut self) {
        if self.node.since_host_ports_removed().is_some_and(|d| d < RECENT_REMOVAL) {
            crate::linger::hold_sockets_past_exit();
        }
    }
}

/// `attach` for the verbs that only delete, check or read: they leave the node-level network
/// (forwarding, bridge, VXLAN device) as it is instead of verifying it, and so take the kernel's
/// rtnl lock once (DEL: the host veth set down) instead of about eight times.
fn open(cfg: &NodeConfig, attach: bool) -> Result<Opened, CniError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO, format!("start runtime: {e}")))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    let node = if attach { rt.block_on(Node::attach(cfg.clone())) } else { rt.block_on(Node::open(cfg.clone())) }?;
    Ok(Opened { rt, node })
}

/// True when no call has set this node up yet (DEL and GC then have nothing to undo).
fn never_opened(cfg: &NodeConfig) -> Result<bool, CniError> {
    match NodeConfig::load(&cfg.effective_state_dir()) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

fn require(conf: &NetConf, min: Version, verb: &str) -> Result<(), CniError> {
    if conf.version < min {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{verb} needs cniVersion {} or later, the config says {}", min.as_str(), conf.version.as_str()),
        ));
    }
    Ok(())
}

/// ADD: create (or, for the same attachment and spec, return) the sandbox in the runtime's netns.
pub fn add(conf: &NetConf, env: &Env) -> Result<Value, CniError> {
    let spec = conf.sandbox_spec(env)?;
    let n = open(&conf.node, false)?;
    let sb = n.run(n.node.create_sandbox(&spec))?;
    Ok(add_result(conf.version, &sb, n.node.pod_mtu(), conf.dns.as_ref()))
}

/// DEL: remove the attachment; success when it is already gone, when the netns is gone, and when
/// the node was never set up.
pub fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let id = sandbox_id(env.container_id()?, env.ifname()?);
    // Before the lock, which would create the state dir: DEL of a node never set up changes nothing.
    if never_opened(&conf.node)? {
        return Ok(());
    }
    let n = open(&conf.node, true)?;
    n.run(n.node.delete_sandbox(&id))?;
    Ok(())
}

/// CHECK: the sandbox exists, matches prevResult and the kernel matches the record.
pub fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    require(conf, Version::V0_4_0, "CHECK")?;
    let id = sandbox_id(env.container_id()?, env.ifname()?);
    let netns = env.netns()?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult in the network config"))?;
    if never_opened(&conf.node)? {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("CHECK {id}: node {} has no sandboxes", conf.node.name),
        ));
    }
    let n = open(&conf.node, true)?;
    let sb = n.run(n.node.get_sandbox(&id))?;
    if sb.netns_path != netns {
        return Err(CniError::new(
            code::INCONSISTENT,
            format!("CHECK {id}: CNI_NETNS is {}, the sandbox is in {}", netns.display(), sb.netns_path.display()),
        ));
    }
    compare_prev(prev, &sb)?;
    let rep = n.run(n.node.check_sandbox(&id))?;
    if !rep.is_ok() {
        return Err(CniError::new(code::INCONSISTENT, format!("CHECK {id}: {}", rep.problems.join("; "))));
    }
    Ok(())
}

/// GC: delete this network's sandboxes that are not valid attachments, then the orphans podnet
/// left behind (addresses, veths); keeps going after errors and reports them together.
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    require(conf, Version::V1_1_0, "GC")?;
    if conf.valid_attachments.is_none() {
        return Err(CniError::new(code::INVALID_CONFIG, "GC needs cni.dev/valid-attachments in the network config"));
    }
    let valid = conf.valid_ids();
    if never_opened(&conf.node)? {
        return Ok(());
    }
    let n = open(&conf.node, true)?;
    let mut errors: Vec<podnet::Error> = vec![];
    for sb in n.run(n.node.list_sandboxes())? {
        let ours = sb.labels.get(label::NETWORK) == Some(&conf.name);
        if ours && !valid.contains(&sb.id) {
            if let Err(e) = n.run(n.node.delete_sandbox(&sb.id)) {
                errors.push(e);
            }
        }
    }
    // Orphans only: another client's sandbox created since the list above must stay.
    let rep = n.run(n.node.gc_orphans())?;
    let mut msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    msgs.extend(rep.errors);
    match errors.first() {
        None if msgs.is_empty() => Ok(()),
        first => {
            let code = first.map_or(code::INTERNAL, |e| CniError::from_podnet(e).code);
            Err(CniError::new(code, format!("GC: {}", msgs.join("; "))))
        }
    }
}

/// STATUS: ready when the node opens (state dir, kernel, nftables usable) and every address
/// pool has a free address.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    require(conf, Version::V1_1_0, "STATUS")?;
    let not_ready = |m: String| CniError::new(code::NOT_AVAILABLE, m);
    let n =
        open(&conf.node, false).map_err(|e| not_ready(format!("node {} is not usable: {}", conf.node.name, e.msg)))?;
    if !n.node.is_ready() {
        return Err(not_ready(format!(
            "node {} is not ready for pods yet (its cluster agent holds it)",
            conf.node.name
        )));
    }
    let sbs = n.run(n.node.list_sandboxes()).map_err(|e| not_ready(e.to_string()))?;
    for p in &conf.node.pools {
        let used = sbs.iter().filter(|s| s.ips.iter().any(|n| p.cidr.contains(n.ip()))).count() as u128;
        if used >= pool_capacity(p) {
            return Err(not_ready(format!("pod CIDR {} is exhausted ({used} addresses in use)", p.cidr)));
        }
    }
    Ok(())
}
