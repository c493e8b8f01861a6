//! podnet's services table `inet podnet-services`: Service dispatch the way kube-proxy's
//! nftables mode dispatches (frontend `daddr . l4proto . dport`, NodePorts behind
//! `fib daddr type local`, `numgen random mod N`, ClientIP affinity in a timeout map), but with
//! the per-service and per-endpoint state in sets and data maps instead of per-service chains,
//! so that a change is a few element updates and never makes the kernel revalidate the table.
//! Every rule is one nft 1.0.6 can print: `nft list ruleset` shows the whole table.
//!
//! ```text
//! table inet podnet-services {
//!   set fe4-n3[-masq][-aff30] { ipv4_addr . inet_proto . inet_service }  # a "kind": frontends
//!   set np4-n3[-masq][-aff30] { inet_proto . inet_service }               # NodePorts of a kind
//!   set fe4-drop, np4-drop                   # policy Local without a local endpoint: dropped
//!   map eps4   { ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service }
//!   map npeps4 { inet_proto . inet_service . mark : ipv4_addr . inet_service }
//!   map aff4   { ipv4_addr . inet_proto . inet_service . ipv4_addr : ipv4_addr . inet_service;
//!                flags timeout, dynamic }                                 # ClientIP affinity
//!   set noeps4 { ipv4_addr . inet_proto . inet_service }  # live service ports without endpoints
//!   set noeps_np { inet_proto . inet_service }            # NodePorts without endpoints
//!   set clusterips4 { ipv4_addr }; set svcnets4, clusternets4 { flags interval }
//!   set hairpin4 { ipv4_addr . ipv4_addr }                # (ep, ep) of local endpoints
//!   (and the ipv6 twins)
//!   chain dispatch {
//!     [ip daddr @clusterips4 ip saddr != @clusternets4 meta mark set meta mark | M]
//!     meta nfproto ipv4 jump frontends4
//!     fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports4
//!     (the same for ipv6)
//!   }
//!   chain frontends4 {   # per kind, appended when the kind first appears:
//!     [ip daddr . meta l4proto . th dport @fe4-n3-aff30
//!        dnat ip to ip daddr . meta l4proto . th dport . ip saddr map @aff4]
//!     ip daddr . meta l4proto . th dport @fe4-n3 [meta mark set meta mark | M]
//!       dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @eps4
//!     ip daddr . meta l4proto . th dport @fe4-drop drop
//!   }
//!   chain nodeports4 {
//!     meta l4proto . th dport @np4-n3-masq meta mark set meta mark | M
//!       dnat ip to meta l4proto . th dport . numgen random mod 3 map @npeps4
//!   }
//!   chain nat_prerouting  { type nat hook prerouting priority -100; jump dispatch }
//!   chain nat_output      { type nat hook output priority -100; jump dispatch }
//!   chain nat_postrouting { type nat hook postrouting priority 100;
//!     mark & M == M masquerade fully-random; ip saddr . ip daddr @hairpin4 masquerade fully-random }
//!   chain check { @noeps -> reject; fib daddr type local @noeps_np -> reject;
//!                 @clusterips -> reject; @svcnets -> drop          # reject: tcp reset for TCP
//!     # per affinity kind and protocol: the endpoint a new connection got, for the timeout
//!     meta l4proto tcp ct original ip daddr . meta l4proto . ct original proto-dst @fe4-n3-aff30
//!       update @aff4 { ct original ip daddr . meta l4proto . ct original proto-dst . ip saddr
//!                      timeout 30s : ip daddr . th dport } }
//!   chain filter_input / filter_forward / filter_output { type filter hook ... priority 0;
//!     ct state new jump check }
//! }
//! ```
//! A frontend (ClusterIP or external IP and port, or NodePort) is an element of exactly one
//! kind set: kinds are the distinct (family, NodePort or not, endpoint count, masquerade,
//! affinity timeout), a handful in practice, each with its own rule because `numgen` takes its
//! modulus from the rule; a new connection tries the kinds of its family in turn (NodePort
//! kinds only when addressed to the node). Endpoint `i` of a frontend is the map element `frontend . i`. So
//! adding an endpoint adds one element per frontend and moves each frontend to the next kind's
//! set; nothing is a verdict pointing at a chain, so no change makes the kernel revalidate the
//! table (adding one goto element to a 10,000-element verdict map cost 1.2 ms of commit here,
//! a data element 0.04 ms). The price of printable rules: one hash lookup per kind tried, and
//! a frontend's endpoints are elements of their own.
//!
//! Affinity is recorded per frontend address (ClusterIP, external IP, or the node address a
//! NodePort was reached on) and client, after DNAT, from the connection's original tuple: nft
//! can print neither a lookup keyed by another lookup's result nor a map update whose data is
//! one. The endpoint index is a host-order `mark` in the maps' key types (nft has no sized
//! type for a `numgen` result), so the listing prints it in hex.

