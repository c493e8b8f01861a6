//! The content of table `inet podnet`: its maps and sets, element encoding, chains and rules.
//!
//! Everything here only writes messages into a [`Batch`]; the socket code sends them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::expr::{self, reg, NFPROTO_IPV4, NFPROTO_IPV6};
use super::wire::{self, Batch, Writer, NLM_F_APPEND, NLM_F_CREATE};
use super::{HostPort, Proto, Ruleset, TABLE};

/// NFPROTO_INET: the family of table `inet podnet`.
pub(crate) const FAMILY_INET: u8 = 1;

// NFT_MSG_* message numbers.
pub(crate) const NEWTABLE: u8 = 0;
pub(crate) const GETTABLE: u8 = 1;
pub(crate) const DELTABLE: u8 = 2;
const NEWCHAIN: u8 = 3;
const NEWRULE: u8 = 6;
const NEWSET: u8 = 9;
pub(crate) const NEWSETELEM: u8 = 12;
pub(crate) const GETSETELEM: u8 = 13;
pub(crate) const DELSETELEM: u8 = 14;
/// Like DELSETELEM but a missing element is not an error (kernel >= 6.3).
pub(crate) const DESTROYSETELEM: u8 = 30;

// Attributes.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
pub(crate) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(crate) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;

const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;

const NF_ACCEPT: u32 = 1;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
/// NF_IP_PRI_NAT_DST ("dstnat"); nft 1.0.6 refuses the name on the output hook, not the value.
const PRIO_DSTNAT: i32 = -100;
/// NF_IP_PRI_NAT_SRC ("srcnat").
const PRIO_SRCNAT: i32 = 100;

// nft data type ids: only `nft list` reads them (6 bits per concatenated field).
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_IPV6_ADDR: u32 = 8;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;

const fn concat(types: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < types.len() {
        v = (v << 6) | types[i];
        i += 1;
    }
    v
}

/// Largest NFTA_SET_ELEM_LIST_ELEMENTS nest we write: attribute lengths are u16, so a big
/// element list is split into several NEWSETELEM messages of the same batch.
const ELEMENTS_PER_MSG_BYTES: usize = 60_000;

/// The maps and sets of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SetId {
    /// `inet_proto . inet_service : ipv4_addr . inet_service` (any local IPv4 address).
    HostPorts,
    /// `ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service` (one host IP).
    HostPortsIp,
    /// `inet_proto . inet_service : ipv6_addr . inet_service`.
    HostPorts6,
    /// `ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service`.
    HostPorts6Ip,
    PodNets4,
    PodNets6,
    ClusterNets4,
    ClusterNets6,
    NoMasq4,
    NoMasq6,
    /// Single hosts never masqueraded (peer node IPs): a hash set, so one peer is one element
    /// added or removed in O(1).
    NoMasqHost4,
    NoMasqHost6,
}

impl SetId {
    pub(crate) const ALL: [SetId; 12] = [
        SetId::HostPorts,
        SetId::HostPortsIp,
        SetId::HostPorts6,
        SetId::HostPorts6Ip,
        SetId::PodNets4,
        SetId::PodNets6,
        SetId::ClusterNets4,
        SetId::ClusterNets6,
        SetId::NoMasq4,
        SetId::NoMasq6,
        SetId::NoMasqHost4,
        SetId::NoMasqHost6,
    ];
    pub(crate) const PORT_MAPS: [SetId; 4] =
        [SetId::HostPorts, SetId::HostPortsIp, SetId::HostPorts6, SetId::HostPorts6Ip];

