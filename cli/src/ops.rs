//! The operator commands (`node`, `sandbox`, `peer`, `port`, `gc`): each reopens the node from
//! the `node.json` its last `Node::open` wrote and makes the same library call a runtime makes.
//! Input is validated before anything is opened where the library lets us.

use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ipnetwork::IpNetwork;
use podnet::blocking::Node;
use podnet::{
    CrossNodeMode, Error, ErrorKind, NetnsSpec, NodeConfig, Peer, PodMode, PortMapping, Protocol, Result, Sandbox,
    SandboxSpec, Underlay,
};
use serde_json::{json, Value};

use crate::output::{emit, emit_json, fail, join, key_values, Table, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_OK};

/// Which node a command talks to, and how it prints. Global within each command group.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// Node name [default: $PODNET_NODE, else "default"].
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,
    /// The node's state directory [default: /run/podnet/NAME].
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    /// The node name the user chose (flag, then environment), if any.
    fn chosen_name(&self) -> Option<String> {
        self.node.clone().or_else(|| std::env::var("PODNET_NODE").ok().filter(|s| !s.is_empty()))
    }

    fn name(&self) -> Result<String> {
        let n = self.chosen_name().unwrap_or_else(|| "default".into());
        podnet::validate_name(&n, "node name").map_err(|m| Error::invalid("select node", m))?;
        Ok(n)
    }

    fn dir(&self) -> Result<PathBuf> {
        match &self.state_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(Path::new("/run/podnet").join(self.name()?)),
        }
    }

    /// The config the node was last opened with.
    fn load(&self) -> Result<NodeConfig> {
        let dir = self.dir()?;
        let name = self.name()?;
        let mut cfg = NodeConfig::load(&dir).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("open node {name}"),
                    format!(
                        "not initialized ({} does not exist; run `podnet node init --node {name} --pod-cidr CIDR`)",
                        dir.join("node.json").display()
                    ),
                )
            } else {
                e
            }
        })?;
        if let Some(n) = self.chosen_name() {
            if n != cfg.name {
                return Err(Error::invalid(
                    "select node",
                    format!("--node {n} but {} holds node {}", dir.display(), cfg.name),
                ));
            }
        }
        if cfg.effective_state_dir() != dir {
            cfg.state_dir = Some(dir);
        }
        Ok(cfg)
    }

    fn open(&self) -> Result<(NodeConfig, Node)> {
        let cfg = self.load()?;
        let node = reopen(cfg.clone())?;
        Ok((cfg, node))
    }
}

/// Reopen a node that already runs (idempotent init; cheap).
fn reopen(cfg: NodeConfig) -> Result<Node> {
    Node::open(cfg)
}

// ---------------------------------------------------------------------------------------------
// node

/// `podnet node ...`
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub cmd: NodeCmd,
}

/// Node commands.
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Initialize the node (idempotent): forwarding, bridge, VXLAN device, nftables table.
    Init(Box<InitArgs>),
    /// Show the node's config, pod CIDRs, gateways, MTU, counts and the path to each peer.
    Status,
    /// Reinstall podnet's nftables table and host ports if someone flushed the ruleset.
    Repair,
}

