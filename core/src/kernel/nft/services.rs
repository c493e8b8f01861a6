//! podnet's services table `inet podnet-services`: Service dispatch as map elements, the way
//! kube-proxy's nftables mode dispatches (`daddr . l4proto . dport` verdict maps, NodePorts
//! behind `fib daddr type local`, `numgen random mod N`), but with the per-service and
//! per-endpoint state in data maps instead of per-service chains, so that a change is a few
//! element updates and never makes the kernel revalidate the table.
//!
//! ```text
//! table inet podnet-services {
//!   map svc4   { ipv4_addr . inet_proto . inet_service : mark }  # frontend -> pick selector
//!   map ids4   { ipv4_addr . inet_proto . inet_service : mark }  # frontend -> service-port id
//!   map nodeports4 / npids4 { inet_proto . inet_service : mark } # the same for NodePorts
//!   map eps4   { mark . mark : ipv4_addr . inet_service }        # id . index -> endpoint
//!   map aff4   { mark . ipv4_addr : ipv4_addr . inet_service; flags timeout, dynamic }  # ClientIP
//!   map picks  { mark : verdict }                 # selector -> goto pick chain, 1 -> drop
//!   set noeps4 { ipv4_addr . inet_proto . inet_service }  # live service ports without endpoints
//!   set noeps_np { inet_proto . inet_service }            # NodePorts without endpoints
//!   set clusterips4 { ipv4_addr }; set svcnets4, clusternets4 { flags interval }
//!   set hairpin4 { ipv4_addr . ipv4_addr }                # (ep, ep) of local endpoints
//!   (and the ipv6 twins)
//!   chain dispatch {
//!     [ip daddr @clusterips4 ip saddr != @clusternets4 mark set mark | M]
//!     ip daddr . meta l4proto . th dport map @svc4 -> vmap @picks
//!     fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport map @nodeports4 -> vmap @picks
//!   }
//!   chain pick4-n3[-local][-masq][-affT][-np] {     # one per kind, shared by all services
//!     [affinity: (id . ip saddr) map @aff4 -> update @aff4, mark, dnat]
//!     (id . numgen random mod 3 [offset 0x10000]) map @eps4 -> [update @aff4] [mark | M] dnat
//!   }
//!   chain nat_prerouting  { type nat hook prerouting priority -100; jump dispatch }
//!   chain nat_output      { type nat hook output priority -100; jump dispatch }
//!   chain nat_postrouting { type nat hook postrouting priority 100;
//!     mark & M == M masquerade fully-random; ip saddr . ip daddr @hairpin4 masquerade fully-random }
//!   chain check { @noeps -> reject; fib daddr type local @noeps_np -> reject;
//!                 @clusterips -> reject; @svcnets -> drop }   # reject: tcp reset for TCP
//!   chain filter_input / filter_forward / filter_output { type filter hook ... priority 0;
//!     ct state new jump check }
//! }
//! ```
//! The dispatch rule maps the packet's frontend to a selector; the selector's pick chain (one
//! per distinct endpoint count and options, shared by all services) maps the frontend to the
//! service port's id (a rule may only read registers it wrote itself: newer kernels refuse
//! anything else with ENODATA), draws the index and looks the endpoint up. No element is a
//! verdict pointing at a per-service chain, so no change makes the kernel revalidate the table:
//! adding one goto element to a 10,000-element verdict map took 1.2 ms of commit time here,
//! a data element 0.04 ms. The price: nft 1.0.6 cannot print the dispatch and pick rules
//! (a lookup keyed by another map's result is outside its language; `nft list` of this table
//! aborts in its delinearizer); its maps and sets list fine. Endpoints of policy-Local external traffic are a second
//! index range from [`LOCAL_OFFSET`].

