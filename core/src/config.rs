//! Node configuration and sandbox specifications, and the validation every input passes
//! before the first syscall.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use crate::ipam::PoolConfig;
use crate::{Error, Result};

/// Another node, as the cluster's source of truth describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    /// Node name (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// Its underlay IP.
    pub underlay_ip: IpAddr,
    /// Its pod CIDRs.
    pub pod_cidrs: Vec<IpNetwork>,
    /// Its VTEP MAC; default: derived from its name as podnet derives its own
    /// ([`vtep_mac`]), so podnet nodes agree without exchanging it.
    pub vtep_mac: Option<[u8; 6]>,
}

impl Peer {
    /// A peer with the derived VTEP MAC.
    pub fn new(name: impl Into<String>, underlay_ip: IpAddr, pod_cidrs: Vec<IpNetwork>) -> Peer {
        Peer { name: name.into(), underlay_ip, pod_cidrs, vtep_mac: None }
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.vtep_mac.unwrap_or_else(|| vtep_mac(&self.name))
    }
}

/// `names!(Type, "what", any_case: bool { Variant => "name", ... })`: the names a config enum
/// is read from (`FromStr`, ignoring ASCII case when `any_case`) and shown as (`Display`,
/// `Type::name`), from one table (the names serde uses).
macro_rules! names {
    ($ty:ident, $what:literal, any_case: $any_case:literal { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            #[doc = concat!("The ", $what, "'s name, as `FromStr` reads it.")]
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<$ty> {
                $(if s == $name || ($any_case && s.eq_ignore_ascii_case($name)) {
                    return Ok($ty::$variant);
                })+
                let names: &[&str] = &[$($name),+];
                Err(Error::invalid(
                    concat!("parse ", $what),
                    format!(concat!("unknown ", $what, " {:?} (one of {})"), s, names.join(", ")),
                ))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Longest sandbox id accepted (it becomes part of file and netns names).
pub const MAX_ID_LEN: usize = 128;
/// Linux IFNAMSIZ - 1.
pub const MAX_IFNAME_LEN: usize = 15;

/// How pods attach to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodMode {
    /// Host ends join a Linux bridge that holds the gateway address (CNI `bridge` plugin style).
    #[default]
    Bridge,
    /// No bridge: /32 (/128) pod addresses, a host route per pod, link-local gateway
    /// 169.254.1.1 / fe80::1 answered by the host veth (Calico style).
    Routed,
}

names!(PodMode, "pod mode", any_case: false { Bridge => "bridge", Routed => "routed" });

/// How packets reach other nodes' pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossNodeMode {
    /// VXLAN to every peer (flannel-compatible).
    #[default]
    Overlay,
    /// One route per peer pod CIDR via the peer's underlay IP; every peer must be on-link.
    Routed,
    /// Routed to peers on the same underlay subnet, overlay to the rest.
    Auto,
}

names!(CrossNodeMode, "cross-node mode", any_case: false { Overlay => "overlay", Routed => "routed", Auto => "auto" });

/// VXLAN settings; the defaults match flannel's so a podnet node can sit in a flannel cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VxlanConfig {
    /// VNI (flannel: 1).
    pub vni: u32,
    /// UDP port (flannel: 8472, the Linux default; IANA's is 4789).
    pub port: u16,
    /// Device name (default `podnet.1`).
    pub device: String,
    /// Turn TX checksum offload off on the device: `Some(true)` forces it off, `Some(false)`
    /// leaves the device's offloads alone, `None` (default) decides by the running kernel (see
    /// [`VxlanConfig::effective_disable_tx_checksum_offload`]).
    ///
    /// Why it matters: kernels before 5.7 rewrote the zero UDP checksum of VXLAN packets when
    /// NAT touched them (kube-proxy's `MASQUERADE --random-fully` of the node's own VXLAN
    /// traffic), so receivers dropped them: flannel's "63-second delays". torvalds/linux
    /// ea64d8d6c675 ("netfilter: nat: never update the UDP checksum when it's 0", 5.7) fixed it.
    /// Turning offload off costs a lot on fixed kernels: the device then also loses segmentation
    /// offload and sends MTU-sized frames into the tunnel instead of GSO frames (3-4x less bulk
    /// throughput between pods; `podnet bench overlay` measures it). See docs/overlay.md.
    #[serde(default)]
    pub disable_tx_checksum_offload: Option<bool>,
}

impl Default for VxlanConfig {
    fn default() -> Self {
        VxlanConfig { vni: 1, port: 8472, device: "podnet.1".into(), disable_tx_checksum_offload: None }
    }
}

/// First kernel with the NAT fix for zero UDP checksums (ea64d8d6c675).
pub(crate) const KERNEL_NAT_ZERO_CSUM_FIX: (u32, u32) = (5, 7);

impl VxlanConfig {
    /// Whether podnet turns TX checksum offload off on the device: the forced value if set,
    /// else true exactly on kernels older than 5.7 (which fixed NATed zero UDP checksums), and
    /// when the kernel release cannot be read, to stay correct.
    pub fn effective_disable_tx_checksum_offload(&self) -> bool {
        self.disable_tx_checksum_offload.unwrap_or_else(|| {
            kernel_release().and_then(|r| parse_kernel_version(&r)).is_none_or(|v| v < KERNEL_NAT_ZERO_CSUM_FIX)
        })
    }
}

/// The running kernel's release string (`uname -r`).
pub(crate) fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string())
}