use std::net::IpAddr;
use std::sync::Mutex;

use super::expr::{self, NFPROTO_IPV4, NFPROTO_IPV6};
use super::msg::{
    self, concat, Cidrs, Elem, Fields, Hook, SetDef, What, TYPE_INET_PROTO, TYPE_INET_SERVICE, TYPE_IPV4_ADDR,
    TYPE_IPV6_ADDR, TYPE_MARK,
};
use super::ruleset::Proto;
use super::uapi::{self, NEWSETELEM, NFT_SET_EVAL, NFT_SET_INTERVAL, NFT_SET_MAP, NFT_SET_TIMEOUT, VERDICT_DROP};
use super::wire::{Batch, Writer};

/// Name of podnet's services table (family `inet`).
pub const SERVICES_TABLE: &str = "podnet-services";

/// Default mark bit asking postrouting to masquerade a service connection (kube-proxy's bit).
pub const DEFAULT_SERVICE_MASQ_MARK: u32 = 0x4000;

/// Table-wide parameters of the services table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    /// Service CIDRs: addresses in them without a service are dropped.
    pub service_cidrs: Cidrs,
    /// Cluster CIDRs: ClusterIP traffic from outside them is masqueraded (none of a family:
    /// never, for that family).
    pub cluster_cidrs: Cidrs,
    /// Mark bit for "masquerade this connection" (non-zero).
    pub masq_mark: u32,
}

/// How a frontend picks its endpoint; each distinct kind is one set and its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Kind {
    /// IPv6 frontend.
    pub v6: bool,
    /// A NodePort (`proto . port` on every local address) rather than an address.
    pub nodeport: bool,
    /// Number of endpoints to choose from; 0: drop (policy Local without a local endpoint).
    pub n: u32,
    /// Mark the connection for masquerade.
    pub masq: bool,
    /// ClientIP affinity timeout in seconds (0: none).
    pub affinity_secs: u32,
}

impl Kind {
    /// A kind that drops (no endpoint to choose from); the other fields do not matter.
    pub fn drop(v6: bool, nodeport: bool) -> Kind {
        Kind { v6, nodeport, n: 0, masq: false, affinity_secs: 0 }
    }

    /// The dispatch chain holding the kind's rules: per family, addresses or NodePorts.
    fn chain(&self) -> &'static str {
        match (self.nodeport, self.v6) {
            (false, false) => "frontends4",
            (false, true) => "frontends6",
            (true, false) => "nodeports4",
            (true, true) => "nodeports6",
        }
    }

    fn name(&self) -> String {
        let mut s = format!("{}{}", if self.nodeport { "np" } else { "fe" }, if self.v6 { 6 } else { 4 });
        if self.n == 0 {
            s.push_str("-drop");
            return s;
        }
        s.push_str(&format!("-n{}", self.n));
        if self.masq {
            s.push_str("-masq");
        }
        if self.affinity_secs > 0 {
            s.push_str(&format!("-aff{}", self.affinity_secs));
        }
        s
    }

    /// The kind's set. Sets are described by `&'static SetDef` like the fixed ones: each kind's
    /// is made once per process and kept (a few hundred bytes per distinct kind ever used).
    pub(crate) fn set(&self) -> &'static SetDef {
        // A Vec (not a hash map, whose pointer points into the middle of its allocation): the
        // catalogue stays plainly reachable, so leak checkers do not report it.
        static KINDS: Mutex<Vec<(Kind, &'static SetDef)>> = Mutex::new(Vec::new());
        let mut kinds = KINDS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, def)) = kinds.iter().find(|(k, _)| k == self) {
            return def;
        }
        let next_id = FIRST_KIND_ID + kinds.len() as u32;
        let (key_type, key_len) = match (self.nodeport, self.v6) {
            (true, _) => (concat(&[P, S]), 8),
            (false, false) => (concat(&[A4, P, S]), 12),
            (false, true) => (concat(&[A6, P, S]), 24),
        };
        let name: &'static str = Box::leak(self.name().into_boxed_str());
        let def: &'static SetDef = Box::leak(Box::new(set(name, next_id, 0, key_type, key_len)));
        kinds.push((*self, def));
        def
    }
}

