//! The capacity planner: from the ranges a cluster is configured with, how many nodes, pods and
//! services it can hold, and what in the configuration will bite later. It only computes; it
//! allocates nothing, so it can check a plan before any cluster exists.

use std::net::IpAddr;

use super::cidr::{host_mask, ip_to_u128, offset_ip, pow2_saturating, Cidr, Family};
use super::nodecidr::{check_dual_stack, MAX_NODE_MASK_DIFF_V4, MAX_NODE_MASK_DIFF_V6};
use super::service::{self, MAX_SERVICE_BITMAP_BITS};
use super::{api_server_ip, op_err, ClusterError};

/// Node mask used for an IPv4 cluster CIDR when none is given (Kubernetes'
/// `--node-cidr-mask-size-ipv4` default).
pub const DEFAULT_NODE_MASK_V4: u8 = 24;

/// Node mask used for an IPv6 cluster CIDR when none is given (Kubernetes'
/// `--node-cidr-mask-size-ipv6` default).
pub const DEFAULT_NODE_MASK_V6: u8 = 64;

/// The ranges of a cluster, as given to the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanInput {
    /// Pod ranges: one, or one IPv4 and one IPv6 (dual-stack, primary first).
    pub cluster_cidrs: Vec<Cidr>,
    /// Node CIDR prefix length per cluster CIDR, same order. Empty means the Kubernetes
    /// defaults ([`DEFAULT_NODE_MASK_V4`], [`DEFAULT_NODE_MASK_V6`]).
    pub node_masks: Vec<u8>,
    /// The subnet the nodes (machines) themselves live in, if it limits the node count.
    pub machine_subnet: Option<Cidr>,
    /// How many nodes are control-plane machines, which run no workload pods.
    pub control_plane: u64,
    /// Service ranges: none, one, or one IPv4 and one IPv6.
    pub service_cidrs: Vec<Cidr>,
}

/// What one cluster CIDR gives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRangePlan {
    /// Address family of the range.
    pub family: Family,
    /// The cluster CIDR.
    pub cluster_cidr: Cidr,
    /// The node CIDR prefix length.
    pub node_mask: u8,
    /// Usable pod addresses per node CIDR: `2^n - 2` (IPv4) or `2^n - 1` (IPv6).
    pub pods_per_node: u128,
    /// Number of node CIDRs the cluster CIDR splits into (saturating at `u128::MAX`).
    pub node_cidrs: u128,
    /// The first node CIDR, when there is one.
    pub first_node_cidr: Option<Cidr>,
    /// The last node CIDR, when there is one.
    pub last_node_cidr: Option<Cidr>,
    /// `workers x pods_per_node` for this family (saturating).
    pub pod_capacity: u128,
}

/// What the machine subnet gives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachinePlan {
    /// The machine subnet.
    pub subnet: Cidr,
    /// Nodes it can hold: its usable host addresses.
    pub nodes: u128,
    /// Of those, control-plane machines.
    pub control_plane: u64,
    /// The rest: worker machines.
    pub workers: u128,
}

/// What one service range gives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServicePlan {
    /// Address family of the range.
    pub family: Family,
    /// The service range.
    pub cidr: Cidr,
    /// Allocatable service IPs, the API server's included: `2^n - 2` (IPv4) or
    /// `min(2^n, 2^20) - 1` (IPv6, see [`MAX_SERVICE_BITMAP_BITS`]).
    pub service_ips: u128,
    /// Low addresses kept for user-chosen IPs; dynamic allocation uses the rest first.
    pub static_band: u64,
    /// The API server's service IP (the first address), when the range has one.
    pub api_server_ip: Option<IpAddr>,
}