/// `(major, minor)` of a kernel release such as "6.18.0-1-amd64" or "4.18.0-553.el8_10.x86_64".
pub(crate) fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The node's own address on the network that connects the nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Underlay {
    /// The node's underlay IP (VXLAN source, routed next hop for peers).
    pub address: IpAddr,
    /// The interface holding it (default: found by address).
    pub interface: Option<String>,
}

/// Configuration of one node (one network namespace).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    /// Node name: names the default state dir and the pause-netns pins.
    pub name: String,
    /// The node's netns (a file such as `/run/netns/node1`); `None` = the caller's current one.
    pub netns: Option<PathBuf>,
    /// Where state lives (default `/run/podnet/<name>`; keep it on tmpfs).
    pub state_dir: Option<PathBuf>,
    /// Where pause netns are pinned (default `/run/netns`, so `ip netns` lists them).
    pub netns_dir: PathBuf,
    /// The node's pod CIDRs with their IPAM options: at most one IPv4 and one IPv6.
    pub pools: Vec<PoolConfig>,
    /// Bridge or routed.
    pub mode: PodMode,
    /// Bridge name in bridge mode.
    pub bridge_name: String,
    /// MTU of the bridge and every veth (lowered to the VXLAN MTU when an overlay is used).
    pub mtu: u32,
    /// The node's underlay address; required for peers.
    pub underlay: Option<Underlay>,
    /// The cluster's pod CIDRs (all nodes): egress to anything else is masqueraded.
    pub cluster_cidrs: Vec<IpNetwork>,
    /// Overlay, routed or auto.
    pub cross_node: CrossNodeMode,
    /// VXLAN settings.
    pub vxlan: VxlanConfig,
    /// Masquerade pod traffic leaving the cluster CIDRs (default true; needs `cluster_cidrs`).
    pub egress_masquerade: bool,
    /// The cluster's service CIDRs: ClusterIPs must lie inside; other addresses in them drop.
    #[serde(default)]
    pub service_cidrs: Vec<IpNetwork>,
}

