//! flannel's etcd formats, exactly: the network config (`<prefix>/config`), the subnet key names
//! (`<prefix>/subnets/10.244.1.0-24`, dual stack `...-24&fd00:10:0:1::-64`) and the lease value
//! (flannel's `LeaseAttrs` JSON), so podnet and flannel nodes read and write the same keys.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

/// flannel's default etcd prefix.
pub const DEFAULT_PREFIX: &str = "/coreos.com/network";

/// The Linux kernel's default VXLAN port, which flannel uses when `Backend.Port` is 0 or absent.
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

/// How many free subnets the random pick chooses among (flannel: 100).
pub const PICK_AMONG: usize = 100;

/// How the nodes reach each other's pods (flannel's `Backend.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Backend {
    /// VXLAN overlay (`"vxlan"`).
    Vxlan {
        /// VNI (flannel default 1).
        vni: u32,
        /// UDP port (flannel default: the kernel's 8472).
        port: u16,
        /// Route directly over the underlay to peers on the same L2 segment (flannel's
        /// `DirectRouting`).
        direct_routing: bool,
    },
    /// Routes via the peer's public IP, peers on one L2 segment (`"host-gw"`).
    HostGw,
}

impl Backend {
    /// flannel's name of the backend (`BackendType` in a lease).
    pub fn type_name(&self) -> &'static str {
        match self {
            Backend::Vxlan { .. } => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

/// The IPv6 half of a dual-stack network config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ipv6Pool {
    /// `IPv6Network`.
    pub network: Ipv6Network,
    /// `IPv6SubnetLen` (default 64, or the network's length + 2 when the network is smaller
    /// than a /62).
    pub subnet_len: u8,
    /// First subnet handed out (default: the second subnet of the network).
    pub subnet_min: Ipv6Addr,
    /// Last subnet handed out (default: the last subnet of the network).
    pub subnet_max: Ipv6Addr,
}

/// flannel's net-conf (`<prefix>/config`), validated and with flannel's defaults filled in
/// (`CheckNetworkConfig`). IPv4 is required: flannel's etcd keys are named by the IPv4 subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetConfig {
    /// `Network`: the cluster's IPv4 pod range.
    pub network: Ipv4Network,
    /// `SubnetLen` (default 24, or the network's length + 2 when the network is smaller than a
    /// /22).
    pub subnet_len: u8,
    /// `SubnetMin` (default: the second subnet; the first is skipped as flannel does).
    pub subnet_min: Ipv4Addr,
    /// `SubnetMax` (default: the last subnet).
    pub subnet_max: Ipv4Addr,
    /// `EnableIPv6` with `IPv6Network`.
    pub ipv6: Option<Ipv6Pool>,
    /// `Backend`.
    pub backend: Backend,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "Network")]
    network: Option<String>,
    #[serde(rename = "SubnetLen")]
    subnet_len: Option<u32>,
    #[serde(rename = "SubnetMin")]
    subnet_min: Option<String>,
    #[serde(rename = "SubnetMax")]
    subnet_max: Option<String>,
    #[serde(rename = "IPv6Network")]
    ipv6_network: Option<String>,
    #[serde(rename = "IPv6SubnetLen")]
    ipv6_subnet_len: Option<u32>,
    #[serde(rename = "IPv6SubnetMin")]
    ipv6_subnet_min: Option<String>,
    #[serde(rename = "IPv6SubnetMax")]
    ipv6_subnet_max: Option<String>,
    #[serde(rename = "Backend")]
    backend: Option<RawBackend>,
}

#[derive(Deserialize)]
struct RawBackend {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "VNI")]
    vni: Option<u32>,
    #[serde(rename = "Port")]
    port: Option<u16>,
    #[serde(rename = "DirectRouting")]
    direct_routing: Option<bool>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// One family's pool fields in net-conf, with their names and flannel's default.
struct PoolFields<'a> {
    network: &'a Option<String>,
    len: Option<u32>,
    min: &'a Option<String>,
    max: &'a Option<String>,
    /// The fields' names, for errors: network, subnet length, subnet min, subnet max.
    names: [&'static str; 4],
    /// flannel's subnet length in a network large enough for it.
    default_len: u8,
    /// The error when the network is missing.
    missing: &'static str,
}