// ---- the set catalogue ----

const A4: u32 = TYPE_IPV4_ADDR;
const A6: u32 = TYPE_IPV6_ADDR;
const P: u32 = TYPE_INET_PROTO;
const S: u32 = TYPE_INET_SERVICE;
const I: u32 = TYPE_MARK;
/// NFTA_SET_ID of kind sets start here (above the fixed sets').
const FIRST_KIND_ID: u32 = 100;

const fn map(name: &'static str, id: u32, kt: u32, kl: u32, dt: u32, dl: u32) -> SetDef {
    SetDef {
        name,
        flags: NFT_SET_MAP,
        key_type: kt,
        key_len: kl,
        data_type: dt,
        data_len: dl,
        id,
        describe: describe_hex,
    }
}

const fn set(name: &'static str, id: u32, flags: u32, kt: u32, kl: u32) -> SetDef {
    SetDef { name, flags, key_type: kt, key_len: kl, data_type: 0, data_len: 0, id, describe: describe_hex }
}

const AFF_FLAGS: u32 = NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_EVAL;

pub(crate) static EPS4: SetDef = map("eps4", 1, concat(&[A4, P, S, I]), 16, concat(&[A4, S]), 8);
pub(crate) static EPS6: SetDef = map("eps6", 2, concat(&[A6, P, S, I]), 28, concat(&[A6, S]), 20);
pub(crate) static NPEPS4: SetDef = map("npeps4", 3, concat(&[P, S, I]), 12, concat(&[A4, S]), 8);
pub(crate) static NPEPS6: SetDef = map("npeps6", 4, concat(&[P, S, I]), 12, concat(&[A6, S]), 20);
pub(crate) static AFF4: SetDef =
    SetDef { flags: AFF_FLAGS, ..map("aff4", 5, concat(&[A4, P, S, A4]), 16, concat(&[A4, S]), 8) };
pub(crate) static AFF6: SetDef =
    SetDef { flags: AFF_FLAGS, ..map("aff6", 6, concat(&[A6, P, S, A6]), 40, concat(&[A6, S]), 20) };
pub(crate) static NOEPS4: SetDef = set("noeps4", 10, 0, concat(&[A4, P, S]), 12);
pub(crate) static NOEPS6: SetDef = set("noeps6", 11, 0, concat(&[A6, P, S]), 24);
pub(crate) static NOEPS_NP: SetDef = set("noeps_np", 12, 0, concat(&[P, S]), 8);
pub(crate) static CLUSTERIPS4: SetDef = set("clusterips4", 13, 0, A4, 4);
pub(crate) static CLUSTERIPS6: SetDef = set("clusterips6", 14, 0, A6, 16);
static SVCNETS4: SetDef = set("svcnets4", 15, NFT_SET_INTERVAL, A4, 4);
static SVCNETS6: SetDef = set("svcnets6", 16, NFT_SET_INTERVAL, A6, 16);
static CLUSTERNETS4: SetDef = set("clusternets4", 17, NFT_SET_INTERVAL, A4, 4);
static CLUSTERNETS6: SetDef = set("clusternets6", 18, NFT_SET_INTERVAL, A6, 16);
pub(crate) static HAIRPIN4: SetDef = set("hairpin4", 19, 0, concat(&[A4, A4]), 8);
pub(crate) static HAIRPIN6: SetDef = set("hairpin6", 20, 0, concat(&[A6, A6]), 32);

static ALL: [&SetDef; 17] = [
    &EPS4,
    &EPS6,
    &NPEPS4,
    &NPEPS6,
    &AFF4,
    &AFF6,
    &NOEPS4,
    &NOEPS6,
    &NOEPS_NP,
    &CLUSTERIPS4,
    &CLUSTERIPS6,
    &SVCNETS4,
    &SVCNETS6,
    &CLUSTERNETS4,
    &CLUSTERNETS6,
    &HAIRPIN4,
    &HAIRPIN6,
];

/// Errors name elements by their bytes: a service element is identified by its service anyway.
fn describe_hex(key: &[u8], data: Option<&[u8]>) -> Option<String> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some(match data {
        Some(d) => format!("{} : {}", hex(key), hex(d)),
        None => hex(key),
    })
}

// ---- elements ----

