//! nf_tables messages, generic: tables, chains, sets and maps, elements, rules, and the element
//! decoder for dumps. Knows no podnet policy; the rulesets (`ruleset.rs` for table
//! `inet podnet`, `services.rs` for the services table) describe their objects with [`SetDef`]
//! and write them through these builders into a [`Batch`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::uapi::{
    self, DELSETELEM, DELTABLE, DESTROYSETELEM, FAMILY_INET, NEWCHAIN, NEWRULE, NEWSET, NEWSETELEM, NEWTABLE,
    NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY, NFTA_CHAIN_TABLE, NFTA_CHAIN_TYPE, NFTA_DATA_VALUE,
    NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_LIST_ELEM, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_TABLE,
    NFTA_SET_DATA_LEN, NFTA_SET_DATA_TYPE, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY,
    NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_FLAGS, NFTA_SET_ID,
    NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE, NFTA_SET_NAME, NFTA_SET_TABLE, NFTA_TABLE_NAME, NFT_DATA_VERDICT,
    NFT_SET_ELEM_INTERVAL_END, NFT_SET_MAP, NF_ACCEPT, NLM_F_APPEND, NLM_F_CREATE,
};
use super::wire::{self, Batch, Writer};

// nft data type ids: only `nft list` reads them (6 bits per concatenated field).
/// `mark`: a 32-bit integer nft can print inside a concatenation (plain `integer` has no size).
pub(crate) const TYPE_MARK: u32 = 19;
pub(crate) const TYPE_IPV4_ADDR: u32 = 7;
pub(crate) const TYPE_IPV6_ADDR: u32 = 8;
pub(crate) const TYPE_INET_PROTO: u32 = 12;
pub(crate) const TYPE_INET_SERVICE: u32 = 13;

/// The type id of a concatenation of `types`.
pub(crate) const fn concat(types: &[u32]) -> u32 {
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

/// A set or map of a table: its layout, and how to print one of its elements in an error.
#[derive(Debug)]
pub(crate) struct SetDef {
    pub(crate) name: &'static str,
    /// NFT_SET_* flags (NFT_SET_MAP for maps).
    pub(crate) flags: u32,
    pub(crate) key_type: u32,
    pub(crate) key_len: u32,
    /// Data type of a map ([`NFT_DATA_VERDICT`] for verdict maps); unused for sets.
    pub(crate) data_type: u32,
    /// Data length of a map (unused for verdict maps and sets).
    pub(crate) data_len: u32,
    /// NFTA_SET_ID: unique within the batch that creates the set.
    pub(crate) id: u32,
    /// Render an element (key, and data when the message carried it).
    pub(crate) describe: fn(&[u8], Option<&[u8]>) -> Option<String>,
}

impl SetDef {
    pub(crate) fn is_map(&self) -> bool {
        self.flags & NFT_SET_MAP != 0
    }

    pub(crate) fn kind(&self) -> &'static str {
        if self.is_map() {
            "map"
        } else {
            "set"
        }
    }

    /// Upper bound of one encoded element (list elem + key + data + flags).
    fn elem_size(&self) -> usize {
        let data = match (self.is_map(), self.data_type) {
            (false, _) => 0,
            // verdict nest: code + chain name (at most 256 bytes)
            (true, NFT_DATA_VERDICT) => 8 + 8 + 8 + 260,
            (true, _) => 8 + wire::align4(self.data_len as usize),
        };
        4 + 8 + wire::align4(self.key_len as usize) + data + 8
    }
}

/// Element data: none (a set) or bytes (`NFTA_DATA_VALUE`). podnet writes no verdict-map
/// elements: a goto element makes the kernel revalidate the whole table on commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Data {
    None,
    Value { buf: [u8; 32], len: u8 },
}

/// Longest element key: `ip6 . proto . port . ip6` (an affinity key) is 40 bytes.
pub(crate) const MAX_KEY_LEN: usize = 40;

/// One set or map element: key, data, and whether it closes an interval.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Elem {
    pub(crate) key: [u8; MAX_KEY_LEN],
    pub(crate) klen: u8,
    pub(crate) data: Data,
    pub(crate) end: bool,
}