impl NodeConfig {
    /// A bridge-mode config with defaults; add pod CIDRs with [`NodeConfig::pod_cidr`].
    pub fn new(name: impl Into<String>) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            netns: None,
            state_dir: None,
            netns_dir: PathBuf::from("/run/netns"),
            pools: vec![],
            mode: PodMode::Bridge,
            bridge_name: "podnet0".into(),
            mtu: 1500,
            underlay: None,
            cluster_cidrs: vec![],
            cross_node: CrossNodeMode::Overlay,
            vxlan: VxlanConfig::default(),
            egress_masquerade: true,
            service_cidrs: vec![],
        }
    }

    /// Set the underlay address (and let podnet find its interface).
    pub fn underlay(mut self, address: IpAddr) -> NodeConfig {
        self.underlay = Some(Underlay { address, interface: None });
        self
    }

    /// Add a cluster CIDR.
    pub fn cluster_cidr(mut self, cidr: IpNetwork) -> NodeConfig {
        self.cluster_cidrs.push(cidr);
        self
    }

    /// Add a service CIDR.
    pub fn service_cidr(mut self, cidr: IpNetwork) -> NodeConfig {
        self.service_cidrs.push(cidr);
        self
    }

    /// Set the cross-node mode.
    pub fn cross_node(mut self, mode: CrossNodeMode) -> NodeConfig {
        self.cross_node = mode;
        self
    }

    /// Add a pod CIDR (parsed and validated by [`NodeConfig::validate`]).
    pub fn pod_cidr(mut self, cidr: IpNetwork) -> NodeConfig {
        self.pools.push(PoolConfig::new(cidr));
        self
    }

    /// Set the node netns path.
    pub fn netns(mut self, path: impl Into<PathBuf>) -> NodeConfig {
        self.netns = Some(path.into());
        self
    }

    /// Set the state dir.
    pub fn state_dir(mut self, path: impl Into<PathBuf>) -> NodeConfig {
        self.state_dir = Some(path.into());
        self
    }

    /// Set the netns pin dir.
    pub fn netns_dir(mut self, path: impl Into<PathBuf>) -> NodeConfig {
        self.netns_dir = path.into();
        self
    }

    /// Set the pod mode.
    pub fn mode(mut self, mode: PodMode) -> NodeConfig {
        self.mode = mode;
        self
    }

    /// Load the config a node was last opened with from its state dir (`node.json`).
    pub fn load(state_dir: &Path) -> Result<NodeConfig> {
        let p = state_dir.join("node.json");
        let b = std::fs::read(&p).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                crate::ErrorKind::NotFound
            } else {
                crate::ErrorKind::Io
            };
            Error::new(kind, format!("load node config {}", p.display()), e)
        })?;
        serde_json::from_slice(&b).map_err(|e| Error::new(crate::ErrorKind::Io, format!("parse {}", p.display()), e))
    }

    /// The effective state dir.
    pub fn effective_state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| Path::new("/run/podnet").join(&self.name))
    }

    /// Check everything before anything touches the kernel or the disk.
    pub fn validate(&self) -> Result<()> {
        let op = "validate node config";
        validate_name(&self.name, "node name").map_err(|m| Error::invalid(op, m))?;
        validate_ifname(&self.bridge_name).map_err(|m| Error::invalid(op, format!("bridge name: {m}")))?;
        if self.pools.is_empty() {
            return Err(Error::invalid(op, "at least one pod CIDR is required"));
        }
        let v4 = self.pools.iter().filter(|p| p.cidr.is_ipv4()).count();
        let v6 = self.pools.iter().filter(|p| p.cidr.is_ipv6()).count();
        if v4 > 1 || v6 > 1 {
            return Err(Error::invalid(op, "at most one IPv4 and one IPv6 pod CIDR"));
        }
        for p in &self.pools {
            if p.cidr.ip() != p.cidr.network() {
                return Err(Error::invalid(
                    op,
                    format!(
                        "pod CIDR {} has host bits set (did you mean {}/{}?)",
                        p.cidr,
                        p.cidr.network(),
                        p.cidr.prefix()
                    ),
                ));
            }
            crate::ipam::layout(p.cidr).map_err(|e| e.into_error(op))?;
            if let Some(why) = crate::ipam::special_range(&p.cidr) {
                return Err(Error::invalid(op, format!("pod CIDR {} cannot hold pods: {why}", p.cidr)));
            }
        }
        if !(576..=65535).contains(&self.mtu) {
            return Err(Error::invalid(op, format!("MTU {} out of range 576..65535", self.mtu)));
        }
        if !self.netns_dir.is_absolute() {
            return Err(Error::invalid(op, "netns dir must be an absolute path"));
        }
        for c in &self.cluster_cidrs {
            if c.ip() != c.network() {
                return Err(Error::invalid(op, format!("cluster CIDR {c} has host bits set")));
            }
        }
        for c in &self.service_cidrs {
            if c.ip() != c.network() {
                return Err(Error::invalid(op, format!("service CIDR {c} has host bits set")));
            }
            if let Some(p) = self.pools.iter().find(|p| c.contains(p.cidr.network()) || p.cidr.contains(c.network())) {
                return Err(Error::invalid(op, format!("service CIDR {c} overlaps pod CIDR {}", p.cidr)));
            }
        }
        for p in &self.pools {
            if !self.cluster_cidrs.is_empty()
                && !self.cluster_cidrs.iter().any(|c| {
                    c.is_ipv4() == p.cidr.is_ipv4() && c.contains(p.cidr.network()) && c.prefix() <= p.cidr.prefix()
                })
            {
                return Err(Error::invalid(op, format!("pod CIDR {} is outside every cluster CIDR", p.cidr)));
            }
        }
        validate_ifname(&self.vxlan.device).map_err(|m| Error::invalid(op, format!("VXLAN device name: {m}")))?;
        if self.vxlan.vni == 0 || self.vxlan.vni > 0xff_ffff {
            return Err(Error::invalid(op, format!("VNI {} out of range 1..16777215", self.vxlan.vni)));
        }
        if let Some(u) = &self.underlay {
            if let Some(i) = &u.interface {
                validate_ifname(i).map_err(|m| Error::invalid(op, format!("underlay interface: {m}")))?;
            }
            if !is_unicast_host(u.address) {
                return Err(Error::invalid(
                    op,
                    format!("underlay address {} is not a unicast host address", u.address),
                ));
            }
        }
        Ok(())
    }
}