/// `ip . proto . port`, the key of a frontend address.
fn frontend_key(ip: IpAddr, proto: Proto, port: u16) -> Fields<40> {
    Fields::<40>::new().ip(ip).push(&[proto.number()]).push(&port.to_be_bytes())
}

fn proto_port(proto: Proto, port: u16) -> Fields<40> {
    Fields::<40>::new().push(&[proto.number()]).push(&port.to_be_bytes())
}

/// A frontend (ClusterIP or external IP and port) in the set of its kind.
pub(crate) fn frontend_elem(kind: &Kind, front: IpAddr, proto: Proto, port: u16) -> (&'static SetDef, Elem) {
    debug_assert!(!kind.nodeport && kind.v6 == front.is_ipv6());
    (kind.set(), Elem::key(frontend_key(front, proto, port).bytes()))
}

/// A NodePort (of the kind's family) in the set of its kind.
pub(crate) fn nodeport_elem(kind: &Kind, proto: Proto, node_port: u16) -> (&'static SetDef, Elem) {
    debug_assert!(kind.nodeport);
    (kind.set(), Elem::key(proto_port(proto, node_port).bytes()))
}

/// Endpoint `index` of a frontend: `front . proto . port . index : ep . ep_port`.
pub(crate) fn ep_elem(
    front: IpAddr,
    proto: Proto,
    port: u16,
    index: u32,
    ep: (IpAddr, u16),
) -> (&'static SetDef, Elem) {
    let set = if front.is_ipv6() { &EPS6 } else { &EPS4 };
    endpoint_elem(set, frontend_key(front, proto, port), index, ep)
}

/// Endpoint `index` of a NodePort: `proto . node_port . index : ep . ep_port`.
pub(crate) fn np_ep_elem(proto: Proto, node_port: u16, index: u32, ep: (IpAddr, u16)) -> (&'static SetDef, Elem) {
    let set = if ep.0.is_ipv6() { &NPEPS6 } else { &NPEPS4 };
    endpoint_elem(set, proto_port(proto, node_port), index, ep)
}

/// Endpoint `index` of the frontend `key` in the endpoint map `set`: `key . index : ep . ep_port`.
fn endpoint_elem(
    set: &'static SetDef,
    key: Fields<40>,
    index: u32,
    (ep, ep_port): (IpAddr, u16),
) -> (&'static SetDef, Elem) {
    let d = Fields::<20>::new().ip(ep).push(&ep_port.to_be_bytes());
    (set, Elem::map(key.push(&index.to_ne_bytes()).bytes(), d.bytes()))
}

/// The frontend (address, protocol, port) and endpoint of an affinity map element.
pub(crate) fn parse_affinity(key: &[u8], data: &[u8]) -> Option<((IpAddr, u8, u16), IpAddr)> {
    let (alen, front) = match key.len() {
        16 => (4, IpAddr::from(<[u8; 4]>::try_from(&key[..4]).ok()?)),
        40 => (16, IpAddr::from(<[u8; 16]>::try_from(&key[..16]).ok()?)),
        _ => return None,
    };
    let proto = key[alen];
    let port = u16::from_be_bytes([key[alen + 4], key[alen + 5]]);
    let ep = match data.len() {
        8 => IpAddr::from(<[u8; 4]>::try_from(&data[..4]).ok()?),
        20 => IpAddr::from(<[u8; 16]>::try_from(&data[..16]).ok()?),
        _ => return None,
    };
    Some(((front, proto, port), ep))
}

/// A live service port without endpoints: rejected.
pub(crate) fn noeps_elem(ip: IpAddr, proto: Proto, port: u16) -> (&'static SetDef, Elem) {
    let set = if ip.is_ipv6() { &NOEPS6 } else { &NOEPS4 };
    (set, Elem::key(frontend_key(ip, proto, port).bytes()))
}

/// A NodePort without endpoints: rejected.
pub(crate) fn noeps_nodeport_elem(proto: Proto, node_port: u16) -> (&'static SetDef, Elem) {
    (&NOEPS_NP, Elem::key(proto_port(proto, node_port).bytes()))
}

/// A live ClusterIP: its unknown ports are rejected.
pub(crate) fn clusterip_elem(ip: IpAddr) -> (&'static SetDef, Elem) {
    (if ip.is_ipv6() { &CLUSTERIPS6 } else { &CLUSTERIPS4 }, Elem::addr(ip))
}