impl Elem {
    /// An element of a set (key only).
    pub(crate) fn key(key: &[u8]) -> Elem {
        let mut k = [0; MAX_KEY_LEN];
        k[..key.len()].copy_from_slice(key);
        Elem { key: k, klen: key.len() as u8, data: Data::None, end: false }
    }

    /// A map element with a value.
    pub(crate) fn map(key: &[u8], data: &[u8]) -> Elem {
        let mut buf = [0; 32];
        buf[..data.len()].copy_from_slice(data);
        Elem { data: Data::Value { buf, len: data.len() as u8 }, ..Elem::key(key) }
    }

    /// A plain address element.
    pub(crate) fn addr(ip: IpAddr) -> Elem {
        match ip {
            IpAddr::V4(a) => Elem::key(&a.octets()),
            IpAddr::V6(a) => Elem::key(&a.octets()),
        }
    }

    pub(crate) fn key_bytes(&self) -> &[u8] {
        &self.key[..usize::from(self.klen)]
    }

    pub(crate) fn data_bytes(&self) -> &[u8] {
        match &self.data {
            Data::Value { buf, len } => &buf[..usize::from(*len)],
            _ => &[],
        }
    }

    /// Encode one element; `with_data` is false for deletes (only the key identifies it).
    fn write(&self, w: &mut Writer, with_data: bool) {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.attr(NFTA_DATA_VALUE, self.key_bytes()));
            if with_data {
                match &self.data {
                    Data::None => {}
                    Data::Value { .. } => {
                        w.nest(NFTA_SET_ELEM_DATA, |w| w.attr(NFTA_DATA_VALUE, self.data_bytes()));
                    }
                }
            }
            if self.end {
                w.u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
            }
        });
    }
}

/// Appends fields to a fixed buffer, each padded to a 4-byte register word as concatenations
/// require (a 1-byte l4proto takes a whole word, a 2-byte port too).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<const N: usize> {
    pub(crate) buf: [u8; N],
    pub(crate) len: usize,
}

impl<const N: usize> Fields<N> {
    pub(crate) fn new() -> Self {
        Fields { buf: [0; N], len: 0 }
    }
    pub(crate) fn push(mut self, bytes: &[u8]) -> Self {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += wire::align4(bytes.len());
        self
    }
    pub(crate) fn ip(self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => self.push(&a.octets()),
            IpAddr::V6(a) => self.push(&a.octets()),
        }
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// CIDRs split by family, as a pair of interval sets (IPv4, IPv6) holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cidrs {
    /// The IPv4 CIDRs.
    pub v4: Vec<Ipv4Network>,
    /// The IPv6 CIDRs.
    pub v6: Vec<Ipv6Network>,
}

impl Cidrs {
    /// Whether there are none of the family (IPv6 when `v6`).
    pub fn family_is_empty(&self, v6: bool) -> bool {
        if v6 {
            self.v6.is_empty()
        } else {
            self.v4.is_empty()
        }
    }
}

impl FromIterator<IpNetwork> for Cidrs {
    fn from_iter<I: IntoIterator<Item = IpNetwork>>(it: I) -> Cidrs {
        let mut c = Cidrs::default();
        for n in it {
            match n {
                IpNetwork::V4(n) => c.v4.push(n),
                IpNetwork::V6(n) => c.v6.push(n),
            }
        }
        c
    }
}