    pub(crate) fn name(self) -> &'static str {
        match self {
            SetId::HostPorts => "hostports",
            SetId::HostPortsIp => "hostports_ip",
            SetId::HostPorts6 => "hostports6",
            SetId::HostPorts6Ip => "hostports6_ip",
            SetId::PodNets4 => "podnets4",
            SetId::PodNets6 => "podnets6",
            SetId::ClusterNets4 => "clusternets4",
            SetId::ClusterNets6 => "clusternets6",
            SetId::NoMasq4 => "nomasq4",
            SetId::NoMasq6 => "nomasq6",
            SetId::NoMasqHost4 => "nomasqhosts4",
            SetId::NoMasqHost6 => "nomasqhosts6",
        }
    }

    fn is_map(self) -> bool {
        matches!(self, SetId::HostPorts | SetId::HostPortsIp | SetId::HostPorts6 | SetId::HostPorts6Ip)
    }

    fn is_v6(self) -> bool {
        matches!(
            self,
            SetId::HostPorts6
                | SetId::HostPorts6Ip
                | SetId::PodNets6
                | SetId::ClusterNets6
                | SetId::NoMasq6
                | SetId::NoMasqHost6
        )
    }

    /// (flags, key type, key len, data type, data len)
    fn layout(self) -> (u32, u32, u32, u32, u32) {
        const PS: u32 = concat(&[TYPE_INET_PROTO, TYPE_INET_SERVICE]);
        match self {
            SetId::HostPorts => (NFT_SET_MAP, PS, 8, concat(&[TYPE_IPV4_ADDR, TYPE_INET_SERVICE]), 8),
            SetId::HostPortsIp => (
                NFT_SET_MAP,
                concat(&[TYPE_IPV4_ADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
                12,
                concat(&[TYPE_IPV4_ADDR, TYPE_INET_SERVICE]),
                8,
            ),
            SetId::HostPorts6 => (NFT_SET_MAP, PS, 8, concat(&[TYPE_IPV6_ADDR, TYPE_INET_SERVICE]), 20),
            SetId::HostPorts6Ip => (
                NFT_SET_MAP,
                concat(&[TYPE_IPV6_ADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
                24,
                concat(&[TYPE_IPV6_ADDR, TYPE_INET_SERVICE]),
                20,
            ),
            SetId::PodNets4 | SetId::ClusterNets4 | SetId::NoMasq4 => (NFT_SET_INTERVAL, TYPE_IPV4_ADDR, 4, 0, 0),
            SetId::PodNets6 | SetId::ClusterNets6 | SetId::NoMasq6 => (NFT_SET_INTERVAL, TYPE_IPV6_ADDR, 16, 0, 0),
            SetId::NoMasqHost4 => (0, TYPE_IPV4_ADDR, 4, 0, 0),
            SetId::NoMasqHost6 => (0, TYPE_IPV6_ADDR, 16, 0, 0),
        }
    }

    fn kind(self) -> &'static str {
        if self.is_map() {
            "map"
        } else {
            "set"
        }
    }

    /// Upper bound of one encoded element (list elem + key + data + flags).
    fn elem_size(self) -> usize {
        let (_, _, klen, _, dlen) = self.layout();
        let data = if dlen > 0 { 8 + wire::align4(dlen as usize) } else { 0 };
        4 + 8 + wire::align4(klen as usize) + data + 8
    }

    fn from_name(name: &str) -> Option<SetId> {
        SetId::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One set or map element: key, optional data, and whether it closes an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elem {
    key: [u8; 24],
    klen: u8,
    data: [u8; 20],
    dlen: u8,
    end: bool,
}

impl Elem {
    /// A plain (non-interval) address element, for the host sets.
    pub(crate) fn host(ip: std::net::IpAddr) -> (SetId, Elem) {
        let mut key = [0; 24];
        let (set, klen) = match ip {
            std::net::IpAddr::V4(a) => {
                key[..4].copy_from_slice(&a.octets());
                (SetId::NoMasqHost4, 4)
            }
            std::net::IpAddr::V6(a) => {
                key[..16].copy_from_slice(&a.octets());
                (SetId::NoMasqHost6, 16)
            }
        };
        (set, Elem { key, klen, data: [0; 20], dlen: 0, end: false })
    }

    fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.klen)]
    }
    fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.dlen)]
    }

    /// Encode one element; `with_data` is false for deletes (only the key identifies it).
    fn write(&self, w: &mut Writer, with_data: bool) {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.attr(NFTA_DATA_VALUE, self.key()));
            if with_data && self.dlen > 0 {
                w.nest(NFTA_SET_ELEM_DATA, |w| w.attr(NFTA_DATA_VALUE, self.data()));
            }
            if self.end {
                w.u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
            }
        });
    }
}

/// Appends fields to a fixed buffer, each padded to a 4-byte register word as concatenations
/// require (a 1-byte l4proto takes a whole word, a 2-byte port too).
struct Fields<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Fields<N> {
    fn new() -> Self {
        Fields { buf: [0; N], len: 0 }
    }
    fn push(mut self, bytes: &[u8]) -> Self {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += wire::align4(bytes.len());
        self
    }
    fn ip(self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => self.push(&a.octets()),
            IpAddr::V6(a) => self.push(&a.octets()),
        }
    }
}