/// `ep . ep`: a pod reaching itself through a service is masqueraded.
pub(crate) fn hairpin_elem(ip: IpAddr) -> (&'static SetDef, Elem) {
    let set = if ip.is_ipv6() { &HAIRPIN6 } else { &HAIRPIN4 };
    (set, Elem::key(Fields::<32>::new().ip(ip).ip(ip).bytes()))
}

// ---- chains and rules ----

/// NFT_REG32_00, the first word of register 1: keys start here, as nft puts them.
const KEY: u32 = 8;
/// NFT_REG_1 (words 8..11) and NFT_REG_2 (words 12..15) as 16-byte registers, and word 9.
const R1: u32 = expr::reg::R1;
const R2: u32 = expr::reg::R2;
const R32_01: u32 = expr::reg::R32_01;

/// Words a family's address takes, and its offsets in the network header (saddr, daddr).
const fn family(v6: bool) -> (u32, u32, u32) {
    if v6 {
        (4, 8, 24)
    } else {
        (1, 12, 16)
    }
}

fn chain(b: &mut Batch<What>, name: &'static str, hook: Option<(u32, i32, &'static str)>) {
    let hook = hook.map(|(num, priority, kind)| Hook { num, priority, kind });
    msg::chain_msg(b, SERVICES_TABLE, name, What::Chain(name), hook);
}

fn rule(b: &mut Batch<What>, chain: &'static str, index: usize, exprs: impl FnOnce(&mut Writer)) {
    msg::rule_msg(b, SERVICES_TABLE, chain, What::Rule(chain, index), exprs);
}

fn nfproto(w: &mut Writer, v6: bool) {
    expr::nfproto_is(w, if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 });
}

/// Load `ip daddr . meta l4proto . th dport` into words 8..; returns the next free word.
fn load_frontend(w: &mut Writer, v6: bool) -> u32 {
    let (words, _, daddr) = family(v6);
    expr::payload(w, expr::NETWORK_HEADER, daddr, words * 4, KEY);
    expr::meta_load(w, expr::NFT_META_L4PROTO, KEY + words);
    expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, KEY + words + 1);
    KEY + words + 2
}

/// Load `meta l4proto . th dport` into words 8, 9; returns the next free word.
fn load_nodeport(w: &mut Writer) -> u32 {
    expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
    expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, KEY + 1);
    KEY + 2
}

/// Load `ip saddr` into `word`.
fn load_saddr(w: &mut Writer, v6: bool, word: u32) {
    let (words, saddr, _) = family(v6);
    expr::payload(w, expr::NETWORK_HEADER, saddr, words * 4, word);
}

fn addr_in(w: &mut Writer, v6: bool, saddr: bool, set: &SetDef, invert: bool) {
    let (words, s, d) = family(v6);
    expr::payload(w, expr::NETWORK_HEADER, if saddr { s } else { d }, words * 4, KEY);
    expr::lookup(w, set.name, KEY, None, invert);
}

/// `fib daddr type local ip daddr != 127.0.0.0/8` (`!= ::1`): no NodePorts on localhost.
fn local_not_loopback(w: &mut Writer, v6: bool) {
    expr::fib_daddr_type(w, KEY);
    expr::cmp_eq(w, KEY, &expr::RTN_LOCAL.to_ne_bytes());
    if v6 {
        expr::payload(w, expr::NETWORK_HEADER, 24, 16, KEY);
        expr::cmp_neq(w, KEY, &std::net::Ipv6Addr::LOCALHOST.octets());
    } else {
        expr::payload(w, expr::NETWORK_HEADER, 16, 1, KEY);
        expr::cmp_neq(w, KEY, &[127]);
    }
}

/// The match every rule of a kind starts with: the packet's frontend is in the kind's set.
fn kind_match(w: &mut Writer, kind: &Kind) {
    nfproto(w, kind.v6);
    if kind.nodeport {
        load_nodeport(w);
    } else {
        load_frontend(w, kind.v6);
    }
    expr::lookup(w, kind.set().name, KEY, None, false);
}

/// DNAT to the endpoint the lookup of the key in words 8.. in `map` finds.
fn dnat_via(w: &mut Writer, v6: bool, map: &SetDef) {
    expr::lookup(w, map.name, KEY, Some(R1), false);
    if v6 {
        expr::dnat(w, NFPROTO_IPV6, R1, R2);
    } else {
        expr::dnat(w, NFPROTO_IPV4, R1, R32_01);
    }
}

