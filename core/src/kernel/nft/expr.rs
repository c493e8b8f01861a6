//! nf_tables rule expressions, encoded as the kernel expects them (linux/netfilter/nf_tables.h).
//!
//! Each function appends one `NFTA_LIST_ELEM` to a rule's expression list. Integers the kernel
//! compares against packet data are network order; meta/ct/fib results are host order.

use super::uapi::{
    NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_LIST_ELEM, NFTA_VERDICT_CHAIN,
    NFTA_VERDICT_CODE, NFT_JUMP,
};
use super::wire::Writer;

/// Registers: 0 is the verdict, 1..4 are 16-byte registers, 8..23 are 32-byte views of them
/// (NFT_REG32_00 = 8 aliases the first word of register 1). Concatenations use consecutive words.
pub(crate) mod reg {
    pub(crate) const VERDICT: u32 = 0;
    pub(crate) const R1: u32 = 1;
    pub(crate) const R2: u32 = 2;
    pub(crate) const R4: u32 = 4;
    /// Second 32-bit word of register 1.
    pub(crate) const R32_01: u32 = 9;
    /// Third 32-bit word of register 1.
    pub(crate) const R32_02: u32 = 10;
    /// Second word of register 2 (word 5 overall).
    pub(crate) const R32_05: u32 = 13;
}

/// `meta` keys.
pub(crate) const NFT_META_MARK: u32 = 3;
pub(crate) const NFT_META_NFPROTO: u32 = 15;
pub(crate) const NFT_META_L4PROTO: u32 = 16;

/// `ct` keys of the original direction's tuple (NFT_CT_PROTO_DST, NFT_CT_DST_IP, NFT_CT_DST_IP6).
pub(crate) const NFT_CT_PROTO_DST: u32 = 12;
pub(crate) const NFT_CT_DST_IP: u32 = 20;
pub(crate) const NFT_CT_DST_IP6: u32 = 22;

/// Payload bases.
pub(crate) const NETWORK_HEADER: u32 = 1;
pub(crate) const TRANSPORT_HEADER: u32 = 2;

/// nfproto values as `meta nfproto` loads them (one byte).
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_IPV6: u8 = 10;

/// `fib ... type` results (enum rtn_type).
pub(crate) const RTN_UNICAST: u32 = 1;
pub(crate) const RTN_LOCAL: u32 = 2;

/// NF_NAT_RANGE_PROTO_RANDOM_FULLY: pick source ports at random (what kube-proxy asks for, to
/// avoid the SNAT port-collision races of the sequential allocator).
pub(crate) const NAT_RANDOM_FULLY: u32 = 0x10;

fn expr(w: &mut Writer, name: &str, body: impl FnOnce(&mut Writer)) {
    w.nest(NFTA_LIST_ELEM, |w| {
        w.str(NFTA_EXPR_NAME, name);
        w.nest(NFTA_EXPR_DATA, body);
    });
}

fn data_value(w: &mut Writer, ty: u16, value: &[u8]) {
    w.nest(ty, |w| w.attr(NFTA_DATA_VALUE, value));
}

/// `meta load <key> => dreg`.
pub(crate) fn meta_load(w: &mut Writer, key: u32, dreg: u32) {
    expr(w, "meta", |w| {
        w.u32(2, key); // NFTA_META_KEY
        w.u32(1, dreg); // NFTA_META_DREG
    });
}

/// `meta set <key> with sreg`.
pub(crate) fn meta_set(w: &mut Writer, key: u32, sreg: u32) {
    expr(w, "meta", |w| {
        w.u32(2, key); // NFTA_META_KEY
        w.u32(3, sreg); // NFTA_META_SREG
    });
}

/// `cmp eq sreg <data>`.
pub(crate) fn cmp_eq(w: &mut Writer, sreg: u32, data: &[u8]) {
    expr(w, "cmp", |w| {
        w.u32(1, sreg); // NFTA_CMP_SREG
        w.u32(2, 0); // NFTA_CMP_OP = NFT_CMP_EQ
        data_value(w, 3, data); // NFTA_CMP_DATA
    });
}