/// Why a warning was raised; stable, for programs that act on warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarningCode {
    /// The machine subnet overlaps a cluster CIDR or a service range.
    Overlap,
    /// The node mask is not longer than the cluster mask: at most one node CIDR.
    NodeMaskNotLonger,
    /// There are more node CIDRs than machine addresses; the surplus stays unused.
    NodeCidrsExceedMachines,
    /// There are more machine addresses than node CIDRs; some nodes would get no pod CIDR.
    MachinesExceedNodeCidrs,
    /// An IPv6 node mask is more than 16 bits longer than the cluster mask (Kubernetes refuses).
    Ipv6NodeMaskTooLong,
    /// An IPv4 node mask is more than 24 bits longer than the cluster mask (the allocator
    /// refuses).
    Ipv4NodeMaskTooLong,
    /// The node mask leaves no usable pod address (IPv4 `/31`, `/32`; IPv6 `/128`).
    NoPodAddresses,
    /// There are at least as many control-plane machines as nodes: no worker fits.
    ControlPlaneExceedsNodes,
    /// An IPv4 service range is larger than `/12`; the service IP allocator refuses it.
    ServiceRangeTooLarge,
    /// An IPv6 service range is larger than `/108`; only its first `2^20` addresses are used.
    ServiceRangeCapped,
    /// A service range has no usable address.
    NoServiceAddresses,
    /// A service range's family has no cluster CIDR, so no pod can reach it natively.
    ServiceFamilyWithoutPods,
}

/// A problem with a plan that does not make it invalid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    /// Stable classification.
    pub code: WarningCode,
    /// Human-readable explanation naming the ranges involved.
    pub message: String,
}

/// The capacity of a cluster's address plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// One entry per cluster CIDR, in input order.
    pub pod_ranges: Vec<PodRangePlan>,
    /// The machine subnet, when one was given.
    pub machines: Option<MachinePlan>,
    /// One entry per service range, in input order.
    pub services: Vec<ServicePlan>,
    /// Nodes that can join with a pod CIDR of every family: the smallest of the node CIDR
    /// counts and the machine subnet's addresses.
    pub nodes: u128,
    /// Control-plane nodes (as given).
    pub control_plane: u64,
    /// `nodes - control_plane`: nodes that run workload pods.
    pub workers: u128,
    /// Pods one node can run: the smallest `pods_per_node` over the families, since a
    /// dual-stack pod takes one address of each.
    pub pods_per_node: u128,
    /// `workers x pods_per_node` (saturating).
    pub pod_capacity: u128,
    /// Everything worth a second look; an empty list means none.
    pub warnings: Vec<Warning>,
}

/// Compute the capacity of an address plan.
///
/// Errors (all [`podnet::ErrorKind::InvalidArgument`]) for input that cannot describe a cluster:
/// no cluster CIDR, two of one family, a mask count that does not match, a node mask longer than
/// the family allows, a service range overlapping a cluster CIDR. Everything merely unwise is a
/// [`Warning`].
pub fn plan(input: &PlanInput) -> podnet::Result<Plan> {
    plan_inner(input).map_err(op_err("plan cluster addresses"))
}

