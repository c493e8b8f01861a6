//! The node CIDR allocator: splits each cluster CIDR into node CIDRs and hands one per family to
//! each node, round-robin, like Kubernetes' range allocator (`kube-controller-manager
//! --allocate-node-cidrs`). One bitmap per family; bit `i` is the `i`-th node CIDR.

use super::bitmap::Bitmap;
use super::cidr::{Cidr, Family};
use super::{op_err, state, ClusterError};

/// Largest IPv6 node mask minus cluster mask, as in Kubernetes (`clusterSubnetMaxDiff`): at most
/// `2^16` node CIDRs per IPv6 cluster CIDR.
pub const MAX_NODE_MASK_DIFF_V6: u8 = 16;

/// Largest IPv4 node mask minus cluster mask: at most `2^24` node CIDRs (a 2 MiB bitmap).
/// Kubernetes sets no IPv4 limit, but a larger bitmap no longer fits one etcd value and no
/// cluster has sixteen million nodes.
pub const MAX_NODE_MASK_DIFF_V4: u8 = 24;

const MAGIC: &[u8; 4] = b"PNNC";
const WHAT: &str = "node CIDR allocator";

/// A cluster CIDR and the prefix length of the node CIDRs cut from it
/// (`--cluster-cidr` and `--node-cidr-mask-size-ipv4/-ipv6` in Kubernetes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterCidr {
    /// The pod range of the whole cluster, e.g. `10.10.0.0/16`.
    pub cidr: Cidr,
    /// Prefix length of each node's pod CIDR, e.g. `24`.
    pub node_mask: u8,
}

impl ClusterCidr {
    /// Number of node CIDRs, checking the node mask against the cluster CIDR and the limits.
    pub(crate) fn checked_count(&self) -> Result<u64, ClusterError> {
        let family = self.cidr.family();
        let out_of_range = |reason: String| ClusterError::MaskOutOfRange {
            what: format!("node mask for cluster CIDR {}", self.cidr),
            mask: u32::from(self.node_mask),
            reason,
        };
        if self.node_mask > family.bits() {
            return Err(out_of_range(format!("an {family} node mask is at most /{}", family.bits())));
        }
        if self.node_mask < self.cidr.prefix() {
            return Err(out_of_range(format!(
                "a node CIDR cannot be larger than the cluster CIDR's own /{}",
                self.cidr.prefix()
            )));
        }
        let diff = self.node_mask - self.cidr.prefix();
        let limit = match family {
            Family::Ipv4 => MAX_NODE_MASK_DIFF_V4,
            Family::Ipv6 => MAX_NODE_MASK_DIFF_V6,
        };
        if diff > limit {
            return Err(out_of_range(format!(
                "it is {diff} bits longer than the cluster CIDR's /{}; at most {limit} bits \
                 ({} node CIDRs) are supported for {family}{}",
                self.cidr.prefix(),
                1u64 << limit,
                if family == Family::Ipv6 { ", as in Kubernetes" } else { "" }
            )));
        }
        Ok(1u64 << diff)
    }
}

/// How full one family of a [`NodeCidrAllocator`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeCidrUsage {
    /// The cluster CIDR and node mask.
    pub cluster: ClusterCidr,
    /// Number of node CIDRs in the cluster CIDR.
    pub capacity: u64,
    /// Number of allocated node CIDRs.
    pub allocated: u64,
}

#[derive(Debug, Clone)]
struct CidrSet {
    pool: ClusterCidr,
    bitmap: Bitmap,
    /// Where the round-robin search resumes, so a released CIDR is not handed out again at once
    /// (routes to it may still be draining from other nodes).
    next: u64,
}

impl CidrSet {
    fn cidr_at(&self, index: u64) -> Cidr {
        self.pool.cidr.nth_subnet(self.pool.node_mask, u128::from(index))
    }