impl RawConfig {
    fn v4(&self) -> PoolFields<'_> {
        PoolFields {
            network: &self.network,
            len: self.subnet_len,
            min: &self.subnet_min,
            max: &self.subnet_max,
            names: ["Network", "SubnetLen", "SubnetMin", "SubnetMax"],
            default_len: 24,
            missing: "Network is missing",
        }
    }

    fn v6(&self) -> PoolFields<'_> {
        PoolFields {
            network: &self.ipv6_network,
            len: self.ipv6_subnet_len,
            min: &self.ipv6_subnet_min,
            max: &self.ipv6_subnet_max,
            names: ["IPv6Network", "IPv6SubnetLen", "IPv6SubnetMin", "IPv6SubnetMax"],
            default_len: 64,
            missing: "EnableIPv6 is true but IPv6Network is missing",
        }
    }
}

/// One family's pool: its network, which must have no host bits set, and its subnets (see
/// [`subnets`]).
fn pool<N>(f: &PoolFields<'_>) -> Result<(N, u8, u128, u128), String>
where
    N: FromStr + Into<IpNetwork> + Copy + fmt::Display,
    N::Err: fmt::Display,
{
    let net_name = f.names[0];
    let network: N = nonempty(f.network).ok_or(f.missing)?.parse().map_err(|e| format!("{net_name}: {e}"))?;
    let net: IpNetwork = network.into();
    if net.ip() != net.network() {
        return Err(format!("{net_name} {network} has host bits set"));
    }
    let (len, min, max) = subnets(net, f)?;
    Ok((network, len, min, max))
}

/// The subnets of one family's pool in `network`: their length (the given one, else flannel's
/// default, or two bits more than the network's prefix for a small network) and the first and
/// last subnet as numbers (the given `SubnetMin`/`SubnetMax`, which must be subnet boundaries
/// inside the network, else the second subnet, flannel skips the first, and the last).
fn subnets(network: IpNetwork, f: &PoolFields<'_>) -> Result<(u8, u128, u128), String> {
    let [net_name, len_name, min_name, max_name] = f.names;
    let default_len = f.default_len;
    let bits: u32 = if network.is_ipv4() { 32 } else { 128 };
    let prefix = u32::from(network.prefix());
    let subnet_len = match f.len.filter(|l| *l > 0) {
        Some(l) if l > bits - 2 => return Err(format!("{len_name} must be less than /{}", bits - 1)),
        Some(l) if l < prefix + 2 => {
            return Err(format!("{net_name} must be able to hold at least four subnets of {len_name}"))
        }
        Some(l) => l as u8,
        None if prefix > bits - 4 => {
            return Err(format!("{net_name} is too small: the smallest useful prefix is /{}", bits - 4))
        }
        None if prefix <= u32::from(default_len) - 2 => default_len,
        None => (prefix + 2) as u8,
    };
    let number = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let size = 1u128 << (bits - u32::from(subnet_len));
    let base = number(network.network());
    let span = 1u128.checked_shl(bits - prefix).unwrap_or(0);
    let last = base.wrapping_add(span).wrapping_sub(size);
    let bound = |s: Option<&str>, what: &str, default: u128| -> Result<u128, String> {
        let Some(s) = s else { return Ok(default) };
        let a: IpAddr = s.parse().map_err(|e| format!("{what}: {e}"))?;
        if !network.contains(a) {
            return Err(format!("{what} {a} is not in {net_name} {network}"));
        }
        if number(a) % size != 0 {
            return Err(format!("{what} {a} is not on a /{subnet_len} boundary"));
        }
        Ok(number(a))
    };
    let min = bound(nonempty(f.min), min_name, base + size)?;
    let max = bound(nonempty(f.max), max_name, last)?;
    if min > max {
        return Err(format!("{min_name} is above {max_name}"));
    }
    Ok((subnet_len, min, max))
}

impl NetConfig {
    /// Parse and check flannel's net-conf JSON; the error says which field is wrong.
    pub fn parse(json: &[u8]) -> Result<NetConfig, String> {
        let raw: RawConfig = serde_json::from_slice(json).map_err(|e| format!("not flannel net-conf JSON: {e}"))?;
        if raw.enable_ipv4 == Some(false) {
            return Err("EnableIPv4 is false: flannel's etcd layout names leases by their IPv4 subnet, so an IPv6-only network cannot be leased through etcd".into());
        }
        let (network, subnet_len, min, max) = pool::<Ipv4Network>(&raw.v4())?;
        let ipv6 = match raw.enable_ipv6 {
            Some(true) => {
                let (network, subnet_len, min, max) = pool::<Ipv6Network>(&raw.v6())?;
                Some(Ipv6Pool { network, subnet_len, subnet_min: Ipv6Addr::from(min), subnet_max: Ipv6Addr::from(max) })
            }
            _ => None,
        };
        let backend = match &raw.backend {
            None => return Err("Backend is missing (flannel would default to \"udp\", which podnet does not implement; use vxlan or host-gw)".into()),
            Some(b) => match b.kind.as_deref().unwrap_or("udp") {
                "vxlan" => Backend::Vxlan {
                    vni: b.vni.unwrap_or(1),
                    port: b.port.filter(|p| *p != 0).unwrap_or(DEFAULT_VXLAN_PORT),
                    direct_routing: b.direct_routing.unwrap_or(false),
                },
                "host-gw" => Backend::HostGw,
                other => return Err(format!("Backend.Type {other:?} is not supported (vxlan or host-gw)")),
            },
        };
        Ok(NetConfig {
            network,
            subnet_len,
            subnet_min: Ipv4Addr::from(min as u32),
            subnet_max: Ipv4Addr::from(max as u32),
            ipv6,
            backend,
        })
    }

    /// Whether `sn` could have been handed out under this config (flannel's
    /// `isSubnetConfigCompat`): right length, between `SubnetMin` and `SubnetMax`.
    pub fn compatible(&self, sn: &SubnetKey) -> bool {
        let v4 = sn.v4.prefix() == self.subnet_len
            && sn.v4.network() >= self.subnet_min
            && sn.v4.network() <= self.subnet_max;
        let v6 = match (&self.ipv6, &sn.v6) {
            (None, None) => true,
            (Some(p), Some(s)) => {
                s.prefix() == p.subnet_len && s.network() >= p.subnet_min && s.network() <= p.subnet_max
            }
            _ => false,
        };
        v4 && v6
    }

    /// The first `limit` free IPv4 subnets from `SubnetMin` up, skipping any that overlap `taken`.
    pub fn free_v4(&self, taken: &[Ipv4Network], limit: usize) -> Vec<Ipv4Network> {
        let size = 1u64 << (32 - u32::from(self.subnet_len));
        let mut out = vec![];
        let mut a = u64::from(u32::from(self.subnet_min));
        while a <= u64::from(u32::from(self.subnet_max)) && out.len() < limit {
            let sn = Ipv4Network::new(Ipv4Addr::from(a as u32), self.subnet_len).expect("valid prefix");
            if !taken.iter().any(|t| t.overlaps(sn)) {
                out.push(sn);
            }
            a += size;
        }
        out
    }

    /// The first `limit` free IPv6 subnets, as [`NetConfig::free_v4`].
    pub fn free_v6(&self, taken: &[Ipv6Network], limit: usize) -> Vec<Ipv6Network> {
        let Some(p) = &self.ipv6 else { return vec![] };
        let size = 1u128 << (128 - u32::from(p.subnet_len));
        let mut out = vec![];
        let mut a = u128::from(p.subnet_min);
        while a <= u128::from(p.subnet_max) && out.len() < limit {
            let sn = Ipv6Network::new(Ipv6Addr::from(a), p.subnet_len).expect("valid prefix");
            if !taken.iter().any(|t| t.overlaps(sn)) {
                out.push(sn);
            }
            match a.checked_add(size) {
                Some(n) => a = n,
                None => break,
            }
        }
        out
    }
}

/// A lease's subnets, as named by its key (`10.244.1.0-24` or `10.244.1.0-24&fd00::-64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubnetKey {
    /// The IPv4 subnet.
    pub v4: Ipv4Network,
    /// The IPv6 subnet of a dual-stack lease.
    pub v6: Option<Ipv6Network>,
}