/// `payload load <len>b @ <base> + <offset> => dreg`.
pub(crate) fn payload(w: &mut Writer, base: u32, offset: u32, len: u32, dreg: u32) {
    expr(w, "payload", |w| {
        w.u32(1, dreg); // NFTA_PAYLOAD_DREG
        w.u32(2, base); // NFTA_PAYLOAD_BASE
        w.u32(3, offset); // NFTA_PAYLOAD_OFFSET
        w.u32(4, len); // NFTA_PAYLOAD_LEN
    });
}

/// `bitwise reg = (reg & mask) ^ xor`.
pub(crate) fn bitwise(w: &mut Writer, reg: u32, mask: &[u8], xor: &[u8]) {
    debug_assert_eq!(mask.len(), xor.len());
    expr(w, "bitwise", |w| {
        w.u32(1, reg); // NFTA_BITWISE_SREG
        w.u32(2, reg); // NFTA_BITWISE_DREG
        w.u32(3, mask.len() as u32); // NFTA_BITWISE_LEN
        data_value(w, 4, mask); // NFTA_BITWISE_MASK
        data_value(w, 5, xor); // NFTA_BITWISE_XOR
    });
}

/// `lookup sreg set <name> [dreg]`; `invert` matches when the key is absent (`!= @set`).
pub(crate) fn lookup(w: &mut Writer, set: &str, sreg: u32, dreg: Option<u32>, invert: bool) {
    expr(w, "lookup", |w| {
        w.str(1, set); // NFTA_LOOKUP_SET
        w.u32(2, sreg); // NFTA_LOOKUP_SREG
        if let Some(d) = dreg {
            w.u32(3, d); // NFTA_LOOKUP_DREG
        }
        if invert {
            w.u32(5, 1); // NFTA_LOOKUP_FLAGS = NFT_LOOKUP_F_INV
        }
    });
}

/// `nat dnat <family> addr_min reg proto_min reg`. The kernel derives MAP_IPS and
/// PROTO_SPECIFIED from the registers present, so no flags attribute is needed.
pub(crate) fn dnat(w: &mut Writer, nfproto: u8, addr_reg: u32, proto_reg: u32) {
    expr(w, "nat", |w| {
        w.u32(1, 1); // NFTA_NAT_TYPE = NFT_NAT_DNAT
        w.u32(2, nfproto.into()); // NFTA_NAT_FAMILY
        w.u32(3, addr_reg); // NFTA_NAT_REG_ADDR_MIN
        w.u32(5, proto_reg); // NFTA_NAT_REG_PROTO_MIN
    });
}

/// `fib daddr type => dreg` (rtn_type, host order).
pub(crate) fn fib_daddr_type(w: &mut Writer, dreg: u32) {
    expr(w, "fib", |w| {
        w.u32(1, dreg); // NFTA_FIB_DREG
        w.u32(2, 3); // NFTA_FIB_RESULT = NFT_FIB_RESULT_ADDRTYPE
        w.u32(3, 2); // NFTA_FIB_FLAGS = NFTA_FIB_F_DADDR
    });
}

/// `masq [flags]`.
pub(crate) fn masq(w: &mut Writer, flags: u32) {
    expr(w, "masq", |w| {
        if flags != 0 {
            w.u32(1, flags); // NFTA_MASQ_FLAGS
        }
    });
}

/// `immediate reg 0 jump -> chain`.
pub(crate) fn jump(w: &mut Writer, chain: &str) {
    expr(w, "immediate", |w| {
        w.u32(1, reg::VERDICT); // NFTA_IMMEDIATE_DREG
        w.nest(2, |w| {
            // NFTA_IMMEDIATE_DATA
            w.nest(NFTA_DATA_VERDICT, |w| {
                w.u32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                w.str(NFTA_VERDICT_CHAIN, chain);
            });
        });
    });
}

/// `meta nfproto <ipv4|ipv6>`: explicit family guard. In an inet table nothing else stops an
/// IPv4 payload offset from being read out of an IPv6 header (and `dnat ip` of an IPv6 packet
/// is a silent no-op), so every family-specific rule starts with it.
pub(crate) fn nfproto_is(w: &mut Writer, nfproto: u8) {
    meta_load(w, NFT_META_NFPROTO, reg::R1);
    cmp_eq(w, reg::R1, &[nfproto]);
}