    fn find_next(&self) -> Option<u64> {
        let len = self.bitmap.len();
        self.bitmap.find_clear(self.next, len).or_else(|| self.bitmap.find_clear(0, self.next))
    }
}

/// Hands each node one pod CIDR per cluster CIDR (one or two: single- or dual-stack).
///
/// * [`allocate`](Self::allocate) takes the next free node CIDR of every family, round-robin.
/// * [`occupy`](Self::occupy) marks given node CIDRs as used (adopting existing nodes).
/// * [`release`](Self::release) frees them.
/// * The service ranges it is built with must not overlap any cluster CIDR, so no node CIDR can
///   ever collide with a service IP. (Kubernetes silently skips the overlapping node CIDRs
///   instead; a cluster CIDR that contains the service range is nearly always a typo, and
///   skipping would hide it while losing pod space.)
/// * [`to_bytes`](Self::to_bytes) / [`from_bytes`](Self::from_bytes) give the state as bytes.
#[derive(Debug, Clone)]
pub struct NodeCidrAllocator {
    sets: Vec<CidrSet>,
    service_cidrs: Vec<Cidr>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredConfig {
    cluster_cidrs: Vec<ClusterCidr>,
    service_cidrs: Vec<Cidr>,
    next: Vec<u64>,
}

impl NodeCidrAllocator {
    /// An empty allocator. `cluster_cidrs` holds one range, or two of different families
    /// (dual-stack, primary family first); `service_cidrs` are the service ranges to keep clear.
    pub fn new(cluster_cidrs: &[ClusterCidr], service_cidrs: &[Cidr]) -> podnet::Result<NodeCidrAllocator> {
        NodeCidrAllocator::build(cluster_cidrs, service_cidrs).map_err(op_err("create node CIDR allocator"))
    }

    fn build(cluster_cidrs: &[ClusterCidr], service_cidrs: &[Cidr]) -> Result<NodeCidrAllocator, ClusterError> {
        check_dual_stack("cluster CIDR", cluster_cidrs.iter().map(|c| c.cidr))?;
        let mut sets = Vec::with_capacity(cluster_cidrs.len());
        for pool in cluster_cidrs {
            let count = pool.checked_count()?;
            for service in service_cidrs {
                if service.overlaps(&pool.cidr) {
                    return Err(ClusterError::Overlap {
                        first: format!("service range {service}"),
                        second: format!("cluster CIDR {}", pool.cidr),
                    });
                }
            }
            sets.push(CidrSet { pool: *pool, bitmap: Bitmap::new(count), next: 0 });
        }
        Ok(NodeCidrAllocator { sets, service_cidrs: service_cidrs.to_vec() })
    }

    /// The cluster CIDRs and node masks, primary family first.
    pub fn cluster_cidrs(&self) -> Vec<ClusterCidr> {
        self.sets.iter().map(|s| s.pool).collect()
    }

    /// The service ranges kept clear of node CIDRs.
    pub fn service_cidrs(&self) -> &[Cidr] {
        &self.service_cidrs
    }

    /// Capacity and allocation count of each family, primary first.
    pub fn usage(&self) -> Vec<NodeCidrUsage> {
        self.sets
            .iter()
            .map(|s| NodeCidrUsage { cluster: s.pool, capacity: s.bitmap.len(), allocated: s.bitmap.ones() })
            .collect()
    }

    /// How many nodes can get a full set of node CIDRs in an empty allocator (the smallest
    /// family's node CIDR count).
    pub fn capacity(&self) -> u64 {
        self.sets.iter().map(|s| s.bitmap.len()).min().unwrap_or(0)
    }

    /// How many more [`allocate`](Self::allocate) calls succeed now.
    pub fn free(&self) -> u64 {
        self.sets.iter().map(|s| s.bitmap.len() - s.bitmap.ones()).min().unwrap_or(0)
    }