/// Arguments of `podnet node init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Pod CIDR of this node (at most one IPv4 and one IPv6; repeat or comma-separate).
    #[arg(long = "pod-cidr", value_name = "CIDR", required = true, value_delimiter = ',')]
    pub pod_cidr: Vec<IpNetwork>,
    /// How pods attach: a Linux bridge, or routed /32s with a link-local gateway.
    #[arg(long, value_name = "MODE", default_value = "bridge", value_parser = ["bridge", "routed"])]
    pub mode: String,
    /// The node's network namespace (a pinned netns file) [default: the caller's].
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// Where pod namespaces are pinned [default: /run/netns].
    #[arg(long = "netns-dir", value_name = "DIR")]
    pub netns_dir: Option<PathBuf>,
    /// The node's underlay address (needed for peers).
    #[arg(long, value_name = "IP")]
    pub underlay: Option<IpAddr>,
    /// The interface holding the underlay address [default: found by address].
    #[arg(long = "underlay-interface", value_name = "IFNAME", requires = "underlay")]
    pub underlay_interface: Option<String>,
    /// How packets reach other nodes' pods.
    #[arg(long = "cross-node", value_name = "MODE", default_value = "overlay", value_parser = ["overlay", "routed", "auto"])]
    pub cross_node: String,
    /// The cluster's pod CIDRs (egress to anything else is masqueraded).
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_delimiter = ',')]
    pub cluster_cidr: Vec<IpNetwork>,
    /// MTU of the bridge and the veths (lowered to fit the overlay).
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// Bridge name in bridge mode [default: podnet0].
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// VXLAN network identifier [default: 1, as flannel].
    #[arg(long, value_name = "VNI")]
    pub vni: Option<u32>,
    /// VXLAN UDP port [default: 8472, as flannel].
    #[arg(long = "vxlan-port", value_name = "PORT")]
    pub vxlan_port: Option<u16>,
}

/// Run `podnet node ...`.
pub fn run_node(a: NodeArgs) -> i32 {
    let t = &a.target;
    let r = match a.cmd {
        NodeCmd::Init(i) => node_init(t, &i),
        NodeCmd::Status => t.open().and_then(|(cfg, node)| node_status(t, &cfg, &node)),
        NodeCmd::Repair => node_repair(t),
    };
    r.unwrap_or_else(|e| fail(&e))
}

fn node_init(t: &Target, a: &InitArgs) -> Result<i32> {
    let name = t.name()?;
    let mut cfg =
        NodeConfig::new(&name).mode(a.mode.parse::<PodMode>()?).cross_node(a.cross_node.parse::<CrossNodeMode>()?);
    for c in &a.pod_cidr {
        cfg = cfg.pod_cidr(*c);
    }
    for c in &a.cluster_cidr {
        cfg = cfg.cluster_cidr(*c);
    }
    if let Some(p) = &a.netns {
        cfg = cfg.netns(p);
    }
    if let Some(d) = &a.netns_dir {
        cfg = cfg.netns_dir(d);
    }
    if let Some(d) = &t.state_dir {
        cfg = cfg.state_dir(d);
    }
    if let Some(u) = a.underlay {
        cfg.underlay = Some(Underlay { address: u, interface: a.underlay_interface.clone() });
    }
    if let Some(m) = a.mtu {
        cfg.mtu = m;
    }
    if let Some(b) = &a.bridge {
        cfg.bridge_name = b.clone();
    }
    if let Some(v) = a.vni {
        cfg.vxlan.vni = v;
    }
    if let Some(p) = a.vxlan_port {
        cfg.vxlan.port = p;
    }
    cfg.validate()?;
    let dir = cfg.effective_state_dir();
    match NodeConfig::load(&dir) {
        Ok(old) if old != cfg => {
            let (a_, b_) =
                (serde_json::to_value(&old).unwrap_or_default(), serde_json::to_value(&cfg).unwrap_or_default());
            let mut fields: Vec<String> = vec![];
            if let (Value::Object(a_), Value::Object(b_)) = (a_, b_) {
                for (k, v) in &b_ {
                    if a_.get(k) != Some(v) {
                        fields.push(k.clone());
                    }
                }
            }
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("init node {name}"),
                format!(
                    "already initialized in {} with a different config (differs in: {}); delete its sandboxes and peers and remove the state dir to start over",
                    dir.display(),
                    fields.join(", ")
                ),
            ));
        }
        _ => {}
    }
    let node = reopen(cfg.clone())?;
    node_status(t, &cfg, &node)
}

fn mode_str(m: PodMode) -> &'static str {
    match m {
        PodMode::Bridge => "bridge",
        PodMode::Routed => "routed",
    }
}

fn cross_str(m: CrossNodeMode) -> &'static str {
    match m {
        CrossNodeMode::Overlay => "overlay",
        CrossNodeMode::Routed => "routed",
        CrossNodeMode::Auto => "auto",
    }
}

fn path_str(p: podnet::PeerPath) -> &'static str {
    match p {
        podnet::PeerPath::Overlay => "overlay",
        podnet::PeerPath::Routed => "routed",
    }
}