/// `meta mark set meta mark | bit` using `scratch` (must not clobber live registers).
pub(crate) fn mark_or(w: &mut Writer, bit: u32, scratch: u32) {
    meta_load(w, NFT_META_MARK, scratch);
    bitwise(w, scratch, &(!bit).to_ne_bytes(), &bit.to_ne_bytes());
    meta_set(w, NFT_META_MARK, scratch);
}

/// `meta mark & bit == bit`.
pub(crate) fn mark_has(w: &mut Writer, bit: u32) {
    meta_load(w, NFT_META_MARK, reg::R1);
    bitwise(w, reg::R1, &bit.to_ne_bytes(), &[0; 4]);
    cmp_eq(w, reg::R1, &bit.to_ne_bytes());
}

/// `ct load state => dreg`, `& new`, `!= 0`: the packet opens a new connection.
pub(crate) fn ct_state_new(w: &mut Writer) {
    expr(w, "ct", |w| {
        w.u32(1, reg::R1); // NFTA_CT_DREG
        w.u32(2, 0); // NFTA_CT_KEY = NFT_CT_STATE
    });
    // NF_CT_STATE_BIT(IP_CT_NEW) = 1 << 3, host order like every ct result
    bitwise(w, reg::R1, &8u32.to_ne_bytes(), &[0; 4]);
    cmp_neq(w, reg::R1, &[0; 4]);
}

/// `ct original <key> => dreg` (a tuple field of the original direction, network order).
pub(crate) fn ct_original(w: &mut Writer, key: u32, dreg: u32) {
    expr(w, "ct", |w| {
        w.u32(1, dreg); // NFTA_CT_DREG
        w.u32(2, key); // NFTA_CT_KEY
        w.attr(3, &[0]); // NFTA_CT_DIRECTION (u8) = IP_CT_DIR_ORIGINAL
    });
}

/// `cmp neq sreg <data>`.
pub(crate) fn cmp_neq(w: &mut Writer, sreg: u32, data: &[u8]) {
    expr(w, "cmp", |w| {
        w.u32(1, sreg); // NFTA_CMP_SREG
        w.u32(2, 1); // NFTA_CMP_OP = NFT_CMP_NEQ
        data_value(w, 3, data); // NFTA_CMP_DATA
    });
}

/// `numgen random mod <modulus> offset <offset> => dreg` (a host-order u32).
pub(crate) fn numgen_random(w: &mut Writer, modulus: u32, offset: u32, dreg: u32) {
    expr(w, "numgen", |w| {
        w.u32(1, dreg); // NFTA_NG_DREG
        w.u32(2, modulus); // NFTA_NG_MODULUS
        w.u32(3, 1); // NFTA_NG_TYPE = NFT_NG_RANDOM
        if offset != 0 {
            w.u32(4, offset); // NFTA_NG_OFFSET
        }
    });
}

/// `update @set { sreg_key : sreg_data } timeout <ms>`: add or refresh a map element from
/// the packet path (the set needs NFT_SET_EVAL | NFT_SET_TIMEOUT | NFT_SET_MAP).
pub(crate) fn dynset_update(w: &mut Writer, set: &str, sreg_key: u32, sreg_data: u32, timeout_ms: u64) {
    expr(w, "dynset", |w| {
        w.str(1, set); // NFTA_DYNSET_SET_NAME
        w.u32(3, 1); // NFTA_DYNSET_OP = NFT_DYNSET_OP_UPDATE
        w.u32(4, sreg_key); // NFTA_DYNSET_SREG_KEY
        w.u32(5, sreg_data); // NFTA_DYNSET_SREG_DATA
        w.attr(6, &timeout_ms.to_be_bytes()); // NFTA_DYNSET_TIMEOUT (ms, be64)
    });
}

/// `reject with tcp reset`: the client sees ECONNREFUSED at once (a RST is not rate-limited
/// like the ICMP errors of the kernel's icmp_ratelimit). Only for TCP packets.
pub(crate) fn reject_tcp_reset(w: &mut Writer) {
    expr(w, "reject", |w| {
        w.u32(1, 1); // NFTA_REJECT_TYPE = NFT_REJECT_TCP_RST
    });
}