    /// Allocate one node CIDR per family, primary family first. All or nothing: when one family
    /// is exhausted nothing is allocated and the error is [`podnet::ErrorKind::Exhausted`].
    pub fn allocate(&mut self) -> podnet::Result<Vec<Cidr>> {
        let mut picks = Vec::with_capacity(self.sets.len());
        for set in &self.sets {
            let Some(index) = set.find_next() else {
                let e = ClusterError::Exhausted {
                    range: format!("cluster CIDR {}", set.pool.cidr),
                    detail: format!("all {} /{} node CIDRs are allocated", set.bitmap.len(), set.pool.node_mask),
                };
                return Err(op_err("allocate node CIDR")(e));
            };
            picks.push(index);
        }
        Ok(self
            .sets
            .iter_mut()
            .zip(picks)
            .map(|(set, index)| {
                set.bitmap.set(index);
                set.next = (index + 1) % set.bitmap.len();
                set.cidr_at(index)
            })
            .collect())
    }

    /// Mark node CIDRs as allocated, at most one per family (a node's `spec.podCIDRs`). All or
    /// nothing: a CIDR that is allocated already, of the wrong size or outside the cluster CIDR
    /// fails the whole call.
    pub fn occupy(&mut self, cidrs: &[Cidr]) -> podnet::Result<()> {
        let op = || op_err(format!("occupy node CIDR(s) {}", list(cidrs)));
        if cidrs.is_empty() {
            return Err(op()(ClusterError::InvalidInput("no node CIDR given".to_owned())));
        }
        let located = self.locate_all(cidrs).map_err(op())?;
        for (&(set, index), cidr) in located.iter().zip(cidrs) {
            if self.sets[set].bitmap.get(index) {
                return Err(op()(ClusterError::AlreadyAllocated(format!("node CIDR {cidr}"))));
            }
        }
        for (set, index) in located {
            self.sets[set].bitmap.set(index);
        }
        Ok(())
    }

    /// Free node CIDRs, at most one per family. Returns how many were allocated; freeing a free
    /// CIDR is not an error, so node cleanup can be retried.
    pub fn release(&mut self, cidrs: &[Cidr]) -> podnet::Result<usize> {
        let located = self.locate_all(cidrs).map_err(op_err(format_args!("release node CIDR(s) {}", list(cidrs))))?;
        Ok(located.into_iter().filter(|&(set, index)| self.sets[set].bitmap.clear(index)).count())
    }

    /// Whether a node CIDR is allocated; an error when it is not a node CIDR of this allocator.
    pub fn is_allocated(&self, cidr: Cidr) -> podnet::Result<bool> {
        let (set, index) = self.locate(&cidr).map_err(op_err(format_args!("look up node CIDR {cidr}")))?;
        Ok(self.sets[set].bitmap.get(index))
    }

    /// All allocated node CIDRs, family by family (primary first), in address order.
    pub fn iter_allocated(&self) -> impl Iterator<Item = Cidr> + '_ {
        self.sets.iter().flat_map(|set| set.bitmap.iter_ones().map(move |i| set.cidr_at(i)))
    }