/// The gateway pods of this node use, per pod CIDR (bridge address, or link-local when routed).
fn pod_gateways(cfg: &NodeConfig, node: &Node) -> Vec<IpAddr> {
    match cfg.mode {
        PodMode::Bridge => node.inner().gateways(),
        PodMode::Routed => cfg
            .pools
            .iter()
            .map(|p| if p.cidr.is_ipv4() { IpAddr::V4(podnet::ROUTED_GW_V4) } else { IpAddr::V6(podnet::ROUTED_GW_V6) })
            .collect(),
    }
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// One peer as printed: its paths per pod CIDR and its effective VTEP MAC.
fn peer_json(node: &Node, p: &Peer) -> Value {
    let paths: Vec<Value> = match node.inner().peer_paths(p) {
        Ok(v) => v.iter().map(|(c, path)| json!({"cidr": c, "path": path_str(*path)})).collect(),
        Err(e) => vec![json!({"error": e.to_string()})],
    };
    json!({
        "name": p.name,
        "underlay_ip": p.underlay_ip,
        "pod_cidrs": p.pod_cidrs,
        "vtep_mac": p.vtep_mac,
        "effective_vtep_mac": mac_str(p.vtep_mac.unwrap_or_else(|| podnet::vtep_mac(&p.name))),
        "paths": paths,
    })
}

fn peers_table(node: &Node, peers: &[Peer]) -> String {
    let mut t = Table::new(&["NAME", "UNDERLAY", "POD CIDRS", "PATH", "VTEP MAC"]);
    for p in peers {
        let path = match node.inner().peer_paths(p) {
            Ok(v) => {
                let kinds: Vec<&str> = v.iter().map(|(_, k)| path_str(*k)).collect();
                if kinds.windows(2).all(|w| w[0] == w[1]) {
                    kinds.first().copied().unwrap_or("-").to_string()
                } else {
                    v.iter().map(|(c, k)| format!("{c}={}", path_str(*k))).collect::<Vec<_>>().join(",")
                }
            }
            Err(e) => format!("error: {}", e.cause_message()),
        };
        let mac = match p.vtep_mac {
            Some(m) => mac_str(m),
            None => format!("{} (derived)", mac_str(podnet::vtep_mac(&p.name))),
        };
        t.row(vec![p.name.clone(), p.underlay_ip.to_string(), join(&p.pod_cidrs), path, mac]);
    }
    t.render()
}

fn node_status(t: &Target, cfg: &NodeConfig, node: &Node) -> Result<i32> {
    let sandboxes = node.list_sandboxes()?;
    let peers = node.list_peers()?;
    let ports = node.list_ports()?;
    let gws = pod_gateways(cfg, node);
    let overlay = cfg.underlay.is_some() && cfg.cross_node != CrossNodeMode::Routed;
    let state_dir = cfg.effective_state_dir();
    if t.json {
        let cidrs: Vec<Value> =
            cfg.pools.iter().zip(&gws).map(|(p, g)| json!({"cidr": p.cidr, "gateway": g})).collect();
        emit_json(&json!({
            "name": cfg.name,
            "netns": cfg.netns,
            "state_dir": state_dir,
            "netns_dir": cfg.netns_dir,
            "mode": mode_str(cfg.mode),
            "bridge": (cfg.mode == PodMode::Bridge).then(|| cfg.bridge_name.clone()),
            "pod_cidrs": cidrs,
            "pod_mtu": node.inner().pod_mtu(),
            "underlay": cfg.underlay,
            "cross_node": cross_str(cfg.cross_node),
            "vxlan": overlay.then(|| json!({"device": cfg.vxlan.device, "vni": cfg.vxlan.vni, "port": cfg.vxlan.port})),
            "cluster_cidrs": cfg.cluster_cidrs,
            "egress_masquerade": cfg.egress_masquerade && !cfg.cluster_cidrs.is_empty(),
            "sandboxes": sandboxes.len(),
            "peers": peers.iter().map(|p| peer_json(node, p)).collect::<Vec<_>>(),
            "ports": ports.len(),
        }));
        return Ok(EXIT_OK);
    }
    let cidrs: Vec<String> = cfg.pools.iter().zip(&gws).map(|(p, g)| format!("{} (gateway {g})", p.cidr)).collect();
    let mut kv: Vec<(&str, String)> = vec![
        ("node", cfg.name.clone()),
        ("netns", cfg.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(the caller's)".into())),
        ("state dir", state_dir.display().to_string()),
        ("pod netns dir", cfg.netns_dir.display().to_string()),
        (
            "mode",
            match cfg.mode {
                PodMode::Bridge => format!("bridge ({})", cfg.bridge_name),
                PodMode::Routed => "routed".into(),
            },
        ),
        ("pod CIDRs", cidrs.join(", ")),
        ("pod MTU", node.inner().pod_mtu().to_string()),
        (
            "underlay",
            cfg.underlay
                .as_ref()
                .map(|u| match &u.interface {
                    Some(i) => format!("{} on {i}", u.address),
                    None => u.address.to_string(),
                })
                .unwrap_or_default(),
        ),
        ("cross-node", cross_str(cfg.cross_node).into()),
    ];
    if overlay {
        kv.push(("VXLAN", format!("{} (VNI {}, UDP {})", cfg.vxlan.device, cfg.vxlan.vni, cfg.vxlan.port)));
    }
    kv.push(("cluster CIDRs", join(&cfg.cluster_cidrs)));
    kv.push(("sandboxes", sandboxes.len().to_string()));
    kv.push(("peers", peers.len().to_string()));
    kv.push(("host ports", ports.len().to_string()));
    let mut out = key_values(&kv);
    if !peers.is_empty() {
        out.push('\n');
        out.push_str(&peers_table(node, &peers));
    }
    emit(&out);
    Ok(EXIT_OK)
}

fn node_repair(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let rep = node.repair()?;
    if t.json {
        emit_json(&json!(rep));
    } else {
        emit(&key_values(&[
            ("table recreated", if rep.table_recreated { "yes" } else { "no" }.into()),
            ("ports restored", rep.ports_restored.to_string()),
        ]));
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// sandbox

/// `podnet sandbox ...`
#[derive(Args, Debug)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub cmd: SandboxCmd,
}

/// Sandbox commands.
#[derive(Subcommand, Debug)]
pub enum SandboxCmd {
    /// Create a sandbox: pinned netns, addresses, veth, host ports (idempotent).
    Add(SandboxAddArgs),
    /// Delete a sandbox (idempotent: an unknown id is success).
    #[command(visible_alias = "delete")]
    Del {
        /// Sandbox id.
        id: String,
    },
    /// List the node's sandboxes.
    #[command(visible_alias = "ls")]
    List,
    /// Compare a sandbox's kernel state with its record (exit 3 when they differ).
    Check {
        /// Sandbox id.
        id: String,
    },
}

/// Arguments of `podnet sandbox add`.
#[derive(Args, Debug)]
pub struct SandboxAddArgs {
    /// Sandbox id (letters, digits, '_', '.', '-').
    pub id: String,
    /// Interface name inside the pod.
    #[arg(long, value_name = "NAME", default_value = "eth0")]
    pub ifname: String,
    /// Attach to this existing netns (the runtime's) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// Ask for this address (at most one per family).
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<IpAddr>,
    /// Host port, [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp] (repeatable).
    #[arg(long = "port", value_name = "SPEC", value_parser = parse_port)]
    pub ports: Vec<PortMapping>,
    /// Attach this pod unlike the node's default mode [default: the node's].
    #[arg(long, value_name = "MODE", value_parser = ["bridge", "routed"])]
    pub mode: Option<String>,
}

/// Parse `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`; an IPv6 host IP goes in brackets.
pub fn parse_port(s: &str) -> std::result::Result<PortMapping, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, p)) => (r, p.parse::<Protocol>().map_err(|e| e.cause_message())?),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let port = |p: &str, what: &str| -> std::result::Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{what} {p:?} is not a port (1..65535)")),
            Ok(n) => Ok(n),
        }
    };
    let usage = "expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp]";
    let (host_ip, host, container) = match parts.as_slice() {
        [c, h] => (None, *h, *c),
        [c, h, ip] => {
            let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            let ip: IpAddr = ip.parse().map_err(|_| format!("host IP {ip:?} is not an address ({usage})"))?;
            (Some(ip), *h, *c)
        }
        _ => return Err(usage.into()),
    };
    Ok(PortMapping {
        protocol,
        host_ip,
        host_port: port(host, "host port")?,
        container_port: port(container, "container port")?,
    })
}

