//! podnet's table `inet podnet`: the host-port maps and their elements, the pod / cluster /
//! no-masquerade sets, and the DNAT and masquerade rules (the sketch is in `mod.rs`).
//!
//! Everything here only writes messages into a [`Batch`] through the generic builders of
//! `msg.rs`; the socket code sends them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::expr::{self, reg, NFPROTO_IPV4, NFPROTO_IPV6};
use super::msg::{
    self, concat, Cidrs, Elem, Fields, Hook, SetDef, What, TYPE_INET_PROTO, TYPE_INET_SERVICE, TYPE_IPV4_ADDR,
    TYPE_IPV6_ADDR,
};
use super::uapi::{self, NEWSETELEM, NFT_SET_INTERVAL, NFT_SET_MAP};
use super::wire::{Batch, Writer};
use super::NftError;

/// Name of podnet's table (family `inet`).
pub const TABLE: &str = "podnet";

/// Default [`Ruleset::hostport_mark`]: bit 13, the bit CNI portmap and netavark use for the same
/// "masquerade this host-port connection" purpose.
pub const DEFAULT_HOSTPORT_MARK: u32 = 0x2000;

/// Transport protocol of a host port or a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol with IP protocol number `n`, if it is one podnet supports.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// One host-port mapping: traffic to `[host_ip]:host_port` on this node goes to
/// `pod_ip:pod_port`.
///
/// The pod IP decides the family (an IPv4 pod IP goes into the IPv4 maps). `host_ip: None`
/// means every local address of that family; an unspecified host IP (`0.0.0.0`, `::`) is
/// treated as `None`. Its key (protocol, host IP, host port, family) identifies the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Transport protocol.
    pub protocol: Proto,
    /// Local address the mapping is limited to, or `None` for all local addresses.
    pub host_ip: Option<IpAddr>,
    /// Port on the node (non-zero).
    pub host_port: u16,
    /// Destination pod address.
    pub pod_ip: IpAddr,
    /// Destination pod port (non-zero).
    pub pod_port: u16,
}

/// What table `inet podnet` must contain besides the host-port elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// This node's pod CIDRs: the source match of the hairpin / pod-to-host-port masquerade
    /// and of egress masquerade.
    pub pod_cidrs: Cidrs,
    /// Cluster-wide CIDRs (all nodes' pods, services): egress masquerade skips them.
    pub cluster_cidrs: Cidrs,
    /// Single hosts never masqueraded (peer node IPs), kept in hash sets so that one host is
    /// added or removed in O(1) ([`super::NftSocket::add_no_masq_hosts`]).
    pub no_masq_hosts: Vec<IpAddr>,
    /// Masquerade pod traffic leaving the cluster (to non-cluster, non-no-masq, unicast
    /// destinations) to the node's address.
    pub egress_masquerade: bool,
    /// Packet-mark bit(s) the DNAT rules set to ask postrouting for the hairpin / localhost
    /// masquerade; must be non-zero and not used otherwise on the node.
    /// Defaults to [`DEFAULT_HOSTPORT_MARK`].
    pub hostport_mark: u32,
}

impl Default for Ruleset {
    fn default() -> Ruleset {
        Ruleset {
            pod_cidrs: Cidrs::default(),
            cluster_cidrs: Cidrs::default(),
            no_masq_hosts: Vec::new(),
            egress_masquerade: false,
            hostport_mark: DEFAULT_HOSTPORT_MARK,
        }
    }
}

// ---- the set catalogue ----

const PS: u32 = concat(&[TYPE_INET_PROTO, TYPE_INET_SERVICE]);
const A4S: u32 = concat(&[TYPE_IPV4_ADDR, TYPE_INET_SERVICE]);
const A6S: u32 = concat(&[TYPE_IPV6_ADDR, TYPE_INET_SERVICE]);

const fn port_map(name: &'static str, id: u32, key_type: u32, key_len: u32, data_type: u32, data_len: u32) -> SetDef {
    SetDef { name, flags: NFT_SET_MAP, key_type, key_len, data_type, data_len, id, describe: describe_port }
}