    /// The state as bytes: a small versioned header, the configuration and round-robin
    /// positions as JSON, one raw bitmap per family and a CRC-32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let config = StoredConfig {
            cluster_cidrs: self.cluster_cidrs(),
            service_cidrs: self.service_cidrs.clone(),
            next: self.sets.iter().map(|s| s.next).collect(),
        };
        // Plain strings and integers: serializing cannot fail.
        let json = serde_json::to_vec(&config).unwrap_or_default();
        let bitmaps: Vec<Vec<u8>> = self.sets.iter().map(|s| s.bitmap.to_bytes()).collect();
        let mut sections: Vec<&[u8]> = vec![&json];
        sections.extend(bitmaps.iter().map(Vec::as_slice));
        state::encode(MAGIC, &sections)
    }

    /// Restore an allocator from [`to_bytes`](Self::to_bytes) output. Every field is
    /// validated; damaged or foreign bytes are an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> podnet::Result<NodeCidrAllocator> {
        NodeCidrAllocator::decode(bytes).map_err(op_err("load node CIDR allocator state"))
    }

    fn decode(bytes: &[u8]) -> Result<NodeCidrAllocator, ClusterError> {
        let corrupt = |reason: String| ClusterError::CorruptState { what: WHAT, reason };
        let sections = state::decode(bytes, MAGIC, WHAT)?;
        let config: StoredConfig =
            serde_json::from_slice(sections[0]).map_err(|e| corrupt(format!("configuration is not valid: {e}")))?;
        let mut alloc = NodeCidrAllocator::build(&config.cluster_cidrs, &config.service_cidrs)
            .map_err(|e| corrupt(e.to_string()))?;
        if sections.len() != alloc.sets.len() + 1 || config.next.len() != alloc.sets.len() {
            return Err(corrupt(format!(
                "{} bitmaps and {} round-robin positions for {} cluster CIDRs",
                sections.len() - 1,
                config.next.len(),
                alloc.sets.len()
            )));
        }
        for ((set, bitmap), next) in alloc.sets.iter_mut().zip(&sections[1..]).zip(config.next) {
            set.bitmap = Bitmap::from_bytes(bitmap, set.bitmap.len()).map_err(corrupt)?;
            if next >= set.bitmap.len() {
                return Err(corrupt(format!(
                    "round-robin position {next} is beyond the {} node CIDRs of {}",
                    set.bitmap.len(),
                    set.pool.cidr
                )));
            }
            set.next = next;
        }
        Ok(alloc)
    }

    /// The family set and bitmap index of each CIDR, checking at most one per family.
    fn locate_all(&self, cidrs: &[Cidr]) -> Result<Vec<(usize, u64)>, ClusterError> {
        let mut located: Vec<(usize, u64)> = Vec::with_capacity(cidrs.len());
        for cidr in cidrs {
            let (set, index) = self.locate(cidr)?;
            if located.iter().any(|&(s, _)| s == set) {
                return Err(ClusterError::FamilyMismatch(format!(
                    "two {} node CIDRs given ({}); a node has at most one per family",
                    cidr.family(),
                    list(cidrs)
                )));
            }
            located.push((set, index));
        }
        Ok(located)
    }

    fn locate(&self, cidr: &Cidr) -> Result<(usize, u64), ClusterError> {
        let Some(set) = self.sets.iter().position(|s| s.pool.cidr.family() == cidr.family()) else {
            return Err(ClusterError::FamilyMismatch(format!(
                "node CIDR {cidr} is {} but the allocator has no {} cluster CIDR",
                cidr.family(),
                cidr.family()
            )));
        };
        let pool = self.sets[set].pool;
        if cidr.prefix() != pool.node_mask {
            return Err(ClusterError::MaskOutOfRange {
                what: format!("node CIDR {cidr}"),
                mask: u32::from(cidr.prefix()),
                reason: format!("node CIDRs of cluster CIDR {} are /{}", pool.cidr, pool.node_mask),
            });
        }
        if !pool.cidr.contains_cidr(cidr) {
            return Err(ClusterError::NotInRange {
                item: format!("node CIDR {cidr}"),
                range: pool.cidr,
                reason: "outside the cluster CIDR".to_owned(),
            });
        }
        // The index is below the set's length, itself at most 2^24.
        Ok((set, pool.cidr.subnet_index(cidr) as u64))
    }
}

/// Reject lists with more than two entries or two of one family.
pub(crate) fn check_dual_stack(what: &str, cidrs: impl Iterator<Item = Cidr> + Clone) -> Result<(), ClusterError> {
    let all: Vec<Cidr> = cidrs.collect();
    match all.as_slice() {
        [] => Err(ClusterError::InvalidInput(format!("no {what} given"))),
        [_] => Ok(()),
        [a, b] if a.family() != b.family() => Ok(()),
        [a, b] => Err(ClusterError::FamilyMismatch(format!(
            "{what}s {a} and {b} are both {}; dual-stack needs one IPv4 and one IPv6",
            a.family()
        ))),
        _ => Err(ClusterError::InvalidInput(format!(
            "{} {what}s given ({}); at most two (one IPv4, one IPv6)",
            all.len(),
            list(&all)
        ))),
    }
}