impl HostPort {
    /// The map this mapping lives in (the pod IP decides the family).
    pub(crate) fn set(&self) -> SetId {
        match (self.pod_ip.is_ipv6(), self.host_ip.is_some()) {
            (false, false) => SetId::HostPorts,
            (false, true) => SetId::HostPortsIp,
            (true, false) => SetId::HostPorts6,
            (true, true) => SetId::HostPorts6Ip,
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
        Elem { key: k.buf, klen: k.len as u8, data: d.buf, dlen: d.len as u8, end: false }
    }

    /// Inverse of [`HostPort::elem`], for dumps and error messages.
    pub(crate) fn decode(set: SetId, key: &[u8], data: &[u8]) -> Option<HostPort> {
        let (host_ip, rest) = match set {
            SetId::HostPorts | SetId::HostPorts6 => (None, key),
            SetId::HostPortsIp => {
                (Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(key.get(..4)?).ok()?))), &key[4..])
            }
            SetId::HostPorts6Ip => {
                (Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(key.get(..16)?).ok()?))), &key[16..])
            }
            _ => return None,
        };
        if rest.len() != 8 {
            return None;
        }
        let protocol = Proto::from_number(rest[0])?;
        let host_port = u16::from_be_bytes([rest[4], rest[5]]);
        let (pod_ip, port) = if set.is_v6() {
            (IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data.get(..16)?).ok()?)), data.get(16..18)?)
        } else {
            (IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data.get(..4)?).ok()?)), data.get(4..6)?)
        };
        Some(HostPort { protocol, host_ip, host_port, pod_ip, pod_port: u16::from_be_bytes([port[0], port[1]]) })
    }
}

/// Sorted, merged, inclusive ranges of a family of width `bits` (32 or 128).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Intervals {
    v6: bool,
    ranges: Vec<(u128, u128)>,
}

impl Intervals {
    pub(crate) fn v4(nets: &[Ipv4Network]) -> Intervals {
        Self::merge(
            false,
            nets.iter().map(|n| (u128::from(u32::from(n.network())), u128::from(u32::from(n.broadcast())))),
        )
    }

    pub(crate) fn v6(nets: &[Ipv6Network]) -> Intervals {
        Self::merge(true, nets.iter().map(|n| (u128::from(n.network()), u128::from(n.broadcast()))))
    }

    /// Overlapping and adjacent ranges merge: the kernel's interval sets reject overlaps, and
    /// callers may well pass 10.0.0.0/8 next to 10.1.0.0/16.
    fn merge(v6: bool, it: impl Iterator<Item = (u128, u128)>) -> Intervals {
        let mut v: Vec<(u128, u128)> = it.collect();
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        Intervals { v6, ranges: out }
    }

    fn max(&self) -> u128 {
        if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        }
    }

    fn elem(&self, v: u128, end: bool) -> Elem {
        let mut key = [0; 24];
        let klen = if self.v6 {
            key[..16].copy_from_slice(&v.to_be_bytes());
            16
        } else {
            key[..4].copy_from_slice(&(v as u32).to_be_bytes());
            4
        };
        Elem { key, klen, data: [0; 20], dlen: 0, end }
    }

    /// Elements the way nft encodes prefixes: a start key, and the first address past the range
    /// as an "interval end" key; a range reaching the top of the address space has no end.
    /// Like nft, a leading end element at address 0 marks the gap below the first range.
    pub(crate) fn elems(&self) -> Vec<Elem> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2 + 1);
        if let Some(&(first, _)) = self.ranges.first() {
            if first != 0 {
                out.push(self.elem(0, true));
            }
        }
        for &(s, e) in &self.ranges {
            out.push(self.elem(s, false));
            if e != self.max() {
                out.push(self.elem(e + 1, true));
            }
        }
        out
    }
}

