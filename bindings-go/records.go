package podnet

// Every record the library returns is copied into Go here, and only here: from the
// `podnet_*_info` views of include/podnet.h, which hold the whole record, so reading one takes
// one cgo call (and none per field or list element). The views belong to their C object; the
// copies own no C memory and outlive it.

// #include <podnet.h>
import "C"

import (
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/podnet/podnet/bindings-go/internal/cabi"
)

// goString copies a C string owned by a podnet object; NULL gives "".
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// goStrings copies a podnet_string_list; an empty list gives nil.
func goStrings(l C.podnet_string_list) []string {
	return cabi.GoStrings(unsafe.Pointer(l.items), int(l.count))
}

// parseAll parses every string with parse; a failure is a library bug (CodeInternal) naming
// op, what and the text.
func parseAll[T any](op, what string, ss []string, parse func(string) (T, error)) ([]T, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]T, 0, len(ss))
	for _, s := range ss {
		v, err := parse(s)
		if err != nil {
			return nil, internalError(op, "%s %q: %v", what, s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// optionalAddr parses a C address that may be NULL (the zero Addr).
func optionalAddr(op string, s *C.char) (netip.Addr, error) {
	if s == nil {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(C.GoString(s))
	if err != nil {
		return netip.Addr{}, internalError(op, "address %q: %v", C.GoString(s), err)
	}
	return a, nil
}

func copyPortMapping(op string, m *C.podnet_port_mapping) (PortMapping, error) {
	ip, err := optionalAddr(op, m.host_ip)
	return PortMapping{
		Protocol:      Protocol(m.protocol),
		HostIP:        ip,
		HostPort:      uint16(m.host_port),
		ContainerPort: uint16(m.container_port),
	}, err
}

func copySandbox(op string, sb *C.podnet_sandbox) (*Sandbox, error) {
	v := C.podnet_sandbox_get_info(sb)
	if v == nil {
		return nil, internalError(op, "no sandbox")
	}
	s := &Sandbox{
		ID:         goString(v.id),
		IfName:     goString(v.ifname),
		NetnsPath:  goString(v.netns_path),
		OwnsNetns:  bool(v.owns_netns),
		HostIfName: goString(v.host_ifname),
		Mode:       Mode(v.mode),
	}
	var err error
	if mac := goString(v.mac); mac != "" {
		if s.MAC, err = net.ParseMAC(mac); err != nil {
			return nil, internalError(op, "sandbox %s: MAC %q: %v", s.ID, mac, err)
		}
	}
	if s.IPs, err = parseAll(op, "address", goStrings(v.ips), netip.ParsePrefix); err != nil {
		return nil, err
	}
	if s.Gateways, err = parseAll(op, "gateway", goStrings(v.gateways), netip.ParseAddr); err != nil {
		return nil, err
	}
	if v.port_count > 0 {
		for _, m := range unsafe.Slice(v.ports, int(v.port_count)) {
			pm, err := copyPortMapping(op, &m)
			if err != nil {
				return nil, err
			}
			s.Ports = append(s.Ports, pm)
		}
	}
	if labels := goStrings(v.labels); len(labels) > 0 {
		s.Labels = make(map[string]string, len(labels))
		for _, kv := range labels {
			k, val, _ := strings.Cut(kv, "=")
			s.Labels[k] = val
		}
	}
	return s, nil
}

// freeSandbox frees a sandbox the library returned (not one borrowed from a list).
func freeSandbox(sb *C.podnet_sandbox) { C.podnet_sandbox_free(sb) }

// listOf is the copy function of a C list type: count and at are the type's _count and _at
// (an element is borrowed from the list, never freed on its own), cp copies one element. A
// missing element is a library bug; what names an element in that error.
func listOf[L any, P comparable, T any](what string, count func(L) C.size_t, at func(L, C.size_t) P, cp func(string, P) (T, error)) func(string, L) ([]T, error) {
	return func(op string, list L) ([]T, error) {
		n := count(list)
		out := make([]T, 0, int(n))
		var missing P
		for i := C.size_t(0); i < n; i++ {
			e := at(list, i)
			if e == missing {
				return nil, internalError(op, "%s %d of %d is missing", what, i, n)
			}
			v, err := cp(op, e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
}

// The lists the library returns.
var (
	copySandboxList = listOf("sandbox", func(l *C.podnet_sandbox_list) C.size_t { return C.podnet_sandbox_list_count(l) },
		func(l *C.podnet_sandbox_list, i C.size_t) *C.podnet_sandbox { return C.podnet_sandbox_list_at(l, i) }, copySandbox)
	copyPeerList = listOf("peer", func(l *C.podnet_peer_list) C.size_t { return C.podnet_peer_list_count(l) },
		func(l *C.podnet_peer_list, i C.size_t) *C.podnet_peer { return C.podnet_peer_list_at(l, i) }, copyPeer)
	copyPortEntryList = listOf("entry", func(l *C.podnet_port_entry_list) C.size_t { return C.podnet_port_entry_list_count(l) },
		func(l *C.podnet_port_entry_list, i C.size_t) *C.podnet_port_entry {
			return C.podnet_port_entry_list_at(l, i)
		}, copyPortEntry)
	copyServiceList = listOf("service", func(l *C.podnet_service_list) C.size_t { return C.podnet_service_list_count(l) },
		func(l *C.podnet_service_list, i C.size_t) *C.podnet_service { return C.podnet_service_list_at(l, i) }, copyService)
)

func copyCheckReport(_ string, rep *C.podnet_check_report) (*CheckReport, error) {
	v := C.podnet_check_report_get_info(rep)
	return &CheckReport{ID: goString(v.id), OK: bool(v.ok), Problems: goStrings(v.problems)}, nil
}

func copyGCReport(op string, rep *C.podnet_gc_report) (*GCReport, error) {
	v := C.podnet_gc_report_get_info(rep)
	ips, err := parseAll(op, "released address", goStrings(v.ips), netip.ParseAddr)
	return &GCReport{
		Sandboxes: goStrings(v.sandboxes),
		IPs:       ips,
		Netns:     goStrings(v.netns),
		Links:     goStrings(v.links),
		Errors:    goStrings(v.errors),
	}, err
}

func copyPeer(op string, cp *C.podnet_peer) (Peer, error) {
	v := C.podnet_peer_get_info(cp)
	p := Peer{Name: goString(v.name)}
	var err error
	if p.UnderlayIP, err = netip.ParseAddr(goString(v.underlay_ip)); err != nil {
		return Peer{}, internalError(op, "peer %s: underlay IP: %v", p.Name, err)
	}
	if p.PodCIDRs, err = parseAll(op, "pod CIDR", goStrings(v.pod_cidrs), netip.ParsePrefix); err != nil {
		return Peer{}, err
	}
	if s := goString(v.vtep_mac); s != "" {
		if p.VTEPMAC, err = net.ParseMAC(s); err != nil {
			return Peer{}, internalError(op, "peer %s: VTEP MAC %q: %v", p.Name, s, err)
		}
	}
	return p, nil
}

func copySyncReport(_ string, rep *C.podnet_sync_report) (*SyncReport, error) {
	v := C.podnet_sync_report_get_info(rep)
	return &SyncReport{Peers: int(v.peers), Added: int(v.added), Removed: int(v.removed)}, nil
}

func copyRepairReport(_ string, rep *C.podnet_repair_report) (*RepairReport, error) {
	v := C.podnet_repair_report_get_info(rep)
	return &RepairReport{TableRecreated: bool(v.table_recreated), PortsRestored: int(v.ports_restored)}, nil
}

func copyPortEntry(op string, e *C.podnet_port_entry) (PortEntry, error) {
	pm, err := copyPortMapping(op, &e.mapping)
	if err != nil {
		return PortEntry{}, err
	}
	ips, err := parseAll(op, "pod IP", goStrings(e.pod_ips), netip.ParseAddr)
	return PortEntry{SandboxID: goString(e.sandbox_id), PortMapping: pm, PodIPs: ips}, err
}

func copyNodeStatus(op string, st *C.podnet_node_status) (*NodeStatus, error) {
	v := C.podnet_node_status_get_info(st)
	if v == nil {
		return nil, internalError(op, "no node status")
	}
	s := &NodeStatus{Name: goString(v.name), StateDir: goString(v.state_dir), PodMTU: uint32(v.pod_mtu), Ready: bool(v.ready)}
	var err error
	if mac := goString(v.vtep_mac); mac != "" {
		if s.VTEPMAC, err = net.ParseMAC(mac); err != nil {
			return nil, internalError(op, "VTEP MAC %q: %v", mac, err)
		}
	}
	if s.Gateways, err = parseAll(op, "gateway", goStrings(v.gateways), netip.ParseAddr); err != nil {
		return nil, err
	}
	return s, nil
}

func copyService(op string, cs *C.podnet_service) (Service, error) {
	v := C.podnet_service_get_info(cs)
	if v == nil {
		return Service{}, internalError(op, "no service")
	}
	s := Service{
		Name:                  goString(v.name),
		AffinityTimeoutSecs:   uint32(v.affinity_timeout_secs),
		ExternalTrafficPolicy: TrafficPolicy(v.external_traffic_policy),
	}
	var err error
	if s.ClusterIPs, err = parseAll(op, "ClusterIP", goStrings(v.cluster_ips), netip.ParseAddr); err != nil {
		return Service{}, err
	}
	if s.ExternalIPs, err = parseAll(op, "external IP", goStrings(v.external_ips), netip.ParseAddr); err != nil {
		return Service{}, err
	}
	for _, p := range unsafe.Slice(v.ports, int(v.port_count)) {
		s.Ports = append(s.Ports, ServicePort{
			Protocol:   Protocol(p.protocol),
			Port:       uint16(p.port),
			TargetPort: uint16(p.target_port),
			NodePort:   uint16(p.node_port),
		})
	}
	for _, e := range unsafe.Slice(v.endpoints, int(v.endpoint_count)) {
		ip, err := netip.ParseAddr(goString(e.ip))
		if err != nil {
			return Service{}, internalError(op, "service %s: endpoint %q: %v", s.Name, goString(e.ip), err)
		}
		ep := Endpoint{IP: ip, Ready: bool(e.ready), Local: bool(e.local)}
		for _, port := range unsafe.Slice(e.ports, int(e.port_count)) {
			ep.Ports = append(ep.Ports, uint16(port))
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s, nil
}