impl SubnetKey {
    /// The key's last component, flannel's `MakeSubnetKey`.
    pub fn name(&self) -> String {
        let mut s = format!("{}-{}", self.v4.network(), self.v4.prefix());
        if let Some(v6) = &self.v6 {
            s.push_str(&format!("&{}-{}", v6.network(), v6.prefix()));
        }
        s
    }

    /// The key under `prefix` (`<prefix>/subnets/<name>`).
    pub fn key(&self, prefix: &str) -> String {
        format!("{}/subnets/{}", prefix.trim_end_matches('/'), self.name())
    }

    /// A peer name for the lease: the IPv4 part of the key (`10.244.1.0-24`), unique per lease
    /// and made of characters podnet accepts in names.
    pub fn peer_name(&self) -> String {
        format!("{}-{}", self.v4.network(), self.v4.prefix())
    }

    /// Parse a key name or a whole key (`.../subnets/10.244.1.0-24`); `None` for anything else.
    pub fn parse(key: &str) -> Option<SubnetKey> {
        let name = key.rsplit('/').next()?;
        let (a, b) = match name.split_once('&') {
            Some((a, b)) => (a, Some(b)),
            None => (name, None),
        };
        let (ip, len) = a.rsplit_once('-')?;
        let v4 = Ipv4Network::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
        let v6 = match b {
            Some(b) => {
                let (ip, len) = b.rsplit_once('-')?;
                Some(Ipv6Network::new(ip.parse().ok()?, len.parse().ok()?).ok()?)
            }
            None => None,
        };
        if v4.ip() != v4.network() || v6.is_some_and(|n| n.ip() != n.network()) {
            return None;
        }
        Some(SubnetKey { v4, v6 })
    }
}