fn list(cidrs: &[Cidr]) -> String {
    cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::rng::SplitMix64;
    use podnet::ErrorKind;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn pool(s: &str, node_mask: u8) -> ClusterCidr {
        ClusterCidr { cidr: c(s), node_mask }
    }

    #[test]
    fn worked_example_256_node_cidrs_in_order() {
        let mut a = NodeCidrAllocator::new(&[pool("10.10.0.0/16", 24)], &[c("10.0.0.0/16")]).unwrap();
        assert_eq!(a.capacity(), 256);
        let got: Vec<Cidr> = (0..256).map(|_| a.allocate().unwrap()[0]).collect();
        assert_eq!(got[0], c("10.10.0.0/24"));
        assert_eq!(got[1], c("10.10.1.0/24"));
        assert_eq!(got[255], c("10.10.255.0/24"));
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 256);
        let e = a.allocate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exhausted);
        assert_eq!(
            e.to_string(),
            "allocate node CIDR: cluster CIDR 10.10.0.0/16 is exhausted: all 256 /24 node CIDRs \
             are allocated"
        );
        assert_eq!(a.free(), 0);
    }

    #[test]
    fn round_robin_does_not_reuse_a_released_cidr_at_once() {
        let mut a = NodeCidrAllocator::new(&[pool("10.10.0.0/22", 24)], &[]).unwrap();
        let first = a.allocate().unwrap();
        a.allocate().unwrap();
        assert_eq!(a.release(&first).unwrap(), 1);
        assert_eq!(a.allocate().unwrap(), vec![c("10.10.2.0/24")]);
        assert_eq!(a.allocate().unwrap(), vec![c("10.10.3.0/24")]);
        assert_eq!(a.allocate().unwrap(), first, "wraps around to the freed one");
        assert!(a.allocate().is_err());
    }

    #[test]
    fn dual_stack_pairs_are_all_or_nothing() {
        let mut a = NodeCidrAllocator::new(
            &[pool("10.10.0.0/23", 24), pool("fd00:10::/56", 64)],
            &[c("10.0.0.0/16"), c("fd00:96::/108")],
        )
        .unwrap();
        assert_eq!(a.capacity(), 2);
        assert_eq!(a.allocate().unwrap(), vec![c("10.10.0.0/24"), c("fd00:10::/64")]);
        assert_eq!(a.allocate().unwrap(), vec![c("10.10.1.0/24"), c("fd00:10:0:1::/64")]);
        let e = a.allocate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exhausted);
        let usage = a.usage();
        assert_eq!((usage[0].allocated, usage[1].allocated), (2, 2), "IPv6 not taken alone");
        assert_eq!(usage[1].capacity, 256);
        // Adopt a node that only has an IPv6 CIDR, then one with both.
        a.release(&[c("10.10.0.0/24"), c("fd00:10::/64")]).unwrap();
        a.occupy(&[c("fd00:10:0:ff::/64")]).unwrap();
        let e = a.occupy(&[c("10.10.0.0/24"), c("fd00:10:0:ff::/64")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(!a.is_allocated(c("10.10.0.0/24")).unwrap(), "failed occupy changed nothing");
        a.occupy(&[c("10.10.0.0/24"), c("fd00:10::/64")]).unwrap();
        assert_eq!(a.iter_allocated().count(), 5);
    }

    #[test]
    fn configuration_errors() {
        let cases: Vec<(Vec<ClusterCidr>, Vec<Cidr>, &str)> = vec![
            (vec![], vec![], "no cluster CIDR"),
            (vec![pool("10.0.0.0/16", 24), pool("10.1.0.0/16", 24)], vec![], "both IPv4"),
            (vec![pool("10.0.0.0/16", 8)], vec![], "larger than the cluster"),
            (vec![pool("10.0.0.0/16", 33)], vec![], "at most /32"),
            (vec![pool("fd00::/48", 65)], vec![], "at most 16 bits"),
            (vec![pool("0.0.0.0/4", 29)], vec![], "at most 24 bits"),
            (vec![pool("10.0.0.0/8", 24)], vec![c("10.96.0.0/12")], "overlaps"),
        ];
        for (pools, services, needle) in cases {
            let e = NodeCidrAllocator::new(&pools, &services).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        }
        // Equal masks: one node CIDR, the whole range. /48 -> /64 is exactly the IPv6 limit.
        assert_eq!(NodeCidrAllocator::new(&[pool("10.0.0.0/24", 24)], &[]).unwrap().capacity(), 1);
        assert_eq!(NodeCidrAllocator::new(&[pool("fd00::/48", 64)], &[]).unwrap().capacity(), 65_536);
    }

    #[test]
    fn occupy_and_release_validate_their_input() {
        let mut a = NodeCidrAllocator::new(&[pool("10.10.0.0/16", 24)], &[]).unwrap();
        for (bad, kind) in [
            ("10.10.0.0/25", ErrorKind::InvalidArgument),
            ("10.11.0.0/24", ErrorKind::InvalidArgument),
            ("fd00::/64", ErrorKind::InvalidArgument),
        ] {
            assert_eq!(a.occupy(&[c(bad)]).unwrap_err().kind(), kind, "{bad}");
            assert_eq!(a.release(&[c(bad)]).unwrap_err().kind(), kind, "{bad}");
        }
        assert!(a.occupy(&[]).is_err());
        assert!(a.occupy(&[c("10.10.1.0/24"), c("10.10.2.0/24")]).is_err());
        a.occupy(&[c("10.10.7.0/24")]).unwrap();
        let e = a.occupy(&[c("10.10.7.0/24")]).unwrap_err();
        assert_eq!(e.to_string(), "occupy node CIDR(s) 10.10.7.0/24: node CIDR 10.10.7.0/24 is already allocated");
        assert_eq!(a.release(&[c("10.10.7.0/24")]).unwrap(), 1);
        assert_eq!(a.release(&[c("10.10.7.0/24")]).unwrap(), 0);
    }

    #[test]
    fn bytes_round_trip_and_validation() {
        let mut a =
            NodeCidrAllocator::new(&[pool("10.10.0.0/16", 24), pool("fd00:10::/56", 64)], &[c("10.0.0.0/16")]).unwrap();
        for _ in 0..37 {
            a.allocate().unwrap();
        }
        a.release(&[c("10.10.3.0/24")]).unwrap();
        let bytes = a.to_bytes();
        let mut b = NodeCidrAllocator::from_bytes(&bytes).unwrap();
        assert_eq!(b.to_bytes(), bytes);
        assert_eq!(b.service_cidrs(), &[c("10.0.0.0/16")]);
        assert_eq!(b.allocate().unwrap(), a.allocate().unwrap(), "round-robin position kept");

        let frame = |json: &str, maps: &[&[u8]]| {
            let mut sections: Vec<&[u8]> = vec![json.as_bytes()];
            sections.extend_from_slice(maps);
            state::encode(MAGIC, &sections)
        };
        let good = r#"{"cluster_cidrs":[{"cidr":"10.10.0.0/22","node_mask":24}],"service_cidrs":[],"next":[1]}"#;
        assert!(NodeCidrAllocator::from_bytes(&frame(good, &[&[0b0011]])).is_ok());
        let bad = [
            frame(good, &[&[0b1_0000]]),
            frame(good, &[]),
            frame(good, &[&[0], &[0]]),
            frame(&good.replace("\"next\":[1]", "\"next\":[4]"), &[&[0]]),
            frame(&good.replace("\"next\":[1]", "\"next\":[]"), &[&[0]]),
            frame(&good.replace("/22", "/20"), &[&[0]]),
            frame(&good.replace("[]", "[\"10.10.0.0/16\"]"), &[&[0]]),
            frame("not json", &[&[0]]),
            ServiceIpAllocatorLike::bytes(),
        ];
        for bytes in bad {
            let e = NodeCidrAllocator::from_bytes(&bytes).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains("corrupt node CIDR allocator state"), "{e}");
        }
    }

    /// State of the other allocator type must be refused by magic, not misread.
    struct ServiceIpAllocatorLike;

    impl ServiceIpAllocatorLike {
        fn bytes() -> Vec<u8> {
            crate::ServiceIpAllocator::new(c("10.0.0.0/24")).unwrap().to_bytes()
        }
    }

    #[test]
    fn property_random_operations_never_duplicate_and_round_trip() {
        let mut rng = SplitMix64::new(31337);
        for round in 0..60 {
            let pools = match round % 3 {
                0 => vec![pool("10.20.0.0/20", 26)],
                1 => vec![pool("fd00:20::/60", 64)],
                _ => vec![pool("10.20.0.0/22", 27), pool("fd00:20::/59", 64)],
            };
            let mut a = NodeCidrAllocator::new(&pools, &[]).unwrap();
            let mut model: BTreeSet<Cidr> = BTreeSet::new();
            for _ in 0..800 {
                match rng.below(8) {
                    0..=3 => match a.allocate() {
                        Ok(got) => {
                            assert_eq!(got.len(), pools.len());
                            for (cidr, p) in got.iter().zip(&pools) {
                                assert!(p.cidr.contains_cidr(cidr) && cidr.prefix() == p.node_mask);
                                assert!(model.insert(*cidr), "duplicate {cidr}");
                            }
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Exhausted);
                            assert_eq!(a.free(), 0);
                        }
                    },
                    4 => {
                        let p = pools[rng.below(pools.len() as u64) as usize];
                        let n = p.cidr.subnet_count(p.node_mask) as u64;
                        let cidr = p.cidr.nth_subnet(p.node_mask, u128::from(rng.below(n)));
                        match a.occupy(&[cidr]) {
                            Ok(()) => assert!(model.insert(cidr)),
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::AlreadyExists);
                                assert!(model.contains(&cidr));
                            }
                        }
                    }
                    5 | 6 => {
                        let pick = model.iter().nth(rng.below(model.len() as u64 + 1) as usize);
                        if let Some(&cidr) = pick {
                            assert_eq!(a.release(&[cidr]).unwrap(), 1);
                            model.remove(&cidr);
                        }
                    }
                    _ => {
                        let bytes = a.to_bytes();
                        a = NodeCidrAllocator::from_bytes(&bytes).unwrap();
                        assert_eq!(a.to_bytes(), bytes);
                    }
                }
                let mut listed: Vec<Cidr> = a.iter_allocated().collect();
                listed.sort();
                assert!(listed.iter().eq(model.iter()));
            }
        }
    }

    #[test]
    fn property_exhaustion_is_exact_at_capacity() {
        let mut rng = SplitMix64::new(8);
        for _ in 0..40 {
            let v6 = rng.below(2) == 1;
            let (base, cluster_mask) = if v6 { ("fd00::", 48) } else { ("10.0.0.0", 8) };
            let diff = rng.below(13) as u8;
            let node_mask = cluster_mask + rng.below(8) as u8 + diff;
            let cluster = format!("{base}/{}", node_mask - diff);
            let mut a = NodeCidrAllocator::new(&[pool(&cluster, node_mask)], &[]).unwrap();
            let mut n = 0u64;
            while a.allocate().is_ok() {
                n += 1;
            }
            assert_eq!(n, 1 << diff, "{cluster} /{node_mask}");
            assert_eq!(a.usage()[0].allocated, 1 << diff);
        }
    }
}