/// A kind: its set, its dispatch rules and, with affinity, its recording rules. The rules
/// follow the register layout nft itself writes for the same text (keys from register 1,
/// reloaded for each lookup), so that the listing reads back as that text.
pub(crate) fn kind(b: &mut Batch<What>, kind: &Kind, mark: u32) {
    let set = kind.set();
    msg::set_msg(b, SERVICES_TABLE, set);
    let v6 = kind.v6;
    let (eps, aff) = match (kind.nodeport, v6) {
        (false, false) => (&EPS4, &AFF4),
        (false, true) => (&EPS6, &AFF6),
        (true, false) => (&NPEPS4, &AFF4),
        (true, true) => (&NPEPS6, &AFF6),
    };
    let chain = kind.chain();
    let (what, check) = (What::KindRule(chain, set), What::KindRule("check", set));
    if kind.n == 0 {
        msg::rule_msg(b, SERVICES_TABLE, chain, what, |w| {
            kind_match(w, kind);
            expr::verdict(w, VERDICT_DROP);
        });
        return;
    }
    let masq = |w: &mut Writer| {
        if kind.masq {
            expr::mark_or(w, mark, KEY);
        }
    };
    if kind.affinity_secs > 0 {
        // a client seen within the timeout goes to the same endpoint
        msg::rule_msg(b, SERVICES_TABLE, chain, what, |w| {
            kind_match(w, kind);
            masq(w);
            let next = load_frontend(w, v6);
            load_saddr(w, v6, next);
            dnat_via(w, v6, aff);
        });
    }
    msg::rule_msg(b, SERVICES_TABLE, chain, what, |w| {
        kind_match(w, kind);
        masq(w);
        let next = if kind.nodeport { load_nodeport(w) } else { load_frontend(w, v6) };
        expr::numgen_random(w, kind.n, 0, next);
        dnat_via(w, v6, eps);
    });
    if kind.affinity_secs == 0 {
        return;
    }
    // Record the endpoint each new connection got (after DNAT: `ip daddr . th dport`) under
    // its original frontend and client. `ct original proto-dst` needs the protocol for nft to
    // print it: one rule per protocol.
    let (words, _, daddr) = family(v6);
    let (dst_ip, ct_l3) = if v6 { (expr::NFT_CT_DST_IP6, words) } else { (expr::NFT_CT_DST_IP, words) };
    for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
        msg::rule_msg(b, SERVICES_TABLE, "check", check, |w| {
            nfproto(w, v6);
            expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
            expr::cmp_eq(w, KEY, &[proto.number()]);
            let original = |w: &mut Writer| {
                expr::ct_original(w, dst_ip, KEY);
                expr::meta_load(w, expr::NFT_META_L4PROTO, KEY + ct_l3);
                expr::ct_original(w, expr::NFT_CT_PROTO_DST, KEY + ct_l3 + 1);
                KEY + ct_l3 + 2
            };
            if kind.nodeport {
                expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
                expr::ct_original(w, expr::NFT_CT_PROTO_DST, KEY + 1);
            } else {
                original(w);
            }
            expr::lookup(w, set.name, KEY, None, false);
            let next = original(w);
            load_saddr(w, v6, next);
            let data = next + words;
            expr::payload(w, expr::NETWORK_HEADER, daddr, words * 4, data);
            expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, data + words);
            expr::dynset_update(w, aff.name, KEY, data, u64::from(kind.affinity_secs) * 1000);
        });
    }
}

