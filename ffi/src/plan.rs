//! Cluster address planning through the C ABI: the `podnet_plan_input` builder, `podnet_plan`
//! and its `podnet_plan_result` (headline numbers as accessors, the full plan as JSON). Pure
//! computation: nothing here needs privileges or touches the kernel.

use std::ffi::c_char;

use podnet_cluster::{plan, Cidr, Plan, PlanInput, WarningCode};

use crate::call::{construct, core, free, info, set, with_mut, with_ref};
use crate::error::podnet_error;
use crate::handle::castable;
use crate::record::{record, Record};
use crate::status::podnet_status;

/// Why `podnet_plan` raised a warning (`podnet_plan_warning_entry.code`). Values are
/// stable; a warning added to podnet later is `PODNET_PLAN_WARNING_UNKNOWN` here (its message
/// still explains it, and the JSON names it).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum podnet_plan_warning {
    /// A warning this version does not know.
    Unknown = 0,
    /// The machine subnet overlaps a cluster CIDR or a service range.
    Overlap = 1,
    /// The node mask is not longer than the cluster mask: at most one node CIDR.
    NodeMaskNotLonger = 2,
    /// There are more node CIDRs than machine addresses; the surplus stays unused.
    NodeCidrsExceedMachines = 3,
    /// There are more machine addresses than node CIDRs; some nodes would get no pod CIDR.
    MachinesExceedNodeCidrs = 4,
    /// An IPv6 node mask is more than 16 bits longer than the cluster mask (Kubernetes refuses).
    Ipv6NodeMaskTooLong = 5,
    /// An IPv4 node mask is more than 24 bits longer than the cluster mask (the node CIDR
    /// allocator refuses).
    Ipv4NodeMaskTooLong = 6,
    /// The node mask leaves no usable pod address (IPv4 /31, /32; IPv6 /128).
    NoPodAddresses = 7,
    /// There are at least as many control-plane machines as nodes: no worker fits.
    ControlPlaneExceedsNodes = 8,
    /// An IPv4 service range is larger than /12; the service IP allocator refuses it.
    ServiceRangeTooLarge = 9,
    /// An IPv6 service range is larger than /108; only its first 2^20 addresses are used.
    ServiceRangeCapped = 10,
    /// A service range has no usable address.
    NoServiceAddresses = 11,
    /// A service range's family has no cluster CIDR, so no pod can reach it natively.
    ServiceFamilyWithoutPods = 12,
}

impl podnet_plan_warning {
    fn from_core(c: WarningCode) -> podnet_plan_warning {
        match c {
            WarningCode::Overlap => podnet_plan_warning::Overlap,
            WarningCode::NodeMaskNotLonger => podnet_plan_warning::NodeMaskNotLonger,
            WarningCode::NodeCidrsExceedMachines => podnet_plan_warning::NodeCidrsExceedMachines,
            WarningCode::MachinesExceedNodeCidrs => podnet_plan_warning::MachinesExceedNodeCidrs,
            WarningCode::Ipv6NodeMaskTooLong => podnet_plan_warning::Ipv6NodeMaskTooLong,
            WarningCode::Ipv4NodeMaskTooLong => podnet_plan_warning::Ipv4NodeMaskTooLong,
            WarningCode::NoPodAddresses => podnet_plan_warning::NoPodAddresses,
            WarningCode::ControlPlaneExceedsNodes => podnet_plan_warning::ControlPlaneExceedsNodes,
            WarningCode::ServiceRangeTooLarge => podnet_plan_warning::ServiceRangeTooLarge,
            WarningCode::ServiceRangeCapped => podnet_plan_warning::ServiceRangeCapped,
            WarningCode::NoServiceAddresses => podnet_plan_warning::NoServiceAddresses,
            WarningCode::ServiceFamilyWithoutPods => podnet_plan_warning::ServiceFamilyWithoutPods,
            // A code added to the core after this ABI version: never invent a number here.
            _ => podnet_plan_warning::Unknown,
        }
    }
}