/// Where a sandbox's network namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsSpec {
    /// podnet creates and pins a new netns (and removes it on delete).
    #[default]
    Create,
    /// The runtime made the netns; podnet only attaches to it and never removes it.
    Path(PathBuf),
}

/// A host port mapping (hostPort in a pod spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Only traffic to this host address (None = every node address).
    pub host_ip: Option<IpAddr>,
    /// Port on the node.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
}

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

names!(Protocol, "protocol", any_case: true { Tcp => "tcp", Udp => "udp", Sctp => "sctp" });

/// Parse a MAC address written `xx:xx:xx:xx:xx:xx` (or with `-`), hex digits in either case.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// A MAC address a pod interface may have: unicast, not all zeros.
pub fn validate_mac(m: [u8; 6]) -> std::result::Result<(), String> {
    if m[0] & 1 == 1 || m == [0; 6] {
        return Err("MAC address: must be a unicast address, not all zeros".into());
    }
    Ok(())
}

/// What the runtime asks for one pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Sandbox id (`[A-Za-z0-9_.-]`, 1..=128 bytes, not `.` or `..`).
    pub id: String,
    /// Interface name inside the pod (default `eth0`).
    pub ifname: String,
    /// Netns to create or adopt.
    pub netns: NetnsSpec,
    /// Specific addresses wanted (at most one per family).
    pub ips: Vec<IpAddr>,
    /// Host ports.
    pub ports: Vec<PortMapping>,
    /// Attach this pod differently from the node's default mode (None = the node's mode).
    #[serde(default)]
    pub mode: Option<PodMode>,
    /// Metadata kept with the sandbox and returned by get/list, so a runtime can map a sandbox
    /// back to its pod (e.g. `k8s.pod.namespace`, `k8s.pod.name`, `k8s.pod.uid`). Keys are 1..=253
    /// bytes of `[A-Za-z0-9_./-]`, values at most 4,096 bytes, at most 64 labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The pod interface's MAC address (None: derived from its IPv4 address, as the CNI bridge
    /// plugin does, or from the id). Must be a unicast address, not all zeros.
    #[serde(default)]
    pub mac: Option<[u8; 6]>,
}

/// Most labels one sandbox may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key.
pub const MAX_LABEL_KEY_LEN: usize = 253;
/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 4096;

impl SandboxSpec {
    /// Keep a label with the sandbox (replaces an earlier value for the key).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> SandboxSpec {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// A spec with defaults: new netns, `eth0`, dynamic addresses, no ports.
    pub fn new(id: impl Into<String>) -> SandboxSpec {
        SandboxSpec {
            id: id.into(),
            ifname: "eth0".into(),
            netns: NetnsSpec::Create,
            ips: vec![],
            ports: vec![],
            mode: None,
            labels: BTreeMap::new(),
            mac: None,
        }
    }

