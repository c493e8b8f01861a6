package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"github.com/podnet/podnet/bindings-go/internal/cabi"
	"net/netip"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// AgentOptions tell an Agent where the cluster's store is (docs/agent.md).
type AgentOptions struct {
	// EtcdEndpoints are etcd client URLs, "http://IP:PORT" (at least one).
	EtcdEndpoints []string
	// Prefix is the store prefix; "" means flannel's "/coreos.com/network".
	Prefix string
	// LeaseTTL is the TTL of the node's etcd lease (whole seconds, at least 2 s); 0 means
	// flannel's 24 h.
	LeaseTTL time.Duration
	// StateFile is where the agent remembers its subnet; "" means
	// "/run/podnet/agent/<node>.json".
	StateFile string
}

// AgentStatus is what an Agent reports.
type AgentStatus struct {
	Node           string         `json:"node"`
	Ready          bool           `json:"ready"`
	Phase          string         `json:"phase"`
	PodCIDRs       []netip.Prefix `json:"pod_cidrs"`
	Key            string         `json:"key"`
	LeaseID        int64          `json:"lease_id"`
	Peers          int            `json:"peers"`
	StoreReachable bool           `json:"store_reachable"`
	Revision       int64          `json:"revision"`
	LeaseLost      uint64         `json:"lease_lost"`
	PeerChanges    uint64         `json:"peer_changes"`
	LastError      string         `json:"last_error"`
	PID            uint32         `json:"pid"`
}

// Agent is the cluster agent running in this process: it leases the node's pod CIDR from etcd
// (flannel's layout), opens the node with it and keeps every other node programmed as a peer,
// on a thread of its own. Safe for concurrent use; Close waits for calls in flight.
type Agent struct {
	mu  sync.RWMutex
	ptr *C.podnet_agent
}

// StartAgent starts an agent for the node cfg describes (its Underlay is required, IPv4: the
// lease's PublicIP; pod CIDRs, VXLAN settings and the cross-node mode come from the store).
// It returns as soon as the agent runs; WaitReady waits for it to be ready. Close it when
// done: the data plane and the lease stay.
func StartAgent(cfg NodeConfig, opts AgentOptions) (*Agent, error) {
	ccfg, err := cfg.build("StartAgent")
	if err != nil {
		return nil, err
	}
	defer C.podnet_node_config_free(ccfg)
	for _, e := range opts.EtcdEndpoints {
		if err := checkString("StartAgent", "etcd endpoint", e); err != nil {
			return nil, err
		}
	}
	eps := cabi.NewCStrings(opts.EtcdEndpoints)
	defer eps.Free()
	var prefix, state *C.char
	if opts.Prefix != "" {
		prefix = C.CString(opts.Prefix)
		defer C.free(unsafe.Pointer(prefix))
	}
	if opts.StateFile != "" {
		state = C.CString(opts.StateFile)
		defer C.free(unsafe.Pointer(state))
	}
	ttl := opts.LeaseTTL / time.Second
	if ttl > 1<<32-1 {
		ttl = 1<<32 - 1
	}
	var ptr *C.podnet_agent
	var cerr *C.podnet_error
	st := C.podnet_agent_start(ccfg, (**C.char)(eps.Ptr()), C.size_t(len(eps)), prefix, C.uint32_t(ttl), state, &ptr, &cerr)
	runtime.KeepAlive(eps)
	if err := takeError(st, cerr, "podnet_agent_start"); err != nil {
		return nil, err
	}
	a := &Agent{ptr: ptr}
	runtime.SetFinalizer(a, (*Agent).Close)
	return a, nil
}

func (a *Agent) acquire() (*C.podnet_agent, error) {
	if a == nil {
		return nil, ErrClosed
	}
	a.mu.RLock()
	if a.ptr == nil {
		a.mu.RUnlock()
		return nil, ErrClosed
	}
	return a.ptr, nil
}

// Ready reports whether the agent is ready now: subnet leased, node opened, peers programmed.
func (a *Agent) Ready() bool {
	p, err := a.acquire()
	if err != nil {
		return false
	}
	r := bool(C.podnet_agent_is_ready(p))
	a.mu.RUnlock()
	runtime.KeepAlive(a)
	return r
}

// WaitReady waits until the agent is ready or ctx ends; then the error carries the agent's
// last error (ErrIO), or ctx's error when the agent had none.
func (a *Agent) WaitReady(ctx context.Context) error {
	for {
		p, err := a.acquire()
		if err != nil {
			return err
		}
		var cerr *C.podnet_error
		st := C.podnet_agent_wait_ready(p, 50, &cerr)
		a.mu.RUnlock()
		runtime.KeepAlive(a)
		err = takeError(st, cerr, "podnet_agent_wait_ready")
		if err == nil {
			return nil
		}
		if s, serr := a.Status(); serr == nil && s.Phase == "stopped" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		default:
		}
	}
}

// Status is the agent's current status.
func (a *Agent) Status() (AgentStatus, error) {
	p, err := a.acquire()
	if err != nil {
		return AgentStatus{}, err
	}
	var b *C.podnet_bytes
	var cerr *C.podnet_error
	st := C.podnet_agent_status_json(p, &b, &cerr)
	a.mu.RUnlock()
	runtime.KeepAlive(a)
	if err := takeError(st, cerr, "podnet_agent_status_json"); err != nil {
		return AgentStatus{}, err
	}
	var s AgentStatus
	if err := json.Unmarshal(cabi.TakeBytes(unsafe.Pointer(b)), &s); err != nil {
		return AgentStatus{}, internalError("Status", "agent status: %v", err)
	}
	return s, nil
}

// Leave stops the agent and leaves the cluster: its etcd lease is revoked and its key deleted,
// so every other node removes this one. The local data plane stays.
func (a *Agent) Leave() error {
	p, err := a.acquire()
	if err != nil {
		return err
	}
	var cerr *C.podnet_error
	st := C.podnet_agent_leave(p, &cerr)
	a.mu.RUnlock()
	runtime.KeepAlive(a)
	return takeError(st, cerr, "podnet_agent_leave")
}

// Close stops the agent (if it still runs) and frees it; the data plane and the lease stay.
// Idempotent; always returns nil.
func (a *Agent) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ptr == nil {
		return nil
	}
	runtime.SetFinalizer(a, nil)
	C.podnet_agent_free(a.ptr)
	a.ptr = nil
	return nil
}