const fn addr_set(name: &'static str, id: u32, flags: u32, v6: bool) -> SetDef {
    let (key_type, key_len) = if v6 { (TYPE_IPV6_ADDR, 16) } else { (TYPE_IPV4_ADDR, 4) };
    SetDef { name, flags, key_type, key_len, data_type: 0, data_len: 0, id, describe: msg::describe_addr }
}

/// `inet_proto . inet_service : ipv4_addr . inet_service` (any local IPv4 address).
pub(crate) static HOSTPORTS: SetDef = port_map("hostports", 1, PS, 8, A4S, 8);
/// `ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service` (one host IP).
pub(crate) static HOSTPORTS_IP: SetDef =
    port_map("hostports_ip", 2, concat(&[TYPE_IPV4_ADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]), 12, A4S, 8);
/// `inet_proto . inet_service : ipv6_addr . inet_service`.
pub(crate) static HOSTPORTS6: SetDef = port_map("hostports6", 3, PS, 8, A6S, 20);
/// `ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service`.
pub(crate) static HOSTPORTS6_IP: SetDef =
    port_map("hostports6_ip", 4, concat(&[TYPE_IPV6_ADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]), 24, A6S, 20);
static PODNETS4: SetDef = addr_set("podnets4", 5, NFT_SET_INTERVAL, false);
static PODNETS6: SetDef = addr_set("podnets6", 6, NFT_SET_INTERVAL, true);
static CLUSTERNETS4: SetDef = addr_set("clusternets4", 7, NFT_SET_INTERVAL, false);
static CLUSTERNETS6: SetDef = addr_set("clusternets6", 8, NFT_SET_INTERVAL, true);
/// Single hosts never masqueraded (peer node IPs): a hash set, so one peer is one element
/// added or removed in O(1).
pub(crate) static NOMASQHOSTS4: SetDef = addr_set("nomasqhosts4", 9, 0, false);
pub(crate) static NOMASQHOSTS6: SetDef = addr_set("nomasqhosts6", 10, 0, true);

static ALL: [&SetDef; 10] = [
    &HOSTPORTS,
    &HOSTPORTS_IP,
    &HOSTPORTS6,
    &HOSTPORTS6_IP,
    &PODNETS4,
    &PODNETS6,
    &CLUSTERNETS4,
    &CLUSTERNETS6,
    &NOMASQHOSTS4,
    &NOMASQHOSTS6,
];

/// The four host-port maps.
pub(crate) static PORT_MAPS: [&SetDef; 4] = [&HOSTPORTS, &HOSTPORTS_IP, &HOSTPORTS6, &HOSTPORTS6_IP];

fn is_v6(set: &SetDef) -> bool {
    set.key_type == TYPE_IPV6_ADDR || std::ptr::eq(set, &HOSTPORTS6) || std::ptr::eq(set, &HOSTPORTS6_IP)
}

/// `describe` of the port maps: the mapping, or only its key for a delete.
fn describe_port(key: &[u8], data: Option<&[u8]>) -> Option<String> {
    // The key length tells the map apart: 8 (any IP), 12 (IPv4 host IP), 24 (IPv6 host IP);
    // the data length tells 8-byte keys apart.
    let set: &SetDef = match (key.len(), data.map(<[u8]>::len)) {
        (12, _) => &HOSTPORTS_IP,
        (24, _) => &HOSTPORTS6_IP,
        (8, Some(20)) => &HOSTPORTS6,
        (8, _) => &HOSTPORTS,
        _ => return None,
    };
    match data {
        Some(d) => HostPort::decode(set, key, d).map(|p| p.to_string()),
        // a delete carries the key only: decode it against a zero target
        None => HostPort::decode(set, key, &[0; 20]).map(|p| p.key_string()),
    }
}