/// The ranges of a cluster, as given to its control plane: the input of `podnet_plan`. Built
/// with `podnet_plan_input_new` and the setters.
///
/// Owned by the caller; free with `podnet_plan_input_free`. Not thread-safe: do not use one
/// input from two threads at the same time (it may move between threads).
pub struct podnet_plan_input {
    _private: [u8; 0],
}

castable!(podnet_plan_input: Owned => PlanInput);

/// Create an empty plan input: no cluster CIDR (at least one is required), the Kubernetes node
/// masks (/24 for IPv4, /64 for IPv6) unless some are added, no machine subnet, no control-plane
/// node, no service range.
///
/// On success writes a new input to `*input_out` (free it with `podnet_plan_input_free`); on
/// failure `*input_out` is not written. Thread-safe.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_new(
    input_out: *mut *mut podnet_plan_input,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    construct("podnet_plan_input_new", err_out, ("input_out", input_out), |_| Ok(PlanInput::default()))
}

/// Free a plan input. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_plan_input_free(input: *mut podnet_plan_input) {
    free(input)
}

/// `podnet_plan_input_add_cluster_cidr` and `_add_service_cidr`: add `cidr` to the dual-stack
/// list `list` picks (at most one per family; the same range again is fine).
fn add_range(
    op: &'static str,
    (input, cidr): (*mut podnet_plan_input, *const c_char),
    err_out: *mut *mut podnet_error,
    what: &str,
    list: fn(&mut PlanInput) -> &mut Vec<Cidr>,
) -> podnet_status {
    with_mut(op, "input", input, err_out, |c, i| {
        let range = c.range("cidr", cidr)?;
        c.add_per_family(list(i), range, Cidr::family, |other| {
            format!("the input has the {what} {other} of {range}'s family already (at most one per family)")
        })
    })
}

/// Add a cluster CIDR (a pod range of the whole cluster, `--cluster-cidr`), at most one per
/// family; the first added is the primary family. Adding the same CIDR twice is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set or the input has another cluster
/// CIDR of that family. On failure the input is unchanged. Not thread-safe for one input.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_add_cluster_cidr(
    input: *mut podnet_plan_input,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    add_range("podnet_plan_input_add_cluster_cidr", (input, cidr), err_out, "cluster CIDR", |i| &mut i.cluster_cidrs)
}