/// `reject` (icmpx port-unreachable: TCP clients see ECONNREFUSED, UDP clients an ICMP error).
pub(crate) fn reject(w: &mut Writer) {
    expr(w, "reject", |w| {
        w.u32(1, 2); // NFTA_REJECT_TYPE = NFT_REJECT_ICMPX_UNREACH
        w.attr(2, &[1]); // NFTA_REJECT_ICMP_CODE (u8) = NFT_REJECT_ICMPX_PORT_UNREACH
    });
}

/// `immediate reg 0 <verdict>` for drop (0) and the other codes without a chain.
pub(crate) fn verdict(w: &mut Writer, code: i32) {
    expr(w, "immediate", |w| {
        w.u32(1, reg::VERDICT); // NFTA_IMMEDIATE_DREG
        w.nest(2, |w| w.nest(NFTA_DATA_VERDICT, |w| w.u32(NFTA_VERDICT_CODE, code as u32)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_encoding() {
        let mut w = Writer::default();
        jump(&mut w, "x");
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[56u8, 0, 1, 0x80][..],                 // LIST_ELEM
            &[14, 0, 1, 0], b"immediate\0", &[0, 0], // NAME
            &[36, 0, 2, 0x80],                       // DATA
            &[8, 0, 1, 0, 0, 0, 0, 0],               // DREG 0
            &[24, 0, 2, 0x80],                       // IMMEDIATE_DATA
            &[20, 0, 2, 0x80],                       // DATA_VERDICT
            &[8, 0, 1, 0, 0xff, 0xff, 0xff, 0xfd],   // CODE NFT_JUMP (-3)
            &[6, 0, 2, 0, b'x', 0, 0, 0],            // CHAIN "x"
        ]
        .concat();
        assert_eq!(w.buf, want);
    }

    /// `numgen random mod 3 offset 0x10000 => reg 9`, as nft encodes it.
    #[test]
    fn numgen_encoding() {
        let mut w = Writer::default();
        numgen_random(&mut w, 3, 0x1_0000, reg::R32_01);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[52u8, 0, 1, 0x80][..],
            &[11, 0, 1, 0], b"numgen\0", &[0],
            &[36, 0, 2, 0x80],
            &[8, 0, 1, 0, 0, 0, 0, 9],           // DREG
            &[8, 0, 2, 0, 0, 0, 0, 3],           // MODULUS
            &[8, 0, 3, 0, 0, 0, 0, 1],           // TYPE random
            &[8, 0, 4, 0, 0, 1, 0, 0],           // OFFSET
        ]
        .concat();
        assert_eq!(w.buf, want);
    }

    #[test]
    fn dynset_reject_and_ct_state_encoding() {
        let mut w = Writer::default();
        dynset_update(&mut w, "aff4", 8, 10, 30_000);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[68u8, 0, 1, 0x80][..],
            &[11, 0, 1, 0], b"dynset\0", &[0],
            &[52, 0, 2, 0x80],
            &[9, 0, 1, 0], b"aff4\0", &[0, 0, 0], // SET_NAME
            &[8, 0, 3, 0, 0, 0, 0, 1],             // OP update
            &[8, 0, 4, 0, 0, 0, 0, 8],             // SREG_KEY
            &[8, 0, 5, 0, 0, 0, 0, 10],            // SREG_DATA
            &[12, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0x75, 0x30], // TIMEOUT 30000 ms, be64
        ]
        .concat();
        assert_eq!(w.buf, want);
        let mut w = Writer::default();
        reject(&mut w);
        assert!(w.buf.ends_with(&[8, 0, 1, 0, 0, 0, 0, 2, 5, 0, 2, 0, 1, 0, 0, 0]), "{:?}", w.buf);
        let mut w = Writer::default();
        ct_state_new(&mut w);
        // ct load state => reg 1; bitwise & 8 (host order); cmp neq 0
        assert!(w.buf.windows(8).any(|x| x == [8, 0, 2, 0, 0, 0, 0, 0]));
        assert!(w
            .buf
            .windows(8)
            .any(|x| x == [8, 0, 1, 0].iter().copied().chain(8u32.to_ne_bytes()).collect::<Vec<u8>>()));
    }
}