fn plan_inner(input: &PlanInput) -> Result<Plan, ClusterError> {
    check_dual_stack("cluster CIDR", input.cluster_cidrs.iter().copied())?;
    let masks = node_masks(input)?;
    if !input.service_cidrs.is_empty() {
        check_dual_stack("service range", input.service_cidrs.iter().copied())?;
    }
    for service in &input.service_cidrs {
        if let Some(cluster) = input.cluster_cidrs.iter().find(|c| c.overlaps(service)) {
            return Err(ClusterError::Overlap {
                first: format!("service range {service}"),
                second: format!("cluster CIDR {cluster}"),
            });
        }
    }

    let mut warnings = Vec::new();
    let mut warn = |code, message: String| warnings.push(Warning { code, message });

    if let Some(machines) = input.machine_subnet {
        let named = input
            .cluster_cidrs
            .iter()
            .map(|c| ("cluster CIDR", c))
            .chain(input.service_cidrs.iter().map(|s| ("service range", s)));
        for (what, other) in named {
            if machines.overlaps(other) {
                warn(
                    WarningCode::Overlap,
                    format!(
                        "machine subnet {machines} overlaps {what} {other}: node addresses and \
                         {} addresses would collide",
                        if what == "cluster CIDR" { "pod" } else { "service" }
                    ),
                );
            }
        }
    }

    let mut pod_ranges: Vec<PodRangePlan> =
        input.cluster_cidrs.iter().zip(&masks).map(|(&cidr, &mask)| pod_range(cidr, mask, &mut warn)).collect();

    let by_cidrs = pod_ranges.iter().map(|p| p.node_cidrs).min().unwrap_or(0);
    let machines = input.machine_subnet.map(|subnet| {
        let nodes = subnet.usable_hosts();
        MachinePlan {
            subnet,
            nodes,
            control_plane: input.control_plane,
            workers: nodes.saturating_sub(u128::from(input.control_plane)),
        }
    });
    let nodes = match &machines {
        Some(m) => {
            for p in &pod_ranges {
                let (cidrs, hosts) = (p.node_cidrs, m.nodes);
                if cidrs > hosts && p.node_mask >= p.cluster_cidr.prefix() {
                    warn(
                        WarningCode::NodeCidrsExceedMachines,
                        format!(
                            "cluster CIDR {} has {} /{} node CIDRs but machine subnet {} holds \
                             only {} nodes: {} node CIDRs will stay unused",
                            p.cluster_cidr,
                            thousands(cidrs),
                            p.node_mask,
                            m.subnet,
                            thousands(hosts),
                            thousands(cidrs - hosts)
                        ),
                    );
                } else if hosts > cidrs {
                    warn(
                        WarningCode::MachinesExceedNodeCidrs,
                        format!(
                            "machine subnet {} holds {} nodes but cluster CIDR {} has only {} /{} \
                             node CIDRs: {} nodes would get no pod CIDR",
                            m.subnet,
                            thousands(hosts),
                            p.cluster_cidr,
                            thousands(cidrs),
                            p.node_mask,
                            thousands(hosts - cidrs)
                        ),
                    );
                }
            }
            m.nodes.min(by_cidrs)
        }
        None => by_cidrs,
    };
    if u128::from(input.control_plane) >= nodes && input.control_plane > 0 {
        warn(
            WarningCode::ControlPlaneExceedsNodes,
            format!(
                "{} control-plane nodes but only {} nodes fit: no room for workers",
                input.control_plane,
                thousands(nodes)
            ),
        );
    }
    let workers = nodes.saturating_sub(u128::from(input.control_plane));
    for p in &mut pod_ranges {
        p.pod_capacity = workers.saturating_mul(p.pods_per_node);
    }
    let pods_per_node = pod_ranges.iter().map(|p| p.pods_per_node).min().unwrap_or(0);

    let families: Vec<Family> = input.cluster_cidrs.iter().map(Cidr::family).collect();
    let services = input
        .service_cidrs
        .iter()
        .map(|&cidr| {
            if !families.contains(&cidr.family()) {
                warn(
                    WarningCode::ServiceFamilyWithoutPods,
                    format!(
                        "service range {cidr} is {} but no cluster CIDR is, so pods cannot reach \
                         these services natively",
                        cidr.family()
                    ),
                );
            }
            service_range(cidr, &mut warn)
        })
        .collect();

    Ok(Plan {
        pod_ranges,
        machines,
        services,
        nodes,
        control_plane: input.control_plane,
        workers,
        pods_per_node,
        pod_capacity: workers.saturating_mul(pods_per_node),
        warnings,
    })
}

fn node_masks(input: &PlanInput) -> Result<Vec<u8>, ClusterError> {
    if input.node_masks.is_empty() {
        return Ok(input
            .cluster_cidrs
            .iter()
            .map(|c| match c.family() {
                Family::Ipv4 => DEFAULT_NODE_MASK_V4,
                Family::Ipv6 => DEFAULT_NODE_MASK_V6,
            })
            .collect());
    }
    if input.node_masks.len() != input.cluster_cidrs.len() {
        return Err(ClusterError::InvalidInput(format!(
            "{} cluster CIDR(s) but {} node mask(s): give one node mask per cluster CIDR, in the \
             same order",
            input.cluster_cidrs.len(),
            input.node_masks.len()
        )));
    }
    for (cidr, &mask) in input.cluster_cidrs.iter().zip(&input.node_masks) {
        let family = cidr.family();
        if mask > family.bits() {
            return Err(ClusterError::MaskOutOfRange {
                what: format!("node mask for cluster CIDR {cidr}"),
                mask: u32::from(mask),
                reason: format!("an {family} node mask is at most /{}", family.bits()),
            });
        }
    }
    Ok(input.node_masks.clone())
}

