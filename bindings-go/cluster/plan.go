package cluster

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"github.com/podnet/podnet/bindings-go/internal/cabi"
	"math"
	"net/netip"
	"unsafe"
)

// PlanInput is the ranges of a cluster as given to its control plane: the input of Plan.
type PlanInput struct {
	// ClusterCIDRs (--cluster-cidr): at least one, at most one per family; the first is the
	// primary family.
	ClusterCIDRs []netip.Prefix
	// NodeMasks (--node-cidr-mask-size-ipv4/-ipv6): none for the Kubernetes defaults (/24,
	// /64), or one per cluster CIDR in the same order.
	NodeMasks []uint8
	// MachineSubnet is the subnet the nodes themselves live in, when it limits the node count
	// (the zero Prefix: no limit).
	MachineSubnet netip.Prefix
	// ControlPlane is how many nodes are control-plane machines, which run no workload pods.
	ControlPlane uint64
	// ServiceCIDRs (--service-cluster-ip-range): at most one per family.
	ServiceCIDRs []netip.Prefix
}

// PlanWarningCode says why Plan raised a warning. A warning added to the library later is
// PlanWarningUnknown here (its message still explains it, and the JSON names it).
type PlanWarningCode uint32

// Codes of podnet_plan_warning.
const (
	PlanWarningUnknown                  PlanWarningCode = C.PODNET_PLAN_WARNING_UNKNOWN
	PlanWarningOverlap                  PlanWarningCode = C.PODNET_PLAN_WARNING_OVERLAP
	PlanWarningNodeMaskNotLonger        PlanWarningCode = C.PODNET_PLAN_WARNING_NODE_MASK_NOT_LONGER
	PlanWarningNodeCIDRsExceedMachines  PlanWarningCode = C.PODNET_PLAN_WARNING_NODE_CIDRS_EXCEED_MACHINES
	PlanWarningMachinesExceedNodeCIDRs  PlanWarningCode = C.PODNET_PLAN_WARNING_MACHINES_EXCEED_NODE_CIDRS
	PlanWarningIPv6NodeMaskTooLong      PlanWarningCode = C.PODNET_PLAN_WARNING_IPV6_NODE_MASK_TOO_LONG
	PlanWarningIPv4NodeMaskTooLong      PlanWarningCode = C.PODNET_PLAN_WARNING_IPV4_NODE_MASK_TOO_LONG
	PlanWarningNoPodAddresses           PlanWarningCode = C.PODNET_PLAN_WARNING_NO_POD_ADDRESSES
	PlanWarningControlPlaneExceedsNodes PlanWarningCode = C.PODNET_PLAN_WARNING_CONTROL_PLANE_EXCEEDS_NODES
	PlanWarningServiceRangeTooLarge     PlanWarningCode = C.PODNET_PLAN_WARNING_SERVICE_RANGE_TOO_LARGE
	PlanWarningServiceRangeCapped       PlanWarningCode = C.PODNET_PLAN_WARNING_SERVICE_RANGE_CAPPED
	PlanWarningNoServiceAddresses       PlanWarningCode = C.PODNET_PLAN_WARNING_NO_SERVICE_ADDRESSES
	PlanWarningServiceFamilyWithoutPods PlanWarningCode = C.PODNET_PLAN_WARNING_SERVICE_FAMILY_WITHOUT_PODS
)

var planWarningNames = map[any]string{
	PlanWarningUnknown:                  "unknown",
	PlanWarningOverlap:                  "overlap",
	PlanWarningNodeMaskNotLonger:        "node_mask_not_longer",
	PlanWarningNodeCIDRsExceedMachines:  "node_cidrs_exceed_machines",
	PlanWarningMachinesExceedNodeCIDRs:  "machines_exceed_node_cidrs",
	PlanWarningIPv6NodeMaskTooLong:      "ipv6_node_mask_too_long",
	PlanWarningIPv4NodeMaskTooLong:      "ipv4_node_mask_too_long",
	PlanWarningNoPodAddresses:           "no_pod_addresses",
	PlanWarningControlPlaneExceedsNodes: "control_plane_exceeds_nodes",
	PlanWarningServiceRangeTooLarge:     "service_range_too_large",
	PlanWarningServiceRangeCapped:       "service_range_capped",
	PlanWarningNoServiceAddresses:       "no_service_addresses",
	PlanWarningServiceFamilyWithoutPods: "service_family_without_pods",
}

