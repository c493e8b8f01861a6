package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net"
	"net/netip"
	"runtime"
	"unsafe"
)

// Peer is another node as the cluster's source of truth describes it (the Kubernetes API:
// its name, InternalIP and spec.podCIDRs). Plain data: the calls copy it into the library.
type Peer struct {
	// Name of the peer node: [A-Za-z0-9_.-], 1..128 bytes, no "..".
	Name string
	// UnderlayIP is the peer's address on the network that connects the nodes.
	UnderlayIP netip.Addr
	// PodCIDRs: at least one.
	PodCIDRs []netip.Prefix
	// VTEPMAC is the MAC of the peer's VXLAN device. Leave it nil for podnet nodes: podnet
	// derives it from the name, as every podnet node derives its own. Set it for a node that
	// is not podnet's (e.g. flannel's, from its backend-data annotation). ListPeers fills it
	// in (derived or set).
	VTEPMAC net.HardwareAddr
}

// SyncReport is what SyncPeers changed.
type SyncReport struct {
	// Peers the node is configured with after the sync.
	Peers int
	// Added kernel entries (routes, neighbours, FDB entries).
	Added int
	// Removed stale kernel entries (including ones an earlier run or another process left).
	Removed int
}

// AddPeer adds or updates one peer: a route to each of its pod CIDRs, over the overlay or
// routed via its underlay address as the node's cross-node mode decides. An update changes
// only what differs from the peer's record.
//
// ErrInvalidArgument when the node has no underlay, the peer has no pod CIDR or is the node
// itself, or a routed peer is not on-link; ErrConflict when a pod CIDR overlaps the node's own.
func (n *Node) AddPeer(p Peer) error {
	cp, err := p.build("AddPeer")
	if err != nil {
		return err
	}
	defer C.podnet_peer_free(cp)
	return n.call("podnet_node_peer_add", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_peer_add(node, cp, cerr)
	})
}

// RemovePeer removes one peer's routes and entries and its record. Idempotent: an unknown
// name is success.
func (n *Node) RemovePeer(name string) error {
	return withCString("RemovePeer", "peer name", name, func(cname *C.char) error {
		return n.call("podnet_node_peer_remove", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
			return C.podnet_node_peer_remove(node, cname, cerr)
		})
	})
}

// SyncPeers converges the node to exactly peers: adds what is missing, fixes what changed and
// removes every peer route, neighbour and FDB entry that is not wanted, including ones an
// earlier run (or a crashed agent) left in the kernel. The way to repair after a restart.
// Every peer is checked before anything changes; no name may appear twice. An empty list
// removes every peer.
func (n *Node) SyncPeers(peers []Peer) (*SyncReport, error) {
	// cps is Go memory holding C pointers only, so C may read it (cgo pointer rules).
	cps := make([]*C.podnet_peer, 0, len(peers))
	defer func() {
		for _, cp := range cps {
			C.podnet_peer_free(cp)
		}
	}()
	for _, p := range peers {
		cp, err := p.build("SyncPeers")
		if err != nil {
			return nil, err
		}
		cps = append(cps, cp)
	}
	var arr **C.podnet_peer
	if len(cps) > 0 {
		arr = &cps[0]
	}
	var rep *C.podnet_sync_report
	err := n.call("podnet_node_peers_sync", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_peers_sync(node, arr, C.size_t(len(cps)), &rep, cerr)
	})
	runtime.KeepAlive(cps)
	if err != nil {
		return nil, err
	}
	defer C.podnet_sync_report_free(rep)
	return copySyncReport(rep), nil
}

// ListPeers returns the peers the node is configured with (its records), sorted by name.
func (n *Node) ListPeers() ([]Peer, error) {
	var list *C.podnet_peer_list
	err := n.call("podnet_node_peer_list", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_peer_list(node, &list, cerr)
	})
	if err != nil {
		return nil, err
	}
	defer C.podnet_peer_list_free(list)
	return copyList("ListPeers", "peer", C.podnet_peer_list_count(list), func(i C.size_t) *C.podnet_peer {
		return C.podnet_peer_list_at(list, i)
	}, copyPeer)
}

// build copies p into a new C peer (free it with podnet_peer_free).
func (p *Peer) build(op string) (*C.podnet_peer, error) {
	if err := checkString(op, "peer name", p.Name); err != nil {
		return nil, err
	}
	if !p.UnderlayIP.IsValid() {
		return nil, argError(CodeInvalidAddress, op, "peer %s: no underlay IP", p.Name)
	}
	name, ip := C.CString(p.Name), C.CString(p.UnderlayIP.String())
	var cp *C.podnet_peer
	var cerr *C.podnet_error
	st := C.podnet_peer_new(name, ip, &cp, &cerr)
	C.free(unsafe.Pointer(name))
	C.free(unsafe.Pointer(ip))
	if err := takeError(st, cerr, "podnet_peer_new"); err != nil {
		return nil, err
	}
	for _, pfx := range p.PodCIDRs {
		if !pfx.IsValid() {
			C.podnet_peer_free(cp)
			return nil, argError(CodeInvalidAddress, op, "peer %s: invalid pod CIDR %v", p.Name, pfx)
		}
		cs := C.CString(pfx.String())
		st := C.podnet_peer_add_pod_cidr(cp, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr, "podnet_peer_add_pod_cidr"); err != nil {
			C.podnet_peer_free(cp)
			return nil, err
		}
	}
	if p.VTEPMAC != nil {
		// A Go pointer to pointer-free memory: C may read it during the call.
		var mac *C.uint8_t
		if len(p.VTEPMAC) > 0 {
			mac = (*C.uint8_t)(unsafe.Pointer(&p.VTEPMAC[0]))
		}
		st := C.podnet_peer_set_vtep_mac(cp, mac, C.size_t(len(p.VTEPMAC)), &cerr)
		if err := takeError(st, cerr, "podnet_peer_set_vtep_mac"); err != nil {
			C.podnet_peer_free(cp)
			return nil, err
		}
	}
	return cp, nil
}