/// A port mapping as people write it: `tcp 8080->80`, `udp 192.0.2.1:53->53`.
pub fn port_str(m: &PortMapping) -> String {
    let host = match m.host_ip {
        Some(IpAddr::V6(a)) => format!("[{a}]:{}", m.host_port),
        Some(a) => format!("{a}:{}", m.host_port),
        None => m.host_port.to_string(),
    };
    format!("{} {host}->{}", m.protocol, m.container_port)
}

fn sandbox_table(sbs: &[Sandbox]) -> String {
    let mut t = Table::new(&["ID", "IPS", "MODE", "IFNAME", "HOST IF", "NETNS", "PORTS"]);
    for sb in sbs {
        let ips: Vec<IpAddr> = sb.ips.iter().map(|n| n.ip()).collect();
        t.row(vec![
            sb.id.clone(),
            join(&ips),
            mode_str(sb.mode).into(),
            sb.ifname.clone(),
            sb.host_ifname.clone(),
            sb.netns_path.display().to_string(),
            sb.ports.iter().map(port_str).collect::<Vec<_>>().join(","),
        ]);
    }
    t.render()
}

/// Run `podnet sandbox ...`.
pub fn run_sandbox(a: SandboxArgs) -> i32 {
    let t = &a.target;
    let r = match a.cmd {
        SandboxCmd::Add(s) => sandbox_add(t, s),
        SandboxCmd::Del { id } => sandbox_del(t, &id),
        SandboxCmd::List => sandbox_list(t),
        SandboxCmd::Check { id } => sandbox_check(t, &id),
    };
    r.unwrap_or_else(|e| fail(&e))
}

