//! What a runtime hands the plugin: the CNI_* environment, the network configuration on stdin
//! (podnet's node settings, host-local's `ipam` block, capability args, prevResult, GC's valid
//! attachments), and how both map to podnet's `NodeConfig` and `SandboxSpec`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use podnet::{NetnsSpec, NodeConfig, PoolConfig, PortMapping, Protocol, SandboxSpec};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{code, CniError};

/// The CNI versions this plugin accepts, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A CNI spec version this plugin speaks. Ordered: features compare with `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.3.0
    V0_3_0,
    /// 0.3.1
    V0_3_1,
    /// 0.4.0: CHECK.
    V0_4_0,
    /// 1.0.0: no `version` in result IPs.
    V1_0_0,
    /// 1.1.0: GC, STATUS, interface `mtu`.
    V1_1_0,
}

impl Version {
    /// Parse a `cniVersion` string.
    pub fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "0.3.0" => Version::V0_3_0,
            "0.3.1" => Version::V0_3_1,
            "0.4.0" => Version::V0_4_0,
            "1.0.0" => Version::V1_0_0,
            "1.1.0" => Version::V1_1_0,
            _ => return None,
        })
    }

    /// The version string.
    pub fn as_str(self) -> &'static str {
        SUPPORTED_VERSIONS[self as usize]
    }
}

/// The `CNI_*` environment of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: Option<String>,
}

impl Env {
    /// Read the process environment (empty values count as absent).
    pub fn from_process() -> Env {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
        }
    }

    /// CNI_CONTAINERID, required and in the spec's alphabet.
    pub fn container_id(&self) -> Result<&str, CniError> {
        let id = self
            .container_id
            .as_deref()
            .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_CONTAINERID is required"))?;
        let ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_CONTAINERID {id:?} must be [A-Za-z0-9][A-Za-z0-9_.-]*"),
            ));
        }
        Ok(id)
    }

    /// CNI_IFNAME, required and a valid Linux interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let n = self.ifname.as_deref().ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_IFNAME is required"))?;
        podnet::validate_ifname(n).map_err(|m| CniError::new(code::INVALID_ENV, format!("CNI_IFNAME: {m}")))?;
        Ok(n)
    }

    /// CNI_NETNS, required (ADD, CHECK) and absolute.
    pub fn netns(&self) -> Result<&std::path::Path, CniError> {
        let p = self.netns.as_deref().ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_NETNS is required"))?;
        if !p.is_absolute() {
            return Err(CniError::new(code::INVALID_ENV, format!("CNI_NETNS {} is not an absolute path", p.display())));
        }
        Ok(p)
    }

    /// CNI_ARGS as key/value pairs (`K1=V1;K2=V2`).
    pub fn cni_args(&self) -> Result<BTreeMap<String, String>, CniError> {
        let mut out = BTreeMap::new();
        for pair in self.args.as_deref().unwrap_or("").split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| CniError::new(code::INVALID_ENV, format!("CNI_ARGS: {pair:?} is not KEY=VALUE")))?;
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }
}

/// The sandbox id of one attachment (CNI_CONTAINERID, CNI_IFNAME): the container id itself for
/// `eth0` (so `podnet sandbox list` shows the runtime's id); otherwise, or when the container id
/// breaks podnet's id rules (length, `..`), a readable prefix plus a hash of both, so two
/// attachments never share an id and the result stays within 128 bytes.
pub fn sandbox_id(container_id: &str, ifname: &str) -> String {
    if ifname == "eth0" && podnet::validate_name(container_id, "id").is_ok() {
        return container_id.to_string();
    }
    let h = fnv1a(format!("{container_id}\0{ifname}").as_bytes());
    let prefix: String = container_id.replace("..", "_").chars().take(80).collect();
    let ifn = ifname.replace("..", "_");
    format!("{prefix}_{ifn}-{h:016x}")
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Label keys the plugin writes on every sandbox it creates.
pub mod label {
    /// The CNI network name (GC only touches sandboxes of its own network).
    pub const NETWORK: &str = "cni.network";
    /// CNI_CONTAINERID.
    pub const CONTAINER_ID: &str = "cni.container_id";
    /// CNI_IFNAME.
    pub const IFNAME: &str = "cni.ifname";
}

/// CNI_ARGS keys kept as labels (the Kubernetes ones CRI runtimes pass).
pub const K8S_ARGS: [(&str, &str); 4] = [
    ("K8S_POD_NAMESPACE", "k8s.pod.namespace"),
    ("K8S_POD_NAME", "k8s.pod.name"),
    ("K8S_POD_UID", "k8s.pod.uid"),
    ("K8S_POD_INFRA_CONTAINER_ID", "k8s.pod.infra_container_id"),
];

/// One range of host-local's `ipam.ranges`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Range {
    subnet: String,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
struct Route {
    dst: String,
    gw: Option<IpAddr>,
}

/// host-local's config block, read (never exec'd): podnet is its own IPAM.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ipam {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    ranges: Vec<Vec<Range>>,
    subnet: Option<String>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

/// `runtimeConfig.portMappings[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortMap {
    host_port: i64,
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMap>,
    #[serde(default)]
    ips: Vec<String>,
    mac: Option<String>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// CNI_CONTAINERID of a live attachment.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// CNI_IFNAME of a live attachment.
    pub ifname: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    name: String,
    node: Option<String>,
    #[serde(rename = "podCIDRs", default)]
    pod_cidrs: Vec<String>,
    ipam: Option<Ipam>,
    mode: Option<String>,
    bridge: Option<String>,
    mtu: Option<u32>,
    state_dir: Option<PathBuf>,
    netns_dir: Option<PathBuf>,
    #[serde(rename = "clusterCIDRs", default)]
    cluster_cidrs: Vec<String>,
    egress_masquerade: Option<bool>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    args: Option<Value>,
    prev_result: Option<Value>,
    dns: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments")]
    attachments: Option<Vec<Attachment>>,
}