/// What a batch message does, to name it in an error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum What {
    Table(&'static str),
    Set(SetId),
    Chain(&'static str),
    Rule(&'static str, usize),
    Elements(&'static str, SetId, usize),
    Flush(SetId),
}

impl What {
    /// Describe the message; for element lists, `elem` is the offending element's attribute
    /// (found through the extended ack offset) when the kernel pointed at one.
    pub(crate) fn describe(&self, elem: Option<&[u8]>) -> String {
        match *self {
            What::Table(verb) => format!("{verb} table inet {TABLE}"),
            What::Set(s) => format!("add {} {}", s.kind(), s.name()),
            What::Chain(c) => format!("add chain {c}"),
            What::Rule(c, i) => format!("add rule {i} to chain {c}"),
            What::Flush(s) => format!("flush {} {}", s.kind(), s.name()),
            What::Elements(verb, s, n) => {
                let prep = if verb == "add" { "to" } else { "from" };
                match elem.and_then(|e| describe_elem(s, e)) {
                    Some(d) => format!("{verb} element {d} {prep} {} {}", s.kind(), s.name()),
                    None if n == 1 => format!("{verb} 1 element {prep} {} {}", s.kind(), s.name()),
                    None => format!("{verb} {n} elements {prep} {} {}", s.kind(), s.name()),
                }
            }
        }
    }
}

/// Render an encoded NFTA_LIST_ELEM of `set`.
fn describe_elem(set: SetId, attr: &[u8]) -> Option<String> {
    // `attr` starts at the attribute header; its payload follows the 4-byte header.
    let len = usize::from(u16::from_ne_bytes([*attr.first()?, *attr.get(1)?]));
    let ty = u16::from_ne_bytes([*attr.get(2)?, *attr.get(3)?]);
    if ty != NFTA_LIST_ELEM | wire::NLA_F_NESTED {
        return None; // the kernel pointed at another attribute (e.g. the table name)
    }
    let body = attr.get(4..len)?;
    let (key, data, flags) = parse_elem(body);
    let key = key?;
    if set.is_map() {
        return match data {
            Some(d) => HostPort::decode(set, key, d).map(|p| p.to_string()),
            // a delete carries the key only: decode it against a zero target
            None => HostPort::decode(set, key, &[0; 20]).map(|p| p.key_string()),
        };
    }
    let addr = match key.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(key).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(key).ok()?)),
        _ => return None,
    };
    Some(if flags & NFT_SET_ELEM_INTERVAL_END != 0 { format!("{addr} (interval end)") } else { addr.to_string() })
}

/// Key value, data value and flags of one NFTA_LIST_ELEM payload.
fn parse_elem(body: &[u8]) -> (Option<&[u8]>, Option<&[u8]>, u32) {
    let mut key = None;
    let mut data = None;
    let mut flags = 0;
    for (ty, v) in wire::attrs(body) {
        match ty {
            NFTA_SET_ELEM_KEY => key = wire::attr(v, NFTA_DATA_VALUE),
            NFTA_SET_ELEM_DATA => data = wire::attr(v, NFTA_DATA_VALUE),
            NFTA_SET_ELEM_FLAGS if v.len() == 4 => flags = u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            _ => {}
        }
    }
    (key, data, flags)
}

/// Decode one NEWSETELEM dump message into host ports (only port maps carry them).
pub(crate) fn decode_port_dump(payload: &[u8], out: &mut Vec<HostPort>) -> Result<(), String> {
    let attrs = payload.get(wire::NFGENMSG_LEN..).ok_or("short set element message")?;
    let set = wire::attr(attrs, NFTA_SET_ELEM_LIST_SET)
        .and_then(|n| std::str::from_utf8(n.split(|b| *b == 0).next().unwrap_or_default()).ok())
        .and_then(SetId::from_name)
        .ok_or("set element message for an unknown set")?;
    let Some(elems) = wire::attr(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else { return Ok(()) };
    for (ty, body) in wire::attrs(elems) {
        if ty != NFTA_LIST_ELEM {
            continue;
        }
        let (key, data, _) = parse_elem(body);
        let port = key
            .zip(data)
            .and_then(|(k, d)| HostPort::decode(set, k, d))
            .ok_or_else(|| format!("undecodable element in map {}", set.name()))?;
        out.push(port);
    }
    Ok(())
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pod = std::net::SocketAddr::new(self.pod_ip, self.pod_port);
        write!(f, "{} -> {pod}", self.key_string())
    }
}

impl HostPort {
    /// "tcp/8080" or "tcp/192.168.200.1:8080" or "tcp/[fd00::1]:8080".
    pub(crate) fn key_string(&self) -> String {
        match self.host_ip {
            None => format!("{}/{}", self.protocol, self.host_port),
            Some(ip) => format!("{}/{}", self.protocol, std::net::SocketAddr::new(ip, self.host_port)),
        }
    }
}

// ---- message builders ----

/// Write element messages for `set`, split so that no element list exceeds the u16 limit.
/// `msg` is NEWSETELEM (with data) or DEL/DESTROYSETELEM (keys only).
pub(crate) fn elements(b: &mut Batch<What>, msg: u8, set: SetId, elems: &[Elem]) {
    let (verb, flags, with_data) = match msg {
        NEWSETELEM => ("add", NLM_F_CREATE, true),
        DESTROYSETELEM => ("destroy", 0, false),
        _ => ("delete", 0, false),
    };
    let per_msg = (ELEMENTS_PER_MSG_BYTES / set.elem_size()).max(1);
    for chunk in elems.chunks(per_msg) {
        b.msg(msg, flags, FAMILY_INET, What::Elements(verb, set, chunk.len()), |w| {
            w.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
            w.str(NFTA_SET_ELEM_LIST_SET, set.name());
            w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                for e in chunk {
                    e.write(w, with_data);
                }
            });
        });
    }
}