fn sandbox_add(t: &Target, a: SandboxAddArgs) -> Result<i32> {
    valid_id(&a.id, "validate sandbox")?;
    let cfg = t.load()?;
    let mut spec = SandboxSpec::new(a.id);
    spec.ifname = a.ifname;
    spec.netns = a.netns.map(NetnsSpec::Path).unwrap_or(NetnsSpec::Create);
    spec.ips = a.ips;
    spec.ports = a.ports;
    spec.mode = a.mode.map(|m| m.parse::<PodMode>()).transpose()?;
    // Bad input fails here, before the node is even opened.
    spec.validate(&cfg)?;
    let node = reopen(cfg)?;
    let sb = node.create_sandbox(&spec)?;
    if t.json {
        emit_json(&json!(sb));
    } else {
        emit(&sandbox_table(&[sb]));
    }
    Ok(EXIT_OK)
}

fn valid_id(id: &str, op: &str) -> Result<()> {
    podnet::validate_name(id, "sandbox id").map_err(|m| Error::invalid(format!("{op} {id:?}"), m))
}

fn sandbox_del(t: &Target, id: &str) -> Result<i32> {
    valid_id(id, "delete sandbox")?;
    let (_, node) = t.open()?;
    node.delete_sandbox(id)?;
    if t.json {
        emit_json(&json!({"deleted": id}));
    }
    Ok(EXIT_OK)
}

fn sandbox_list(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let sbs = node.list_sandboxes()?;
    if t.json {
        emit_json(&json!(sbs));
    } else {
        emit(&sandbox_table(&sbs));
    }
    Ok(EXIT_OK)
}

