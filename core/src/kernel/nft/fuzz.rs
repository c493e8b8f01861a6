//! Randomized robustness of every parser of bytes the kernel sends back (netlink headers, acks,
//! set-element dumps, conntrack dumps): random and structure-aware inputs (nested attributes with
//! lengths that lie, truncations, bit flips) must be refused or read, never panic or loop.
//! `PODNET_FUZZ_ITERS` sets the budget (default 20,000 per parser; more on demand). Stable Rust,
//! no coverage guidance: a bounded smoke fuzzer that runs in CI.

use std::net::IpAddr;

use super::conntrack::{dnat_entry, matching_entry};
use super::msg::decode_elems;
use super::ruleset::tests::hp;
use super::uapi::NLMSG_ERROR;
use super::wire::{messages, parse_ack};
use super::Proto;

/// xorshift64*: deterministic per seed, so a failure names its input.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Random bytes, a random netlink attribute tree, or a mutated one.
    pub(crate) fn input(&mut self) -> Vec<u8> {
        match self.below(3) {
            0 => (0..self.below(96)).map(|_| self.next() as u8).collect(),
            1 => self.tlvs(3),
            _ => {
                let mut v = self.tlvs(3);
                for _ in 0..=self.below(4) {
                    if v.is_empty() {
                        break;
                    }
                    let i = self.below(v.len());
                    match self.below(3) {
                        0 => v[i] ^= 1 << self.below(8),
                        1 => v.truncate(i),
                        _ => v[i] = self.next() as u8,
                    }
                }
                v
            }
        }
    }

    /// Attributes (len u16, type u16, payload, padding), nested up to `depth`.
    fn tlvs(&mut self, depth: usize) -> Vec<u8> {
        let mut out = vec![];
        for _ in 0..self.below(5) {
            let payload = if depth > 0 && self.below(2) == 0 {
                self.tlvs(depth - 1)
            } else {
                (0..self.below(20)).map(|_| self.next() as u8).collect()
            };
            let len = (payload.len() + 4) as u16;
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&(self.below(12) as u16).to_ne_bytes());
            out.extend_from_slice(&payload);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out
    }
}

/// One netlink datagram around `payload` (header fields random, length sometimes lying).
fn datagram(r: &mut Rng, payload: &[u8]) -> Vec<u8> {
    let mut len = (16 + payload.len()) as u32;
    if r.below(8) == 0 {
        len = r.next() as u32 % 200;
    }
    let mut v = vec![];
    v.extend_from_slice(&len.to_ne_bytes());
    let ty = if r.below(2) == 0 { NLMSG_ERROR } else { r.next() as u16 };
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&(r.next() as u16).to_ne_bytes());
    v.extend_from_slice(&(r.next() as u32).to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn kernel_replies_never_panic() {
    let seed = 0x706f_646e_6574_0001;
    let mut r = Rng(seed);
    let hp = hp(Proto::Udp, None, 53, "10.0.0.2", 53);
    let eps: Vec<(IpAddr, u16)> = vec![("10.0.0.2".parse().unwrap(), 53)];
    for _ in 0..podnet_world::fuzz_iterations() {
        let payload = r.input();
        let dg = datagram(&mut r, &payload);
        for m in messages(&dg).take(64).flatten() {
            if m.ty == NLMSG_ERROR {
                let _ = parse_ack(&m);
            }
        }
        let mut n = 0usize;
        let _ = decode_elems(&payload, |_, _, _| {
            n += 1;
            Ok(())
        });
        let _ = matching_entry(&payload, &[&hp]);
        let _ = dnat_entry(&payload, &eps);
    }
}