fn pod_range(cidr: Cidr, mask: u8, warn: &mut impl FnMut(WarningCode, String)) -> PodRangePlan {
    let family = cidr.family();
    let host_bits = family.bits() - mask;
    let addresses = pow2_saturating(u32::from(host_bits));
    let pods_per_node = match family {
        Family::Ipv4 => addresses.saturating_sub(2),
        // 2^128 saturated to 2^128 - 1, which is already the answer.
        Family::Ipv6 if host_bits == 128 => addresses,
        Family::Ipv6 => addresses - 1,
    };
    let node_cidrs = cidr.subnet_count(mask);
    let (first, last) = if node_cidrs == 0 {
        (None, None)
    } else {
        let last = ip_to_u128(cidr.last()) & !host_mask(family, mask);
        let first = cidr.nth_subnet(mask, 0);
        (Some(first), Cidr::new(offset_ip(family, last), mask).ok())
    };
    if mask < cidr.prefix() {
        warn(
            WarningCode::NodeMaskNotLonger,
            format!(
                "node mask /{mask} is shorter than cluster CIDR {cidr}: no node CIDR fits, so no \
                 node gets a pod CIDR"
            ),
        );
    } else if mask == cidr.prefix() {
        warn(
            WarningCode::NodeMaskNotLonger,
            format!(
                "node mask /{mask} equals the mask of cluster CIDR {cidr}: the whole range is one \
                 node CIDR, so only one node can run pods"
            ),
        );
    } else {
        let diff = mask - cidr.prefix();
        match family {
            Family::Ipv6 if diff > MAX_NODE_MASK_DIFF_V6 => warn(
                WarningCode::Ipv6NodeMaskTooLong,
                format!(
                    "node mask /{mask} is {diff} bits longer than cluster CIDR {cidr}; Kubernetes \
                     (and podnet's node CIDR allocator) allow at most {MAX_NODE_MASK_DIFF_V6} \
                     bits for IPv6: use a cluster CIDR of /{} or longer, or a shorter node mask",
                    mask - MAX_NODE_MASK_DIFF_V6
                ),
            ),
            Family::Ipv4 if diff > MAX_NODE_MASK_DIFF_V4 => warn(
                WarningCode::Ipv4NodeMaskTooLong,
                format!(
                    "node mask /{mask} is {diff} bits longer than cluster CIDR {cidr}; podnet's \
                     node CIDR allocator allows at most {MAX_NODE_MASK_DIFF_V4} bits \
                     ({} node CIDRs)",
                    thousands(1u128 << MAX_NODE_MASK_DIFF_V4)
                ),
            ),
            _ => {}
        }
    }
    if pods_per_node == 0 && node_cidrs > 0 {
        warn(WarningCode::NoPodAddresses, format!("a /{mask} node CIDR in {cidr} has no usable pod address"));
    }
    PodRangePlan {
        family,
        cluster_cidr: cidr,
        node_mask: mask,
        pods_per_node,
        node_cidrs,
        first_node_cidr: first,
        last_node_cidr: last,
        pod_capacity: 0,
    }
}