impl HostPort {
    /// Check the mapping and bring it to its canonical form (unspecified host IP -> `None`).
    pub(crate) fn normalized(&self) -> Result<HostPort, NftError> {
        let bad = |why: &str| Err(NftError::Invalid(format!("host port {self}: {why}")));
        if self.host_port == 0 || self.pod_port == 0 {
            return bad("port 0");
        }
        if self.pod_ip.is_unspecified() || self.pod_ip.is_multicast() || self.pod_ip.is_loopback() {
            return bad("the pod IP must be a unicast, non-loopback address");
        }
        if let IpAddr::V4(a) = self.pod_ip {
            if a.is_broadcast() {
                return bad("the pod IP must be a unicast, non-loopback address");
            }
        }
        let host_ip = self.host_ip.filter(|h| !h.is_unspecified());
        if let Some(h) = host_ip {
            if h.is_ipv4() != self.pod_ip.is_ipv4() {
                return bad("host IP and pod IP are of different families");
            }
            if h.is_multicast() {
                return bad("the host IP is a multicast address");
            }
        }
        Ok(HostPort { host_ip, ..*self })
    }

    /// The map this mapping lives in (the pod IP decides the family).
    pub(crate) fn set(&self) -> &'static SetDef {
        match (self.pod_ip.is_ipv6(), self.host_ip.is_some()) {
            (false, false) => &HOSTPORTS,
            (false, true) => &HOSTPORTS_IP,
            (true, false) => &HOSTPORTS6,
            (true, true) => &HOSTPORTS6_IP,
        }
    }

    /// Key `[host_ip .] proto . host_port` and data `pod_ip . pod_port`.
    pub(crate) fn elem(&self) -> Elem {
        let mut k = Fields::<24>::new();
        if let Some(h) = self.host_ip {
            k = k.ip(h);
        }
        let k = k.push(&[self.protocol.number()]).push(&self.host_port.to_be_bytes());
        let d = Fields::<20>::new().ip(self.pod_ip).push(&self.pod_port.to_be_bytes());
        Elem::map(k.bytes(), d.bytes())
    }

    /// Inverse of [`HostPort::elem`], for dumps and error messages.
    pub(crate) fn decode(set: &SetDef, key: &[u8], data: &[u8]) -> Option<HostPort> {
        let (host_ip, rest) = if std::ptr::eq(set, &HOSTPORTS_IP) {
            (Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(key.get(..4)?).ok()?))), &key[4..])
        } else if std::ptr::eq(set, &HOSTPORTS6_IP) {
            (Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(key.get(..16)?).ok()?))), &key[16..])
        } else if std::ptr::eq(set, &HOSTPORTS) || std::ptr::eq(set, &HOSTPORTS6) {
            (None, key)
        } else {
            return None;
        };
        if rest.len() != 8 {
            return None;
        }
        let protocol = Proto::from_number(rest[0])?;
        let host_port = u16::from_be_bytes([rest[4], rest[5]]);
        let (pod_ip, port) = if is_v6(set) {
            (IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data.get(..16)?).ok()?)), data.get(16..18)?)
        } else {
            (IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data.get(..4)?).ok()?)), data.get(4..6)?)
        };
        Some(HostPort { protocol, host_ip, host_port, pod_ip, pod_port: u16::from_be_bytes([port[0], port[1]]) })
    }

    /// "tcp/8080" or "tcp/192.168.200.1:8080" or "tcp/[fd00::1]:8080".
    pub(crate) fn key_string(&self) -> String {
        match self.host_ip {
            None => format!("{}/{}", self.protocol, self.host_port),
            Some(ip) => format!("{}/{}", self.protocol, std::net::SocketAddr::new(ip, self.host_port)),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pod = std::net::SocketAddr::new(self.pod_ip, self.pod_port);
        write!(f, "{} -> {pod}", self.key_string())
    }
}

/// Validate and normalize a list of mappings; with `check_conflicts`, two mappings of the same
/// key with different targets are refused (the kernel would reject the second with EEXIST).
pub(crate) fn normalize(ports: &[HostPort], check_conflicts: bool) -> Result<Vec<HostPort>, NftError> {
    let out = ports.iter().map(HostPort::normalized).collect::<Result<Vec<_>, _>>()?;
    if check_conflicts && out.len() > 1 {
        let mut seen = std::collections::HashMap::with_capacity(out.len());
        for p in &out {
            let key = (p.set().name, p.protocol, p.host_ip, p.host_port);
            if let Some(prev) = seen.insert(key, *p) {
                if prev != *p {
                    return Err(NftError::Invalid(format!(
                        "host port {} is mapped twice: {prev} and {p}",
                        p.key_string()
                    )));
                }
            }
        }
    }
    Ok(out)
}