/// The VXLAN backend's data in a lease (`{"VNI":1,"VtepMAC":"5a:67:18:61:6a:5d"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanData {
    /// VNI.
    #[serde(rename = "VNI")]
    pub vni: u32,
    /// The VTEP MAC, lowercase colon hex.
    #[serde(rename = "VtepMAC")]
    pub vtep_mac: String,
}

/// flannel's lease value (`LeaseAttrs`), field for field and in flannel's order so the JSON is
/// byte-identical to what flanneld writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAttrs {
    /// The node's public (underlay) IPv4 address.
    #[serde(rename = "PublicIP")]
    pub public_ip: Ipv4Addr,
    /// Its public IPv6 address (flannel writes `null` when there is none).
    #[serde(rename = "PublicIPv6", default)]
    pub public_ipv6: Option<Ipv6Addr>,
    /// `vxlan`, `host-gw`, ... (omitted when empty).
    #[serde(rename = "BackendType", default, skip_serializing_if = "String::is_empty")]
    pub backend_type: String,
    /// Backend data (omitted when absent).
    #[serde(rename = "BackendData", default, skip_serializing_if = "Option::is_none")]
    pub backend_data: Option<serde_json::Value>,
    /// Backend data for the IPv6 device (omitted when absent).
    #[serde(rename = "BackendV6Data", default, skip_serializing_if = "Option::is_none")]
    pub backend_v6_data: Option<serde_json::Value>,
}