fn sandbox_check(t: &Target, id: &str) -> Result<i32> {
    valid_id(id, "check sandbox")?;
    let (_, node) = t.open()?;
    let rep = node.check_sandbox(id)?;
    if t.json {
        emit_json(&json!({"id": rep.id, "ok": rep.is_ok(), "problems": rep.problems}));
    } else if rep.is_ok() {
        emit(&format!("{}: ok\n", rep.id));
    } else {
        let mut s = format!("{}: {} problem(s)\n", rep.id, rep.problems.len());
        for p in &rep.problems {
            s.push_str(&format!("  - {p}\n"));
        }
        emit(&s);
    }
    Ok(if rep.is_ok() { EXIT_OK } else { EXIT_CHECK_FAILED })
}

// ---------------------------------------------------------------------------------------------
// peer

/// `podnet peer ...`
#[derive(Args, Debug)]
pub struct PeerArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub cmd: PeerCmd,
}

/// Peer commands.
#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Add or update one peer node (O(1) kernel requests).
    Add(PeerAddArgs),
    /// Remove one peer's routes, neighbours and FDB entries (an unknown peer is success).
    #[command(visible_alias = "delete")]
    Del {
        /// Peer node name.
        name: String,
    },
    /// List the configured peers and the path to each.
    #[command(visible_alias = "ls")]
    List,
    /// Converge to exactly the peers in a JSON file (an array of peers; `-` reads stdin).
    Sync {
        /// JSON array of {"name","underlay_ip","pod_cidrs":[..],"vtep_mac":null|[6 bytes]}.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// Arguments of `podnet peer add`.
#[derive(Args, Debug)]
pub struct PeerAddArgs {
    /// The peer's node name (its VTEP MAC is derived from it unless --vtep-mac is given).
    pub name: String,
    /// The peer's underlay IP.
    #[arg(long, value_name = "IP")]
    pub underlay: IpAddr,
    /// The peer's pod CIDRs (repeat or comma-separate).
    #[arg(long = "pod-cidr", value_name = "CIDR", required = true, value_delimiter = ',')]
    pub pod_cidr: Vec<IpNetwork>,
    /// The peer's VTEP MAC, e.g. 0e:12:34:56:78:9a (non-podnet peers such as flannel nodes).
    #[arg(long = "vtep-mac", value_name = "MAC", value_parser = parse_mac)]
    pub vtep_mac: Option<[u8; 6]>,
}

fn parse_mac(s: &str) -> std::result::Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err("expected six hex bytes separated by ':'".into());
    }
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| format!("{p:?} is not a hex byte"))?;
    }
    Ok(m)
}

/// Run `podnet peer ...`.
pub fn run_peer(a: PeerArgs) -> i32 {
    let t = &a.target;
    let r = match a.cmd {
        PeerCmd::Add(p) => peer_add(t, p),
        PeerCmd::Del { name } => peer_del(t, &name),
        PeerCmd::List => peer_list(t),
        PeerCmd::Sync { file } => peer_sync(t, &file),
    };
    r.unwrap_or_else(|e| fail(&e))
}

fn peer_add(t: &Target, a: PeerAddArgs) -> Result<i32> {
    podnet::validate_name(&a.name, "peer name").map_err(|m| Error::invalid(format!("add peer {:?}", a.name), m))?;
    let (_, node) = t.open()?;
    let peer = Peer { name: a.name, underlay_ip: a.underlay, pod_cidrs: a.pod_cidr, vtep_mac: a.vtep_mac };
    node.add_peer(&peer)?;
    if t.json {
        emit_json(&peer_json(&node, &peer));
    } else {
        emit(&peers_table(&node, &[peer]));
    }
    Ok(EXIT_OK)
}

fn peer_del(t: &Target, name: &str) -> Result<i32> {
    podnet::validate_name(name, "peer name").map_err(|m| Error::invalid(format!("remove peer {name:?}"), m))?;
    let (_, node) = t.open()?;
    node.remove_peer(name)?;
    if t.json {
        emit_json(&json!({"removed": name}));
    }
    Ok(EXIT_OK)
}

fn peer_list(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let peers = node.list_peers()?;
    if t.json {
        emit_json(&Value::Array(peers.iter().map(|p| peer_json(&node, p)).collect()));
    } else {
        emit(&peers_table(&node, &peers));
    }
    Ok(EXIT_OK)
}