// ---- message builders ----

/// Element messages for host ports, one message group per map.
pub(crate) fn port_elements(b: &mut Batch<What>, msg: u8, ports: &[HostPort]) {
    for set in PORT_MAPS {
        let elems: Vec<Elem> = ports.iter().filter(|p| std::ptr::eq(p.set(), set)).map(HostPort::elem).collect();
        if !elems.is_empty() {
            msg::elements(b, TABLE, msg, set, &elems);
        }
    }
}

/// Element messages for single never-masqueraded hosts, grouped per family set.
pub(crate) fn host_elements(b: &mut Batch<What>, msg: u8, ips: &[IpAddr]) {
    for (set, v4) in [(&NOMASQHOSTS4, true), (&NOMASQHOSTS6, false)] {
        let elems: Vec<Elem> = ips.iter().filter(|ip| ip.is_ipv4() == v4).map(|ip| Elem::addr(*ip)).collect();
        if !elems.is_empty() {
            msg::elements(b, TABLE, msg, set, &elems);
        }
    }
}

/// Flush both never-masqueraded host sets.
pub(crate) fn flush_hosts(b: &mut Batch<What>) {
    msg::flush_set(b, TABLE, &NOMASQHOSTS4);
    msg::flush_set(b, TABLE, &NOMASQHOSTS6);
}

fn chain(b: &mut Batch<What>, name: &'static str, hook: Option<(u32, i32)>) {
    let hook = hook.map(|(num, priority)| Hook { num, priority, kind: "nat" });
    msg::chain_msg(b, TABLE, name, What::Chain(name), hook);
}

fn rule(b: &mut Batch<What>, chain: &'static str, index: usize, exprs: impl FnOnce(&mut Writer)) {
    msg::rule_msg(b, TABLE, chain, What::Rule(chain, index), exprs);
}

/// `meta nfproto <f> [<daddr> .] meta l4proto . th dport` -> lookup map -> mark -> dnat.
///
/// The mark is set after the lookup (a miss ends the rule before it), so only connections this
/// table really DNATs carry it to postrouting.
pub(crate) fn dnat_rule(w: &mut Writer, set: &SetDef, mark: u32) {
    let v6 = is_v6(set);
    let with_ip = std::ptr::eq(set, &HOSTPORTS_IP) || std::ptr::eq(set, &HOSTPORTS6_IP);
    expr::nfproto_is(w, if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 });
    // Register plan (32-bit words): key fields on consecutive words from register 1, as the
    // concatenated map key expects; the data (address, port) comes back in register 1 likewise.
    let (l4_reg, port_reg) = match (v6, with_ip) {
        (_, false) => (reg::R1, reg::R32_01),
        (false, true) => (reg::R32_01, reg::R32_02),
        (true, true) => (reg::R2, reg::R32_05),
    };
    if with_ip {
        let (off, len) = if v6 { (24, 16) } else { (16, 4) };
        expr::payload(w, expr::NETWORK_HEADER, off, len, reg::R1);
    }
    expr::meta_load(w, expr::NFT_META_L4PROTO, l4_reg);
    expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, port_reg);
    expr::lookup(w, set.name, reg::R1, Some(reg::R1), false);
    // Register 4 is free: the DNAT target occupies at most words 0-4.
    expr::mark_or(w, mark, reg::R4);
    let (nfproto, proto_reg) = if v6 { (NFPROTO_IPV6, reg::R2) } else { (NFPROTO_IPV4, reg::R32_01) };
    expr::dnat(w, nfproto, reg::R1, proto_reg);
}

/// `fib daddr type local jump hostports_dnat`: host ports answer on every local address only.
fn jump_rule(w: &mut Writer) {
    expr::fib_daddr_type(w, reg::R1);
    expr::cmp_eq(w, reg::R1, &expr::RTN_LOCAL.to_ne_bytes());
    expr::jump(w, "hostports_dnat");
}

