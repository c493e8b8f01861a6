//! `podnet peer add | del | list | sync`, and how a peer is shown (also by `node status`).

use std::net::IpAddr;
use std::path::Path;

use clap::Args;
use ipnetwork::IpNetwork;
use podnet::blocking::Node;
use podnet::{Error, Peer, Result};
use serde_json::{json, Value};

use super::{read_input, records_commands, Target};
use crate::modes::Named as _;
use crate::output::{emit, emit_json, join, key_values, show, Table, EXIT_OK};

records_commands! {
    /// Peer commands.
    PeerCmd(PeerAddArgs) {
        add: "Add or update one peer node (O(1) kernel requests).",
        del: "Remove one peer's routes, neighbours and FDB entries (an unknown peer is success).",
        name: "Peer node name.",
        list: "List the configured peers and the path to each.",
        sync: "Converge to exactly the peers in a JSON file (an array of peers; `-` reads stdin).",
        file: r#"JSON array of {"name","underlay_ip","pod_cidrs":[..],"vtep_mac":null|[6 bytes]}."#,
    }
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

pub(crate) fn mac_str(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// One peer as printed in JSON: its paths per pod CIDR and its effective VTEP MAC.
pub fn peer_json(node: &Node, p: &Peer) -> Value {
    let paths: Vec<Value> = match node.inner().peer_paths(p) {
        Ok(v) => v.iter().map(|(c, path)| json!({"cidr": c, "path": path.name()})).collect(),
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

/// Peers as a table: NAME, UNDERLAY, POD CIDRS, PATH, VTEP MAC.
pub fn peers_table(node: &Node, peers: &[Peer]) -> String {
    let mut t = Table::new(&["NAME", "UNDERLAY", "POD CIDRS", "PATH", "VTEP MAC"]);
    for p in peers {
        let path = match node.inner().peer_paths(p) {
            Ok(v) => {
                let kinds: Vec<&str> = v.iter().map(|(_, k)| k.name()).collect();
                if kinds.windows(2).all(|w| w[0] == w[1]) {
                    kinds.first().copied().unwrap_or("-").to_string()
                } else {
                    v.iter().map(|(c, k)| format!("{c}={}", k.name())).collect::<Vec<_>>().join(",")
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

fn add(t: &Target, a: PeerAddArgs) -> Result<i32> {
    podnet::validate_name(&a.name, "peer name").map_err(|m| Error::invalid(format!("add peer {:?}", a.name), m))?;
    let (_, node) = t.open()?;
    let peer = Peer { name: a.name, underlay_ip: a.underlay, pod_cidrs: a.pod_cidr, vtep_mac: a.vtep_mac };
    node.add_peer(&peer)?;
    if t.json {
        emit_json(&peer_json(&node, &peer))?;
    } else {
        emit(&peers_table(&node, &[peer]))?;
    }
    Ok(EXIT_OK)
}

fn del(t: &Target, name: &str) -> Result<i32> {
    podnet::validate_name(name, "peer name").map_err(|m| Error::invalid(format!("remove peer {name:?}"), m))?;
    let (_, node) = t.open()?;
    node.remove_peer(name)?;
    if t.json {
        emit_json(&json!({"removed": name}))?;
    }
    Ok(EXIT_OK)
}

fn list(t: &Target) -> Result<i32> {
    let (_, node) = t.open()?;
    let peers = node.list_peers()?;
    if t.json {
        emit_json(&Value::Array(peers.iter().map(|p| peer_json(&node, p)).collect()))?;
    } else {
        emit(&peers_table(&node, &peers))?;
    }
    Ok(EXIT_OK)
}

fn sync(t: &Target, file: &Path) -> Result<i32> {
    let data = read_input(file, "peer list")?;
    let peers: Vec<Peer> = serde_json::from_slice(&data).map_err(|e| {
        Error::invalid(
            format!("parse peer list {}", file.display()),
            format!("{e} (expected a JSON array of {{\"name\",\"underlay_ip\",\"pod_cidrs\",\"vtep_mac\"}})"),
        )
    })?;
    let (_, node) = t.open()?;
    let rep = node.sync_peers(&peers)?;
    show(t.json, &rep, || {
        key_values(&[
            ("peers", rep.peers.to_string()),
            ("kernel entries added", rep.added.to_string()),
            ("stale entries removed", rep.removed.to_string()),
        ])
    })?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("0e:00:00:00:00:ff").unwrap(), [0x0e, 0, 0, 0, 0, 0xff]);
        assert!(parse_mac("0e:00:00:00:00").is_err());
        assert!(parse_mac("0e:00:00:00:00:zz").is_err());
        assert_eq!(mac_str([0x0e, 0, 0, 0, 0, 0xff]), "0e:00:00:00:00:ff");
    }
}