use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::expr::{self, NFPROTO_IPV4, NFPROTO_IPV6};
use super::msg::{
    self, concat, Elem, Fields, Hook, Intervals, SetDef, What, NEWSETELEM, NFT_DATA_VERDICT, NFT_SET_EVAL,
    NFT_SET_INTERVAL, NFT_SET_MAP, NFT_SET_TIMEOUT, TYPE_INET_PROTO, TYPE_INET_SERVICE, TYPE_IPV4_ADDR, TYPE_IPV6_ADDR,
    TYPE_MARK, VERDICT_DROP, VERDICT_GOTO,
};
use super::ruleset::Proto;
use super::wire::{Batch, Writer};

/// Name of podnet's services table (family `inet`).
pub const SERVICES_TABLE: &str = "podnet-services";

/// Default mark bit asking postrouting to masquerade a service connection (kube-proxy's bit).
pub const DEFAULT_SERVICE_MASQ_MARK: u32 = 0x4000;

/// First endpoint index of the policy-Local (local endpoints only) range of a service port.
pub const LOCAL_OFFSET: u32 = 0x1_0000;

/// Selector of the `drop` verdict (policy Local without a local endpoint).
pub const SELECTOR_DROP: u32 = 1;

/// Table-wide parameters of the services table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    /// Service CIDRs: addresses in them without a service are dropped.
    pub service_cidrs_v4: Vec<Ipv4Network>,
    /// IPv6 service CIDRs.
    pub service_cidrs_v6: Vec<Ipv6Network>,
    /// Cluster CIDRs: ClusterIP traffic from outside them is masqueraded (empty: never).
    pub cluster_cidrs_v4: Vec<Ipv4Network>,
    /// IPv6 cluster CIDRs.
    pub cluster_cidrs_v6: Vec<Ipv6Network>,
    /// Mark bit for "masquerade this connection" (non-zero).
    pub masq_mark: u32,
}

/// How one frontend picks its endpoint; each distinct kind is one shared chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pick {
    /// IPv6 frontend.
    pub v6: bool,
    /// Number of endpoints to choose from (non-zero).
    pub n: u32,
    /// Choose from the local-endpoint range ([`LOCAL_OFFSET`]).
    pub local: bool,
    /// Mark the connection for masquerade.
    pub masq: bool,
    /// ClientIP affinity timeout in seconds (0: none).
    pub affinity_secs: u32,
    /// Reached from the NodePort map (else from the address map).
    pub nodeport: bool,
}

impl Pick {
    fn chain(&self) -> String {
        let mut s = format!("pick{}-n{}", if self.v6 { 6 } else { 4 }, self.n);
        if self.local {
            s.push_str("-local");
        }
        if self.masq {
            s.push_str("-masq");
        }
        if self.affinity_secs > 0 {
            s.push_str(&format!("-aff{}", self.affinity_secs));
        }
        if self.nodeport {
            s.push_str("-np");
        }
        s
    }
}

// ---- the set catalogue ----

const A4: u32 = TYPE_IPV4_ADDR;
const A6: u32 = TYPE_IPV6_ADDR;
const P: u32 = TYPE_INET_PROTO;
const S: u32 = TYPE_INET_SERVICE;
const I: u32 = TYPE_MARK;

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