fn service_range(cidr: Cidr, warn: &mut impl FnMut(WarningCode, String)) -> ServicePlan {
    let host_bits = cidr.host_bits();
    let (service_ips, static_band) = match service::layout(&cidr) {
        Ok(layout) => {
            if cidr.family() == Family::Ipv6 && host_bits > MAX_SERVICE_BITMAP_BITS {
                warn(
                    WarningCode::ServiceRangeCapped,
                    format!(
                        "service range {cidr} is larger than /{}: only its first {} addresses \
                         are allocatable (the service bitmap is capped at 2^{}, as in \
                         Kubernetes)",
                        128 - MAX_SERVICE_BITMAP_BITS,
                        thousands(u128::from(layout.size) + 1),
                        MAX_SERVICE_BITMAP_BITS
                    ),
                );
            }
            (u128::from(layout.size), layout.static_band)
        }
        Err(_) if cidr.family() == Family::Ipv4 && host_bits > MAX_SERVICE_BITMAP_BITS => {
            warn(
                WarningCode::ServiceRangeTooLarge,
                format!(
                    "service range {cidr} is larger than /{}: Kubernetes and podnet's service IP \
                     allocator refuse it (the bitmap must fit in one etcd value)",
                    32 - MAX_SERVICE_BITMAP_BITS
                ),
            );
            let ips = cidr.usable_hosts();
            (ips, service::static_band(host_bits, u64::MAX))
        }
        Err(_) => {
            warn(WarningCode::NoServiceAddresses, format!("service range {cidr} has no usable service address"));
            (0, 0)
        }
    };
    ServicePlan {
        family: cidr.family(),
        cidr,
        service_ips,
        static_band,
        api_server_ip: (service_ips > 0).then(|| api_server_ip(&cidr)),
    }
}