/// Add `cidrs` to the interval sets of their family (`sets`: the IPv4 one, the IPv6 one);
/// a family without CIDRs adds nothing.
pub(crate) fn cidr_elements(b: &mut Batch<What>, table: &str, sets: [&'static SetDef; 2], cidrs: &Cidrs) {
    for (set, iv) in sets.into_iter().zip([Intervals::v4(&cidrs.v4), Intervals::v6(&cidrs.v6)]) {
        let e = iv.elems();
        if !e.is_empty() {
            elements(b, table, NEWSETELEM, set, &e);
        }
    }
}

/// Sorted, merged, inclusive ranges of one family, encoded as interval-set elements.
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
        let e = if self.v6 { Elem::key(&v.to_be_bytes()) } else { Elem::key(&(v as u32).to_be_bytes()) };
        Elem { end, ..e }
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
    Table(&'static str, &'static str),
    Set(&'static SetDef),
    Chain(&'static str),
    Rule(&'static str, usize),
    /// A rule of chain `.0` for the frontends in set `.1`.
    KindRule(&'static str, &'static SetDef),
    Elements(&'static str, &'static SetDef, usize),
    Flush(&'static SetDef),
}

impl What {
    /// Describe the message; for element lists, `elem` is the offending element's attribute
    /// (found through the extended ack offset) when the kernel pointed at one.
    pub(crate) fn describe(&self, elem: Option<&[u8]>) -> String {
        match *self {
            What::Table(verb, t) => format!("{verb} table inet {t}"),
            What::Set(s) => format!("add {} {}", s.kind(), s.name),
            What::Chain(c) => format!("add chain {c}"),
            What::Rule(c, i) => format!("add rule {i} to chain {c}"),
            What::KindRule(c, s) => format!("add rule for set {} to chain {c}", s.name),
            What::Flush(s) => format!("flush {} {}", s.kind(), s.name),
            What::Elements(verb, s, n) => {
                let prep = if verb == "add" { "to" } else { "from" };
                match elem.and_then(|e| describe_elem(s, e)) {
                    Some(d) => format!("{verb} element {d} {prep} {} {}", s.kind(), s.name),
                    None if n == 1 => format!("{verb} 1 element {prep} {} {}", s.kind(), s.name),
                    None => format!("{verb} {n} elements {prep} {} {}", s.kind(), s.name),
                }
            }
        }
    }
}

/// Render an encoded NFTA_LIST_ELEM of `set`.
fn describe_elem(set: &SetDef, attr: &[u8]) -> Option<String> {
    // `attr` starts at the attribute header; its payload follows the 4-byte header.
    let len = usize::from(u16::from_ne_bytes([*attr.first()?, *attr.get(1)?]));
    let ty = u16::from_ne_bytes([*attr.get(2)?, *attr.get(3)?]);
    if ty != NFTA_LIST_ELEM | uapi::NLA_F_NESTED {
        return None; // the kernel pointed at another attribute (e.g. the table name)
    }
    let body = attr.get(4..len)?;
    let (key, data, flags) = parse_elem(body);
    let d = (set.describe)(key?, data)?;
    Some(if flags & NFT_SET_ELEM_INTERVAL_END != 0 { format!("{d} (interval end)") } else { d })
}

/// Render an address key (4 or 16 bytes): the `describe` of plain address sets.
pub(crate) fn describe_addr(key: &[u8], _: Option<&[u8]>) -> Option<String> {
    let a = match key.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(key).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(key).ok()?)),
        _ => return None,
    };
    Some(a.to_string())
}

/// Key value, data value and flags of one NFTA_LIST_ELEM payload.
pub(crate) fn parse_elem(body: &[u8]) -> (Option<&[u8]>, Option<&[u8]>, u32) {
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

/// Walk one NEWSETELEM dump message: the set name and each element's (key, data).
pub(crate) fn decode_elems<'a>(
    payload: &'a [u8],
    mut each: impl FnMut(&str, &'a [u8], Option<&'a [u8]>) -> Result<(), String>,
) -> Result<(), String> {
    let attrs = payload.get(uapi::NFGENMSG_LEN..).ok_or("short set element message")?;
    let set = wire::attr(attrs, NFTA_SET_ELEM_LIST_SET)
        .and_then(|n| std::str::from_utf8(n.split(|b| *b == 0).next().unwrap_or_default()).ok())
        .ok_or("set element message without a set name")?;
    let Some(elems) = wire::attr(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else { return Ok(()) };
    for (ty, body) in wire::attrs(elems) {
        if ty != NFTA_LIST_ELEM {
            continue;
        }
        let (key, data, _) = parse_elem(body);
        each(set, key.ok_or_else(|| format!("element without a key in {set}"))?, data)?;
    }
    Ok(())
}

// ---- message builders ----

/// Write element messages for `set` of `table`, split so that no element list exceeds the
/// u16 limit. `msg` is NEWSETELEM (with data) or DEL/DESTROYSETELEM (keys only).
pub(crate) fn elements(b: &mut Batch<What>, table: &str, msg: u8, set: &'static SetDef, elems: &[Elem]) {
    let (verb, flags, with_data) = match msg {
        NEWSETELEM => ("add", NLM_F_CREATE, true),
        DESTROYSETELEM => ("destroy", 0, false),
        _ => ("delete", 0, false),
    };
    let per_msg = (ELEMENTS_PER_MSG_BYTES / set.elem_size()).max(1);
    for chunk in elems.chunks(per_msg) {
        b.msg(msg, flags, FAMILY_INET, What::Elements(verb, set, chunk.len()), |w| {
            w.str(NFTA_SET_ELEM_LIST_TABLE, table);
            w.str(NFTA_SET_ELEM_LIST_SET, set.name);
            w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                for e in chunk {
                    e.write(w, with_data);
                }
            });
        });
    }
}

