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

	"github.com/podnet/podnet/bindings-go/internal/cabi"
)

// Node is an open node: one network namespace (a Kubernetes node), its pod CIDRs, bridge and
// records.
//
// A Node is safe for concurrent use by any number of goroutines: calls run in parallel in the
// library, and two calls for the same sandbox id serialize there. Close waits for the calls
// in flight and makes later ones return ErrClosed. No call needs runtime.LockOSThread: the
// library never changes the calling thread's namespaces.
type Node struct {
	// h: every call read-holds it (the C node is thread-safe), Close write-holds it.
	h    *cabi.Handle[*C.podnet_node]
	name string
}

// OpenNode validates cfg, binds to its network namespace and initializes it (idempotent:
// forwarding on, and in bridge mode the bridge with the gateway addresses). It needs
// CAP_NET_ADMIN and CAP_SYS_ADMIN. Opening the same node (same name and state dir) again, in
// this or another process, is fine: the handles share the state.
//
// Close the node when done; a Node that becomes unreachable is closed by a finalizer, but
// only when the garbage collector gets to it.
func OpenNode(cfg NodeConfig) (*Node, error) {
	ccfg, err := cfg.build("OpenNode")
	if err != nil {
		return nil, err
	}
	defer C.podnet_node_config_free(ccfg)
	var ptr *C.podnet_node
	var cerr *C.podnet_error
	st := C.podnet_node_open(ccfg, &ptr, &cerr)
	if err := takeError(st, cerr, "podnet_node_open"); err != nil {
		return nil, err
	}
	return &Node{h: cabi.NewHandle(ptr, func(p *C.podnet_node) { C.podnet_node_free(p) }), name: cfg.Name}, nil
}

// Name is the node's name (NodeConfig.Name).
func (n *Node) Name() string { return n.name }

// Close stops the node's threads and frees it. The pods stay (they live in the kernel and the
// state dir); open the node again to manage them. Close is idempotent and always returns nil;
// it waits for calls in flight on other goroutines. Do not call it from a log function.
func (n *Node) Close() error {
	if n == nil {
		return nil
	}
	return n.h.Close()
}

// call runs one C call on the node and turns its status and error object into an error; op
// names the C function.
func (n *Node) call(op string, fn func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status) error {
	if n == nil {
		return ErrClosed
	}
	return cabi.Call(n.h, false, op, fn, takeError)
}

// withCString checks s (what it is, for the error) and lends it to fn as a C string.
func withCString(op, what, s string, fn func(*C.char) error) error {
	if err := checkString(op, what, s); err != nil {
		return err
	}
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return fn(cs)
}

// query runs one C call on the node (cop names it) that writes a new C object to *out, and
// returns what cp copies of it into Go; free frees the C object. op names the Go method.
func query[P comparable, T any](n *Node, op, cop string, fn func(node *C.podnet_node, out *P, cerr **C.podnet_error) C.podnet_status, free func(P), cp func(string, P) (T, error)) (T, error) {
	var out P
	err := n.call(cop, func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return fn(node, &out, cerr)
	})
	if err != nil {
		var zero T
		return zero, err
	}
	defer free(out)
	return cp(op, out)
}

// callWith builds a C object from a Go value (build: its build method, for op), passes it to
// one C call on the node (cop names it) and frees it.
func callWith[P any](n *Node, op string, build func(string) (P, error), free func(P), cop string, fn func(node *C.podnet_node, obj P, cerr **C.podnet_error) C.podnet_status) error {
	obj, err := build(op)
	if err != nil {
		return err
	}
	defer free(obj)
	return n.call(cop, func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
		return fn(node, obj, cerr)
	})
}

// queryID is query for a call about one sandbox: id is checked and lent to fn as a C string.
func queryID[P comparable, T any](n *Node, op, id, cop string, fn func(node *C.podnet_node, cid *C.char, out *P, cerr **C.podnet_error) C.podnet_status, free func(P), cp func(string, P) (T, error)) (T, error) {
	var v T
	err := withCString(op, "sandbox id", id, func(cid *C.char) (err error) {
		v, err = query(n, op, cop, func(node *C.podnet_node, out *P, cerr **C.podnet_error) C.podnet_status {
			return fn(node, cid, out, cerr)
		}, free, cp)
		return err
	})
	return v, err
}

// CreateSandbox creates a sandbox: allocates its addresses, creates and pins its netns (or
// adopts spec.NetnsPath), attaches a veth, installs its host ports and records it. Any failure
// undoes every step taken. Idempotent: the same spec again returns the existing sandbox; a
// different spec for an existing id gives ErrAlreadyExists. A host port mapped to another
// sandbox gives ErrConflict.
func (n *Node) CreateSandbox(spec SandboxSpec) (*Sandbox, error) {
	cspec, err := spec.build("CreateSandbox")
	if err != nil {
		return nil, err
	}
	defer C.podnet_sandbox_spec_free(cspec)
	return query(n, "CreateSandbox", "podnet_node_sandbox_create", func(node *C.podnet_node, out **C.podnet_sandbox, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_sandbox_create(node, cspec, out, cerr)
	}, freeSandbox, copySandbox)
}