pub(crate) static SVC4: SetDef = map("svc4", 1, concat(&[A4, P, S]), 12, I, 4);
pub(crate) static SVC6: SetDef = map("svc6", 2, concat(&[A6, P, S]), 24, I, 4);
pub(crate) static NODEPORTS4: SetDef = map("nodeports4", 3, concat(&[P, S]), 8, I, 4);
pub(crate) static NODEPORTS6: SetDef = map("nodeports6", 4, concat(&[P, S]), 8, I, 4);
pub(crate) static EPS4: SetDef = map("eps4", 5, concat(&[I, I]), 8, concat(&[A4, S]), 8);
pub(crate) static EPS6: SetDef = map("eps6", 6, concat(&[I, I]), 8, concat(&[A6, S]), 20);
pub(crate) static AFF4: SetDef = SetDef {
    flags: NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_EVAL,
    ..map("aff4", 7, concat(&[I, A4]), 8, concat(&[A4, S]), 8)
};
pub(crate) static AFF6: SetDef = SetDef {
    flags: NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_EVAL,
    ..map("aff6", 8, concat(&[I, A6]), 20, concat(&[A6, S]), 20)
};
pub(crate) static PICKS: SetDef = map("picks", 9, I, 4, NFT_DATA_VERDICT, 0);
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
pub(crate) static IDS4: SetDef = map("ids4", 21, concat(&[A4, P, S]), 12, I, 4);
pub(crate) static IDS6: SetDef = map("ids6", 22, concat(&[A6, P, S]), 24, I, 4);
pub(crate) static NPIDS4: SetDef = map("npids4", 23, concat(&[P, S]), 8, I, 4);
pub(crate) static NPIDS6: SetDef = map("npids6", 24, concat(&[P, S]), 8, I, 4);