/// DELSETELEM without an element list: the kernel flushes the whole set.
pub(crate) fn flush_set(b: &mut Batch<What>, table: &str, set: &'static SetDef) {
    b.msg(DELSETELEM, 0, FAMILY_INET, What::Flush(set), |w| {
        w.str(NFTA_SET_ELEM_LIST_TABLE, table);
        w.str(NFTA_SET_ELEM_LIST_SET, set.name);
    });
}

/// NEWTABLE (with CREATE, so re-adding is a no-op) or DELTABLE.
pub(crate) fn table_msg(b: &mut Batch<What>, table: &'static str, msg: u8, verb: &'static str) {
    let flags = if msg == NEWTABLE { NLM_F_CREATE } else { 0 };
    b.msg(msg, flags, FAMILY_INET, What::Table(verb, table), |w| w.str(NFTA_TABLE_NAME, table));
}

/// Replace `table` atomically: NEWTABLE + DELTABLE + NEWTABLE works on every kernel with
/// nf_tables (DESTROYTABLE needs 6.3), and there is never a moment without the table.
pub(crate) fn replace_table(b: &mut Batch<What>, table: &'static str) {
    table_msg(b, table, NEWTABLE, "add");
    table_msg(b, table, DELTABLE, "delete");
    table_msg(b, table, NEWTABLE, "add");
}

pub(crate) fn set_msg(b: &mut Batch<What>, table: &str, set: &'static SetDef) {
    b.msg(NEWSET, NLM_F_CREATE, FAMILY_INET, What::Set(set), |w| {
        w.str(NFTA_SET_TABLE, table);
        w.str(NFTA_SET_NAME, set.name);
        w.u32(NFTA_SET_FLAGS, set.flags);
        w.u32(NFTA_SET_KEY_TYPE, set.key_type);
        w.u32(NFTA_SET_KEY_LEN, set.key_len);
        if set.is_map() {
            w.u32(NFTA_SET_DATA_TYPE, set.data_type);
            if set.data_type != NFT_DATA_VERDICT {
                w.u32(NFTA_SET_DATA_LEN, set.data_len);
            }
        }
        // Mandatory in NEWSET (it lets later messages of the batch refer to a set by id; we
        // refer by name, which works as well).
        w.u32(NFTA_SET_ID, set.id);
    });
}

/// A base chain: hook, priority and type ("nat" or "filter"), policy accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hook {
    pub(crate) num: u32,
    pub(crate) priority: i32,
    pub(crate) kind: &'static str,
}

/// Add a chain; a base chain has a [`Hook`], a regular chain none.
pub(crate) fn chain_msg(b: &mut Batch<What>, table: &str, name: &str, what: What, hook: Option<Hook>) {
    b.msg(NEWCHAIN, NLM_F_CREATE, FAMILY_INET, what, |w| {
        w.str(NFTA_CHAIN_TABLE, table);
        w.str(NFTA_CHAIN_NAME, name);
        if let Some(h) = hook {
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.u32(NFTA_HOOK_HOOKNUM, h.num);
                w.u32(NFTA_HOOK_PRIORITY, h.priority as u32);
            });
            w.u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
            w.str(NFTA_CHAIN_TYPE, h.kind);
        }
    });
}

