//! `podnet service add | del | list | sync`: the node's services, kept in its state and shared
//! by every client of the node (an agent, a runtime, this CLI): `add` and `del` change one,
//! `list` shows them, `sync` replaces them all with a JSON list (a file or stdin).

use std::net::IpAddr;
use std::path::Path;

use clap::Args;
use podnet::blocking::Node;
use podnet::{Affinity, Endpoint, Error, Protocol, Result, Service, ServicePort, TrafficPolicy};
use serde_json::json;

use super::{read_input, records_commands, Target};
use crate::output::{emit, emit_json, join, Table, EXIT_OK};

records_commands! {
    /// Service commands.
    ServiceCmd(ServiceAddArgs) {
        add: "Add or replace one service.",
        del: "Remove one service (an unknown name is success).",
        name: "Service name.",
        list: "Show the node's services.",
        sync: "Make the node's services exactly those in FILE (`-` reads stdin).",
        file: "JSON array of services as the library serializes them (see docs/cli.md).",
    }
}

/// Arguments of `podnet service add`.
#[derive(Args, Debug)]
pub struct ServiceAddArgs {
    /// Service name, e.g. default/web.
    pub name: String,
    /// ClusterIP, one per family (repeat or comma-separate).
    #[arg(long = "cluster-ip", value_name = "IP", required = true, value_delimiter = ',')]
    pub cluster_ip: Vec<IpAddr>,
    /// PORT:TARGETPORT[:NODEPORT][/tcp|udp|sctp], e.g. 80:8080, 53:53/udp, 80:8080:30080.
    #[arg(long = "port", value_name = "SPEC", required = true, value_parser = parse_port)]
    pub port: Vec<ServicePort>,
    /// External IP (repeat or comma-separate).
    #[arg(long = "external-ip", value_name = "IP", value_delimiter = ',')]
    pub external_ip: Vec<IpAddr>,
    /// IP[,local][,notready]: an endpoint (ready, on another node unless flagged).
    #[arg(long = "endpoint", value_name = "SPEC", value_parser = parse_endpoint)]
    pub endpoint: Vec<Endpoint>,
    /// ClientIP session affinity with this timeout in seconds (1..=86400).
    #[arg(long = "affinity-timeout", value_name = "SECS")]
    pub affinity_timeout: Option<u32>,
    /// External traffic policy: cluster or local.
    #[arg(long = "traffic-policy", value_name = "POLICY", default_value = "cluster", value_parser = parse_policy)]
    pub traffic_policy: TrafficPolicy,
}

fn parse_port(s: &str) -> std::result::Result<ServicePort, String> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let protocol: Protocol = proto.parse().map_err(|e: podnet::Error| e.cause_message())?;
    let nums: Vec<u16> = ports
        .split(':')
        .map(|p| p.parse::<u16>().ok().filter(|n| *n != 0).ok_or_else(|| format!("{p:?} is not a port (1..=65535)")))
        .collect::<std::result::Result<_, _>>()?;
    match nums[..] {
        [port, target_port] => Ok(ServicePort { protocol, port, target_port, node_port: None }),
        [port, target_port, np] => Ok(ServicePort { protocol, port, target_port, node_port: Some(np) }),
        _ => Err("expected PORT:TARGETPORT[:NODEPORT][/PROTOCOL]".into()),
    }
}

fn parse_endpoint(s: &str) -> std::result::Result<Endpoint, String> {
    let mut parts = s.split(',');
    let ip = parts.next().unwrap_or_default();
    let ip: IpAddr = ip.parse().map_err(|_| format!("{ip:?} is not an IP address"))?;
    let mut e = Endpoint { ip, ports: vec![], ready: true, local: false };
    for f in parts {
        match f {
            "local" => e.local = true,
            "notready" => e.ready = false,
            f => return Err(format!("unknown endpoint flag {f:?} (local, notready)")),
        }
    }
    Ok(e)
}

fn parse_policy(s: &str) -> std::result::Result<TrafficPolicy, String> {
    match s {
        "cluster" => Ok(TrafficPolicy::Cluster),
        "local" => Ok(TrafficPolicy::Local),
        _ => Err(format!("{s:?}: expected cluster or local")),
    }
}

