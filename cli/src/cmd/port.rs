//! `podnet port add | del | list`, and the host-port spec as people write it.

use std::net::IpAddr;

use clap::Subcommand;
use podnet::blocking::Node;
use podnet::{PortEntry, PortMapping, Protocol, Result, SandboxSpec};

use super::{valid_id, NodeCommand, Target};
use crate::output::{emit, emit_json, Table, EXIT_OK};

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

/// `IP:PORT`, with an IPv6 address in brackets.
fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]:{port}"),
        IpAddr::V4(a) => format!("{a}:{port}"),
    }
}

/// A port mapping as people write it: `tcp 8080->80`, `udp 192.0.2.1:53->53`.
pub fn port_str(m: &PortMapping) -> String {
    let host = m.host_ip.map_or_else(|| m.host_port.to_string(), |ip| ip_port(ip, m.host_port));
    format!("{} {host}->{}", m.protocol, m.container_port)
}

/// Host ports as a table: SANDBOX, PROTO, HOST (`*:8080` or `IP:PORT`), POD (`IP:PORT`).
fn table(entries: &[PortEntry]) -> String {
    let mut t = Table::new(&["SANDBOX", "PROTO", "HOST", "POD"]);
    for e in entries {
        let m = &e.mapping;
        let host = m.host_ip.map_or_else(|| format!("*:{}", m.host_port), |ip| ip_port(ip, m.host_port));
        let pods: Vec<String> = e.pod_ips.iter().map(|ip| ip_port(*ip, m.container_port)).collect();
        t.row(vec![e.sandbox.clone(), m.protocol.to_string(), host, pods.join(",")]);
    }
    t.render()
}

impl NodeCommand for PortCmd {
    fn run(self, t: &Target) -> Result<i32> {
        match self {
            Self::Add { id, specs } => change(t, &id, &specs, true),
            Self::Del { id, specs } => change(t, &id, &specs, false),
            Self::List => t.list(Node::list_ports, |entries| table(entries)),
        }
    }
}

fn change(t: &Target, id: &str, specs: &[PortMapping], add: bool) -> Result<i32> {
    valid_id(id, if add { "add ports to" } else { "remove ports of" })?;
    let cfg = t.load()?;
    let mut spec = SandboxSpec::new(id);
    spec.ports = specs.to_vec();
    spec.validate(&cfg)?;
    let node = Node::open(cfg)?;
    let sb = if add { node.add_ports(id, specs)? } else { node.remove_ports(id, specs)? };
    if t.json {
        emit_json(&sb)?;
    } else if add {
        let entries: Vec<PortEntry> = node.list_ports()?.into_iter().filter(|e| e.sandbox == id).collect();
        emit(&table(&entries))?;
    }
    Ok(EXIT_OK)
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
        assert_eq!(port_str(&parse_port("8080:80").unwrap()), "tcp 8080->80");
        for bad in ["80", "0:80", "8080:0", "x:80", "1:2:3:4", "8080:80/icmp", "300.1.1.1:80:80", "70000:80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