/// Append a rule (NLM_F_APPEND: without it the kernel inserts at the head of the chain).
pub(crate) fn rule_msg(b: &mut Batch<What>, table: &str, chain: &str, what: What, exprs: impl FnOnce(&mut Writer)) {
    b.msg(NEWRULE, NLM_F_CREATE | NLM_F_APPEND, FAMILY_INET, what, |w| {
        w.str(NFTA_RULE_TABLE, table);
        w.str(NFTA_RULE_CHAIN, chain);
        w.nest(NFTA_RULE_EXPRESSIONS, exprs);
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::nft::uapi::{NF_INET_PRE_ROUTING, PRIO_DSTNAT};

    /// Header bytes of one nf_tables message inside a batch (type, flags, seq, nfgenmsg).
    pub(crate) fn hdr(len: usize, msg: u8, flags: u16, seq: u32) -> Vec<u8> {
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

    /// The bytes of the one message `f` writes into a fresh batch (it gets seq 1).
    pub(crate) fn one(f: impl FnOnce(&mut Batch<What>)) -> Vec<u8> {
        let mut b = Batch::new(Vec::new(), 0);
        f(&mut b);
        assert_eq!(b.len(), 1);
        let r = b.sent[0].range.clone();
        b.w.buf[r].to_vec()
    }

    pub(crate) fn s(ty: u16, v: &str) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(ty, v);
        w.buf
    }

    #[test]
    fn newtable_bytes() {
        let got = one(|b| table_msg(b, "podnet", NEWTABLE, "add"));
        // REQUEST | ACK | CREATE = 0x405
        let want = [hdr(32, NEWTABLE, 0x405, 1), s(1, "podnet")].concat();
        assert_eq!(got, want);
        assert_eq!(&got[20..32], &[11, 0, 1, 0, b'p', b'o', b'd', b'n', b'e', b't', 0, 0]);
    }

    #[test]
    fn newchain_base_chain_bytes() {
        let hook = Hook { num: NF_INET_PRE_ROUTING, priority: PRIO_DSTNAT, kind: "nat" };
        let got = one(|b| chain_msg(b, "podnet", "prerouting", What::Chain("prerouting"), Some(hook)));
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

    static VMAP: SetDef = SetDef {
        name: "v",
        flags: NFT_SET_MAP,
        key_type: TYPE_MARK,
        key_len: 4,
        data_type: NFT_DATA_VERDICT,
        data_len: 0,
        id: 3,
        describe: |_, _| None,
    };

    #[test]
    fn verdict_map_bytes() {
        let got = one(|b| set_msg(b, "t", &VMAP));
        #[rustfmt::skip]
        let body: Vec<u8> = [
            s(1, "t"),
            s(2, "v"),
            vec![8, 0, 3, 0, 0, 0, 0, 8],
            vec![8, 0, 4, 0, 0, 0, 0, 19],
            vec![8, 0, 5, 0, 0, 0, 0, 4],
            vec![8, 0, 6, 0, 0xff, 0xff, 0xff, 0],  // NFT_DATA_VERDICT, no DATA_LEN
            vec![8, 0, 10, 0, 0, 0, 0, 3],
        ]
        .concat();
        assert_eq!(got, [hdr(20 + body.len(), NEWSET, 0x405, 1), body].concat());
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
            iv.elems().iter().map(|e| (u32::from_be_bytes(e.key_bytes()[..4].try_into().unwrap()), e.end)).collect();
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
            .map(|e| (u32::from_be_bytes(e.key_bytes()[..4].try_into().unwrap()), e.end))
            .collect();
        assert_eq!(d, vec![(0, true), (0x0a00_0000, false), (0x0b00_0000, true)]);
        let v6 = Intervals::v6(&["fd00::/64".parse().unwrap()]).elems();
        assert_eq!(v6.len(), 3);
        assert_eq!(&v6[2].key_bytes()[..9], &[0xfd, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert!(Intervals::v6(&[]).elems().is_empty());
        let all = Intervals::v4(&["0.0.0.0/0".parse().unwrap()]).elems();
        assert_eq!(all.len(), 1);
        assert!(!all[0].end);
    }
}
