//! The cluster address API as a caller uses it: plan first, then keep allocator state as bytes
//! in an external store and update it with compare-and-swap.

use std::net::IpAddr;

use podnet::ErrorKind;
use podnet_cluster::{plan, Cidr, ClusterCidr, NodeCidrAllocator, PlanInput, ServiceIpAllocator, WarningCode};

fn c(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// A stand-in for etcd: a value with a revision, written only if the revision still matches.
struct Store {
    value: Vec<u8>,
    revision: u64,
}

impl Store {
    fn cas(&mut self, expected: u64, value: Vec<u8>) -> bool {
        if self.revision != expected {
            return false;
        }
        self.value = value;
        self.revision += 1;
        true
    }
}

#[test]
fn worked_example_through_the_public_api() {
    let p = plan(&PlanInput {
        cluster_cidrs: vec![c("10.10.0.0/16")],
        node_masks: vec![24],
        machine_subnet: Some(c("10.1.0.0/24")),
        control_plane: 9,
        service_cidrs: vec![c("10.0.0.0/16")],
    })
    .unwrap();
    assert_eq!(p.machines.as_ref().unwrap().nodes, 254);
    assert_eq!(p.workers, 245);
    assert_eq!(p.pods_per_node, 254);
    assert_eq!(p.pod_capacity, 62_230);
    assert_eq!(p.pod_ranges[0].node_cidrs, 256);
    assert_eq!(p.pod_ranges[0].first_node_cidr, Some(c("10.10.0.0/24")));
    assert_eq!(p.pod_ranges[0].last_node_cidr, Some(c("10.10.255.0/24")));
    assert_eq!(p.services[0].service_ips, 65_534);
    assert!(p.warnings.iter().all(|w| w.code == WarningCode::NodeCidrsExceedMachines));
}

#[test]
fn node_cidrs_through_compare_and_swap() {
    let pools = [
        ClusterCidr { cidr: c("10.10.0.0/16"), node_mask: 24 },
        ClusterCidr { cidr: c("fd00:10::/56"), node_mask: 64 },
    ];
    let fresh = NodeCidrAllocator::new(&pools, &[c("10.0.0.0/16")]).unwrap();
    let mut store = Store { value: fresh.to_bytes(), revision: 1 };

    // Two controllers read the same revision; only the first write wins, the second retries on
    // the new state and so never hands out the same CIDRs twice.
    let (rev, bytes) = (store.revision, store.value.clone());
    let mut a = NodeCidrAllocator::from_bytes(&bytes).unwrap();
    let mut b = NodeCidrAllocator::from_bytes(&bytes).unwrap();
    let for_a = a.allocate().unwrap();
    let for_b = b.allocate().unwrap();
    assert_eq!(for_a, for_b, "same state, same pick: exactly why CAS is needed");
    assert!(store.cas(rev, a.to_bytes()));
    assert!(!store.cas(rev, b.to_bytes()));
    let mut b = NodeCidrAllocator::from_bytes(&store.value).unwrap();
    let retried = b.allocate().unwrap();
    assert_ne!(retried, for_a);
    assert!(store.cas(store.revision, b.to_bytes()));
    assert_eq!(retried, vec![c("10.10.1.0/24"), c("fd00:10:0:1::/64")]);
}

#[test]
fn service_ips_survive_restore_and_growth() {
    let mut alloc = ServiceIpAllocator::new(c("10.0.0.0/24")).unwrap().with_seed(9);
    alloc.allocate(alloc.api_server_ip()).unwrap();
    let dns: IpAddr = "10.0.0.10".parse().unwrap();
    alloc.allocate(dns).unwrap();
    let dynamic: Vec<IpAddr> = (0..50).map(|_| alloc.allocate_next().unwrap()).collect();

    let mut restored = ServiceIpAllocator::from_bytes(&alloc.to_bytes()).unwrap();
    restored.resize(c("10.0.0.0/20")).unwrap();
    for ip in dynamic.iter().chain([&dns, &restored.api_server_ip()]) {
        assert!(restored.is_allocated(*ip).unwrap(), "{ip} lost");
    }
    assert_eq!(restored.allocated(), 52);

    let e = restored.resize(c("10.0.16.0/20")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("only the end of a range may grow"), "{e}");
}

/// Allocator state comes from the caller's store: random and mutated bytes (a CRC-valid frame
/// with a damaged body included) are refused with `invalid_argument` or read, never a panic.
#[test]
fn allocator_state_from_untrusted_bytes_never_panics() {
    let mut rng = podnet_world::Rng(0x706f_646e_6574_0003);
    let node =
        NodeCidrAllocator::new(&[ClusterCidr { cidr: c("10.10.0.0/16"), node_mask: 24 }], &[]).unwrap().to_bytes();
    let svc = ServiceIpAllocator::new(c("10.0.0.0/24")).unwrap().to_bytes();
    for i in 0..podnet_world::fuzz_iterations() / 4 {
        let base = if i % 2 == 0 { &node } else { &svc };
        let mut b = base.clone();
        match rng.next_u64() % 3 {
            0 => b = (0..rng.next_u64() % 64).map(|_| rng.next_u64() as u8).collect(),
            1 => b.truncate((rng.next_u64() as usize) % b.len()),
            _ => {
                for _ in 0..=rng.next_u64() % 3 {
                    let j = (rng.next_u64() as usize) % b.len();
                    b[j] ^= 1 << (rng.next_u64() % 8);
                }
            }
        }
        for r in [NodeCidrAllocator::from_bytes(&b).map(drop), ServiceIpAllocator::from_bytes(&b).map(drop)] {
            if let Err(e) = r {
                assert_eq!(e.kind(), podnet::ErrorKind::InvalidArgument, "{e}");
            }
        }
    }
}