/// A parsed network configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// The requested version (results and errors answer in it).
    pub version: Version,
    /// Network name.
    pub name: String,
    /// The node this network is.
    pub node: NodeConfig,
    /// `prevResult` (CHECK, DEL).
    pub prev_result: Option<Value>,
    /// `dns`, passed through into the result.
    pub dns: Option<Value>,
    /// GC: the attachments to keep (None when the key is absent).
    pub valid_attachments: Option<Vec<Attachment>>,
    runtime: RuntimeConfig,
    args_ips: Vec<String>,
}

/// The `cniVersion` of a config, checked against the supported list (code 1 otherwise).
pub fn version_of(v: &Value) -> Result<Version, CniError> {
    let s = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "network config has no cniVersion"))?;
    Version::parse(s).ok_or_else(|| {
        CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("cniVersion {s:?} is not supported (supported: {})", SUPPORTED_VERSIONS.join(", ")),
        )
    })
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn unsupported(msg: impl Into<String>) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, msg)
}

fn parse_cidr(s: &str, what: &str) -> Result<IpNetwork, CniError> {
    s.parse().map_err(|e| invalid(format!("{what} {s:?}: {e}")))
}

impl NetConf {
    /// Parse the config (already decoded as JSON) into the node it describes.
    pub fn parse(v: Value) -> Result<NetConf, CniError> {
        let version = version_of(&v)?;
        let raw: Raw = serde_json::from_value(v).map_err(|e| invalid(format!("network config: {e}")))?;
        let node_name = raw.node.clone().unwrap_or_else(|| raw.name.clone());
        let mut node = NodeConfig::new(node_name);
        node.pools = pools(&raw)?;
        if let Some(m) = &raw.mode {
            node.mode = m.parse().map_err(|e: podnet::Error| invalid(e.cause_message()))?;
        }
        if let Some(b) = &raw.bridge {
            node.bridge_name = b.clone();
        }
        if let Some(m) = raw.mtu {
            node.mtu = m;
        }
        node.state_dir = raw.state_dir.clone();
        if let Some(d) = &raw.netns_dir {
            node.netns_dir = d.clone();
        }
        for c in &raw.cluster_cidrs {
            node.cluster_cidrs.push(parse_cidr(c, "clusterCIDRs entry")?);
        }
        if let Some(m) = raw.egress_masquerade {
            node.egress_masquerade = m;
        }
        node.validate().map_err(|e| invalid(e.to_string()))?;
        let args_ips = raw
            .args
            .as_ref()
            .and_then(|a| a.pointer("/cni/ips"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(NetConf {
            version,
            name: raw.name,
            node,
            prev_result: raw.prev_result,
            dns: raw.dns,
            valid_attachments: raw.valid_attachments.or(raw.attachments),
            runtime: raw.runtime_config,
            args_ips,
        })
    }

    /// The sandbox an ADD asks for: id from the attachment, the runtime's netns (adopted, never
    /// removed), requested IPs (capability `ips`, `args.cni.ips`, CNI_ARGS `IP`), host ports
    /// (capability `portMappings`) and labels (the network, the attachment, the pod).
    pub fn sandbox_spec(&self, env: &Env) -> Result<SandboxSpec, CniError> {
        let cid = env.container_id()?;
        let ifname = env.ifname()?;
        let netns = env.netns()?;
        let args = env.cni_args()?;
        let mut spec = SandboxSpec::new(sandbox_id(cid, ifname));
        // Capability `mac`, or CNI_ARGS `MAC` as the bridge plugin reads it.
        if let Some(mac) = self.runtime.mac.as_deref().or(args.get("MAC").map(String::as_str)) {
            spec.mac = Some(
                podnet::parse_mac(mac)
                    .ok_or_else(|| invalid(format!("MAC address {mac:?}: want xx:xx:xx:xx:xx:xx")))?,
            );
        }
        spec.ifname = ifname.to_string();
        spec.netns = NetnsSpec::Path(netns.to_path_buf());
        let mut wanted: Vec<&str> = self.runtime.ips.iter().map(String::as_str).collect();
        wanted.extend(self.args_ips.iter().map(String::as_str));
        if let Some(ip) = args.get("IP") {
            wanted.extend(ip.split(',').filter(|s| !s.is_empty()));
        }
        for w in wanted {
            let ip: IpAddr = match w.parse::<IpNetwork>() {
                Ok(n) => n.ip(),
                Err(_) => w.parse().map_err(|_| invalid(format!("requested IP {w:?} is not an address")))?,
            };
            if !spec.ips.contains(&ip) {
                spec.ips.push(ip);
            }
        }
        for m in &self.runtime.port_mappings {
            spec.ports.push(port_mapping(m)?);
        }
        spec.labels.insert(label::NETWORK.into(), self.name.clone());
        spec.labels.insert(label::CONTAINER_ID.into(), cid.to_string());
        spec.labels.insert(label::IFNAME.into(), ifname.to_string());
        for (arg, key) in K8S_ARGS {
            if let Some(v) = args.get(arg) {
                spec.labels.insert(key.to_string(), v.clone());
            }
        }
        spec.validate(&self.node).map_err(|e| invalid(e.to_string()))?;
        Ok(spec)
    }

    /// The sandbox ids GC keeps: one per valid attachment.
    pub fn valid_ids(&self) -> HashSet<String> {
        self.valid_attachments.iter().flatten().map(|a| sandbox_id(&a.container_id, &a.ifname)).collect()
    }
}

fn port_mapping(m: &PortMap) -> Result<PortMapping, CniError> {
    let port = |p: i64, what: &str| -> Result<u16, CniError> {
        u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(format!("portMappings: {what} {p} is not 1..65535")))
    };
    let protocol = if m.protocol.is_empty() {
        Protocol::Tcp
    } else {
        m.protocol.parse().map_err(|e: podnet::Error| invalid(format!("portMappings: {}", e.cause_message())))?
    };
    let host_ip = match m.host_ip.as_str() {
        "" => None,
        s => {
            let ip: IpAddr = s.parse().map_err(|_| invalid(format!("portMappings: hostIP {s:?} is not an address")))?;
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    Ok(PortMapping {
        protocol,
        host_ip,
        host_port: port(m.host_port, "hostPort")?,
        container_port: port(m.container_port, "containerPort")?,
    })
}

/// Pod CIDRs from `podCIDRs` or host-local's `ipam` block (one range set per family, one range
/// per set: podnet has one pool per family).
fn pools(raw: &Raw) -> Result<Vec<PoolConfig>, CniError> {
    match (&raw.ipam, raw.pod_cidrs.is_empty()) {
        (Some(_), false) => Err(invalid("give either podCIDRs or an ipam block, not both")),
        (None, true) => Err(invalid("podCIDRs or an ipam block with ranges is required")),
        (None, false) => raw.pod_cidrs.iter().map(|c| Ok(PoolConfig::new(parse_cidr(c, "podCIDRs entry")?))).collect(),
        (Some(ipam), true) => {
            if let Some(t) = ipam.ty.as_deref().filter(|t| *t != "host-local") {
                return Err(unsupported(format!(
                    "ipam type {t:?}: podnet allocates addresses itself and reads only host-local's format"
                )));
            }
            let mut sets = ipam.ranges.clone();
            if let Some(s) = &ipam.subnet {
                sets.push(vec![Range {
                    subnet: s.clone(),
                    range_start: ipam.range_start,
                    range_end: ipam.range_end,
                    gateway: ipam.gateway,
                }]);
            }
            if sets.is_empty() {
                return Err(invalid("ipam: ranges is empty"));
            }
            let mut out = vec![];
            for set in &sets {
                let [r] = set.as_slice() else {
                    return Err(unsupported(format!(
                        "ipam: a range set with {} ranges; podnet takes exactly one range per set",
                        set.len()
                    )));
                };
                let cidr = parse_cidr(&r.subnet, "ipam subnet")?;
                let cidr = IpNetwork::new(cidr.network(), cidr.prefix()).map_err(|e| invalid(e.to_string()))?;
                if let Some(gw) = r.gateway {
                    let first = podnet::PoolConfig::checked(cidr).map_err(invalid).map(|_| first_host(cidr))?;
                    if gw != first {
                        return Err(unsupported(format!(
                            "ipam gateway {gw}: podnet's gateway is the subnet's first address ({first})"
                        )));
                    }
                }
                out.push(PoolConfig { cidr, range_start: r.range_start, range_end: r.range_end, reserved: vec![] });
            }
            for rt in &ipam.routes {
                let dst = parse_cidr(&rt.dst, "ipam route dst")?;
                let is_default = dst.prefix() == 0;
                let gw_ok = rt.gw.is_none_or(|g| out.iter().any(|p| first_host(p.cidr) == g));
                if !is_default || !gw_ok {
                    return Err(unsupported(format!(
                        "ipam route {}: podnet installs only the default route via its gateway",
                        rt.dst
                    )));
                }
            }
            Ok(out)
        }
    }
}

/// The subnet's first host address: podnet's gateway.
fn first_host(cidr: IpNetwork) -> IpAddr {
    match cidr {
        IpNetwork::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNetwork::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    }
}

/// Usable pod addresses of a pool (for STATUS): its range minus network, gateway and broadcast.
pub fn pool_capacity(p: &PoolConfig) -> u128 {
    let (base, bits) = match p.cidr {
        IpNetwork::V4(n) => (u32::from(n.network()) as u128, 32u32),
        IpNetwork::V6(n) => (u128::from(n.network()), 128u32),
    };
    let host_bits = bits - p.cidr.prefix() as u32;
    if host_bits <= 1 {
        return host_bits as u128;
    }
    let last_addr = base.saturating_add(if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 });
    let mut first = base + 2;
    let mut last = if p.cidr.is_ipv4() { last_addr - 1 } else { last_addr };
    let num = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    };
    if let Some(s) = p.range_start {
        first = first.max(num(s));
    }
    if let Some(e) = p.range_end {
        last = last.min(num(e));
    }
    (last + 1).saturating_sub(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The network config comes from the runtime's stdin: mutated configs (bytes flipped,
    /// truncated, random values in every field) are refused with an error or read, never panic.
    #[test]
    fn untrusted_configs_never_panic() {
        let mut rng = podnet_world::Rng(0x706f_646e_6574_0004);
        let good = json!({"cniVersion": "1.0.0", "name": "podnet", "type": "podnet", "podCIDRs": ["10.88.0.0/24", "fd00:88::/64"],
            "mode": "bridge", "mtu": 1500, "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "10.0.0.1"}], "ips": ["10.88.0.9"]},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10"}]]}})
        .to_string()
        .into_bytes();
        for _ in 0..podnet_world::fuzz_iterations() / 4 {
            let mut b = good.clone();
            for _ in 0..=rng.next_u64() % 4 {
                let j = (rng.next_u64() as usize) % b.len();
                match rng.next_u64() % 3 {
                    0 => b[j] = rng.next_u64() as u8,
                    1 => b[j] = b"0123456789-.:/[]{}\",eatrunl"[(rng.next_u64() % 20) as usize],
                    _ => b.truncate(j.max(1)),
                }
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                let _ = NetConf::parse(v);
            }
        }
    }

    fn env() -> Env {
        Env {
            command: Some("ADD".into()),
            container_id: Some("c1".into()),
            netns: Some("/run/netns/x".into()),
            ifname: Some("eth0".into()),
            args: Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=u-1".into()),
        }
    }

    #[test]
    fn ids() {
        assert_eq!(sandbox_id("abc", "eth0"), "abc");
        let a = sandbox_id("abc", "net1");
        assert_ne!(a, sandbox_id("abc_net1", "eth0"));
        assert!(podnet::validate_name(&a, "id").is_ok(), "{a}");
        let long = "x".repeat(200);
        let l = sandbox_id(&long, "eth0");
        assert!(l.len() <= podnet::MAX_ID_LEN && podnet::validate_name(&l, "id").is_ok(), "{l}");
        assert_ne!(l, sandbox_id(&"x".repeat(201), "eth0"));
        assert!(podnet::validate_name(&sandbox_id("a..b", "eth0"), "id").is_ok());
    }

    #[test]
    fn host_local_ipam_and_capabilities() {
        let c = NetConf::parse(json!({
            "cniVersion": "0.4.0", "name": "net", "type": "podnet",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10",
                "gateway": "10.1.0.1"}], [{"subnet": "fd00::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp",
                "hostIP": "192.0.2.1"}], "ips": ["10.1.0.20/24"]}
        }))
        .unwrap();
        assert_eq!(c.version, Version::V0_4_0);
        assert_eq!(c.node.pools.len(), 2);
        assert_eq!(c.node.pools[0].range_start, Some("10.1.0.10".parse().unwrap()));
        let s = c.sandbox_spec(&env()).unwrap();
        assert_eq!(s.id, "c1");
        assert_eq!(s.ips, vec!["10.1.0.20".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.ports[0].protocol, Protocol::Udp);
        assert_eq!(s.ports[0].host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(s.labels["k8s.pod.name"], "web-0");
        assert_eq!(s.labels["k8s.pod.namespace"], "default");
        assert_eq!(s.labels[label::NETWORK], "net");
        assert_eq!(s.netns, NetnsSpec::Path("/run/netns/x".into()));
    }

    #[test]
    fn bad_configs() {
        let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "podnet", "podCIDRs": ["10.0.0.0/24"]});
        assert!(NetConf::parse(base.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            NetConf::parse(b).unwrap_err().code
        };
        assert_eq!(with("cniVersion", json!("0.2.0")), code::INCOMPATIBLE_VERSION);
        assert_eq!(with("podCIDRs", json!(["10.0.0.5/24"])), code::INVALID_CONFIG);
        assert_eq!(with("podCIDRs", json!(["nope"])), code::INVALID_CONFIG);
        assert_eq!(with("mode", json!("vlan")), code::INVALID_CONFIG);
        assert_eq!(with("ipam", json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]})), code::INVALID_CONFIG);
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove("podCIDRs");
        b["ipam"] = json!({"type": "dhcp"});
        assert_eq!(NetConf::parse(b.clone()).unwrap_err().code, code::UNSUPPORTED_FIELD);
        b["ipam"] = json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.0.254"}]]});
        assert_eq!(NetConf::parse(b.clone()).unwrap_err().code, code::UNSUPPORTED_FIELD);
        b["ipam"] = json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "192.168.0.0/16"}]});
        assert_eq!(NetConf::parse(b).unwrap_err().code, code::UNSUPPORTED_FIELD);
        let mut m = base.clone();
        m["runtimeConfig"] = json!({"mac": "02:00:00:00:0A:01"});
        assert_eq!(NetConf::parse(m.clone()).unwrap().sandbox_spec(&env()).unwrap().mac, Some([2, 0, 0, 0, 10, 1]));
        for bad in ["02:00:00:00:00", "02:00:00:00:00:0g", "03:00:00:00:00:01", "00:00:00:00:00:00", "020000000001"] {
            m["runtimeConfig"] = json!({"mac": bad});
            assert_eq!(
                NetConf::parse(m.clone()).unwrap().sandbox_spec(&env()).unwrap_err().code,
                code::INVALID_CONFIG,
                "{bad}"
            );
        }
        let mut p = base;
        p["runtimeConfig"] = json!({"portMappings": [{"hostPort": 70000, "containerPort": 80}]});
        assert_eq!(NetConf::parse(p).unwrap().sandbox_spec(&env()).unwrap_err().code, code::INVALID_CONFIG);
    }

    #[test]
    fn env_validation() {
        let mut e = env();
        e.container_id = Some("a/b".into());
        assert_eq!(e.container_id().unwrap_err().code, code::INVALID_ENV);
        e.ifname = Some("much-too-long-name".into());
        assert_eq!(e.ifname().unwrap_err().code, code::INVALID_ENV);
        e.args = Some("novalue".into());
        assert_eq!(e.cni_args().unwrap_err().code, code::INVALID_ENV);
        e.netns = Some("relative".into());
        assert_eq!(e.netns().unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn capacity() {
        let p = PoolConfig::new("10.0.0.0/24".parse().unwrap());
        assert_eq!(pool_capacity(&p), 253);
        let mut r = p.clone();
        r.range_start = Some("10.0.0.250".parse().unwrap());
        assert_eq!(pool_capacity(&r), 5);
        assert_eq!(pool_capacity(&PoolConfig::new("fd00::/120".parse().unwrap())), 254);
    }
}