// DeleteSandbox releases a sandbox's addresses and host ports, removes its netns (the kernel
// destroys the veth with it; for a netns the runtime passed in, only podnet's veth there) and
// its record. Idempotent: an unknown id is success. When it returns nil the addresses are free
// and a create with the same id succeeds.
func (n *Node) DeleteSandbox(id string) error {
	return withCString("DeleteSandbox", "sandbox id", id, func(cid *C.char) error {
		return n.call("podnet_node_sandbox_delete", func(node *C.podnet_node, cerr **C.podnet_error) C.podnet_status {
			return C.podnet_node_sandbox_delete(node, cid, cerr)
		})
	})
}

// GetSandbox reads a sandbox's record; an unknown id gives ErrNotFound.
func (n *Node) GetSandbox(id string) (*Sandbox, error) {
	return queryID(n, "GetSandbox", id, "podnet_node_sandbox_get", func(node *C.podnet_node, cid *C.char, out **C.podnet_sandbox, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_sandbox_get(node, cid, out, cerr)
	}, freeSandbox, copySandbox)
}

// ListSandboxes returns the node's sandboxes, sorted by id.
func (n *Node) ListSandboxes() ([]*Sandbox, error) {
	return query(n, "ListSandboxes", "podnet_node_sandbox_list", func(node *C.podnet_node, out **C.podnet_sandbox_list, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_sandbox_list(node, out, cerr)
	}, func(l *C.podnet_sandbox_list) { C.podnet_sandbox_list_free(l) }, copySandboxList)
}

// CheckSandbox compares a sandbox's kernel state (addresses, veth, routes, pod interface)
// with its record. Differences are not an error: they are the report's Problems. An unknown
// id gives ErrNotFound.
func (n *Node) CheckSandbox(id string) (*CheckReport, error) {
	return queryID(n, "CheckSandbox", id, "podnet_node_sandbox_check", func(node *C.podnet_node, cid *C.char, out **C.podnet_check_report, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_sandbox_check(node, cid, out, cerr)
	}, func(r *C.podnet_check_report) { C.podnet_check_report_free(r) }, copyCheckReport)
}

// CheckReport is what CheckSandbox found for one sandbox: one line per difference between the
// kernel and the record, none when healthy. A copy: it owns no C memory.
type CheckReport struct {
	ID string
	// OK is true when the kernel matches the record.
	OK bool
	// Problems, e.g. "host veth pn3f2a1c0b9d11 is missing".
	Problems []string
}

// GCReport is what GC removed, and the errors it met and went past. A copy: it owns no C
// memory.
type GCReport struct {
	// Sandboxes are the ids of the sandboxes deleted (not in the live list).
	Sandboxes []string
	// IPs are orphaned address reservations released.
	IPs []netip.Addr
	// Netns are the paths of orphaned netns pins removed.
	Netns []string
	// Links are the names of orphaned host veths deleted.
	Links []string
	// Errors, one line each.
	Errors []string
}

// GC deletes every sandbox whose id is not in liveIDs (the runtime's live pods) and every
// orphan podnet left behind (address reservations, netns pins, host veths without a record).
// It keeps going after errors and reports them in the report's Errors; every id is checked
// before anything is deleted. An empty liveIDs deletes every sandbox.
func (n *Node) GC(liveIDs []string) (*GCReport, error) {
	for _, id := range liveIDs {
		if err := checkString("GC", "live sandbox id", id); err != nil {
			return nil, err
		}
	}
	ids := cabi.NewCStrings(liveIDs)
	defer ids.Free()
	rep, err := query(n, "GC", "podnet_node_gc", func(node *C.podnet_node, out **C.podnet_gc_report, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_gc(node, (**C.char)(ids.Ptr()), C.size_t(len(ids)), out, cerr)
	}, func(r *C.podnet_gc_report) { C.podnet_gc_report_free(r) }, copyGCReport)
	runtime.KeepAlive(ids)
	return rep, err
}

// NodeStatus is what a node is, as the library reports it.
type NodeStatus struct {
	// Name is the node name.
	Name string
	// StateDir is the node's state directory.
	StateDir string
	// PodMTU is the MTU of pod interfaces (the VXLAN MTU with an overlay).
	PodMTU uint32
	// Gateways are the addresses pods use as gateways, one per pod CIDR.
	Gateways []netip.Addr
	// VTEPMAC is the node's own VTEP MAC, what other nodes must program for it (a flannel
	// lease's VtepMAC); nil when the node has no VXLAN device.
	VTEPMAC net.HardwareAddr
	// Ready is false while the node refuses sandbox creates with ErrNotReady (its cluster agent
	// has not programmed its peers yet).
	Ready bool
}

// Status reads the node's status (no kernel request).
func (n *Node) Status() (*NodeStatus, error) {
	return query(n, "podnet_node_get_status", "podnet_node_get_status", func(node *C.podnet_node, out **C.podnet_node_status, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_get_status(node, out, cerr)
	}, func(st *C.podnet_node_status) { C.podnet_node_status_free(st) }, copyNodeStatus)
}