/// DELSETELEM without an element list: the kernel flushes the whole set.
pub(crate) fn flush_set(b: &mut Batch<What>, set: SetId) {
    b.msg(DELSETELEM, 0, FAMILY_INET, What::Flush(set), |w| {
        w.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        w.str(NFTA_SET_ELEM_LIST_SET, set.name());
    });
}

/// Add host ports, one message group per map.
pub(crate) fn port_elements(b: &mut Batch<What>, msg: u8, ports: &[HostPort]) {
    for set in SetId::PORT_MAPS {
        let elems: Vec<Elem> = ports.iter().filter(|p| p.set() == set).map(HostPort::elem).collect();
        if !elems.is_empty() {
            elements(b, msg, set, &elems);
        }
    }
}

pub(crate) fn table_msg(b: &mut Batch<What>, msg: u8, verb: &'static str) {
    let flags = if msg == NEWTABLE { NLM_F_CREATE } else { 0 };
    b.msg(msg, flags, FAMILY_INET, What::Table(verb), |w| w.str(NFTA_TABLE_NAME, TABLE));
}

fn set_msg(b: &mut Batch<What>, set: SetId) {
    let (flags, ktype, klen, dtype, dlen) = set.layout();
    b.msg(NEWSET, NLM_F_CREATE, FAMILY_INET, What::Set(set), |w| {
        w.str(NFTA_SET_TABLE, TABLE);
        w.str(NFTA_SET_NAME, set.name());
        w.u32(NFTA_SET_FLAGS, flags);
        w.u32(NFTA_SET_KEY_TYPE, ktype);
        w.u32(NFTA_SET_KEY_LEN, klen);
        if flags & NFT_SET_MAP != 0 {
            w.u32(NFTA_SET_DATA_TYPE, dtype);
            w.u32(NFTA_SET_DATA_LEN, dlen);
        }
        // Mandatory in NEWSET (it lets later messages of the batch refer to a set by id; we
        // refer by name, which works as well).
        w.u32(NFTA_SET_ID, set as u32 + 1);
    });
}

/// A base chain is (hook, priority); a regular chain has none.
fn chain_msg(b: &mut Batch<What>, name: &'static str, hook: Option<(u32, i32)>) {
    b.msg(NEWCHAIN, NLM_F_CREATE, FAMILY_INET, What::Chain(name), |w| {
        w.str(NFTA_CHAIN_TABLE, TABLE);
        w.str(NFTA_CHAIN_NAME, name);
        if let Some((num, prio)) = hook {
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.u32(NFTA_HOOK_HOOKNUM, num);
                w.u32(NFTA_HOOK_PRIORITY, prio as u32);
            });
            w.u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
            w.str(NFTA_CHAIN_TYPE, "nat");
        }
    });
}

/// Append a rule (NLM_F_APPEND: without it the kernel inserts at the head of the chain).
fn rule_msg(b: &mut Batch<What>, chain: &'static str, index: usize, exprs: impl FnOnce(&mut Writer)) {
    b.msg(NEWRULE, NLM_F_CREATE | NLM_F_APPEND, FAMILY_INET, What::Rule(chain, index), |w| {
        w.str(NFTA_RULE_TABLE, TABLE);
        w.str(NFTA_RULE_CHAIN, chain);
        w.nest(NFTA_RULE_EXPRESSIONS, exprs);
    });
}