fn add(t: &Target, a: ServiceAddArgs) -> Result<i32> {
    let (_, node) = t.open()?;
    node.set_service(&service(a))?;
    changed(t, &node)
}

fn del(t: &Target, name: &str) -> Result<i32> {
    let (_, node) = t.open()?;
    node.remove_service(name)?;
    changed(t, &node)
}

fn list(t: &Target) -> Result<i32> {
    t.list(Node::list_services, |svcs| table(svcs))
}

fn sync(t: &Target, file: &Path) -> Result<i32> {
    let (_, node) = t.open()?;
    node.sync_services(&load(file)?)?;
    changed(t, &node)
}

/// After a change: the node's services, as a table, or their count and names in JSON.
fn changed(t: &Target, node: &Node) -> Result<i32> {
    let svcs = node.list_services()?;
    if t.json {
        let names: Vec<&str> = svcs.iter().map(|s| s.name.as_str()).collect();
        emit_json(&json!({"services": svcs.len(), "names": names}))?;
    } else {
        emit(&table(&svcs))?;
    }
    Ok(EXIT_OK)
}

fn service(a: ServiceAddArgs) -> Service {
    Service {
        name: a.name,
        cluster_ips: a.cluster_ip,
        ports: a.port,
        external_ips: a.external_ip,
        endpoints: a.endpoint,
        affinity: a.affinity_timeout.map_or(Affinity::None, |timeout_secs| Affinity::ClientIp { timeout_secs }),
        external_traffic_policy: a.traffic_policy,
    }
}

/// The services in `file` (`-`: stdin).
fn load(file: &Path) -> Result<Vec<Service>> {
    let data = read_input(file, "service list")?;
    serde_json::from_slice(&data).map_err(|e| {
        Error::invalid(
            format!("parse service list {}", file.display()),
            format!("{e} (expected a JSON array of services, see docs/cli.md)"),
        )
    })
}

/// Services as a table: NAME, CLUSTER IPS, PORTS, EXTERNAL IPS, ENDPOINTS (ready/all), POLICY.
fn table(svcs: &[Service]) -> String {
    let mut t = Table::new(&["NAME", "CLUSTER IPS", "PORTS", "EXTERNAL IPS", "ENDPOINTS", "AFFINITY", "POLICY"]);
    for s in svcs {
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|p| match p.node_port {
                Some(n) => format!("{}:{}:{n}/{}", p.port, p.target_port, p.protocol),
                None => format!("{}:{}/{}", p.port, p.target_port, p.protocol),
            })
            .collect();
        let ready = s.endpoints.iter().filter(|e| e.ready).count();
        let affinity = match s.affinity {
            Affinity::None => "-".to_string(),
            Affinity::ClientIp { timeout_secs } => format!("{timeout_secs}s"),
        };
        let policy = match s.external_traffic_policy {
            TrafficPolicy::Cluster => "cluster",
            TrafficPolicy::Local => "local",
        };
        t.row(vec![
            s.name.clone(),
            join(&s.cluster_ips),
            ports.join(","),
            join(&s.external_ips),
            format!("{ready}/{}", s.endpoints.len()),
            affinity,
            policy.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let p = parse_port("80:8080:30080/udp").unwrap();
        assert_eq!((p.protocol, p.port, p.target_port, p.node_port), (Protocol::Udp, 80, 8080, Some(30080)));
        assert_eq!(parse_port("80:8080").unwrap().protocol, Protocol::Tcp);
        assert!(parse_port("80").is_err());
        assert!(parse_port("0:80").is_err());
        assert!(parse_port("80:81/icmp").is_err());
        let e = parse_endpoint("fd00::5,local,notready").unwrap();
        assert!(e.local && !e.ready && e.ip.is_ipv6());
        assert!(parse_endpoint("10.0.0.1,far").is_err());
        assert!(parse_policy("local").is_ok() && parse_policy("Local").is_err());
    }
}