// String returns the snake_case name ("overlap"), or "plan_warning(N)" for a value this
// package does not know.
func (c PlanWarningCode) String() string {
	return cabi.EnumString(c, planWarningNames, "plan_warning")
}

// PlanWarning is something worth a second look that does not make the plan invalid.
type PlanWarning struct {
	Code PlanWarningCode
	// Message names the ranges involved.
	Message string
}

// PlanService is one service range of a plan.
type PlanService struct {
	CIDR netip.Prefix
	// IPs: allocatable service IPs, the API server's included (saturating).
	IPs uint64
}

// PlanResult is the capacity of a cluster's address plan. Counts saturate at math.MaxUint64
// (only IPv6 ranges get there; JSON has the exact values).
type PlanResult struct {
	// Nodes that can join with a pod CIDR of every family.
	Nodes uint64
	// ControlPlane nodes, as given.
	ControlPlane uint64
	// Workers: nodes that run workload pods.
	Workers uint64
	// PodsPerNode: usable pod addresses of a node CIDR (the smallest over the families).
	PodsPerNode uint64
	// PodCapacity: workers x pods per node.
	PodCapacity uint64
	// Services, one per service range in input order.
	Services []PlanService
	Warnings []PlanWarning
	// JSON is the whole plan as one line of JSON, the format of `podnet plan --json`.
	JSON string
}

// Saturated is the value of a count that is at least this large.
const Saturated = math.MaxUint64

// Plan computes the capacity of an address plan. ErrInvalidArgument for input that cannot
// describe a cluster (no cluster CIDR, a node mask count that does not match, a node mask
// longer than its family allows, a service range overlapping a cluster CIDR); anything merely
// unwise is a warning of the result. Needs no privilege and touches nothing.
func Plan(in PlanInput) (*PlanResult, error) {
	const op = "Plan"
	var input *C.podnet_plan_input
	var cerr *C.podnet_error
	st := C.podnet_plan_input_new(&input, &cerr)
	if err := takeError(st, cerr, "podnet_plan_input_new"); err != nil {
		return nil, err
	}
	defer C.podnet_plan_input_free(input)
	addPrefix := func(what string, p netip.Prefix, add func(*C.char) C.podnet_status, cop string) error {
		if !p.IsValid() {
			return argError(cabi.CodeInvalidAddress, op, "invalid %s %v", what, p)
		}
		cs := C.CString(p.String())
		defer C.free(unsafe.Pointer(cs))
		cerr = nil
		st := add(cs)
		return takeError(st, cerr, cop)
	}
	for _, p := range in.ClusterCIDRs {
		if err := addPrefix("cluster CIDR", p, func(s *C.char) C.podnet_status {
			return C.podnet_plan_input_add_cluster_cidr(input, s, &cerr)
		}, "podnet_plan_input_add_cluster_cidr"); err != nil {
			return nil, err
		}
	}
	for _, m := range in.NodeMasks {
		st := C.podnet_plan_input_add_node_mask(input, C.uint8_t(m), &cerr)
		if err := takeError(st, cerr, "podnet_plan_input_add_node_mask"); err != nil {
			return nil, err
		}
	}
	if in.MachineSubnet != (netip.Prefix{}) {
		if err := addPrefix("machine subnet", in.MachineSubnet, func(s *C.char) C.podnet_status {
			return C.podnet_plan_input_set_machine_subnet(input, s, &cerr)
		}, "podnet_plan_input_set_machine_subnet"); err != nil {
			return nil, err
		}
	}
	if in.ControlPlane != 0 {
		st := C.podnet_plan_input_set_control_plane(input, C.uint64_t(in.ControlPlane), &cerr)
		if err := takeError(st, cerr, "podnet_plan_input_set_control_plane"); err != nil {
			return nil, err
		}
	}
	for _, p := range in.ServiceCIDRs {
		if err := addPrefix("service CIDR", p, func(s *C.char) C.podnet_status {
			return C.podnet_plan_input_add_service_cidr(input, s, &cerr)
		}, "podnet_plan_input_add_service_cidr"); err != nil {
			return nil, err
		}
	}
	var plan *C.podnet_plan_result
	cerr = nil
	st = C.podnet_plan(input, &plan, &cerr)
	if err := takeError(st, cerr, "podnet_plan"); err != nil {
		return nil, err
	}
	defer C.podnet_plan_result_free(plan)
	return copyPlan(op, plan)
}