/// `meta nfproto <f> [<daddr> .] meta l4proto . th dport` -> lookup map -> mark -> dnat.
///
/// The mark is set after the lookup (a miss ends the rule before it), so only connections this
/// table really DNATs carry it to postrouting.
pub(crate) fn dnat_rule(w: &mut Writer, set: SetId, mark: u32) {
    let v6 = set.is_v6();
    let with_ip = matches!(set, SetId::HostPortsIp | SetId::HostPorts6Ip);
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
    expr::lookup(w, set.name(), reg::R1, Some(reg::R1), false);
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
fn saddr_in(w: &mut Writer, set: SetId) {
    let (off, len) = if set.is_v6() { (8, 16) } else { (12, 4) };
    expr::payload(w, expr::NETWORK_HEADER, off, len, reg::R1);
    expr::lookup(w, set.name(), reg::R1, None, false);
}

/// Write the whole table: atomically replace any previous version of it (NEWTABLE + DELTABLE
/// + NEWTABLE works on every kernel with nf_tables, unlike DESTROYTABLE which needs 6.3).
pub(crate) fn build(b: &mut Batch<What>, rs: &Ruleset, ports: &[HostPort]) {
    table_msg(b, NEWTABLE, "add");
    table_msg(b, DELTABLE, "delete");
    table_msg(b, NEWTABLE, "add");
    for set in SetId::ALL {
        set_msg(b, set);
    }
    let cidrs = [
        (SetId::PodNets4, Intervals::v4(&rs.pod_cidrs_v4)),
        (SetId::PodNets6, Intervals::v6(&rs.pod_cidrs_v6)),
        (SetId::ClusterNets4, Intervals::v4(&rs.cluster_cidrs_v4)),
        (SetId::ClusterNets6, Intervals::v6(&rs.cluster_cidrs_v6)),
        (SetId::NoMasq4, Intervals::v4(&rs.no_masq_v4)),
        (SetId::NoMasq6, Intervals::v6(&rs.no_masq_v6)),
    ];
    for (set, iv) in &cidrs {
        let e = iv.elems();
        if !e.is_empty() {
            elements(b, NEWSETELEM, *set, &e);
        }
    }
    for (set, e) in rs.no_masq_hosts.iter().map(|ip| Elem::host(*ip)) {
        elements(b, NEWSETELEM, set, &[e]);
    }
    port_elements(b, NEWSETELEM, ports);

    chain_msg(b, "hostports_dnat", None);
    chain_msg(b, "prerouting", Some((NF_INET_PRE_ROUTING, PRIO_DSTNAT)));
    chain_msg(b, "output", Some((NF_INET_LOCAL_OUT, PRIO_DSTNAT)));
    chain_msg(b, "postrouting", Some((NF_INET_POST_ROUTING, PRIO_SRCNAT)));

    // Host-IP-specific maps first: a lookup miss ends that rule and evaluation moves on.
    for (i, set) in
        [SetId::HostPortsIp, SetId::HostPorts, SetId::HostPorts6Ip, SetId::HostPorts6].into_iter().enumerate()
    {
        rule_msg(b, "hostports_dnat", i, |w| dnat_rule(w, set, rs.hostport_mark));
    }
    rule_msg(b, "prerouting", 0, jump_rule);
    rule_msg(b, "output", 0, jump_rule);

    let mark = rs.hostport_mark;
    let masq = |w: &mut Writer| expr::masq(w, expr::NAT_RANDOM_FULLY);
    // Host-port connections from localhost (route_localnet) and from pods (hairpin, pod to a
    // host port of its own node) must be masqueraded, or the reply bypasses the reverse DNAT.
    // External clients keep their source address.
    rule_msg(b, "postrouting", 0, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV4);
        expr::payload(w, expr::NETWORK_HEADER, 12, 1, reg::R1);
        expr::cmp_eq(w, reg::R1, &[127]);
        masq(w);
    });
    rule_msg(b, "postrouting", 1, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV4);
        saddr_in(w, SetId::PodNets4);
        masq(w);
    });
    rule_msg(b, "postrouting", 2, |w| {
        expr::mark_has(w, mark);
        expr::nfproto_is(w, NFPROTO_IPV6);
        saddr_in(w, SetId::PodNets6);
        masq(w);
    });
    if rs.egress_masquerade {
        // Pod traffic leaving the cluster: not to cluster CIDRs or the no-masq list, and only to
        // unicast destinations (`fib daddr type unicast` leaves out local, broadcast and
        // multicast addresses, which must never be source-NATed to the node address).
        for (i, (f, pods, cluster, nomasq, hosts, daddr, len)) in [
            (NFPROTO_IPV4, SetId::PodNets4, SetId::ClusterNets4, SetId::NoMasq4, SetId::NoMasqHost4, 16, 4),
            (NFPROTO_IPV6, SetId::PodNets6, SetId::ClusterNets6, SetId::NoMasq6, SetId::NoMasqHost6, 24, 16),
        ]
        .into_iter()
        .enumerate()
        {
            rule_msg(b, "postrouting", 3 + i, |w| {
                expr::nfproto_is(w, f);
                saddr_in(w, pods);
                expr::payload(w, expr::NETWORK_HEADER, daddr, len, reg::R1);
                expr::lookup(w, cluster.name(), reg::R1, None, true);
                expr::lookup(w, nomasq.name(), reg::R1, None, true);
                expr::lookup(w, hosts.name(), reg::R1, None, true);
                expr::fib_daddr_type(w, reg::R1);
                expr::cmp_eq(w, reg::R1, &expr::RTN_UNICAST.to_ne_bytes());
                masq(w);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(proto: Proto, host_ip: Option<&str>, host_port: u16, pod: &str, pod_port: u16) -> HostPort {
        HostPort {
            protocol: proto,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port,
            pod_ip: pod.parse().unwrap(),
            pod_port,
        }
    }

    /// Header bytes of one nf_tables message inside a batch (type, flags, seq, nfgenmsg).
    fn hdr(len: usize, msg: u8, flags: u16, seq: u32) -> Vec<u8> {
        [
            &(len as u32).to_ne_bytes()[..],
            &[msg, 10],
            &flags.to_ne_bytes(),
            &seq.to_ne_bytes(),
            &[0, 0, 0, 0],
            &[1, 0, 0, 0],
        ]
        .concat()
    }

    fn one(f: impl FnOnce(&mut Batch<What>)) -> Vec<u8> {
        let mut b = Batch::new(Vec::new(), 0); // the first message gets seq 1
        f(&mut b);
        assert_eq!(b.len(), 1);
        let r = b.sent[0].range.clone();
        b.w.buf[r].to_vec()
    }

    fn s(ty: u16, v: &str) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(ty, v);
        w.buf
    }

    #[test]
    fn newtable_bytes() {
        let got = one(|b| table_msg(b, NEWTABLE, "add"));
        // REQUEST | ACK | CREATE = 0x405
        let want = [hdr(32, NEWTABLE, 0x405, 1), s(1, "podnet")].concat();
        assert_eq!(got, want);
        assert_eq!(&got[20..32], &[11, 0, 1, 0, b'p', b'o', b'd', b'n', b'e', b't', 0, 0]);
    }

    #[test]
    fn newchain_base_chain_bytes() {
        let got = one(|b| chain_msg(b, "prerouting", Some((NF_INET_PRE_ROUTING, PRIO_DSTNAT))));
        #[rustfmt::skip]
        let body: Vec<u8> = [
            s(1, "podnet"),
            s(3, "prerouting"),
            vec![20, 0, 4, 0x80,  8, 0, 1, 0, 0, 0, 0, 0,  8, 0, 2, 0, 0xff, 0xff, 0xff, 0x9c], // hook 0, prio -100
            vec![8, 0, 5, 0, 0, 0, 0, 1], // policy accept
            vec![8, 0, 7, 0, b'n', b'a', b't', 0],
        ]
        .concat();
        assert_eq!(got, [hdr(20 + body.len(), NEWCHAIN, 0x405, 1), body].concat());
    }

    #[test]
    fn newset_concatenated_map_bytes() {
        let got = one(|b| set_msg(b, SetId::HostPorts));
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
        assert_eq!(SetId::HostPorts6Ip.layout(), (8, (8 << 12) | (12 << 6) | 13, 24, (8 << 6) | 13, 20));
    }

    #[test]
    fn newsetelem_bytes_match_nft() {
        let p = hp(Proto::Tcp, None, 8080, "10.88.0.2", 80);
        let e = p.elem();
        assert_eq!(e.key(), [0x06, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.data(), [0x0a, 0x58, 0x00, 0x02, 0x00, 0x50, 0, 0]);
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
        assert_eq!(p.elem().key(), [192, 168, 200, 1, 17, 0, 0, 0, 0x23, 0x82, 0, 0]);
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
        assert_eq!(p.set(), SetId::HostPorts6Ip);
        assert_eq!(e.klen, 24);
        assert_eq!(e.dlen, 20);
        assert_eq!(&e.key()[16..], [132, 0, 0, 0, 0x27, 0x0f, 0, 0]);
        assert_eq!(&e.data()[16..], [0x14, 0xe9, 0, 0]);
        assert_eq!(HostPort::decode(p.set(), e.key(), e.data()), Some(p));
        let q = hp(Proto::Tcp, None, 80, "10.88.0.9", 8080);
        assert_eq!(HostPort::decode(q.set(), q.elem().key(), q.elem().data()), Some(q));
        assert_eq!(q.to_string(), "tcp/80 -> 10.88.0.9:8080");
        assert_eq!(p.to_string(), "sctp/[fd00::1]:9999 -> [fd00:88::2]:5353");
    }

    #[test]
    fn rule_with_lookup_and_nat_bytes() {
        let got = one(|b| rule_msg(b, "hostports_dnat", 1, |w| dnat_rule(w, SetId::HostPorts, 0x2000)));
        // Rebuild the expected expression list by hand from the attribute numbers in
        // nf_tables.h (independent of the expr helpers).
        fn e(w: &mut Writer, name: &str, f: impl FnOnce(&mut Writer)) {
            w.nest(1, |w| {
                w.str(1, name);
                w.nest(2, f);
            });
        }
        let mut x = Writer::default();
        e(&mut x, "meta", |w| {
            w.u32(2, 15);
            w.u32(1, 1);
        });
        e(&mut x, "cmp", |w| {
            w.u32(1, 1);
            w.u32(2, 0);
            w.nest(3, |w| w.attr(1, &[2]));
        });
        e(&mut x, "meta", |w| {
            w.u32(2, 16);
            w.u32(1, 1);
        });
        e(&mut x, "payload", |w| {
            w.u32(1, 9);
            w.u32(2, 2);
            w.u32(3, 2);
            w.u32(4, 2);
        });
        e(&mut x, "lookup", |w| {
            w.str(1, "hostports");
            w.u32(2, 1);
            w.u32(3, 1);
        });
        e(&mut x, "meta", |w| {
            w.u32(2, 3);
            w.u32(1, 4);
        });
        e(&mut x, "bitwise", |w| {
            w.u32(1, 4);
            w.u32(2, 4);
            w.u32(3, 4);
            w.nest(4, |w| w.attr(1, &(!0x2000u32).to_ne_bytes()));
            w.nest(5, |w| w.attr(1, &0x2000u32.to_ne_bytes()));
        });
        e(&mut x, "meta", |w| {
            w.u32(2, 3);
            w.u32(3, 4);
        });
        e(&mut x, "nat", |w| {
            w.u32(1, 1);
            w.u32(2, 2);
            w.u32(3, 1);
            w.u32(5, 9);
        });
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
    fn intervals_like_nft() {
        let nets: Vec<Ipv4Network> =
            ["10.88.0.0/16", "0.0.0.0/8", "192.168.200.2/32", "224.0.0.0/3", "10.88.4.0/24", "10.89.0.0/16"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let iv = Intervals::v4(&nets);
        let keys: Vec<(u32, bool)> =
            iv.elems().iter().map(|e| (u32::from_be_bytes(e.key()[..4].try_into().unwrap()), e.end)).collect();
        // 0.0.0.0/8 starts at zero: no leading end element; 10.88/16 + 10.89/16 merge;
        // 224.0.0.0/3 reaches 255.255.255.255: no end element.
        assert_eq!(
            keys,
            vec![
                (0, false),
                (0x0100_0000, true),
                (0x0a58_0000, false),
                (0x0a5a_0000, true),
                (0xc0a8_c802, false),
                (0xc0a8_c803, true),
                (0xe000_0000, false),
            ]
        );
        let d: Vec<(u32, bool)> = Intervals::v4(&["10.0.0.0/8".parse().unwrap()])
            .elems()
            .iter()
            .map(|e| (u32::from_be_bytes(e.key()[..4].try_into().unwrap()), e.end))
            .collect();
        assert_eq!(d, vec![(0, true), (0x0a00_0000, false), (0x0b00_0000, true)]);
        let v6 = Intervals::v6(&["fd00::/64".parse().unwrap()]).elems();
        assert_eq!(v6.len(), 3);
        assert_eq!(&v6[2].key()[..9], &[0xfd, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert!(Intervals::v6(&[]).elems().is_empty());
        let all = Intervals::v4(&["0.0.0.0/0".parse().unwrap()]).elems();
        assert_eq!(all.len(), 1);
        assert!(!all[0].end);
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
            let mut out = Vec::new();
            decode_port_dump(m.payload, &mut out).unwrap();
            total += out.len();
        }
        assert_eq!(total, 10_000);
    }

    #[test]
    fn describes_the_offending_element() {
        let p = hp(Proto::Tcp, None, 8080, "10.88.0.3", 80);
        let got = one(|b| port_elements(b, NEWSETELEM, &[p]));
        // the first LIST_ELEM sits after nlmsghdr+nfgenmsg, TABLE, SET and the ELEMENTS header
        let off = 20 + 12 + 16 + 4;
        let what = What::Elements("add", SetId::HostPorts, 1);
        assert_eq!(what.describe(Some(&got[off..])), "add element tcp/8080 -> 10.88.0.3:80 to map hostports");
        assert_eq!(what.describe(None), "add 1 element to map hostports");
        let d = What::Elements("delete", SetId::HostPorts, 1);
        let got = one(|b| port_elements(b, DELSETELEM, &[p]));
        assert_eq!(d.describe(Some(&got[off..])), "delete element tcp/8080 from map hostports");
        assert_eq!(What::Rule("postrouting", 2).describe(None), "add rule 2 to chain postrouting");
    }
}