/// `1234567` as `"1,234,567"`: how plan warnings write counts (and the CLI its plan tables).
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet::ErrorKind;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn input(cluster: &[&str], masks: &[u8]) -> PlanInput {
        PlanInput {
            cluster_cidrs: cluster.iter().map(|s| c(s)).collect(),
            node_masks: masks.to_vec(),
            ..PlanInput::default()
        }
    }

    fn worked_example() -> PlanInput {
        PlanInput {
            machine_subnet: Some(c("10.1.0.0/24")),
            control_plane: 9,
            service_cidrs: vec![c("10.0.0.0/16")],
            ..input(&["10.10.0.0/16"], &[24])
        }
    }

    fn codes(p: &Plan) -> Vec<WarningCode> {
        p.warnings.iter().map(|w| w.code).collect()
    }

    #[test]
    fn worked_example_comes_out_exactly() {
        let p = plan(&worked_example()).unwrap();
        let m = p.machines.as_ref().unwrap();
        assert_eq!((m.nodes, m.control_plane, m.workers), (254, 9, 245));
        let r = &p.pod_ranges[0];
        assert_eq!(r.pods_per_node, 254);
        assert_eq!(r.node_cidrs, 256);
        assert_eq!(r.first_node_cidr, Some(c("10.10.0.0/24")));
        assert_eq!(r.last_node_cidr, Some(c("10.10.255.0/24")));
        assert_eq!(r.pod_capacity, 62_230);
        assert_eq!((p.nodes, p.workers, p.pods_per_node, p.pod_capacity), (254, 245, 254, 62_230));
        let s = &p.services[0];
        assert_eq!(s.service_ips, 65_534);
        assert_eq!(s.static_band, 256);
        assert_eq!(s.api_server_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(codes(&p), vec![WarningCode::NodeCidrsExceedMachines]);
        assert!(p.warnings[0].message.contains("2 node CIDRs will stay unused"));
    }

    #[test]
    fn smaller_node_masks() {
        for (mask, pods, cidrs) in [(26, 62, 1024), (27, 30, 2048)] {
            let p = plan(&input(&["10.10.0.0/16"], &[mask])).unwrap();
            assert_eq!(p.pod_ranges[0].pods_per_node, pods);
            assert_eq!(p.pod_ranges[0].node_cidrs, cidrs);
            assert_eq!(p.pod_capacity, pods * cidrs);
        }
    }

    #[test]
    fn dual_stack_plan_with_defaults() {
        let p = plan(&PlanInput {
            service_cidrs: vec![c("10.0.0.0/16"), c("fd00:96::/108")],
            ..input(&["10.10.0.0/16", "fd00:10::/56"], &[])
        })
        .unwrap();
        assert_eq!(p.pod_ranges[1].node_mask, 64);
        assert_eq!(p.pod_ranges[1].node_cidrs, 256);
        assert_eq!(p.pod_ranges[1].last_node_cidr, Some(c("fd00:10:0:ff::/64")));
        assert_eq!(p.pod_ranges[1].pods_per_node, u128::from(u64::MAX));
        assert_eq!(p.pods_per_node, 254, "a dual-stack pod needs both families");
        assert_eq!(p.pod_capacity, 256 * 254);
        assert_eq!(p.services[1].service_ips, (1 << 20) - 1);
        assert_eq!(p.services[1].api_server_ip, Some("fd00:96::1".parse().unwrap()));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn warnings_for_unwise_plans() {
        let p = plan(&input(&["10.10.0.0/16"], &[16])).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::NodeMaskNotLonger]);
        assert_eq!(p.pod_ranges[0].node_cidrs, 1);
        let p = plan(&input(&["10.10.0.0/16"], &[8])).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::NodeMaskNotLonger]);
        assert_eq!((p.pod_ranges[0].node_cidrs, p.pod_capacity), (0, 0));
        assert_eq!(p.pod_ranges[0].first_node_cidr, None);
        let p = plan(&input(&["fd00::/40"], &[64])).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::Ipv6NodeMaskTooLong]);
        assert!(p.warnings[0].message.contains("/48 or longer"), "{}", p.warnings[0].message);
        let p = plan(&input(&["10.0.0.0/8"], &[32])).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::NoPodAddresses]);
        let p = plan(&input(&["0.0.0.0/0"], &[28])).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::Ipv4NodeMaskTooLong]);

        let p = plan(&PlanInput {
            machine_subnet: Some(c("10.10.0.0/20")),
            control_plane: 5000,
            service_cidrs: vec![c("10.0.0.0/8"), c("fd00::/64")],
            ..input(&["10.10.0.0/16"], &[24])
        });
        // 10.0.0.0/8 contains the cluster CIDR: an error, not a warning.
        assert_eq!(p.unwrap_err().kind(), ErrorKind::InvalidArgument);
        let p = plan(&PlanInput {
            machine_subnet: Some(c("10.10.0.0/20")),
            control_plane: 5000,
            service_cidrs: vec![c("11.0.0.0/8"), c("fd00::/64")],
            ..input(&["10.10.0.0/16"], &[24])
        })
        .unwrap();
        assert_eq!(
            codes(&p),
            vec![
                WarningCode::Overlap,
                WarningCode::MachinesExceedNodeCidrs,
                WarningCode::ControlPlaneExceedsNodes,
                WarningCode::ServiceRangeTooLarge,
                WarningCode::ServiceFamilyWithoutPods,
                WarningCode::ServiceRangeCapped,
            ]
        );
        assert_eq!((p.nodes, p.workers, p.pod_capacity), (256, 0, 0));
        assert_eq!(p.services[0].service_ips, 16_777_214);
        let p =
            plan(&PlanInput { service_cidrs: vec![c("192.168.0.0/31")], ..input(&["10.10.0.0/16"], &[24]) }).unwrap();
        assert_eq!(codes(&p), vec![WarningCode::NoServiceAddresses]);
        assert_eq!(p.services[0].api_server_ip, None);
    }

    #[test]
    fn invalid_plans_are_errors() {
        let cases = [
            (input(&[], &[]), "no cluster CIDR"),
            (input(&["10.0.0.0/16", "10.1.0.0/16"], &[24, 24]), "dual-stack needs"),
            (input(&["10.0.0.0/16", "fd00::/48"], &[24]), "one node mask per cluster CIDR"),
            (input(&["10.0.0.0/16"], &[33]), "/33 is out of range"),
            (input(&["fd00::/48"], &[129]), "/129 is out of range"),
            (
                PlanInput { service_cidrs: vec![c("10.0.128.0/20")], ..input(&["10.0.0.0/16"], &[24]) },
                "service range 10.0.128.0/20 overlaps cluster CIDR 10.0.0.0/16",
            ),
            (
                PlanInput {
                    service_cidrs: vec![c("10.96.0.0/12"), c("10.0.0.0/16")],
                    ..input(&["10.10.0.0/16"], &[24])
                },
                "both IPv4",
            ),
        ];
        for (bad, needle) in cases {
            let e = plan(&bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
            assert!(e.to_string().starts_with("plan cluster addresses: "), "{e}");
        }
    }

    #[test]
    fn huge_ipv6_numbers_saturate_instead_of_overflowing() {
        let p = plan(&input(&["::/0"], &[128])).unwrap();
        assert_eq!(p.pod_ranges[0].node_cidrs, u128::MAX);
        assert_eq!(p.pod_ranges[0].pods_per_node, 0);
        let p = plan(&input(&["::/0"], &[0])).unwrap();
        assert_eq!(p.pod_ranges[0].pods_per_node, u128::MAX);
        assert_eq!(p.pod_ranges[0].last_node_cidr, Some(c("::/0")));
        let p = plan(&input(&["fd00::/48"], &[56])).unwrap();
        assert_eq!(p.pod_capacity, 256 * ((1u128 << 72) - 1));
        // 2 node CIDRs x (2^127 - 1) pods: the largest product that is still exact.
        let p = plan(&input(&["::/0"], &[1])).unwrap();
        assert_eq!(p.pod_capacity, u128::MAX - 1);
        let p = plan(&input(&["::/0"], &[0])).unwrap();
        assert_eq!(p.pod_capacity, u128::MAX);
    }

    #[test]
    fn json_round_trip() {
        let p = plan(&worked_example()).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"pod_capacity\":62230"), "{json}");
        assert!(json.contains("\"code\":\"node_cidrs_exceed_machines\""), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
        let input_json = serde_json::to_string(&worked_example()).unwrap();
        assert_eq!(serde_json::from_str::<PlanInput>(&input_json).unwrap(), worked_example());
    }

    #[test]
    fn property_random_plans_never_panic_and_stay_consistent() {
        let mut rng = crate::rng::SplitMix64::new(4242);
        let random_cidr = |rng: &mut crate::rng::SplitMix64, family: Family| {
            let prefix = rng.below(u64::from(family.bits()) + 1) as u8;
            let raw = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            let value = match family {
                Family::Ipv4 => raw & u128::from(u32::MAX),
                Family::Ipv6 => raw,
            } & !host_mask(family, prefix);
            Cidr::new(offset_ip(family, value), prefix).unwrap()
        };
        for _ in 0..3000 {
            let dual = rng.below(3) == 0;
            let first = if rng.below(2) == 0 { Family::Ipv4 } else { Family::Ipv6 };
            let mut families = vec![first];
            if dual {
                families.push(if first == Family::Ipv4 { Family::Ipv6 } else { Family::Ipv4 });
            }
            let input = PlanInput {
                cluster_cidrs: families.iter().map(|&f| random_cidr(&mut rng, f)).collect(),
                node_masks: if rng.below(4) == 0 {
                    vec![]
                } else {
                    families.iter().map(|f| rng.below(u64::from(f.bits()) + 1) as u8).collect()
                },
                machine_subnet: (rng.below(2) == 0).then(|| random_cidr(&mut rng, first)),
                control_plane: rng.below(20),
                service_cidrs: if rng.below(2) == 0 { vec![random_cidr(&mut rng, first)] } else { vec![] },
            };
            let Ok(p) = plan(&input) else {
                // Only a service range overlapping a cluster CIDR is an error here.
                assert!(input.service_cidrs.iter().any(|s| input.cluster_cidrs.iter().any(|c| c.overlaps(s))));
                continue;
            };
            assert_eq!(p.workers, p.nodes.saturating_sub(u128::from(p.control_plane)));
            assert_eq!(p.pod_capacity, p.workers.saturating_mul(p.pods_per_node));
            for r in &p.pod_ranges {
                assert!(p.nodes <= r.node_cidrs);
                assert_eq!(r.pod_capacity, p.workers.saturating_mul(r.pods_per_node));
                for n in [r.first_node_cidr, r.last_node_cidr].into_iter().flatten() {
                    assert!(r.cluster_cidr.contains_cidr(&n) && n.prefix() == r.node_mask);
                }
                assert_eq!(r.first_node_cidr.is_some(), r.node_cidrs > 0);
            }
            if let Some(m) = &p.machines {
                assert!(p.nodes <= m.nodes);
            }
            for s in &p.services {
                assert_eq!(s.api_server_ip.is_some(), s.service_ips > 0);
            }
            serde_json::to_string(&p).unwrap();
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(62_230), "62,230");
        assert_eq!(thousands(1_048_574), "1,048,574");
    }
}
