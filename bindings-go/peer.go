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
	return callWith(n, "AddPeer", p.build, freePeer, "podnet_node_peer_add", func(node *C.podnet_node, cp *C.podnet_peer, cerr **C.podnet_error) C.podnet_status {
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
	cps, free, err := buildAll(peers, func(p *Peer) (*C.podnet_peer, error) {
		return p.build("SyncPeers")
	}, freePeer)
	if err != nil {
		return nil, err
	}
	defer free()
	rep, err := query(n, "SyncPeers", "podnet_node_peers_sync", func(node *C.podnet_node, out **C.podnet_sync_report, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_peers_sync(node, arrayPtr(cps), C.size_t(len(cps)), out, cerr)
	}, func(r *C.podnet_sync_report) { C.podnet_sync_report_free(r) }, copySyncReport)
	runtime.KeepAlive(cps)
	return rep, err
}

// ListPeers returns the peers the node is configured with (its records), sorted by name.
func (n *Node) ListPeers() ([]Peer, error) {
	return query(n, "ListPeers", "podnet_node_peer_list", func(node *C.podnet_node, out **C.podnet_peer_list, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_peer_list(node, out, cerr)
	}, func(l *C.podnet_peer_list) { C.podnet_peer_list_free(l) }, copyPeerList)
}

// build copies p into a new C peer (free it with podnet_peer_free).
func (p *Peer) build(op string) (*C.podnet_peer, error) {
	if err := checkString(op, "peer name", p.Name); err != nil {
		return nil, err
	}
	if !p.UnderlayIP.IsValid() {
		return nil, argError(CodeInvalidAddress, op, "peer %s: no underlay IP", p.Name)
	}
	return build(op, "peer name", p.Name, "podnet_peer_new", func(name *C.char, out **C.podnet_peer, cerr **C.podnet_error) C.podnet_status {
		ip := C.CString(p.UnderlayIP.String())
		defer C.free(unsafe.Pointer(ip))
		return C.podnet_peer_new(name, ip, out, cerr)
	}, freePeer, p.apply)
}

func freePeer(cp *C.podnet_peer) { C.podnet_peer_free(cp) }

func (p *Peer) apply(cp *C.podnet_peer, set *setter) {
	for _, pfx := range p.PodCIDRs {
		if set.err == nil && !pfx.IsValid() {
			set.err = argError(CodeInvalidAddress, set.op, "peer %s: invalid pod CIDR %v", p.Name, pfx)
		}
		set.str("pod CIDR", pfx.String(), "podnet_peer_add_pod_cidr", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_peer_add_pod_cidr(cp, s, e)
		})
	}
	if p.VTEPMAC != nil {
		set.call("podnet_peer_set_vtep_mac", func(e **C.podnet_error) C.podnet_status {
			// A Go pointer to pointer-free memory: C may read it during the call.
			var mac *C.uint8_t
			if len(p.VTEPMAC) > 0 {
				mac = (*C.uint8_t)(unsafe.Pointer(&p.VTEPMAC[0]))
			}
			return C.podnet_peer_set_vtep_mac(cp, mac, C.size_t(len(p.VTEPMAC)), e)
		})
	}
}