/// Read a file, or stdin for `-`.
fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![];
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::new(ErrorKind::Io, format!("read {what} from stdin"), e))?;
    } else {
        buf = std::fs::read(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
            Error::new(kind, format!("read {what} {}", path.display()), e)
        })?;
    }
    Ok(buf)
}

fn peer_sync(t: &Target, file: &Path) -> Result<i32> {
    let data = read_input(file, "peer list")?;
    let peers: Vec<Peer> = serde_json::from_slice(&data).map_err(|e| {
        Error::invalid(
            format!("parse peer list {}", file.display()),
            format!("{e} (expected a JSON array of {{\"name\",\"underlay_ip\",\"pod_cidrs\",\"vtep_mac\"}})"),
        )
    })?;
    let (_, node) = t.open()?;
    let rep = node.sync_peers(&peers)?;
    if t.json {
        emit_json(&json!(rep));
    } else {
        emit(&key_values(&[
            ("peers", rep.peers.to_string()),
            ("kernel entries added", rep.added.to_string()),
            ("stale entries removed", rep.removed.to_string()),
        ]));
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// port

/// `podnet port ...`
#[derive(Args, Debug)]
pub struct PortArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub cmd: PortCmd,
}

/// Host port commands.
#[derive(Subcommand, Debug)]
pub enum PortCmd {
    /// Map host ports to an existing sandbox (idempotent for mappings it has).
    Add {
        /// Sandbox id.
        id: String,
        /// [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp], one or more.
        #[arg(value_name = "SPEC", required = true, value_parser = parse_port)]
        specs: Vec<PortMapping>,
    },
    /// Unmap host ports of a sandbox (mappings it does not have are ignored).
    #[command(visible_alias = "delete")]
    Del {
        /// Sandbox id.
        id: String,
        /// [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp], one or more.
        #[arg(value_name = "SPEC", required = true, value_parser = parse_port)]
        specs: Vec<PortMapping>,
    },
    /// List every host port mapped on the node.
    #[command(visible_alias = "ls")]
    List,
}

fn ports_table(entries: &[podnet::PortEntry]) -> String {
    let mut t = Table::new(&["SANDBOX", "PROTO", "HOST", "POD"]);
    for e in entries {
        let m = &e.mapping;
        let host = match m.host_ip {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", m.host_port),
            Some(a) => format!("{a}:{}", m.host_port),
            None => format!("*:{}", m.host_port),
        };
        let pods: Vec<String> = e
            .pod_ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V6(a) => format!("[{a}]:{}", m.container_port),
                IpAddr::V4(a) => format!("{a}:{}", m.container_port),
            })
            .collect();
        t.row(vec![e.sandbox.clone(), m.protocol.to_string(), host, pods.join(",")]);
    }
    t.render()
}

/// Run `podnet port ...`.
pub fn run_port(a: PortArgs) -> i32 {
    let t = &a.target;
    let r = match a.cmd {
        PortCmd::Add { id, specs } => port_change(t, &id, &specs, true),
        PortCmd::Del { id, specs } => port_change(t, &id, &specs, false),
        PortCmd::List => port_list(t),
    };
    r.unwrap_or_else(|e| fail(&e))
}

fn port_change(t: &Target, id: &str, specs: &[PortMapping], add: bool) -> Result<i32> {
    valid_id(id, if add { "add ports to" } else { "remove ports of" })?;
    let cfg = t.load()?;
    let mut spec = SandboxSpec::new(id);
    spec.ports = specs.to_vec();
    spec.validate(&cfg)?;
    let node = reopen(cfg)?;
    let sb = if add { node.add_ports(id, specs)? } else { node.remove_ports(id, specs)? };
    if t.json {
        emit_json(&json!(sb));
    } else if add {
        let entries: Vec<podnet::PortEntry> = node.list_ports()?.into_iter().filter(|e| e.sandbox == id).collect();
        emit(&ports_table(&entries));
    }
    Ok(EXIT_OK)
}