impl LeaseAttrs {
    /// Encode as flannel does (`json.Marshal`).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("lease attrs always encode")
    }

    /// Decode a lease value.
    pub fn from_json(b: &[u8]) -> Result<LeaseAttrs, String> {
        serde_json::from_slice(b).map_err(|e| format!("not a flannel lease value: {e}"))
    }

    /// The VXLAN data, when the backend is VXLAN and the data parses.
    pub fn vxlan(&self) -> Option<VxlanData> {
        self.backend_data.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// The attributes a podnet node publishes.
    pub fn for_node(public_ip: Ipv4Addr, backend: &Backend, vtep_mac: [u8; 6], dual_stack: bool) -> LeaseAttrs {
        let data = match backend {
            Backend::Vxlan { vni, .. } => {
                Some(serde_json::to_value(VxlanData { vni: *vni, vtep_mac: format_mac(&vtep_mac) }).expect("encodes"))
            }
            Backend::HostGw => None,
        };
        LeaseAttrs {
            public_ip,
            public_ipv6: None,
            backend_type: backend.type_name().into(),
            backend_v6_data: if dual_stack { data.clone() } else { None },
            backend_data: data,
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`, as Go's `net.HardwareAddr` prints it.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parse `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures are flannel's own: Documentation/reservations.md (an etcdctl dump of a VXLAN
    // lease), pkg/subnet/etcd/registry_test.go (the value of a lease with only a public IP), the
    // dual-stack key and value of pkg/subnet/fuzz_test.go and pkg/subnet/etcd/fuzz_test.go, and
    // the net-conf example of Documentation/configuration.md.

    #[test]
    fn lease_value_is_byte_identical_to_flannels() {
        // Documentation/reservations.md
        let doc = br#"{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}"#;
        let a = LeaseAttrs::from_json(doc).unwrap();
        assert_eq!(a.public_ip, Ipv4Addr::new(192, 168, 64, 3));
        assert_eq!(a.vxlan().unwrap(), VxlanData { vni: 1, vtep_mac: "c6:d2:32:6f:8f:44".into() });
        assert_eq!(a.to_json(), doc.to_vec());
        let mine = LeaseAttrs::for_node(
            Ipv4Addr::new(192, 168, 64, 3),
            &Backend::Vxlan { vni: 1, port: 8472, direct_routing: false },
            parse_mac("c6:d2:32:6f:8f:44").unwrap(),
            false,
        );
        assert_eq!(mine.to_json(), doc.to_vec());
        // pkg/subnet/etcd/registry_test.go: a lease with only a public IP
        let bare = br#"{"PublicIP":"1.2.3.4","PublicIPv6":null}"#;
        assert_eq!(LeaseAttrs::from_json(bare).unwrap().to_json(), bare.to_vec());
        // pkg/subnet/etcd/fuzz_test.go: dual stack
        let v6 = br#"{"PublicIP":"192.168.0.1","PublicIPv6":"fc00::1"}"#;
        let a = LeaseAttrs::from_json(v6).unwrap();
        assert_eq!(a.public_ipv6, Some("fc00::1".parse().unwrap()));
        assert_eq!(a.to_json(), v6.to_vec());
        // A flannel lease written without PublicIPv6 at all still parses.
        assert!(LeaseAttrs::from_json(br#"{"PublicIP":"192.168.0.1","BackendType":"vxlan"}"#).is_ok());
        assert!(LeaseAttrs::from_json(br#"{"PublicIP":"2001:db8::1"}"#).is_err());
    }

    #[test]
    fn subnet_keys_match_flannels_names() {
        let k = SubnetKey::parse("/coreos.com/network/subnets/10.5.52.0-24").unwrap();
        assert_eq!(k.v4, "10.5.52.0/24".parse().unwrap());
        assert_eq!(k.key(DEFAULT_PREFIX), "/coreos.com/network/subnets/10.5.52.0-24");
        assert_eq!(k.peer_name(), "10.5.52.0-24");
        let d = SubnetKey::parse("10.5.1.0-24&fc00::-64").unwrap();
        assert_eq!(d.v6, Some("fc00::/64".parse().unwrap()));
        assert_eq!(d.name(), "10.5.1.0-24&fc00::-64");
        // Go prints IPv6 the RFC 5952 way, as Rust does.
        let d = SubnetKey { v4: "10.244.1.0/24".parse().unwrap(), v6: Some("fd00:10:0:1::/64".parse().unwrap()) };
        assert_eq!(d.name(), "10.244.1.0-24&fd00:10:0:1::-64");
        assert_eq!(SubnetKey::parse(&d.name()), Some(d));
        for bad in ["garbage", "", "10.5.1.0", "10.5.1.0-33", "10.5.1.1-24", "10.5.1.0-24&fc00::1-64", "10.5.1.0-24&"] {
            assert_eq!(SubnetKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn net_config_defaults_follow_flannel() {
        // The minimal VXLAN net-conf.
        let c = NetConfig::parse(br#"{ "Network": "10.5.0.0/16", "Backend": {"Type": "vxlan"}}"#).unwrap();
        assert_eq!(c.subnet_len, 24);
        assert_eq!(c.subnet_min, Ipv4Addr::new(10, 5, 1, 0));
        assert_eq!(c.subnet_max, Ipv4Addr::new(10, 5, 255, 0));
        assert_eq!(c.backend, Backend::Vxlan { vni: 1, port: 8472, direct_routing: false });
        // Documentation/configuration.md: the udp backend is refused by name; with vxlan it parses.
        let doc = "{\n\t\"Network\": \"10.0.0.0/8\",\n\t\"SubnetLen\": 20,\n\t\"SubnetMin\": \"10.10.0.0\",\n\t\"SubnetMax\": \"10.99.0.0\",\n\t\"Backend\": {\n\t\t\"Type\": \"udp\",\n\t\t\"Port\": 7890\n\t}\n}";
        assert!(NetConfig::parse(doc.as_bytes()).unwrap_err().contains("\"udp\" is not supported"));
        let vx = doc.replace("\"udp\",\n\t\t\"Port\": 7890", "\"vxlan\", \"VNI\": 7, \"Port\": 4789");
        let c = NetConfig::parse(vx.as_bytes()).unwrap();
        assert_eq!(
            (c.subnet_len, c.subnet_min, c.subnet_max),
            (20, Ipv4Addr::new(10, 10, 0, 0), Ipv4Addr::new(10, 99, 0, 0))
        );
        assert_eq!(c.backend, Backend::Vxlan { vni: 7, port: 4789, direct_routing: false });
        // A small network: SubnetLen = prefix + 2.
        let c = NetConfig::parse(br#"{"Network": "10.5.0.0/24", "Backend": {"Type": "host-gw"}}"#).unwrap();
        assert_eq!((c.subnet_len, c.backend), (26, Backend::HostGw));
        let d = NetConfig::parse(
            br#"{"EnableIPv6": true, "Network": "10.244.0.0/16", "IPv6Network": "fd00:10::/48", "Backend": {"Type": "vxlan"}}"#,
        )
        .unwrap();
        let p = d.ipv6.unwrap();
        assert_eq!((p.subnet_len, p.subnet_min), (64, "fd00:10:0:1::".parse().unwrap()));
        assert_eq!(p.subnet_max, "fd00:10:0:ffff::".parse::<Ipv6Addr>().unwrap());
        for (bad, why) in [
            (r#"{"Backend": {"Type": "vxlan"}}"#, "Network is missing"),
            (r#"{"Network": "10.5.0.0/16", "Backend": {"Type": "udp"}}"#, "not supported"),
            (r#"{"Network": "10.5.0.0/16", "SubnetLen": 31, "Backend": {"Type": "vxlan"}}"#, "/31"),
            (r#"{"Network": "10.5.0.0/16", "SubnetMin": "10.6.0.0", "Backend": {"Type": "vxlan"}}"#, "not in Network"),
            (r#"{"Network": "10.5.0.1/16", "Backend": {"Type": "vxlan"}}"#, "host bits"),
            (
                r#"{"EnableIPv6": true, "Network": "10.5.0.0/16", "Backend": {"Type": "vxlan"}}"#,
                "IPv6Network is missing",
            ),
        ] {
            let e = NetConfig::parse(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn free_subnets_skip_taken_ones_and_stop_at_the_limit() {
        let c = NetConfig::parse(br#"{"Network": "10.5.0.0/16", "Backend": {"Type": "vxlan"}}"#).unwrap();
        let taken = vec!["10.5.1.0/24".parse().unwrap(), "10.5.3.0/24".parse().unwrap()];
        let f = c.free_v4(&taken, 3);
        assert_eq!(
            f,
            vec!["10.5.2.0/24".parse().unwrap(), "10.5.4.0/24".parse().unwrap(), "10.5.5.0/24".parse().unwrap()]
        );
        assert_eq!(c.free_v4(&[], PICK_AMONG).len(), PICK_AMONG);
        assert!(c.compatible(&SubnetKey::parse("10.5.9.0-24").unwrap()));
        assert!(!c.compatible(&SubnetKey::parse("10.5.0.0-24").unwrap()));
        assert!(!c.compatible(&SubnetKey::parse("10.5.9.0-25").unwrap()));
        assert!(!c.compatible(&SubnetKey::parse("10.5.9.0-24&fd00::-64").unwrap()));
    }
}