/// Source match on `saddr @set` for the given family.
fn saddr_in(w: &mut Writer, set: &SetDef) {
    let (off, len) = if is_v6(set) { (8, 16) } else { (12, 4) };
    expr::payload(w, expr::NETWORK_HEADER, off, len, reg::R1);
    expr::lookup(w, set.name, reg::R1, None, false);
}

/// Write the whole table, atomically replacing any previous version of it.
pub(crate) fn build(b: &mut Batch<What>, rs: &Ruleset, ports: &[HostPort]) {
    msg::replace_table(b, TABLE);
    for set in ALL {
        msg::set_msg(b, TABLE, set);
    }
    msg::cidr_elements(b, TABLE, [&PODNETS4, &PODNETS6], &rs.pod_cidrs);
    msg::cidr_elements(b, TABLE, [&CLUSTERNETS4, &CLUSTERNETS6], &rs.cluster_cidrs);
    host_elements(b, NEWSETELEM, &rs.no_masq_hosts);
    port_elements(b, NEWSETELEM, ports);

    chain(b, "hostports_dnat", None);
    chain(b, "prerouting", Some((uapi::NF_INET_PRE_ROUTING, uapi::PRIO_DSTNAT)));
    chain(b, "output", Some((uapi::NF_INET_LOCAL_OUT, uapi::PRIO_DSTNAT)));
    chain(b, "postrouting", Some((uapi::NF_INET_POST_ROUTING, uapi::PRIO_SRCNAT)));

    // Host-IP-specific maps first: a lookup miss ends that rule and evaluation moves on.
    for (i, set) in [&HOSTPORTS_IP, &HOSTPORTS, &HOSTPORTS6_IP, &HOSTPORTS6].into_iter().enumerate() {
        rule(b, "hostports_dnat", i, |w| dnat_rule(w, set, rs.hostport_mark));
    }
    rule(b, "prerouting", 0, jump_rule);
    rule(b, "output", 0, jump_rule);

    let mark = rs.hostport_mark;
    let masq = |w: &mut Writer| expr::masq(w, expr::NAT_RANDOM_FULLY);
    // Host-port connections from localhost (route_localnet) and from pods (hairpin, pod to a
    // host port of its own node) must be masqueraded, or the reply bypasses the reverse DNAT.
    // External clients keep their source address.
    rule(b, "postrouting", 0, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV4);
        expr::payload(w, expr::NETWORK_HEADER, 12, 1, reg::R1);
        expr::cmp_eq(w, reg::R1, &[127]);
        masq(w);
    });
    rule(b, "postrouting", 1, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV4);
        saddr_in(w, &PODNETS4);
        masq(w);
    });
    rule(b, "postrouting", 2, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV6);
        saddr_in(w, &PODNETS6);
        masq(w);
    });
    if rs.egress_masquerade {
        // Pod traffic leaving the cluster: not to cluster CIDRs or the no-masq hosts, and only to
        // unicast destinations (`fib daddr type unicast` leaves out local, broadcast and
        // multicast addresses, which must never be source-NATed to the node address).
        for (i, (f, pods, cluster, hosts, daddr, len)) in [
            (NFPROTO_IPV4, &PODNETS4, &CLUSTERNETS4, &NOMASQHOSTS4, 16, 4),
            (NFPROTO_IPV6, &PODNETS6, &CLUSTERNETS6, &NOMASQHOSTS6, 24, 16),
        ]
        .into_iter()
        .enumerate()
        {
            rule(b, "postrouting", 3 + i, |w| {
                expr::nfproto_is(w, f);
                saddr_in(w, pods);
                expr::payload(w, expr::NETWORK_HEADER, daddr, len, reg::R1);
                expr::lookup(w, cluster.name, reg::R1, None, true);
                expr::lookup(w, hosts.name, reg::R1, None, true);
                expr::fib_daddr_type(w, reg::R1);
                expr::cmp_eq(w, reg::R1, &expr::RTN_UNICAST.to_ne_bytes());
                masq(w);
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::nft::msg::tests::{hdr, one, s};
    use crate::kernel::nft::uapi::{DELSETELEM, DESTROYSETELEM, NEWRULE, NEWSET};
    use crate::kernel::nft::wire;

    /// A host port from text: `hp(Proto::Tcp, Some("10.0.0.1"), 80, "10.88.0.2", 8080)`.
    pub(crate) fn hp(proto: Proto, host_ip: Option<&str>, host_port: u16, pod: &str, pod_port: u16) -> HostPort {
        HostPort {
            protocol: proto,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port,
            pod_ip: pod.parse().unwrap(),
            pod_port,
        }
    }

    #[test]
    fn validation() {
        let p = |h: Option<&str>, port, pod| hp(Proto::Tcp, h, port, pod, 80);
        assert!(p(None, 0, "10.0.0.1").normalized().is_err());
        assert!(p(None, 80, "0.0.0.0").normalized().is_err());
        assert!(p(None, 80, "127.0.0.1").normalized().is_err());
        assert!(p(Some("fd00::1"), 80, "10.0.0.1").normalized().is_err());
        assert_eq!(p(Some("0.0.0.0"), 80, "10.0.0.1").normalized().unwrap(), p(None, 80, "10.0.0.1"));
        let e = normalize(&[p(None, 80, "10.0.0.1"), p(None, 80, "10.0.0.2")], true).unwrap_err();
        assert_eq!(e.to_string(), "host port tcp/80 is mapped twice: tcp/80 -> 10.0.0.1:80 and tcp/80 -> 10.0.0.2:80");
        // same key, other family: two different maps
        assert!(normalize(&[p(None, 80, "10.0.0.1"), p(None, 80, "fd00::1"), p(None, 80, "10.0.0.1")], true).is_ok());
    }

    #[test]
    fn newset_concatenated_map_bytes() {
        let got = one(|b| msg::set_msg(b, TABLE, &HOSTPORTS));
        #[rustfmt::skip]
        let body: Vec<u8> = [
            s(1, "podnet"),
            s(2, "hostports"),
            vec![8, 0, 3, 0, 0, 0, 0, 8],          // NFT_SET_MAP
            vec![8, 0, 4, 0, 0, 0, 0x03, 0x0d],    // key type 781 = inet_proto . inet_service
            vec![8, 0, 5, 0, 0, 0, 0, 8],          // key len 8
            vec![8, 0, 6, 0, 0, 0, 0x01, 0xcd],    // data type 461 = ipv4_addr . inet_service
            vec![8, 0, 7, 0, 0, 0, 0, 8],          // data len 8
            vec![8, 0, 10, 0, 0, 0, 0, 1],         // set id
        ]
        .concat();
        assert_eq!(got, [hdr(20 + body.len(), NEWSET, 0x405, 1), body].concat());
        let l = &HOSTPORTS6_IP;
        assert_eq!(
            (l.flags, l.key_type, l.key_len, l.data_type, l.data_len),
            (8, (8 << 12) | (12 << 6) | 13, 24, (8 << 6) | 13, 20)
        );
    }

    #[test]
    fn newsetelem_bytes_match_nft() {
        let p = hp(Proto::Tcp, None, 8080, "10.88.0.2", 80);
        let e = p.elem();
        assert_eq!(e.key_bytes(), [0x06, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.data_bytes(), [0x0a, 0x58, 0x00, 0x02, 0x00, 0x50, 0, 0]);
        let got = one(|b| port_elements(b, NEWSETELEM, &[p]));
        let mut w = Writer::default();
        w.str(1, "podnet");
        w.str(2, "hostports");
        w.nest(3, |w| {
            w.nest(1, |w| {
                w.nest(1, |w| w.attr(1, &[0x06, 0, 0, 0, 0x1f, 0x90, 0, 0]));
                w.nest(2, |w| w.attr(1, &[0x0a, 0x58, 0x00, 0x02, 0x00, 0x50, 0, 0]));
            });
        });
        #[rustfmt::skip]
        let tail = [
            40u8, 0, 3, 0x80,                    // ELEMENTS (40)
            36, 0, 1, 0x80,                      // LIST_ELEM (36)
            16, 0, 1, 0x80, 12, 0, 1, 0,         // KEY (16) > VALUE (12)
            0x06, 0, 0, 0, 0x1f, 0x90, 0, 0,
            16, 0, 2, 0x80, 12, 0, 1, 0,         // DATA (16) > VALUE (12)
            0x0a, 0x58, 0x00, 0x02, 0x00, 0x50, 0, 0,
        ];
        assert!(w.buf.ends_with(&tail));
        assert_eq!(got, [hdr(20 + w.buf.len(), NEWSETELEM, 0x405, 1), w.buf].concat());
    }

    #[test]
    fn destroysetelem_sends_key_only() {
        let p = hp(Proto::Udp, Some("192.168.200.1"), 9090, "10.88.0.2", 53);
        assert_eq!(p.elem().key_bytes(), [192, 168, 200, 1, 17, 0, 0, 0, 0x23, 0x82, 0, 0]);
        let got = one(|b| port_elements(b, DESTROYSETELEM, &[p]));
        #[rustfmt::skip]
        let tail = [
            28u8, 0, 3, 0x80,                    // ELEMENTS
            24, 0, 1, 0x80,                      // LIST_ELEM
            20, 0, 1, 0x80, 16, 0, 1, 0,         // KEY > VALUE (12 bytes)
            192, 168, 200, 1, 17, 0, 0, 0, 0x23, 0x82, 0, 0,
        ];
        let body = [s(1, "podnet"), s(2, "hostports_ip"), tail.to_vec()].concat();
        // flags: REQUEST | ACK only; type 0x0a1e
        assert_eq!(got, [hdr(20 + body.len(), DESTROYSETELEM, 0x5, 1), body].concat());
    }

    #[test]
    fn v6_elements_and_roundtrip() {
        let p = hp(Proto::Sctp, Some("fd00::1"), 9999, "fd00:88::2", 5353);
        let e = p.elem();
        assert!(std::ptr::eq(p.set(), &HOSTPORTS6_IP));
        assert_eq!(e.klen, 24);
        assert_eq!(e.data_bytes().len(), 20);
        assert_eq!(&e.key_bytes()[16..], [132, 0, 0, 0, 0x27, 0x0f, 0, 0]);
        assert_eq!(&e.data_bytes()[16..], [0x14, 0xe9, 0, 0]);
        assert_eq!(HostPort::decode(p.set(), e.key_bytes(), e.data_bytes()), Some(p));
        let q = hp(Proto::Tcp, None, 80, "10.88.0.9", 8080);
        assert_eq!(HostPort::decode(q.set(), q.elem().key_bytes(), q.elem().data_bytes()), Some(q));
        assert_eq!(q.to_string(), "tcp/80 -> 10.88.0.9:8080");
        assert_eq!(p.to_string(), "sctp/[fd00::1]:9999 -> [fd00:88::2]:5353");
    }

    #[test]
    fn rule_with_lookup_and_nat_bytes() {
        let got = one(|b| rule(b, "hostports_dnat", 1, |w| dnat_rule(w, &HOSTPORTS, 0x2000)));
        // Rebuild the expected expression list by hand from the attribute numbers in
        // nf_tables.h (independent of the expr helpers).
        fn e(w: &mut Writer, name: &str, f: impl FnOnce(&mut Writer)) {
            w.nest(1, |w| {
                w.str(1, name);
                w.nest(2, f);
            });
        }
        // An expression whose attributes are all u32: (attribute, value) in order.
        fn e32(w: &mut Writer, name: &str, attrs: &[(u16, u32)]) {
            e(w, name, |w| attrs.iter().for_each(|&(ty, v)| w.u32(ty, v)));
        }
        let mut x = Writer::default();
        e32(&mut x, "meta", &[(2, 15), (1, 1)]);
        e(&mut x, "cmp", |w| {
            w.u32(1, 1);
            w.u32(2, 0);
            w.nest(3, |w| w.attr(1, &[2]));
        });
        e32(&mut x, "meta", &[(2, 16), (1, 1)]);
        e32(&mut x, "payload", &[(1, 9), (2, 2), (3, 2), (4, 2)]);
        e(&mut x, "lookup", |w| {
            w.str(1, "hostports");
            w.u32(2, 1);
            w.u32(3, 1);
        });
        e32(&mut x, "meta", &[(2, 3), (1, 4)]);
        e(&mut x, "bitwise", |w| {
            w.u32(1, 4);
            w.u32(2, 4);
            w.u32(3, 4);
            w.nest(4, |w| w.attr(1, &(!0x2000u32).to_ne_bytes()));
            w.nest(5, |w| w.attr(1, &0x2000u32.to_ne_bytes()));
        });
        e32(&mut x, "meta", &[(2, 3), (3, 4)]);
        e32(&mut x, "nat", &[(1, 1), (2, 2), (3, 1), (5, 9)]);
        let mut body = Writer::default();
        body.str(1, "podnet");
        body.str(2, "hostports_dnat");
        body.nest(4, |w| w.buf.extend_from_slice(&x.buf));
        // REQUEST | ACK | CREATE | APPEND = 0xc05
        assert_eq!(got, [hdr(20 + body.buf.len(), NEWRULE, 0xc05, 1), body.buf].concat());
        // the lookup expression, byte for byte
        #[rustfmt::skip]
        let lookup = [
            52u8, 0, 1, 0x80,
            11, 0, 1, 0, b'l', b'o', b'o', b'k', b'u', b'p', 0, 0,
            36, 0, 2, 0x80,
            14, 0, 1, 0, b'h', b'o', b's', b't', b'p', b'o', b'r', b't', b's', 0, 0, 0,
            8, 0, 2, 0, 0, 0, 0, 1,
            8, 0, 3, 0, 0, 0, 0, 1,
        ];
        assert!(got.windows(lookup.len()).any(|win| win == lookup));
    }

    #[test]
    fn big_element_lists_are_chunked() {
        let ports: Vec<HostPort> = (0..10_000u16).map(|i| hp(Proto::Udp, None, 10_000 + i, "10.88.1.1", 53)).collect();
        let mut b = Batch::new(Vec::new(), 1);
        port_elements(&mut b, NEWSETELEM, &ports);
        assert!(b.len() > 1);
        for s in &b.sent {
            assert!(s.range.len() < 65_000);
        }
        let mut total = 0;
        for s in &b.sent {
            let m = wire::messages(&b.w.buf[s.range.clone()]).next().unwrap().unwrap();
            msg::decode_elems(m.payload, |name, key, data| {
                let set = PORT_MAPS.into_iter().find(|s| s.name == name).unwrap();
                assert!(HostPort::decode(set, key, data.unwrap()).is_some());
                total += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(total, 10_000);
    }

    #[test]
    fn describes_the_offending_element() {
        let p = hp(Proto::Tcp, None, 8080, "10.88.0.3", 80);
        let got = one(|b| port_elements(b, NEWSETELEM, &[p]));
        // the first LIST_ELEM sits after nlmsghdr+nfgenmsg, TABLE, SET and the ELEMENTS header
        let off = 20 + 12 + 16 + 4;
        let what = What::Elements("add", &HOSTPORTS, 1);
        assert_eq!(what.describe(Some(&got[off..])), "add element tcp/8080 -> 10.88.0.3:80 to map hostports");
        assert_eq!(what.describe(None), "add 1 element to map hostports");
        let d = What::Elements("delete", &HOSTPORTS, 1);
        let got = one(|b| port_elements(b, DELSETELEM, &[p]));
        assert_eq!(d.describe(Some(&got[off..])), "delete element tcp/8080 from map hostports");
        assert_eq!(What::Rule("postrouting", 2).describe(None), "add rule 2 to chain postrouting");
        let h = What::Elements("add", &NOMASQHOSTS4, 1);
        let got = one(|b| host_elements(b, NEWSETELEM, &["10.0.0.1".parse().unwrap()]));
        let off = 20 + 12 + 20 + 4;
        assert_eq!(h.describe(Some(&got[off..])), "add element 10.0.0.1 to set nomasqhosts4");
    }
}
