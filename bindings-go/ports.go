package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net/netip"
	"unsafe"
)

// PortEntry is one host port mapped on a node: the sandbox holding it, the mapping, and the
// pod addresses its traffic goes to.
type PortEntry struct {
	SandboxID string
	PortMapping
	// PodIPs: one per pod address family (only the host IP's family when the mapping has one).
	PodIPs []netip.Addr
}

// AddPorts maps more host ports to an existing sandbox. Idempotent: mappings the sandbox has
// already are skipped. All or nothing: ErrConflict when a host port is mapped to another
// sandbox (then none is added); ErrNotFound for an unknown sandbox. Returns the sandbox as it
// is now, with all its mappings.
func (n *Node) AddPorts(id string, ports []PortMapping) (*Sandbox, error) {
	return n.changePorts("AddPorts", id, ports, true)
}

// RemovePorts unmaps host ports of a sandbox; a mapping matches on protocol, host IP, host
// port and container port, and mappings the sandbox does not have are ignored (a retry is
// fine). ErrNotFound for an unknown sandbox. Returns the sandbox as it is now.
func (n *Node) RemovePorts(id string, ports []PortMapping) (*Sandbox, error) {
	return n.changePorts("RemovePorts", id, ports, false)
}

func (n *Node) changePorts(op, id string, ports []PortMapping, add bool) (*Sandbox, error) {
	if err := checkString(op, "sandbox id", id); err != nil {
		return nil, err
	}
	list, err := buildPortList(ports)
	if err != nil {
		return nil, err
	}
	defer C.podnet_port_list_free(list)
	cop := "podnet_node_ports_remove"
	if add {
		cop = "podnet_node_ports_add"
	}
	return queryID(n, op, id, cop, func(node *C.podnet_node, cid *C.char, out **C.podnet_sandbox, cerr **C.podnet_error) C.podnet_status {
		if add {
			return C.podnet_node_ports_add(node, cid, list, out, cerr)
		}
		return C.podnet_node_ports_remove(node, cid, list, out, cerr)
	}, freeSandbox, copySandbox)
}

// buildPortList copies ports into a new C port list (free it with podnet_port_list_free).
func buildPortList(ports []PortMapping) (*C.podnet_port_list, error) {
	var list *C.podnet_port_list
	var cerr *C.podnet_error
	st := C.podnet_port_list_new(&list, &cerr)
	if err := takeError(st, cerr, "podnet_port_list_new"); err != nil {
		return nil, err
	}
	for _, p := range ports {
		hostIP := p.cHostIP()
		st := C.podnet_port_list_add(list, C.podnet_protocol(p.Protocol), hostIP,
			C.uint16_t(p.HostPort), C.uint16_t(p.ContainerPort), &cerr)
		C.free(unsafe.Pointer(hostIP))
		if err := takeError(st, cerr, "podnet_port_list_add"); err != nil {
			C.podnet_port_list_free(list)
			return nil, err
		}
	}
	if got := int(C.podnet_port_list_count(list)); got != len(ports) {
		C.podnet_port_list_free(list)
		return nil, internalError("port list", "%d mappings added, the list holds %d", len(ports), got)
	}
	return list, nil
}

// ListPorts returns every host port mapped on the node (from the sandboxes' records), sorted
// by sandbox id, each sandbox's mappings in the order they were added.
func (n *Node) ListPorts() ([]PortEntry, error) {
	return query(n, "ListPorts", "podnet_node_ports_list", func(node *C.podnet_node, out **C.podnet_port_entry_list, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_ports_list(node, out, cerr)
	}, func(l *C.podnet_port_entry_list) { C.podnet_port_entry_list_free(l) }, copyPortEntryList)
}

// RepairReport is what Repair found and fixed.
type RepairReport struct {
	// TableRecreated: podnet's nftables table was missing (someone flushed the ruleset).
	TableRecreated bool
	// PortsRestored: host-port elements (one per mapping and pod address family) re-added.
	PortsRestored int
}

// Repair re-installs podnet's nftables table (host ports, egress masquerade) and every
// recorded host port when someone flushed the ruleset or deleted elements. Other tables are
// never touched; a healthy node is left as it is. Run it after anything that may flush
// nftables (a firewall reload).
func (n *Node) Repair() (*RepairReport, error) {
	return query(n, "Repair", "podnet_node_repair", func(node *C.podnet_node, out **C.podnet_repair_report, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_repair(node, out, cerr)
	}, func(r *C.podnet_repair_report) { C.podnet_repair_report_free(r) }, copyRepairReport)
}