    /// Validate against the node's config.
    pub fn validate(&self, cfg: &NodeConfig) -> Result<()> {
        let op = format!("validate sandbox {:?}", truncate(&self.id));
        validate_sandbox_id(&cfg.name, &self.id).map_err(|m| Error::invalid(&op, m))?;
        validate_ifname(&self.ifname).map_err(|m| Error::invalid(&op, format!("interface name: {m}")))?;
        for m in &self.ports {
            if let Some(h) = m.host_ip {
                if !cfg.pools.iter().any(|p| p.cidr.is_ipv4() == h.is_ipv4()) {
                    return Err(Error::invalid(
                        &op,
                        format!(
                            "host IP {h} of port {}/{}: the node has no pod CIDR of its family, so it could never forward",
                            m.host_port, m.protocol
                        ),
                    ));
                }
                if !is_unicast_host(h) {
                    return Err(Error::invalid(&op, format!("host IP {h} is not a unicast host address")));
                }
            }
        }
        if self.labels.len() > MAX_LABELS {
            return Err(Error::invalid(&op, format!("{} labels, at most {MAX_LABELS}", self.labels.len())));
        }
        for (k, v) in &self.labels {
            let key_ok = !k.is_empty()
                && k.len() <= MAX_LABEL_KEY_LEN
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
            if !key_ok {
                return Err(Error::invalid(
                    &op,
                    format!("label key {:?}: 1..={MAX_LABEL_KEY_LEN} bytes of [A-Za-z0-9_./-]", truncate(k)),
                ));
            }
            if v.len() > MAX_LABEL_VALUE_LEN || v.contains('\0') {
                return Err(Error::invalid(
                    &op,
                    format!("label {k:?}: value longer than {MAX_LABEL_VALUE_LEN} bytes or contains NUL"),
                ));
            }
        }
        if let Some(m) = self.mac {
            validate_mac(m).map_err(|msg| Error::invalid(&op, msg))?;
        }
        if let NetnsSpec::Path(p) = &self.netns {
            if !p.is_absolute() {
                return Err(Error::invalid(&op, format!("netns path {} is not absolute", p.display())));
            }
        }
        for (i, ip) in self.ips.iter().enumerate() {
            if self.ips[..i].iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
                return Err(Error::invalid(&op, "at most one requested address per family"));
            }
            if !cfg.pools.iter().any(|p| p.cidr.is_ipv4() == ip.is_ipv4()) {
                return Err(Error::invalid(&op, format!("requested {ip} but the node has no pod CIDR of that family")));
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.host_port == 0 || p.container_port == 0 {
                return Err(Error::invalid(&op, "port 0 is not a valid host or container port"));
            }
            if self.ports[..i]
                .iter()
                .any(|o| o.protocol == p.protocol && o.host_port == p.host_port && o.host_ip == p.host_ip)
            {
                return Err(Error::invalid(&op, format!("host port {}/{} listed twice", p.host_port, p.protocol)));
            }
        }
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The VTEP MAC of node `name`: stable across restarts, so peers never hold a stale one.
pub fn vtep_mac(name: &str) -> [u8; 6] {
    stable_mac(0x0e, &format!("vtep/{name}"))
}

/// FNV-1a, 64 bit: stable across runs and versions (std's hasher is not).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A locally administered unicast MAC whose first byte is `first`, derived from `seed`.
pub(crate) fn stable_mac(first: u8, seed: &str) -> [u8; 6] {
    let h = fnv1a(seed.as_bytes()).to_be_bytes();
    [first, h[0], h[1], h[2], h[3], h[4]]
}

/// A unicast address a host can have: not unspecified, loopback, multicast or (IPv4) the limited
/// broadcast address.
pub(crate) fn is_unicast_host(ip: IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || broadcast)
}

/// Longest netns pin name (`pn-<node>-<id>`): a file name.
pub const MAX_PIN_NAME_LEN: usize = 255;

/// A sandbox id of node `node`: a valid name whose pin name `pn-<node>-<id>` fits a file name.
pub fn validate_sandbox_id(node: &str, id: &str) -> std::result::Result<(), String> {
    validate_name(id, "sandbox id")?;
    let pin = 4 + node.len() + id.len();
    if pin > MAX_PIN_NAME_LEN {
        return Err(format!(
            "sandbox id is {} bytes long; with node name {:?} its netns pin name would be {pin} bytes \
             (at most {MAX_PIN_NAME_LEN}): node name plus id may be at most {} bytes",
            id.len(),
            truncate(node),
            MAX_PIN_NAME_LEN - 4
        ));
    }
    Ok(())
}

/// Names that become file or netns names: `[A-Za-z0-9_.-]`, bounded, never `.`/`..`.
pub fn validate_name(s: &str, what: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > MAX_ID_LEN {
        return Err(format!("{what} is {} bytes long (at most {MAX_ID_LEN})", s.len()));
    }
    if s == "." || s == ".." || s.contains("..") {
        return Err(format!("{what} {s:?} contains \"..\""));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{what} {:?} contains {c:?} (allowed: letters, digits, '_', '.', '-')", truncate(s)));
    }
    Ok(())
}

/// Interface names: 1..=15 bytes of `[A-Za-z0-9_.-]`.
pub fn validate_ifname(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_IFNAME_LEN {
        return Err(format!("{s:?} is {} bytes long (Linux allows at most {MAX_IFNAME_LEN})", s.len()));
    }
    if s == "." || s == ".." {
        return Err(format!("{s:?} is not a valid interface name"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{s:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_pod_cidrs_underlays_and_host_ips_are_refused() {
        for c in [
            "0.0.0.0/0",
            "127.0.0.0/8",
            "224.0.0.0/24",
            "169.254.0.0/16",
            "fe80::/64",
            "ff00::/64",
            "::/0",
            "0.0.0.0/24",
        ] {
            let e = NodeConfig::new("n").pod_cidr(c.parse().unwrap()).validate().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{c}");
            assert!(e.to_string().contains("cannot hold pods") || e.to_string().contains("host bits"), "{c}: {e}");
        }
        assert!(NodeConfig::new("n").pod_cidr("10.0.0.0/8".parse().unwrap()).validate().is_ok());
        assert!(NodeConfig::new("n").pod_cidr("fd00::/64".parse().unwrap()).validate().is_ok());
        let e = NodeConfig::new("n")
            .pod_cidr("10.0.0.0/24".parse().unwrap())
            .underlay("255.255.255.255".parse().unwrap())
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let cfg = NodeConfig::new("n").pod_cidr("10.0.0.0/24".parse().unwrap());
        let mut spec = SandboxSpec::new("a");
        spec.ports = vec![PortMapping {
            protocol: Protocol::Tcp,
            host_ip: Some("fd00::1".parse().unwrap()),
            host_port: 80,
            container_port: 80,
        }];
        let e = spec.validate(&cfg).unwrap_err();
        assert!(e.to_string().contains("no pod CIDR of its family"), "{e}");
    }

    #[test]
    fn labels() {
        let cfg = NodeConfig::new("n").pod_cidr("10.0.0.0/24".parse().unwrap());
        let ok = SandboxSpec::new("a").label("k8s.pod.name", "web-0").label("k8s.pod.uid", "0f-1");
        assert!(ok.validate(&cfg).is_ok());
        for (k, v) in [("", "x"), ("a b", "x"), ("k=v", "x"), ("k", "\0")] {
            let e = SandboxSpec::new("a").label(k, v).validate(&cfg).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{k:?}");
        }
        let many = (0..=MAX_LABELS).fold(SandboxSpec::new("a"), |s, i| s.label(format!("k{i}"), ""));
        assert!(many.validate(&cfg).is_err());
        assert!(SandboxSpec::new("a").label("k", "v".repeat(MAX_LABEL_VALUE_LEN + 1)).validate(&cfg).is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("web-1_a.b", "id").is_ok());
        for bad in ["", ".", "..", "a/b", "a..b", "../x", "a b", "ä", &"x".repeat(129)] {
            assert!(validate_name(bad, "id").is_err(), "{bad:?}");
        }
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("abcdefghijklmnop").is_err());
        assert!(validate_ifname("a/b").is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(parse_kernel_version("5.7"), Some((5, 7)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!(parse_kernel_version("5.4.0").unwrap() < KERNEL_NAT_ZERO_CSUM_FIX);
        assert!(parse_kernel_version("5.7.0").unwrap() >= KERNEL_NAT_ZERO_CSUM_FIX);
        assert!(parse_kernel_version("10.0").unwrap() >= KERNEL_NAT_ZERO_CSUM_FIX);
        let on = VxlanConfig { disable_tx_checksum_offload: Some(true), ..Default::default() };
        assert!(on.effective_disable_tx_checksum_offload());
        let off = VxlanConfig { disable_tx_checksum_offload: Some(false), ..Default::default() };
        assert!(!off.effective_disable_tx_checksum_offload());
        // An old node.json with a plain bool still loads.
        let old: VxlanConfig =
            serde_json::from_str(r#"{"vni":1,"port":8472,"device":"podnet.1","disable_tx_checksum_offload":true}"#)
                .unwrap();
        assert_eq!(old.disable_tx_checksum_offload, Some(true));
    }

    #[test]
    fn config_validation() {
        let ok = NodeConfig::new("n1").pod_cidr("10.1.0.0/24".parse().unwrap());
        ok.validate().unwrap();
        let e = NodeConfig::new("n1").pod_cidr("10.1.0.5/24".parse().unwrap()).validate().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("host bits"), "{e}");
        assert!(NodeConfig::new("n1").validate().is_err());
        assert!(NodeConfig::new("a/b").pod_cidr("10.1.0.0/24".parse().unwrap()).validate().is_err());
        let two =
            NodeConfig::new("n").pod_cidr("10.1.0.0/24".parse().unwrap()).pod_cidr("10.2.0.0/24".parse().unwrap());
        assert!(two.validate().is_err());
        let mut spec = SandboxSpec::new("x");
        spec.ips = vec!["fd00::5".parse().unwrap()];
        assert!(spec.validate(&ok).is_err(), "no v6 pool");
    }
}