/// Add the node CIDR prefix length for the next cluster CIDR (`--node-cidr-mask-size-ipv4/-ipv6`):
/// the first mask added belongs to the first cluster CIDR, the second to the second. Add none to
/// get the Kubernetes defaults; add one per cluster CIDR otherwise (`podnet_plan` refuses a count
/// that does not match).
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` when `mask` is over 128 or two masks were added
/// already. Whether it fits its cluster CIDR is checked by `podnet_plan`. On failure the input is
/// unchanged. Not thread-safe for one input.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_add_node_mask(
    input: *mut podnet_plan_input,
    mask: u8,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_plan_input_add_node_mask", "input", input, err_out, |c, i| {
        if mask > 128 {
            return Err(c.err(podnet_status::InvalidArgument, format!("node mask /{mask} is over /128")));
        }
        if i.node_masks.len() >= 2 {
            return Err(c.err(podnet_status::InvalidArgument, "at most two node masks (one per cluster CIDR)"));
        }
        i.node_masks.push(mask);
        Ok(())
    })
}

/// Set the subnet the nodes (machines) themselves live in, when it limits the node count.
/// Replaces a subnet set before.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set. On failure the input is unchanged.
/// Not thread-safe for one input.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_set_machine_subnet(
    input: *mut podnet_plan_input,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_mut("podnet_plan_input_set_machine_subnet", "input", input, err_out, |c, i| {
        i.machine_subnet = Some(c.range("cidr", cidr)?);
        Ok(())
    })
}

/// Set how many nodes are control-plane machines, which run no workload pods (default 0).
/// Never fails for a non-NULL input. Not thread-safe for one input.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_set_control_plane(
    input: *mut podnet_plan_input,
    count: u64,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    set("podnet_plan_input_set_control_plane", "input", input, err_out, |i| i.control_plane = count)
}

/// Add a service range (`--service-cluster-ip-range`), at most one per family. Adding the same
/// range twice is fine.
///
/// Errors: `PODNET_STATUS_INVALID_ADDRESS` when `cidr` does not parse;
/// `PODNET_STATUS_INVALID_ARGUMENT` when host bits are set or the input has another service
/// range of that family. On failure the input is unchanged. Not thread-safe for one input.
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan_input_add_service_cidr(
    input: *mut podnet_plan_input,
    cidr: *const c_char,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    add_range("podnet_plan_input_add_service_cidr", (input, cidr), err_out, "service range", |i| &mut i.service_cidrs)
}

/// One service range of a plan (an element of `podnet_plan_result_info.services`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_plan_service {
    /// The range, e.g. "10.0.0.0/16".
    pub cidr: *const c_char,
    /// Allocatable service IPs, the API server's included: 2^n - 2 (IPv4) or min(2^n, 2^20) - 1
    /// (IPv6), saturating.
    pub service_ips: u64,
}

/// One warning of a plan (an element of `podnet_plan_result_info.warnings`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct podnet_plan_warning_entry {
    /// Why; `PODNET_PLAN_WARNING_UNKNOWN` for a warning this version does not know.
    pub code: podnet_plan_warning,
    /// What, naming the ranges involved.
    pub message: *const c_char,
}

/// A plan's fields, read with `podnet_plan_result_get_info`. Counts are `uint64_t` and saturate:
/// `UINT64_MAX` means "at least UINT64_MAX" (only IPv6 ranges get there; `json` has the exact
/// value). Grows only at the end (see `podnet_sandbox_info`). Owned by the plan.
#[repr(C)]
#[derive(Debug)]
pub struct podnet_plan_result_info {
    /// `sizeof(podnet_plan_result_info)` as the library knows it.
    pub struct_size: usize,
    /// Nodes that can join with a pod CIDR of every family: the smallest of the node CIDR counts
    /// and the machine subnet's usable addresses.
    pub nodes: u64,
    /// Control-plane nodes, as given.
    pub control_plane: u64,
    /// Nodes that run workload pods: nodes minus control-plane nodes.
    pub workers: u64,
    /// Pods one node can run: the smallest usable pod address count of a node CIDR over the
    /// families (a dual-stack pod takes one address of each).
    pub pods_per_node: u64,
    /// Pods the cluster can run: workers x pods per node.
    pub pod_capacity: u64,
    /// Service ranges, one per family in input order, `service_count` of them.
    pub services: *const podnet_plan_service,
    /// Number of service ranges.
    pub service_count: usize,
    /// Things worth a second look that do not make the plan invalid, `warning_count` of them.
    pub warnings: *const podnet_plan_warning_entry,
    /// Number of warnings.
    pub warning_count: usize,
    /// The whole plan as one line of JSON, the format of `podnet plan --json`: `pod_ranges` (per
    /// cluster CIDR: family, cluster_cidr, node_mask, pods_per_node, node_cidrs,
    /// first_node_cidr, last_node_cidr, pod_capacity), `machines`, `services` (family, cidr,
    /// service_ips, static_band, api_server_ip), `nodes`, `control_plane`, `workers`,
    /// `pods_per_node`, `pod_capacity` and `warnings` (code as a snake_case string, message).
    /// Numbers are exact (they may exceed 64 bits for IPv6).
    pub json: *const c_char,
}

/// The capacity of a cluster's address plan (from `podnet_plan`): read it with
/// `podnet_plan_result_get_info`.
///
/// Owned by the caller; free with `podnet_plan_result_free`. Immutable: thread-safe to read.
pub struct podnet_plan_result {
    _private: [u8; 0],
}

record!(podnet_plan_result: Owned => podnet_plan_result_info);

/// The record of `plan`, with `json` its encoding.
fn plan_record(plan: &Plan, json: String) -> Record<podnet_plan_result_info> {
    Record::build(|b| {
        let (services, service_count) = b.array(&plan.services, |b, s| podnet_plan_service {
            cidr: b.text(s.cidr),
            service_ips: saturate(s.service_ips),
        });
        let (warnings, warning_count) = b.array(&plan.warnings, |b, w| podnet_plan_warning_entry {
            code: podnet_plan_warning::from_core(w.code),
            message: b.text(&w.message),
        });
        podnet_plan_result_info {
            struct_size: std::mem::size_of::<podnet_plan_result_info>(),
            nodes: saturate(plan.nodes),
            control_plane: plan.control_plane,
            workers: saturate(plan.workers),
            pods_per_node: saturate(plan.pods_per_node),
            pod_capacity: saturate(plan.pod_capacity),
            services,
            service_count,
            warnings,
            warning_count,
            json: b.text(json),
        }
    })
}

fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Compute the capacity of an address plan. Worked example: cluster CIDR 10.10.0.0/16 with /24
/// node CIDRs, machine subnet 10.1.0.0/24, 9 control-plane nodes, service range 10.0.0.0/16 give
/// 254 nodes, 245 workers, 254 pods per node, 62,230 pods and 65,534 service IPs.
///
/// Errors (`PODNET_STATUS_INVALID_ARGUMENT`) for input that cannot describe a cluster: no
/// cluster CIDR, a node mask count that does not match the cluster CIDRs, a node mask longer
/// than its family allows, a service range overlapping a cluster CIDR. Everything merely unwise
/// is a warning of the result. `input` is only read.
/// On success writes a new plan to `*plan_out` (free it with `podnet_plan_result_free`); on
/// failure `*plan_out` is not written. Thread-safe (not concurrently with a setter on `input`).
/// A required pointer that is NULL gives `PODNET_STATUS_NULL_ARGUMENT`; `err_out` may be NULL.
#[no_mangle]
pub extern "C" fn podnet_plan(
    input: *const podnet_plan_input,
    plan_out: *mut *mut podnet_plan_result,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    with_ref("podnet_plan", "input", input, err_out, |c, input| {
        let out = c.out("plan_out", plan_out)?;
        let plan = core(plan(input))?;
        let json = serde_json::to_string(&plan)
            .map_err(|e| c.err(podnet_status::Internal, format!("encode plan as JSON: {e}")))?;
        out.give(plan_record(&plan, json))
    })
}

/// The plan's fields, owned by `plan` (see `podnet_plan_result_info`). NULL gives NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn podnet_plan_result_get_info(plan: *const podnet_plan_result) -> *const podnet_plan_result_info {
    info(plan)
}

/// Free a plan. NULL is accepted (no-op).
/// Must not race with any other call using the same object.
#[no_mangle]
pub extern "C" fn podnet_plan_result_free(plan: *mut podnet_plan_result) {
    free(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates() {
        assert_eq!(saturate(5), 5);
        assert_eq!(saturate(u128::MAX), u64::MAX);
        assert_eq!(saturate(u128::from(u64::MAX) + 1), u64::MAX);
    }

    #[test]
    fn every_core_warning_has_a_code() {
        let all = [
            WarningCode::Overlap,
            WarningCode::NodeMaskNotLonger,
            WarningCode::NodeCidrsExceedMachines,
            WarningCode::MachinesExceedNodeCidrs,
            WarningCode::Ipv6NodeMaskTooLong,
            WarningCode::Ipv4NodeMaskTooLong,
            WarningCode::NoPodAddresses,
            WarningCode::ControlPlaneExceedsNodes,
            WarningCode::ServiceRangeTooLarge,
            WarningCode::ServiceRangeCapped,
            WarningCode::NoServiceAddresses,
            WarningCode::ServiceFamilyWithoutPods,
        ];
        for (i, w) in all.iter().enumerate() {
            assert_eq!(podnet_plan_warning::from_core(*w) as u32, i as u32 + 1);
        }
    }
}
