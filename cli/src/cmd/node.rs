//! `podnet node init | status | repair`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ipnetwork::IpNetwork;
use podnet::blocking::Node;
use podnet::{CrossNodeMode, Error, ErrorKind, NodeConfig, PodMode, Result, Underlay};
use serde_json::{json, Value};

use super::peer::{mac_str, peer_json, peers_table};
use super::{NodeCommand, Target};
use crate::modes::{parser, pod_mode_label};
use crate::output::{emit, emit_json, join, key_values, show, EXIT_OK};

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
    #[arg(long, value_name = "MODE", default_value = PodMode::default().name(), value_parser = parser::<PodMode>())]
    pub mode: PodMode,
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
    #[arg(long = "cross-node", value_name = "MODE", default_value = CrossNodeMode::default().name(), value_parser = parser::<CrossNodeMode>())]
    pub cross_node: CrossNodeMode,
    /// The cluster's pod CIDRs (egress to anything else is masqueraded).
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_delimiter = ',')]
    pub cluster_cidr: Vec<IpNetwork>,
    /// The cluster's service CIDRs: ClusterIPs (`podnet service`) must lie inside one.
    #[arg(long = "service-cidr", value_name = "CIDR", value_delimiter = ',')]
    pub service_cidr: Vec<IpNetwork>,
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

impl NodeCommand for NodeCmd {
    fn run(self, t: &Target) -> Result<i32> {
        match self {
            Self::Init(i) => init(t, &i),
            Self::Status => t.open().and_then(|(cfg, node)| status(t, &cfg, &node)),
            Self::Repair => repair(t),
        }
    }
}

fn init(t: &Target, a: &InitArgs) -> Result<i32> {
    let name = t.name()?;
    let mut cfg = NodeConfig::new(&name).mode(a.mode).cross_node(a.cross_node);
    for c in &a.pod_cidr {
        cfg = cfg.pod_cidr(*c);
    }
    for c in &a.cluster_cidr {
        cfg = cfg.cluster_cidr(*c);
    }
    for c in &a.service_cidr {
        cfg = cfg.service_cidr(*c);
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
    let node = Node::open(cfg.clone())?;
    status(t, &cfg, &node)
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

fn status(t: &Target, cfg: &NodeConfig, node: &Node) -> Result<i32> {
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
        "mode": cfg.mode.name(),
        "bridge": (cfg.mode == PodMode::Bridge).then(|| cfg.bridge_name.clone()),
        "pod_cidrs": cidrs,
        "pod_mtu": node.inner().pod_mtu(),
        "underlay": cfg.underlay,
        "cross_node": cfg.cross_node.name(),
        "vxlan": overlay.then(|| json!({"device": cfg.vxlan.device, "vni": cfg.vxlan.vni, "port": cfg.vxlan.port})),
        "vtep_mac": node.inner().vtep_mac().map(mac_str),
        "cluster_cidrs": cfg.cluster_cidrs,
        "service_cidrs": cfg.service_cidrs,
        "egress_masquerade": cfg.egress_masquerade && !cfg.cluster_cidrs.is_empty(),
        "sandboxes": sandboxes.len(),
        "peers": peers.iter().map(|p| peer_json(node, p)).collect::<Vec<_>>(),
        "ports": ports.len(),
        }))?;
        return Ok(EXIT_OK);
    }
    let cidrs: Vec<String> = cfg.pools.iter().zip(&gws).map(|(p, g)| format!("{} (gateway {g})", p.cidr)).collect();
    let mut kv: Vec<(&str, String)> = vec![
        ("node", cfg.name.clone()),
        ("netns", cfg.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(the caller's)".into())),
        ("state dir", state_dir.display().to_string()),
        ("pod netns dir", cfg.netns_dir.display().to_string()),
        ("mode", pod_mode_label(cfg.mode, &cfg.bridge_name)),
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
        ("cross-node", cfg.cross_node.name().into()),
    ];
    if overlay {
        kv.push(("VXLAN", format!("{} (VNI {}, UDP {})", cfg.vxlan.device, cfg.vxlan.vni, cfg.vxlan.port)));
    }
    if let Some(m) = node.inner().vtep_mac() {
        kv.push(("VTEP MAC", mac_str(m)));
    }
    kv.push(("cluster CIDRs", join(&cfg.cluster_cidrs)));
    kv.push(("service CIDRs", join(&cfg.service_cidrs)));
    kv.push(("sandboxes", sandboxes.len().to_string()));
    kv.push(("peers", peers.len().to_string()));
    kv.push(("host ports", ports.len().to_string()));
    let mut out = key_values(&kv);
    if !peers.is_empty() {
        out.push('\n');
        out.push_str(&peers_table(node, &peers));
    }
    emit(&out)?;
    Ok(EXIT_OK)
}

fn repair(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let rep = node.repair()?;
    show(t.json, &rep, || {
        key_values(&[
            ("table recreated", if rep.table_recreated { "yes" } else { "no" }.into()),
            ("ports restored", rep.ports_restored.to_string()),
        ])
    })?;
    Ok(EXIT_OK)
}