static ALL: [&SetDef; 24] = [
    &IDS4,
    &IDS6,
    &NPIDS4,
    &NPIDS6,
    &SVC4,
    &SVC6,
    &NODEPORTS4,
    &NODEPORTS6,
    &EPS4,
    &EPS6,
    &AFF4,
    &AFF6,
    &PICKS,
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
fn frontend_key(ip: IpAddr, proto: Proto, port: u16) -> Fields<24> {
    Fields::<24>::new().ip(ip).push(&[proto.number()]).push(&port.to_be_bytes())
}

fn proto_port(proto: Proto, port: u16) -> Fields<8> {
    Fields::<8>::new().push(&[proto.number()]).push(&port.to_be_bytes())
}

/// A frontend (ClusterIP or external IP) of a service port: `ip . proto . port` maps to the
/// pick selector (dispatch) and to the service port's id (the endpoint lookup).
pub(crate) fn frontend_elems(
    front: IpAddr,
    proto: Proto,
    port: u16,
    selector: u32,
    id: u32,
) -> [(&'static SetDef, Elem); 2] {
    let (sel, ids) = if front.is_ipv6() { (&SVC6, &IDS6) } else { (&SVC4, &IDS4) };
    let k = frontend_key(front, proto, port);
    [(sel, Elem::map(k.bytes(), &selector.to_ne_bytes())), (ids, Elem::map(k.bytes(), &id.to_ne_bytes()))]
}

/// A NodePort of a service port (family `v6`): `proto . node_port` to selector and id.
pub(crate) fn nodeport_elems(
    v6: bool,
    proto: Proto,
    node_port: u16,
    selector: u32,
    id: u32,
) -> [(&'static SetDef, Elem); 2] {
    let (sel, ids) = if v6 { (&NODEPORTS6, &NPIDS6) } else { (&NODEPORTS4, &NPIDS4) };
    let k = proto_port(proto, node_port);
    [(sel, Elem::map(k.bytes(), &selector.to_ne_bytes())), (ids, Elem::map(k.bytes(), &id.to_ne_bytes()))]
}

/// Endpoint `index` of service port `id`: `id . index : ep . ep_port`.
pub(crate) fn ep_elem(id: u32, index: u32, ep: IpAddr, ep_port: u16) -> (&'static SetDef, Elem) {
    let set = if ep.is_ipv6() { &EPS6 } else { &EPS4 };
    let k = Fields::<8>::new().push(&id.to_ne_bytes()).push(&index.to_ne_bytes());
    let d = Fields::<20>::new().ip(ep).push(&ep_port.to_be_bytes());
    (set, Elem::map(k.bytes(), d.bytes()))
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

const KEY: u32 = 8; // NFT_REG32_00: first word of register 1
/// Word 1: the endpoint index (after the id in word 0), or the client address for affinity.
const IDX: u32 = 9;

/// Register plan of a family: (endpoint data: address then port, scratch word for the mark).
const fn regs(v6: bool) -> (u32, u32, u32) {
    if v6 {
        (13, 17, 20)
    } else {
        (10, 11, 16)
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

/// Load `ip daddr . meta l4proto . th dport` into words 0.. of register 1.
fn load_daddr_proto_port(w: &mut Writer, v6: bool) {
    let (off, len, next) = if v6 { (24, 16, KEY + 4) } else { (16, 4, KEY + 1) };
    expr::payload(w, expr::NETWORK_HEADER, off, len, KEY);
    expr::meta_load(w, expr::NFT_META_L4PROTO, next);
    expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, next + 1);
}

fn addr_in(w: &mut Writer, v6: bool, saddr: bool, set: &SetDef, invert: bool) {
    let off = match (v6, saddr) {
        (false, true) => 12,
        (false, false) => 16,
        (true, true) => 8,
        (true, false) => 24,
    };
    expr::payload(w, expr::NETWORK_HEADER, off, if v6 { 16 } else { 4 }, KEY);
    expr::lookup(w, set.name, KEY, None, invert);
}

/// Load the service port's id for the packet's frontend into word 0. The kernel refuses a
/// rule that reads a register it did not write itself (ENODATA, >= 6.12), so every pick rule
/// repeats a lookup the dispatch rule made.
fn load_id(w: &mut Writer, v6: bool, nodeport: bool) {
    let map = match (v6, nodeport) {
        (false, false) => &IDS4,
        (true, false) => &IDS6,
        (false, true) => &NPIDS4,
        (true, true) => &NPIDS6,
    };
    if nodeport {
        expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
        expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, KEY + 1);
    } else {
        load_daddr_proto_port(w, v6);
    }
    expr::lookup(w, map.name, KEY, Some(KEY), false);
}

/// A pick chain, its rules and its `picks` element.
pub(crate) fn pick_chain(b: &mut Batch<What>, pick: &Pick, selector: u32, mark: u32) {
    let name: Arc<str> = pick.chain().into();
    msg::chain_msg(b, SERVICES_TABLE, &name, What::DynChain, None);
    let (addr, port, scratch) = regs(pick.v6);
    let (eps, aff) = if pick.v6 { (&EPS6, &AFF6) } else { (&EPS4, &AFF4) };
    let (saddr_off, alen) = if pick.v6 { (8, 16) } else { (12, 4) };
    let f = if pick.v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
    let finish = |w: &mut Writer| {
        if pick.masq {
            expr::mark_or(w, mark, scratch);
        }
        expr::dnat(w, f, addr, port);
    };
    let timeout_ms = u64::from(pick.affinity_secs) * 1000;
    if pick.affinity_secs > 0 {
        // A client seen within the timeout goes to the same endpoint (and refreshes it).
        msg::rule_msg(b, SERVICES_TABLE, &name, What::DynChain, |w| {
            load_id(w, pick.v6, pick.nodeport);
            expr::payload(w, expr::NETWORK_HEADER, saddr_off, alen, IDX);
            expr::lookup(w, aff.name, KEY, Some(addr), false);
            expr::dynset_update(w, aff.name, KEY, addr, timeout_ms);
            finish(w);
        });
    }
    msg::rule_msg(b, SERVICES_TABLE, &name, What::DynChain, |w| {
        load_id(w, pick.v6, pick.nodeport);
        let offset = if pick.local { LOCAL_OFFSET } else { 0 };
        expr::numgen_random(w, pick.n, offset, IDX);
        expr::lookup(w, eps.name, KEY, Some(addr), false);
        if pick.affinity_secs > 0 {
            expr::payload(w, expr::NETWORK_HEADER, saddr_off, alen, IDX);
            expr::dynset_update(w, aff.name, KEY, addr, timeout_ms);
        }
        finish(w);
    });
    let e = Elem::verdict(&selector.to_ne_bytes(), VERDICT_GOTO, Some(name));
    msg::elements(b, SERVICES_TABLE, NEWSETELEM, &PICKS, &[e]);
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

/// Write the whole table: skeleton, pick chains and elements, replacing any previous version.
pub(crate) fn build<'a>(
    b: &mut Batch<What>,
    t: &ServiceTable,
    picks: impl Iterator<Item = (&'a Pick, u32)>,
    elems: &[(&'static SetDef, Elem)],
) {
    msg::replace_table(b, SERVICES_TABLE);
    for s in ALL {
        msg::set_msg(b, SERVICES_TABLE, s);
    }
    for (s, iv) in [
        (&SVCNETS4, Intervals::v4(&t.service_cidrs_v4)),
        (&SVCNETS6, Intervals::v6(&t.service_cidrs_v6)),
        (&CLUSTERNETS4, Intervals::v4(&t.cluster_cidrs_v4)),
        (&CLUSTERNETS6, Intervals::v6(&t.cluster_cidrs_v6)),
    ] {
        let e = iv.elems();
        if !e.is_empty() {
            msg::elements(b, SERVICES_TABLE, NEWSETELEM, s, &e);
        }
    }
    let drop = Elem::verdict(&SELECTOR_DROP.to_ne_bytes(), VERDICT_DROP, None);
    msg::elements(b, SERVICES_TABLE, NEWSETELEM, &PICKS, &[drop]);
    for (p, sel) in picks {
        pick_chain(b, p, sel, t.masq_mark);
    }
    elements(b, NEWSETELEM, elems);

    chain(b, "dispatch", None);
    let mut i = 0;
    let mut next = || {
        i += 1;
        i - 1
    };
    for (v6, cips, cnets) in [(false, &CLUSTERIPS4, &CLUSTERNETS4), (true, &CLUSTERIPS6, &CLUSTERNETS6)] {
        let has = if v6 { !t.cluster_cidrs_v6.is_empty() } else { !t.cluster_cidrs_v4.is_empty() };
        if has {
            // ClusterIP traffic from outside the cluster is masqueraded, so that the reply of an
            // endpoint on another node comes back through this node's conntrack.
            rule(b, "dispatch", next(), |w| {
                nfproto(w, v6);
                addr_in(w, v6, false, cips, false);
                addr_in(w, v6, true, cnets, true);
                expr::mark_or(w, t.masq_mark, KEY);
            });
        }
    }
    for v6 in [false, true] {
        let svc = if v6 { &SVC6 } else { &SVC4 };
        rule(b, "dispatch", next(), |w| {
            nfproto(w, v6);
            load_daddr_proto_port(w, v6);
            expr::lookup(w, svc.name, KEY, Some(KEY), false);
            expr::lookup(w, PICKS.name, KEY, Some(expr::reg::VERDICT), false);
        });
    }
    for v6 in [false, true] {
        let np = if v6 { &NODEPORTS6 } else { &NODEPORTS4 };
        rule(b, "dispatch", next(), |w| {
            nfproto(w, v6);
            expr::fib_daddr_type(w, KEY);
            expr::cmp_eq(w, KEY, &expr::RTN_LOCAL.to_ne_bytes());
            // not the loopback addresses: no NodePorts on localhost
            if v6 {
                expr::payload(w, expr::NETWORK_HEADER, 24, 16, KEY);
                expr::cmp_neq(w, KEY, &std::net::Ipv6Addr::LOCALHOST.octets());
            } else {
                expr::payload(w, expr::NETWORK_HEADER, 16, 1, KEY);
                expr::cmp_neq(w, KEY, &[127]);
            }
            expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
            expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, KEY + 1);
            expr::lookup(w, np.name, KEY, Some(KEY), false);
            expr::lookup(w, PICKS.name, KEY, Some(expr::reg::VERDICT), false);
        });
    }

    chain(b, "nat_prerouting", Some((msg::NF_INET_PRE_ROUTING, msg::PRIO_DSTNAT, "nat")));
    chain(b, "nat_output", Some((msg::NF_INET_LOCAL_OUT, msg::PRIO_DSTNAT, "nat")));
    chain(b, "nat_postrouting", Some((msg::NF_INET_POST_ROUTING, msg::PRIO_SRCNAT, "nat")));
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
            let (off, len, next) = if v6 { (8, 16, KEY + 4) } else { (12, 4, KEY + 1) };
            expr::payload(w, expr::NETWORK_HEADER, off, len, KEY);
            expr::payload(w, expr::NETWORK_HEADER, off + len, len, next);
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
            load_daddr_proto_port(w, v6);
            expr::lookup(w, noeps.name, KEY, None, false);
        });
    }
    refuse(b, &|w: &mut Writer| {
        expr::fib_daddr_type(w, KEY);
        expr::cmp_eq(w, KEY, &expr::RTN_LOCAL.to_ne_bytes());
        expr::meta_load(w, expr::NFT_META_L4PROTO, KEY);
        expr::payload(w, expr::TRANSPORT_HEADER, 2, 2, KEY + 1);
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
        ("filter_input", msg::NF_INET_LOCAL_IN),
        ("filter_forward", msg::NF_INET_FORWARD),
        ("filter_output", msg::NF_INET_LOCAL_OUT),
    ] {
        chain(b, name, Some((hook, 0, "filter")));
        rule(b, name, 0, |w| {
            expr::ct_state_new(w);
            expr::jump(w, "check");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_layouts() {
        let cip: IpAddr = "10.96.0.10".parse().unwrap();
        let [(s, e), (i, d)] = frontend_elems(cip, Proto::Tcp, 80, 7, 9);
        assert_eq!((s.name, i.name), ("svc4", "ids4"));
        assert_eq!(e.key_bytes(), [10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(e.data_bytes(), 7u32.to_ne_bytes());
        assert_eq!(d.data_bytes(), 9u32.to_ne_bytes());
        let (s, e) = ep_elem(9, 2, "10.244.1.5".parse().unwrap(), 5353);
        assert_eq!(s.name, "eps4");
        assert_eq!(e.key_bytes(), [&9u32.to_ne_bytes()[..], &2u32.to_ne_bytes()].concat());
        assert_eq!(e.data_bytes(), [10, 244, 1, 5, 0x14, 0xe9, 0, 0]);
        let [(s, e), _] = nodeport_elems(true, Proto::Tcp, 30080, 3, 4);
        assert_eq!((s.name, e.key_bytes().len(), e.data_bytes().len()), ("nodeports6", 8, 4));
        let (s, e) = ep_elem(4, LOCAL_OFFSET, "fd00:10::5".parse().unwrap(), 8080);
        assert_eq!((s.name, e.key_bytes().len(), e.data_bytes().len()), ("eps6", 8, 20));
        let (s, e) = hairpin_elem("10.244.1.5".parse().unwrap());
        assert_eq!((s.name, e.key_bytes()), ("hairpin4", &[10, 244, 1, 5, 10, 244, 1, 5][..]));
        let p = Pick { v6: true, n: 3, local: true, masq: false, affinity_secs: 30, nodeport: true };
        assert_eq!(p.chain(), "pick6-n3-local-aff30-np");
    }

    #[test]
    fn full_table_fits_and_encodes() {
        let t = ServiceTable {
            service_cidrs_v4: vec!["10.96.0.0/12".parse().unwrap()],
            masq_mark: 0x4000,
            ..Default::default()
        };
        let p = Pick { v6: false, n: 2, local: false, masq: false, affinity_secs: 0, nodeport: false };
        let cip: IpAddr = "10.96.0.10".parse().unwrap();
        let mut elems = frontend_elems(cip, Proto::Tcp, 80, 2, 1).to_vec();
        elems.push(clusterip_elem(cip));
        let mut b = Batch::new(Vec::new(), 1);
        build(&mut b, &t, [(&p, 2)].into_iter(), &elems);
        assert!(b.len() > 40);
    }
}
