//! Canonical CIDR values: parsed strictly (host bits, prefix range, IPv4-mapped IPv6 all refused)
//! so every range the planner and the allocators compare is unambiguous. Arithmetic is done on
//! `u128` for both families; IPv4 lives in the low 32 bits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{op_err, ClusterError};

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 (32-bit addresses).
    Ipv4,
    /// IPv6 (128-bit addresses).
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Address width in bits: 32 or 128.
    pub fn bits(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }

    /// "IPv4" or "IPv6", for messages and tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A canonical CIDR: a network address with no host bits set and a prefix length that fits the
/// family. Displays and serializes as `"10.0.0.0/16"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Build a CIDR, refusing a prefix longer than the family allows or an address with host
    /// bits set.
    pub fn new(network: IpAddr, prefix: u8) -> podnet::Result<Cidr> {
        Cidr::checked(network, prefix, None).map_err(op_err("build CIDR"))
    }

    /// Parse `"10.0.0.0/16"` or `"fd00::/64"`; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> podnet::Result<Cidr> {
        parse_cidr(text).map_err(op_err(format_args!("parse CIDR {:?}", text.trim())))
    }

    pub(crate) fn checked(network: IpAddr, prefix: u8, input: Option<&str>) -> Result<Cidr, ClusterError> {
        let input = || input.map_or_else(|| format!("{network}/{prefix}"), str::to_owned);
        let family = Family::of(network);
        if let IpAddr::V6(v6) = network {
            // An IPv4-mapped range would be IPv4 on the wire but IPv6 in every comparison here,
            // silently escaping the family checks.
            if v6.to_ipv4_mapped().is_some() && prefix >= 96 {
                return Err(ClusterError::FamilyMismatch(format!(
                    "{} is an IPv4-mapped IPv6 range; write it as IPv4 instead",
                    input()
                )));
            }
        }
        if prefix > family.bits() {
            return Err(ClusterError::MaskOutOfRange {
                what: input(),
                mask: u32::from(prefix),
                reason: format!("an {family} prefix is at most /{}", family.bits()),
            });
        }
        let value = ip_to_u128(network);
        let host = host_mask(family, prefix);
        if value & host != 0 {
            let suggestion = Cidr { network: offset_ip(family, value & !host), prefix };
            return Err(ClusterError::HostBitsSet { input: input(), suggestion });
        }
        Ok(Cidr { network, prefix })
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(self.network)
    }

    /// Number of host bits (`32 - prefix` or `128 - prefix`).
    pub fn host_bits(&self) -> u8 {
        self.family().bits() - self.prefix
    }

    /// Number of addresses in the range, saturating at `u128::MAX` for `::/0`.
    pub fn address_count(&self) -> u128 {
        pow2_saturating(u32::from(self.host_bits()))
    }

    /// Usable host addresses, the way Kubernetes counts pods per node CIDR and nodes per
    /// machine subnet: IPv4 drops the network and broadcast addresses (`2^n - 2`), IPv6 drops
    /// the subnet-router anycast (network) address (`2^n - 1`). Saturates at zero and at
    /// `u128::MAX`.
    pub fn usable_hosts(&self) -> u128 {
        let n = self.address_count();
        match self.family() {
            Family::Ipv4 => n.saturating_sub(2),
            // `::/0` already saturated to u128::MAX = 2^128 - 1, which is the exact answer.
            Family::Ipv6 if self.host_bits() == 128 => n,
            Family::Ipv6 => n - 1,
        }
    }

    /// The last address of the range (the broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        let value = ip_to_u128(self.network) | host_mask(self.family(), self.prefix);
        offset_ip(self.family(), value)
    }

    /// Whether `ip` lies inside the range (always false for the other family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family()
            && ip_to_u128(ip) & !host_mask(self.family(), self.prefix) == ip_to_u128(self.network)
    }

    /// Whether `other` lies entirely inside this range.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    /// Whether the two ranges share at least one address. Aligned ranges either nest or are
    /// disjoint, so one containing the other's network address is the whole test.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// Number of `/prefix` subnets the range splits into, saturating at `u128::MAX`; zero when
    /// `prefix` is shorter than this range's own prefix or longer than the family allows.
    pub fn subnet_count(&self, prefix: u8) -> u128 {
        if prefix < self.prefix || prefix > self.family().bits() {
            return 0;
        }
        pow2_saturating(u32::from(prefix - self.prefix))
    }

    /// The `/prefix` subnets of this range in address order.
    pub fn subnets(&self, prefix: u8) -> podnet::Result<Subnets> {
        if prefix < self.prefix || prefix > self.family().bits() {
            let e = ClusterError::MaskOutOfRange {
                what: format!("subnet mask for {self}"),
                mask: u32::from(prefix),
                reason: format!("it must lie between the range's own /{} and /{}", self.prefix, self.family().bits()),
            };
            return Err(op_err(format_args!("split {self}"))(e));
        }
        Ok(Subnets { base: *self, prefix, next: 0, remaining: self.subnet_count(prefix) })
    }

    /// The `index`-th `/prefix` subnet; the caller guarantees `prefix` is valid for this range
    /// and `index` is below `subnet_count(prefix)`.
    pub(crate) fn nth_subnet(&self, prefix: u8, index: u128) -> Cidr {
        let family = self.family();
        let step_bits = u32::from(family.bits() - prefix);
        // A shift by 128 only happens for a /0 subnet of ::/0, whose only index is zero.
        let offset = index.checked_shl(step_bits).unwrap_or(0);
        let network = offset_ip(family, ip_to_u128(self.network) | offset);
        Cidr { network, prefix }
    }

    /// Index of `subnet` among this range's `/subnet.prefix` subnets; the caller guarantees it
    /// is contained.
    pub(crate) fn subnet_index(&self, subnet: &Cidr) -> u128 {
        let step_bits = u32::from(self.family().bits() - subnet.prefix);
        let delta = ip_to_u128(subnet.network) - ip_to_u128(self.network);
        delta.checked_shr(step_bits).unwrap_or(0)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

impl FromStr for Cidr {
    type Err = podnet::Error;

    fn from_str(text: &str) -> podnet::Result<Cidr> {
        Cidr::parse(text)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_cidr(&text).map_err(serde::de::Error::custom)
    }
}

impl From<Cidr> for ipnetwork::IpNetwork {
    fn from(c: Cidr) -> ipnetwork::IpNetwork {
        // A canonical Cidr always satisfies IpNetwork's prefix rule.
        ipnetwork::IpNetwork::new(c.network, c.prefix).unwrap_or(ipnetwork::IpNetwork::from(c.network))
    }
}

impl TryFrom<ipnetwork::IpNetwork> for Cidr {
    type Error = podnet::Error;

    /// Refuses networks with host bits set (`10.0.0.1/24`), which `IpNetwork` accepts.
    fn try_from(n: ipnetwork::IpNetwork) -> podnet::Result<Cidr> {
        Cidr::new(n.ip(), n.prefix())
    }
}

/// Iterator over the equal-sized subnets of a range, from [`Cidr::subnets`].
#[derive(Debug, Clone)]
pub struct Subnets {
    base: Cidr,
    prefix: u8,
    next: u128,
    remaining: u128,
}

impl Iterator for Subnets {
    type Item = Cidr;

    fn next(&mut self) -> Option<Cidr> {
        if self.remaining == 0 {
            return None;
        }
        let item = self.base.nth_subnet(self.prefix, self.next);
        self.next = self.next.wrapping_add(1);
        self.remaining -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match usize::try_from(self.remaining) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, ClusterError> {
    let input = text.trim();
    let invalid = |reason: &str| ClusterError::InvalidCidr { input: input.to_owned(), reason: reason.to_owned() };
    if input.is_empty() {
        return Err(invalid("empty"));
    }
    let Some((addr, prefix)) = input.split_once('/') else {
        return Err(invalid("missing /prefix length (write e.g. 10.0.0.0/16)"));
    };
    let network: IpAddr = addr.parse().map_err(|_| invalid("the part before '/' is not an IPv4 or IPv6 address"))?;
    // u8::from_str accepts a leading '+'; a prefix is plain decimal digits only.
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the prefix length after '/' must be a decimal number"));
    }
    let value: u32 = prefix.parse().map_err(|_| invalid("the prefix length is not a number"))?;
    let family = Family::of(network);
    let Ok(prefix) = u8::try_from(value) else {
        return Err(ClusterError::MaskOutOfRange {
            what: input.to_owned(),
            mask: value,
            reason: format!("an {family} prefix is at most /{}", family.bits()),
        });
    };
    Cidr::checked(network, prefix, Some(input))
}

/// The address as an integer; IPv4 occupies the low 32 bits.
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address with integer value `value` in `family` (IPv4 keeps the low 32 bits).
pub(crate) fn offset_ip(family: Family, value: u128) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Mask of the host bits of a `/prefix` in `family`.
pub(crate) fn host_mask(family: Family, prefix: u8) -> u128 {
    let host_bits = u32::from(family.bits() - prefix);
    if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// `2^exp`, saturating at `u128::MAX` (only `2^128` saturates).
pub(crate) fn pow2_saturating(exp: u32) -> u128 {
    1u128.checked_shl(exp).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use podnet::ErrorKind;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn err(s: &str) -> ClusterError {
        parse_cidr(s).unwrap_err()
    }

    #[test]
    fn parses_and_displays_canonical_ranges() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert_eq!(c(" fd00:10::/56 ").to_string(), "fd00:10::/56");
        assert_eq!(c("0.0.0.0/0").address_count(), 1 << 32);
        assert_eq!(c("::/0").address_count(), u128::MAX);
        assert_eq!(c("10.0.0.0/16").family(), Family::Ipv4);
        assert_eq!(c("10.0.0.0/16").last().to_string(), "10.0.255.255");
        assert_eq!(c("fd00::/64").last().to_string(), "fd00::ffff:ffff:ffff:ffff");
    }

    #[test]
    fn refuses_malformed_input_with_the_right_variant() {
        assert!(matches!(err(""), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0.0"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0/16"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0.0/+16"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0.0/"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0.0/1a"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("fe80::%eth0/64"), ClusterError::InvalidCidr { .. }));
        assert!(matches!(err("10.0.0.0/33"), ClusterError::MaskOutOfRange { mask: 33, .. }));
        assert!(matches!(err("10.0.0.0/999"), ClusterError::MaskOutOfRange { mask: 999, .. }));
        assert!(matches!(err("fd00::/129"), ClusterError::MaskOutOfRange { .. }));
        assert!(matches!(err("::ffff:10.0.0.0/104"), ClusterError::FamilyMismatch(_)));
        match err("10.0.0.1/16") {
            ClusterError::HostBitsSet { suggestion, .. } => {
                assert_eq!(suggestion, c("10.0.0.0/16"))
            }
            other => panic!("unexpected {other}"),
        }
        let e = Cidr::parse("10.0.0.1/16").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "parse CIDR \"10.0.0.1/16\": 10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?"
        );
    }

    #[test]
    fn usable_hosts_follow_kubernetes() {
        assert_eq!(c("10.0.0.0/24").usable_hosts(), 254);
        assert_eq!(c("10.0.0.0/26").usable_hosts(), 62);
        assert_eq!(c("10.0.0.0/27").usable_hosts(), 30);
        assert_eq!(c("10.0.0.0/31").usable_hosts(), 0);
        assert_eq!(c("10.0.0.0/32").usable_hosts(), 0);
        assert_eq!(c("fd00::/64").usable_hosts(), u128::from(u64::MAX));
        assert_eq!(c("::/0").usable_hosts(), u128::MAX);
        assert_eq!(c("fd00::/128").usable_hosts(), 0);
    }

    #[test]
    fn overlap_and_containment() {
        assert!(c("10.0.0.0/8").overlaps(&c("10.96.0.0/12")));
        assert!(c("10.96.0.0/12").overlaps(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/16").overlaps(&c("10.1.0.0/16")));
        assert!(!c("10.0.0.0/16").overlaps(&c("fd00::/16")));
        assert!(c("10.0.0.0/16").contains("10.0.255.255".parse().unwrap()));
        assert!(!c("10.0.0.0/16").contains("10.1.0.0".parse().unwrap()));
        assert!(c("0.0.0.0/0").contains("255.255.255.255".parse().unwrap()));
        assert!(c("::/0").contains("ffff::1".parse().unwrap()));
    }

    #[test]
    fn subnets_enumerate_in_order() {
        let all: Vec<Cidr> = c("10.10.0.0/16").subnets(24).unwrap().collect();
        assert_eq!(all.len(), 256);
        assert_eq!(all[0], c("10.10.0.0/24"));
        assert_eq!(all[255], c("10.10.255.0/24"));
        assert_eq!(c("fd00:10::/56").subnets(64).unwrap().nth(255), Some(c("fd00:10:0:ff::/64")));
        assert_eq!(c("::/0").subnets(0).unwrap().collect::<Vec<_>>(), vec![c("::/0")]);
        assert!(c("10.10.0.0/16").subnets(8).is_err());
        assert!(c("10.10.0.0/16").subnets(33).is_err());
        assert_eq!(c("::/0").subnet_count(128), u128::MAX);
    }

    #[test]
    fn serde_and_ipnetwork_round_trip() {
        let v = c("fd00:10::/56");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"fd00:10::/56\"");
        assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), v);
        assert!(serde_json::from_str::<Cidr>("\"10.0.0.1/8\"").is_err());
        let n: ipnetwork::IpNetwork = v.into();
        assert_eq!(Cidr::try_from(n).unwrap(), v);
        let host: ipnetwork::IpNetwork = "10.0.0.1/8".parse().unwrap();
        assert!(Cidr::try_from(host).is_err());
    }

    #[test]
    fn property_random_ranges_round_trip_and_index() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..5000 {
            let family = if rng.below(2) == 0 { Family::Ipv4 } else { Family::Ipv6 };
            let prefix = rng.below(u64::from(family.bits()) + 1) as u8;
            let raw = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            let value = raw
                & !host_mask(family, prefix)
                & (if family == Family::Ipv4 { u128::from(u32::MAX) } else { u128::MAX });
            let cidr = Cidr::new(offset_ip(family, value), prefix).unwrap();
            assert_eq!(c(&cidr.to_string()), cidr);
            assert!(cidr.contains(cidr.network()));
            assert!(cidr.contains(cidr.last()));
            if prefix < family.bits() {
                let sub = (prefix + 1 + rng.below(u64::from(family.bits() - prefix)) as u8).min(family.bits());
                let count = cidr.subnet_count(sub);
                let idx = u128::from(rng.next_u64()) % count.max(1);
                let s = cidr.nth_subnet(sub, idx);
                assert!(cidr.contains_cidr(&s));
                assert_eq!(cidr.subnet_index(&s), idx);
            }
        }
    }
}