fn port_list(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let entries = node.list_ports()?;
    if t.json {
        emit_json(&json!(entries));
    } else {
        emit(&ports_table(&entries));
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// gc

/// Arguments of `podnet gc`. Which sandboxes are alive must be said explicitly: a bare
/// `podnet gc` would otherwise delete every sandbox of the node.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["live", "live_file", "orphans_only", "all"])))]
pub struct GcArgs {
    #[command(flatten)]
    pub target: Target,
    /// A sandbox id the runtime still has (repeatable); every other sandbox is deleted.
    #[arg(long, value_name = "ID", conflicts_with_all = ["orphans_only", "all"])]
    pub live: Vec<String>,
    /// A file of live sandbox ids, one per line (`#` comments; `-` reads stdin).
    #[arg(long = "live-file", value_name = "FILE", conflicts_with_all = ["orphans_only", "all"])]
    pub live_file: Option<PathBuf>,
    /// Keep every recorded sandbox; remove only orphans (reservations, pins, veths without a record).
    #[arg(long = "orphans-only", conflicts_with = "all")]
    pub orphans_only: bool,
    /// No sandbox is live: delete every sandbox of the node, then the orphans.
    #[arg(long)]
    pub all: bool,
}

/// Run `podnet gc`.
pub fn run_gc(a: GcArgs) -> i32 {
    gc(&a).unwrap_or_else(|e| fail(&e))
}

fn gc(a: &GcArgs) -> Result<i32> {
    let t = &a.target;
    let mut live: Vec<String> = a.live.clone();
    if let Some(f) = &a.live_file {
        let data = read_input(f, "live list")?;
        let text = String::from_utf8(data)
            .map_err(|_| Error::invalid(format!("read live list {}", f.display()), "not UTF-8 text"))?;
        for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            live.push(l.to_string());
        }
    }
    for id in &live {
        valid_id(id, "gc: live sandbox")?;
    }
    let (_, node) = t.open()?;
    if a.orphans_only {
        live = node.list_sandboxes()?.into_iter().map(|s| s.id).collect();
    }
    let refs: Vec<&str> = live.iter().map(String::as_str).collect();
    let rep = node.gc(&refs)?;
    if t.json {
        emit_json(&json!(rep));
    } else {
        let mut tb = Table::new(&["REMOVED", "WHAT"]);
        for s in &rep.sandboxes {
            tb.row(vec!["sandbox".into(), s.clone()]);
        }
        for ip in &rep.ips {
            tb.row(vec!["address".into(), ip.to_string()]);
        }
        for p in &rep.netns {
            tb.row(vec!["netns pin".into(), p.display().to_string()]);
        }
        for l in &rep.links {
            tb.row(vec!["host veth".into(), l.clone()]);
        }
        emit(&tb.render());
    }
    if !rep.errors.is_empty() {
        // The library reports gc's per-step failures as text, without a kind.
        eprintln!("error (gc): {} step(s) failed: {}", rep.errors.len(), rep.errors.join("; ").replace('\n', " "));
    }
    Ok(if rep.errors.is_empty() { EXIT_OK } else { EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        let m = parse_port("8080:80").unwrap();
        assert_eq!((m.protocol, m.host_ip, m.host_port, m.container_port), (Protocol::Tcp, None, 8080, 80));
        let m = parse_port("192.0.2.1:53:5353/udp").unwrap();
        assert_eq!(m.host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!((m.protocol, m.host_port, m.container_port), (Protocol::Udp, 53, 5353));
        let m = parse_port("[fd00::1]:443:8443/SCTP").unwrap();
        assert_eq!((m.host_ip, m.protocol), (Some("fd00::1".parse().unwrap()), Protocol::Sctp));
        assert_eq!(port_str(&m), "sctp [fd00::1]:443->8443");
        for bad in ["80", "0:80", "8080:0", "x:80", "1:2:3:4", "8080:80/icmp", "300.1.1.1:80:80", "70000:80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("0e:00:00:00:00:ff").unwrap(), [0x0e, 0, 0, 0, 0, 0xff]);
        assert!(parse_mac("0e:00:00:00:00").is_err());
        assert!(parse_mac("0e:00:00:00:00:zz").is_err());
    }
}
