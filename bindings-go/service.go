package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"context"
	"net/netip"
	"runtime"
	"unsafe"
)

// Service is a Kubernetes Service as a node serves it. Plain data: the calls copy it into the
// library. Services live in the memory of the process whose Node programs them (see
// SyncServices).
type Service struct {
	// Name is unique per node, e.g. "namespace/name": 1..253 bytes, no whitespace.
	Name string
	// ClusterIPs: one per family, each inside a service CIDR of the node
	// (NodeConfig.ServiceCIDRs).
	ClusterIPs []netip.Addr
	// Ports: at least one.
	Ports []ServicePort
	// ExternalIPs are served like the ClusterIPs, with the external traffic policy.
	ExternalIPs []netip.Addr
	// Endpoints; only ready ones receive new connections.
	Endpoints []Endpoint
	// AffinityTimeoutSecs > 0 turns on ClientIP session affinity (1..86400 seconds).
	AffinityTimeoutSecs uint32
	// ExternalTrafficPolicy: TrafficPolicyCluster (the zero value) or TrafficPolicyLocal.
	ExternalTrafficPolicy TrafficPolicy
}

// ServicePort is one port of a service.
type ServicePort struct {
	Protocol Protocol
	// Port on the ClusterIPs and external IPs.
	Port uint16
	// TargetPort on the endpoints (unless an endpoint names its own).
	TargetPort uint16
	// NodePort on every local node address (not loopback); 0 means none.
	NodePort uint16
}

// Endpoint is one endpoint of a service.
type Endpoint struct {
	IP netip.Addr
	// Ports: one per service port, in order; empty means each port's TargetPort.
	Ports []uint16
	// Ready endpoints receive new connections.
	Ready bool
	// Local: the endpoint runs on this node (policy Local sends external traffic only there).
	Local bool
}

// SetService adds or replaces one service, programmed as the difference to its previous
// version in one nf_tables batch. ErrInvalidArgument for a service the node refuses (e.g. a
// ClusterIP outside its service CIDRs), ErrConflict when another service holds one of its
// IP/protocol/ports or node ports. The node's services are kept in its state and shared by
// every client of the node (another process, the CLI). Nothing changes on error. ctx is
// checked before the call (the C call itself cannot be interrupted).
func (n *Node) SetService(ctx context.Context, s Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return callWith(n, "SetService", s.build, freeService, "podnet_node_service_set", func(node *C.podnet_node, cs *C.podnet_service, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_service_set(node, cs, cerr)
	})
}

// RemoveService removes one service (and UDP conntrack entries towards its endpoints).
// Idempotent: an unknown name is success.
func (n *Node) RemoveService(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return withCString("RemoveService", "service name", name, func(cname *C.char) error {
		return n.call("podnet_node_service_remove", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
			return C.podnet_node_service_remove(node, cname, cerr)
		})
	})
}

// SyncServices makes the node's services exactly services (every one validated first; an
// empty list removes all), whoever set them before: the way an agent starts, after a
// restart, and repairs.
func (n *Node) SyncServices(ctx context.Context, services []Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	css, free, err := buildAll(services, func(s *Service) (*C.podnet_service, error) {
		return s.build("SyncServices")
	}, freeService)
	if err != nil {
		return err
	}
	defer free()
	err = n.call("podnet_node_services_sync", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_services_sync(node, arrayPtr(css), C.size_t(len(css)), cerr)
	})
	runtime.KeepAlive(css)
	return err
}

// ListServices returns the services this Node programmed (its memory, not the kernel's
// table), sorted by name.
func (n *Node) ListServices(ctx context.Context) ([]Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return query(n, "ListServices", "podnet_node_service_list", func(node *C.podnet_node, out **C.podnet_service_list, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_service_list(node, out, cerr)
	}, func(l *C.podnet_service_list) { C.podnet_service_list_free(l) }, copyServiceList)
}

// RepairServices re-installs the services table if someone removed or replaced it (`nft
// flush ruleset`); it reports whether it did.
func (n *Node) RepairServices(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var rebuilt C.bool
	err := n.call("podnet_node_services_repair", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_services_repair(node, &rebuilt, cerr)
	})
	return bool(rebuilt), err
}

// build copies s into a new C service (free it with podnet_service_free).
func (s *Service) build(op string) (*C.podnet_service, error) {
	return build(op, "service name", s.Name, "podnet_service_new", func(name *C.char, out **C.podnet_service, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_new(name, out, cerr)
	}, freeService, s.apply)
}

func freeService(cs *C.podnet_service) { C.podnet_service_free(cs) }

func (s *Service) apply(cs *C.podnet_service, set *setter) {
	for _, ip := range s.ClusterIPs {
		set.addr("ClusterIP", ip.IsValid(), ip.String(), "podnet_service_add_cluster_ip", func(c *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_service_add_cluster_ip(cs, c, e)
		})
	}
	for _, p := range s.Ports {
		set.call("podnet_service_add_port", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_service_add_port(cs, C.podnet_protocol(p.Protocol), C.uint16_t(p.Port), C.uint16_t(p.TargetPort), C.uint16_t(p.NodePort), e)
		})
	}
	for _, ip := range s.ExternalIPs {
		set.addr("external IP", ip.IsValid(), ip.String(), "podnet_service_add_external_ip", func(c *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_service_add_external_ip(cs, c, e)
		})
	}
	for _, ep := range s.Endpoints {
		set.addr("endpoint", ep.IP.IsValid(), ep.IP.String(), "podnet_service_add_endpoint", func(c *C.char, e **C.podnet_error) C.podnet_status {
			// A Go pointer to pointer-free memory: C may read it during the call.
			var ports *C.uint16_t
			if len(ep.Ports) > 0 {
				ports = (*C.uint16_t)(unsafe.Pointer(&ep.Ports[0]))
			}
			return C.podnet_service_add_endpoint(cs, c, ports, C.size_t(len(ep.Ports)), C.bool(ep.Ready), C.bool(ep.Local), e)
		})
	}
	if s.AffinityTimeoutSecs != 0 {
		set.call("podnet_service_set_affinity_timeout", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_service_set_affinity_timeout(cs, C.uint32_t(s.AffinityTimeoutSecs), e)
		})
	}
	if s.ExternalTrafficPolicy != 0 {
		set.call("podnet_service_set_traffic_policy", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_service_set_traffic_policy(cs, C.podnet_traffic_policy(s.ExternalTrafficPolicy), e)
		})
	}
}
