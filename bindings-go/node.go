package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Node is an open node: one network namespace (a Kubernetes node), its pod CIDRs, bridge and
// records.
//
// A Node is safe for concurrent use by any number of goroutines: calls run in parallel in the
// library, and two calls for the same sandbox id serialize there. Close waits for the calls
// in flight and makes later ones return ErrClosed. No call needs runtime.LockOSThread: the
// library never changes the calling thread's namespaces.
type Node struct {
	// mu is read-held by every call on ptr and write-held by Close: the C ABI forbids
	// podnet_node_free concurrently with any other call on the node.
	mu   sync.RWMutex
	ptr  *C.podnet_node
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
	n := &Node{ptr: ptr, name: cfg.Name}
	runtime.SetFinalizer(n, (*Node).Close)
	return n, nil
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
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ptr == nil {
		return nil
	}
	runtime.SetFinalizer(n, nil)
	C.podnet_node_free(n.ptr)
	n.ptr = nil
	return nil
}

// acquire read-locks the node for one call; release with n.mu.RUnlock.
func (n *Node) acquire() (*C.podnet_node, error) {
	if n == nil {
		return nil, ErrClosed
	}
	n.mu.RLock()
	if n.ptr == nil {
		n.mu.RUnlock()
		return nil, ErrClosed
	}
	return n.ptr, nil
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
	node, err := n.acquire()
	if err != nil {
		return nil, err
	}
	var sb *C.podnet_sandbox
	var cerr *C.podnet_error
	st := C.podnet_node_sandbox_create(node, cspec, &sb, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	if err := takeError(st, cerr, "podnet_node_sandbox_create"); err != nil {
		return nil, err
	}
	defer C.podnet_sandbox_free(sb)
	return copySandbox(sb, "CreateSandbox")
}

// DeleteSandbox releases a sandbox's addresses and host ports, removes its netns (the kernel
// destroys the veth with it; for a netns the runtime passed in, only podnet's veth there) and
// its record. Idempotent: an unknown id is success. When it returns nil the addresses are free
// and a create with the same id succeeds.
func (n *Node) DeleteSandbox(id string) error {
	if err := checkString("DeleteSandbox", "sandbox id", id); err != nil {
		return err
	}
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	node, err := n.acquire()
	if err != nil {
		return err
	}
	var cerr *C.podnet_error
	st := C.podnet_node_sandbox_delete(node, cid, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	return takeError(st, cerr, "podnet_node_sandbox_delete")
}

// GetSandbox reads a sandbox's record; an unknown id gives ErrNotFound.
func (n *Node) GetSandbox(id string) (*Sandbox, error) {
	if err := checkString("GetSandbox", "sandbox id", id); err != nil {
		return nil, err
	}
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	node, err := n.acquire()
	if err != nil {
		return nil, err
	}
	var sb *C.podnet_sandbox
	var cerr *C.podnet_error
	st := C.podnet_node_sandbox_get(node, cid, &sb, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	if err := takeError(st, cerr, "podnet_node_sandbox_get"); err != nil {
		return nil, err
	}
	defer C.podnet_sandbox_free(sb)
	return copySandbox(sb, "GetSandbox")
}

// ListSandboxes returns the node's sandboxes, sorted by id.
func (n *Node) ListSandboxes() ([]*Sandbox, error) {
	node, err := n.acquire()
	if err != nil {
		return nil, err
	}
	var list *C.podnet_sandbox_list
	var cerr *C.podnet_error
	st := C.podnet_node_sandbox_list(node, &list, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	if err := takeError(st, cerr, "podnet_node_sandbox_list"); err != nil {
		return nil, err
	}
	defer C.podnet_sandbox_list_free(list)
	return copySandboxList(list)
}

// CheckSandbox compares a sandbox's kernel state (addresses, veth, routes, pod interface)
// with its record. Differences are not an error: they are the report's Problems. An unknown
// id gives ErrNotFound.
func (n *Node) CheckSandbox(id string) (*CheckReport, error) {
	if err := checkString("CheckSandbox", "sandbox id", id); err != nil {
		return nil, err
	}
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	node, err := n.acquire()
	if err != nil {
		return nil, err
	}
	var rep *C.podnet_check_report
	var cerr *C.podnet_error
	st := C.podnet_node_sandbox_check(node, cid, &rep, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	if err := takeError(st, cerr, "podnet_node_sandbox_check"); err != nil {
		return nil, err
	}
	defer C.podnet_check_report_free(rep)
	return copyCheckReport(rep), nil
}

// GC deletes every sandbox whose id is not in liveIDs (the runtime's live pods) and every
// orphan podnet left behind (address reservations, netns pins, host veths without a record).
// It keeps going after errors and reports them in the report's Errors; every id is checked
// before anything is deleted. An empty liveIDs deletes every sandbox.
func (n *Node) GC(liveIDs []string) (*GCReport, error) {
	ids := make(cStrings, 0, len(liveIDs))
	defer func() { ids.free() }()
	for _, id := range liveIDs {
		if err := checkString("GC", "live sandbox id", id); err != nil {
			return nil, err
		}
		ids = append(ids, C.CString(id))
	}
	node, err := n.acquire()
	if err != nil {
		return nil, err
	}
	var rep *C.podnet_gc_report
	var cerr *C.podnet_error
	st := C.podnet_node_gc(node, ids.ptr(), C.size_t(len(ids)), &rep, &cerr)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	runtime.KeepAlive(ids)
	if err := takeError(st, cerr, "podnet_node_gc"); err != nil {
		return nil, err
	}
	defer C.podnet_gc_report_free(rep)
	return copyGCReport(rep)
}

// do runs one C call on the node under the read lock; fn gets the node's pointer. It returns
// ErrClosed, without calling fn, after Close.
func (n *Node) do(fn func(node *C.podnet_node)) error {
	node, err := n.acquire()
	if err != nil {
		return err
	}
	fn(node)
	n.mu.RUnlock()
	runtime.KeepAlive(n)
	return nil
}
