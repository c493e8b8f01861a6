package cluster

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net/netip"
	"unsafe"

	"github.com/podnet/podnet/bindings-go/internal/cabi"
)

// takeError: see cabi.TakeError.
func takeError(status C.podnet_status, cerr *C.podnet_error, op string) error {
	return cabi.TakeError(uint32(status), unsafe.Pointer(cerr), op)
}

var (
	argError      = cabi.ArgError
	internalError = cabi.InternalError
)

// goString copies a C string owned by a podnet object; NULL gives "".
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// bytesPtr points C at data (pointer-free Go memory, readable during the call); nil when
// empty.
func bytesPtr(data []byte) *C.uint8_t {
	if len(data) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&data[0]))
}

// cStrings holds C strings for one call; ptr is the array C reads.
type cStrings struct{ cabi.CStrings }

func (c cStrings) ptr() **C.char { return (**C.char)(c.Ptr()) }

// cPrefixes converts prefixes to C strings (free them with free).
func cPrefixes(op, what string, ps []netip.Prefix) (cStrings, error) {
	ss := make([]string, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			return cStrings{}, argError(cabi.CodeInvalidAddress, op, "invalid %s %v", what, p)
		}
		ss = append(ss, p.String())
	}
	return cStrings{cabi.NewCStrings(ss)}, nil
}

// cAddr converts an address to a new C string (free it).
func cAddr(op, what string, a netip.Addr) (*C.char, error) {
	if !a.IsValid() {
		return nil, argError(cabi.CodeInvalidAddress, op, "invalid %s %v", what, a)
	}
	return C.CString(a.String()), nil
}

// create runs a C constructor (cop names it) that writes a new object to *out, and wraps the
// object in its Go value with wrap.
func create[P comparable, T any](cop string, fn func(out *P, cerr **C.podnet_error) C.podnet_status, wrap func(P) T) (T, error) {
	var ptr P
	var cerr *C.podnet_error
	st := fn(&ptr, &cerr)
	if err := takeError(st, cerr, cop); err != nil {
		var zero T
		return zero, err
	}
	return wrap(ptr), nil
}

// call runs one C call on h's object: see cabi.Call.
func call[P comparable](h *cabi.Handle[P], exclusive bool, op string, fn func(P, **C.podnet_error) C.podnet_status) error {
	return cabi.Call(h, exclusive, op, fn, takeError)
}

// marshal saves h's object with its _to_bytes (cop names it), copied into Go memory.
func marshal[P comparable](h *cabi.Handle[P], cop string, fn func(P, **C.podnet_bytes, **C.podnet_error) C.podnet_status) ([]byte, error) {
	var b *C.podnet_bytes
	err := call(h, false, cop, func(p P, cerr **C.podnet_error) C.podnet_status { return fn(p, &b, cerr) })
	if err != nil {
		return nil, err
	}
	return cabi.TakeBytes(unsafe.Pointer(b)), nil
}

// count reads one number of h's object (0 after Close).
func count[P comparable](h *cabi.Handle[P], fn func(P) C.uint64_t) uint64 {
	var n C.uint64_t
	_ = h.Read(func(p P) { n = fn(p) })
	return uint64(n)
}

// parsePrefixes parses the CIDRs of a list the library returned.
func parsePrefixes(op string, ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, internalError(op, "CIDR %q: %v", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func copyPlan(op string, plan *C.podnet_plan_result) (*PlanResult, error) {
	v := C.podnet_plan_result_get_info(plan)
	r := &PlanResult{
		Nodes:        uint64(v.nodes),
		ControlPlane: uint64(v.control_plane),
		Workers:      uint64(v.workers),
		PodsPerNode:  uint64(v.pods_per_node),
		PodCapacity:  uint64(v.pod_capacity),
		JSON:         goString(v.json),
	}
	if v.service_count > 0 {
		for _, s := range unsafe.Slice(v.services, int(v.service_count)) {
			p, err := netip.ParsePrefix(goString(s.cidr))
			if err != nil {
				return nil, internalError(op, "service range %q: %v", goString(s.cidr), err)
			}
			r.Services = append(r.Services, PlanService{CIDR: p, IPs: uint64(s.service_ips)})
		}
	}
	if v.warning_count > 0 {
		for _, w := range unsafe.Slice(v.warnings, int(v.warning_count)) {
			r.Warnings = append(r.Warnings, PlanWarning{Code: PlanWarningCode(w.code), Message: goString(w.message)})
		}
	}
	return r, nil
}