/// Element messages grouped per set (one message carries many elements of one set).
pub(crate) fn elements(b: &mut Batch<What>, msg: u8, elems: &[(&'static SetDef, Elem)]) {
    if elems.is_empty() {
        return;
    }
    let mut sorted: Vec<&(&'static SetDef, Elem)> = elems.iter().collect();
    sorted.sort_by_key(|(s, _)| s.id);
    for group in sorted.chunk_by(|a, b| a.0.id == b.0.id) {
        let set = group[0].0;
        let es: Vec<Elem> = group.iter().map(|(_, e)| e.clone()).collect();
        msg::elements(b, SERVICES_TABLE, msg, set, &es);
    }
}

/// Write the whole table: skeleton, kinds and elements, replacing any previous version.
pub(crate) fn build<'a>(
    b: &mut Batch<What>,
    t: &ServiceTable,
    kinds: impl Iterator<Item = &'a Kind>,
    elems: &[(&'static SetDef, Elem)],
) {
    msg::replace_table(b, SERVICES_TABLE);
    for s in ALL {
        msg::set_msg(b, SERVICES_TABLE, s);
    }
    msg::cidr_elements(b, SERVICES_TABLE, [&SVCNETS4, &SVCNETS6], &t.service_cidrs);
    msg::cidr_elements(b, SERVICES_TABLE, [&CLUSTERNETS4, &CLUSTERNETS6], &t.cluster_cidrs);

    chain(b, "dispatch", None);
    let mut i = 0;
    for (v6, cips, cnets) in [(false, &CLUSTERIPS4, &CLUSTERNETS4), (true, &CLUSTERIPS6, &CLUSTERNETS6)] {
        if !t.cluster_cidrs.family_is_empty(v6) {
            // ClusterIP traffic from outside the cluster is masqueraded, so that the reply of an
            // endpoint on another node comes back through this node's conntrack.
            rule(b, "dispatch", i, |w| {
                nfproto(w, v6);
                addr_in(w, v6, false, cips, false);
                addr_in(w, v6, true, cnets, true);
                expr::mark_or(w, t.masq_mark, KEY);
            });
            i += 1;
        }
    }
    // A new connection scans only the kinds of its family, and NodePort kinds only when it
    // is addressed to the node (one fib lookup for all of them).
    for v6 in [false, true] {
        let fe = Kind { v6, nodeport: false, n: 0, masq: false, affinity_secs: 0 }.chain();
        let np = Kind { v6, nodeport: true, n: 0, masq: false, affinity_secs: 0 }.chain();
        chain(b, fe, None);
        chain(b, np, None);
        rule(b, "dispatch", i, |w| {
            nfproto(w, v6);
            expr::jump(w, fe);
        });
        rule(b, "dispatch", i + 1, |w| {
            nfproto(w, v6);
            local_not_loopback(w, v6);
            expr::jump(w, np);
        });
        i += 2;
    }

    chain(b, "nat_prerouting", Some((uapi::NF_INET_PRE_ROUTING, uapi::PRIO_DSTNAT, "nat")));
    chain(b, "nat_output", Some((uapi::NF_INET_LOCAL_OUT, uapi::PRIO_DSTNAT, "nat")));
    chain(b, "nat_postrouting", Some((uapi::NF_INET_POST_ROUTING, uapi::PRIO_SRCNAT, "nat")));
    rule(b, "nat_prerouting", 0, |w| expr::jump(w, "dispatch"));
    rule(b, "nat_output", 0, |w| expr::jump(w, "dispatch"));
    let masq = |w: &mut Writer| expr::masq(w, expr::NAT_RANDOM_FULLY);
    rule(b, "nat_postrouting", 0, |w| {
        expr::mark_has(w, t.masq_mark);
        masq(w);
    });
    for (i, (v6, hp)) in [(false, &HAIRPIN4), (true, &HAIRPIN6)].into_iter().enumerate() {
        rule(b, "nat_postrouting", 1 + i, |w| {
            nfproto(w, v6);
            // `ip saddr . ip daddr`, loaded as two fields so that nft can print the rule
            let (words, saddr, _) = family(v6);
            expr::payload(w, expr::NETWORK_HEADER, saddr, words * 4, KEY);
            expr::payload(w, expr::NETWORK_HEADER, saddr + words * 4, words * 4, KEY + words);
            expr::lookup(w, hp.name, KEY, None, false);
            masq(w);
        });
    }

    chain(b, "check", None);
    // Each refusal twice: TCP gets a reset (immediate, never rate-limited), the rest an ICMP
    // port unreachable.
    let mut i = 0;
    let mut refuse = |b: &mut Batch<What>, matcher: &dyn Fn(&mut Writer)| {
        for tcp in [true, false] {
            rule(b, "check", i, |w| {
                matcher(w);
                if tcp {
                    expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
                    expr::cmp_eq(w, KEY, &[Proto::Tcp.number()]);
                    expr::reject_tcp_reset(w);
                } else {
                    expr::reject(w);
                }
            });
            i += 1;
        }
    };
    for (v6, noeps) in [(false, &NOEPS4), (true, &NOEPS6)] {
        refuse(b, &|w: &mut Writer| {
            nfproto(w, v6);
            load_frontend(w, v6);
            expr::lookup(w, noeps.name, KEY, None, false);
        });
    }
    refuse(b, &|w: &mut Writer| {
        expr::fib_daddr_type(w, KEY);
        expr::cmp_eq(w, KEY, &expr::RTN_LOCAL.to_ne_bytes());
        load_nodeport(w);
        expr::lookup(w, NOEPS_NP.name, KEY, None, false);
    });
    for (v6, cips) in [(false, &CLUSTERIPS4), (true, &CLUSTERIPS6)] {
        refuse(b, &|w: &mut Writer| {
            nfproto(w, v6);
            addr_in(w, v6, false, cips, false);
        });
    }
    for (i, (v6, nets)) in [(10, (false, &SVCNETS4)), (11, (true, &SVCNETS6))] {
        rule(b, "check", i, |w| {
            nfproto(w, v6);
            addr_in(w, v6, false, nets, false);
            expr::verdict(w, VERDICT_DROP);
        });
    }
    for (name, hook) in [
        ("filter_input", uapi::NF_INET_LOCAL_IN),
        ("filter_forward", uapi::NF_INET_FORWARD),
        ("filter_output", uapi::NF_INET_LOCAL_OUT),
    ] {
        chain(b, name, Some((hook, 0, "filter")));
        rule(b, name, 0, |w| {
            expr::ct_state_new(w);
            expr::jump(w, "check");
        });
    }
    for k in kinds {
        kind(b, k, t.masq_mark);
    }
    elements(b, NEWSETELEM, elems);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_layouts() {
        let cip: IpAddr = "10.96.0.10".parse().unwrap();
        let k = Kind { v6: false, nodeport: false, n: 3, masq: false, affinity_secs: 0 };
        let (s, e) = frontend_elem(&k, cip, Proto::Tcp, 80);
        assert_eq!((s.name, e.key_bytes()), ("fe4-n3", &[10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0][..]));
        assert!(std::ptr::eq(s, k.set()), "one set per kind");
        let (s, e) = ep_elem(cip, Proto::Tcp, 80, 2, ("10.244.1.5".parse().unwrap(), 5353));
        assert_eq!(s.name, "eps4");
        assert_eq!(e.key_bytes(), [&[10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0][..], &2u32.to_ne_bytes()].concat());
        assert_eq!(e.data_bytes(), [10, 244, 1, 5, 0x14, 0xe9, 0, 0]);
        let np = Kind { v6: true, nodeport: true, n: 3, masq: true, affinity_secs: 30 };
        let (s, e) = nodeport_elem(&np, Proto::Tcp, 30080);
        assert_eq!((s.name, e.key_bytes().len()), ("np6-n3-masq-aff30", 8));
        let (s, e) = np_ep_elem(Proto::Tcp, 30080, 1, ("fd00:10::5".parse().unwrap(), 8080));
        assert_eq!((s.name, e.key_bytes().len(), e.data_bytes().len()), ("npeps6", 12, 20));
        let (s, e) = ep_elem("fd00:96::1".parse().unwrap(), Proto::Udp, 53, 0, ("fd00:10::5".parse().unwrap(), 53));
        assert_eq!((s.name, e.key_bytes().len(), e.data_bytes().len()), ("eps6", 28, 20));
        let (s, e) = hairpin_elem("10.244.1.5".parse().unwrap());
        assert_eq!((s.name, e.key_bytes()), ("hairpin4", &[10, 244, 1, 5, 10, 244, 1, 5][..]));
        assert_eq!(Kind::drop(false, true).set().name, "np4-drop");
        let key = [&[10u8, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0][..], &[10, 0, 0, 7]].concat();
        let got = parse_affinity(&key, &[10, 244, 1, 5, 0, 80, 0, 0]);
        assert_eq!(got, Some(((cip, 6, 80), "10.244.1.5".parse().unwrap())));
    }

    #[test]
    fn full_table_fits_and_encodes() {
        let t = ServiceTable {
            service_cidrs: Cidrs { v4: vec!["10.96.0.0/12".parse().unwrap()], v6: vec![] },
            masq_mark: 0x4000,
            ..Default::default()
        };
        let k = Kind { v6: false, nodeport: false, n: 2, masq: false, affinity_secs: 10 };
        let cip: IpAddr = "10.96.0.10".parse().unwrap();
        let elems = vec![frontend_elem(&k, cip, Proto::Tcp, 80), clusterip_elem(cip)];
        let mut b = Batch::new(Vec::new(), 1);
        build(&mut b, &t, [k].iter(), &elems);
        assert!(b.len() > 40);
    }
}
