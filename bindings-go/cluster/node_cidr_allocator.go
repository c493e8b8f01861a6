package cluster

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"github.com/podnet/podnet/bindings-go/internal/cabi"
	"net/netip"
	"runtime"
	"unsafe"
)

// Cluster-wide allocators: pure values the caller stores (MarshalBinary) wherever the cluster
// keeps its truth, with compare-and-swap. podnet never runs a store of its own.
//
// Each holds a C handle: Close it (Close is idempotent; a finalizer closes a forgotten one).
// Unlike the C objects, the Go values are safe for concurrent use: changes take a lock, reads
// share it.

// NodeCIDRAllocator hands each node one pod CIDR per cluster CIDR (one, or one IPv4 and one
// IPv6): round-robin, like Kubernetes' range allocator. It never hands out a CIDR
// overlapping the service ranges it was built with.
type NodeCIDRAllocator struct {
	h *cabi.Handle[*C.podnet_node_cidr_allocator]
}

// NewNodeCIDRAllocator creates an empty allocator. clusterCIDRs: one, or one IPv4 and one
// IPv6 (primary family first). nodeMasks: one node CIDR prefix length per cluster CIDR, or
// none for the Kubernetes defaults /24 and /64. serviceCIDRs: ranges to keep clear (they must
// not overlap the cluster CIDRs).
func NewNodeCIDRAllocator(clusterCIDRs []netip.Prefix, nodeMasks []uint8, serviceCIDRs []netip.Prefix) (*NodeCIDRAllocator, error) {
	const op = "NewNodeCIDRAllocator"
	cluster, err := cPrefixes(op, "cluster CIDR", clusterCIDRs)
	if err != nil {
		return nil, err
	}
	defer cluster.Free()
	services, err := cPrefixes(op, "service CIDR", serviceCIDRs)
	if err != nil {
		return nil, err
	}
	defer services.Free()
	var masks *C.uint8_t
	if len(nodeMasks) > 0 {
		// Pointer-free Go memory: C may read it during the call.
		masks = (*C.uint8_t)(unsafe.Pointer(&nodeMasks[0]))
	}
	return create("podnet_node_cidr_allocator_new", func(out **C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		defer runtime.KeepAlive(nodeMasks)
		return C.podnet_node_cidr_allocator_new(cluster.ptr(), C.size_t(len(cluster.CStrings)), masks, C.size_t(len(nodeMasks)),
			services.ptr(), C.size_t(len(services.CStrings)), out, cerr)
	}, newNodeCIDRAllocator)
}

// NodeCIDRAllocatorFromBytes restores an allocator saved with MarshalBinary. Damaged or
// foreign bytes give ErrInvalidArgument.
func NodeCIDRAllocatorFromBytes(data []byte) (*NodeCIDRAllocator, error) {
	return create("podnet_node_cidr_allocator_from_bytes", func(out **C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		defer runtime.KeepAlive(data)
		return C.podnet_node_cidr_allocator_from_bytes(bytesPtr(data), C.size_t(len(data)), out, cerr)
	}, newNodeCIDRAllocator)
}

func newNodeCIDRAllocator(ptr *C.podnet_node_cidr_allocator) *NodeCIDRAllocator {
	return &NodeCIDRAllocator{h: cabi.NewHandle(ptr, func(p *C.podnet_node_cidr_allocator) { C.podnet_node_cidr_allocator_free(p) })}
}

// Close frees the allocator. Idempotent; always nil.
func (a *NodeCIDRAllocator) Close() error {
	if a == nil {
		return nil
	}
	return a.h.Close()
}

// Allocate hands out one node CIDR per family for a new node, primary family first (its
// spec.podCIDRs). All or nothing: ErrExhausted when one family has none left.
func (a *NodeCIDRAllocator) Allocate() ([]netip.Prefix, error) {
	var list *C.podnet_string_list
	err := call(a.h, true, "podnet_node_cidr_allocator_allocate", func(ptr *C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_cidr_allocator_allocate(ptr, &list, cerr)
	})
	if err != nil {
		return nil, err
	}
	defer C.podnet_string_list_free(list)
	return parsePrefixes("Allocate", cabi.GoStrings(unsafe.Pointer(list.items), int(list.count)))
}

// Occupy marks node CIDRs as allocated (adopting an existing node's spec.podCIDRs): at least
// one, at most one per family. All or nothing; ErrAlreadyExists when one is allocated.
func (a *NodeCIDRAllocator) Occupy(cidrs ...netip.Prefix) error {
	cs, err := cPrefixes("Occupy", "node CIDR", cidrs)
	if err != nil {
		return err
	}
	defer cs.Free()
	err = call(a.h, true, "podnet_node_cidr_allocator_occupy", func(ptr *C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_cidr_allocator_occupy(ptr, cs.ptr(), C.size_t(len(cs.CStrings)), cerr)
	})
	return err
}

// Release frees node CIDRs (a deleted node's), at most one per family, and returns how many
// of them were allocated. Freeing a free CIDR is not an error, so cleanup can be retried.
func (a *NodeCIDRAllocator) Release(cidrs ...netip.Prefix) (int, error) {
	cs, err := cPrefixes("Release", "node CIDR", cidrs)
	if err != nil {
		return 0, err
	}
	defer cs.Free()
	var released C.size_t
	err = call(a.h, true, "podnet_node_cidr_allocator_release", func(ptr *C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_cidr_allocator_release(ptr, cs.ptr(), C.size_t(len(cs.CStrings)), &released, cerr)
	})
	if err != nil {
		return 0, err
	}
	return int(released), nil
}

// IsAllocated reports whether node CIDR cidr is allocated (ErrInvalidArgument when it is not
// one of the allocator's node CIDRs).
func (a *NodeCIDRAllocator) IsAllocated(cidr netip.Prefix) (bool, error) {
	cs, err := cPrefixes("IsAllocated", "node CIDR", []netip.Prefix{cidr})
	if err != nil {
		return false, err
	}
	defer cs.Free()
	var allocated C.bool
	err = call(a.h, false, "podnet_node_cidr_allocator_is_allocated", func(ptr *C.podnet_node_cidr_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_cidr_allocator_is_allocated(ptr, (*C.char)(cs.CStrings[0]), &allocated, cerr)
	})
	if err != nil {
		return false, err
	}
	return bool(allocated), nil
}

// Capacity is how many nodes get a full set of node CIDRs from an empty allocator (0 after
// Close).
func (a *NodeCIDRAllocator) Capacity() uint64 {
	return count(a.h, func(p *C.podnet_node_cidr_allocator) C.uint64_t { return C.podnet_node_cidr_allocator_capacity(p) })
}

// Available is how many more Allocate calls succeed now (0 after Close).
func (a *NodeCIDRAllocator) Available() uint64 {
	return count(a.h, func(p *C.podnet_node_cidr_allocator) C.uint64_t { return C.podnet_node_cidr_allocator_available(p) })
}

// MarshalBinary saves the allocator's state (ranges, node masks, allocations, round-robin
// positions): a versioned header, JSON configuration, one bitmap per family and a CRC-32.
// NodeCIDRAllocatorFromBytes restores it.
func (a *NodeCIDRAllocator) MarshalBinary() ([]byte, error) {
	return marshal(a.h, "podnet_node_cidr_allocator_to_bytes", func(p *C.podnet_node_cidr_allocator, out **C.podnet_bytes, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_cidr_allocator_to_bytes(p, out, cerr)
	})
}
