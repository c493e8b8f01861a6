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

// See node_cidr_allocator.go for what the allocators share (storage, Close, locking).

// ServiceIPAllocator hands out the service IPs of one service range
// (--service-cluster-ip-range), like Kubernetes' bitmap allocator: user-chosen IPs anywhere,
// dynamic ones at random from the upper band first, never the API server's (the first
// address) unless asked for.
type ServiceIPAllocator struct {
	h *cabi.Handle[*C.podnet_service_ip_allocator]
}

// NewServiceIPAllocator creates an empty allocator for cidr ("10.96.0.0/12",
// "fd00:96::/108"). ErrInvalidArgument for host bits, an IPv4 range larger than /12 or
// smaller than /30, or an IPv6 /128.
func NewServiceIPAllocator(cidr netip.Prefix) (*ServiceIPAllocator, error) {
	cs, err := cPrefixes("NewServiceIPAllocator", "service CIDR", []netip.Prefix{cidr})
	if err != nil {
		return nil, err
	}
	defer cs.Free()
	return create("podnet_service_ip_allocator_new", func(out **C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_new((*C.char)(cs.CStrings[0]), out, cerr)
	}, newServiceIPAllocator)
}

// ServiceIPAllocatorFromBytes restores an allocator saved with MarshalBinary (with a fresh
// random seed). Damaged or foreign bytes give ErrInvalidArgument.
func ServiceIPAllocatorFromBytes(data []byte) (*ServiceIPAllocator, error) {
	return create("podnet_service_ip_allocator_from_bytes", func(out **C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		defer runtime.KeepAlive(data)
		return C.podnet_service_ip_allocator_from_bytes(bytesPtr(data), C.size_t(len(data)), out, cerr)
	}, newServiceIPAllocator)
}

func newServiceIPAllocator(ptr *C.podnet_service_ip_allocator) *ServiceIPAllocator {
	return &ServiceIPAllocator{h: cabi.NewHandle(ptr, func(p *C.podnet_service_ip_allocator) { C.podnet_service_ip_allocator_free(p) })}
}

// Close frees the allocator. Idempotent; always nil.
func (a *ServiceIPAllocator) Close() error {
	if a == nil {
		return nil
	}
	return a.h.Close()
}

// Allocate takes a user-chosen service IP (a Service's spec.clusterIP), anywhere in the
// range, the API server's included. ErrAlreadyExists when it is taken; ErrInvalidArgument
// when it is of the other family, outside the range, or its network or broadcast address.
func (a *ServiceIPAllocator) Allocate(ip netip.Addr) error {
	cs, err := cAddr("Allocate", "service IP", ip)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cs))
	err = call(a.h, true, "podnet_service_ip_allocator_allocate", func(ptr *C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_allocate(ptr, cs, cerr)
	})
	return err
}

// AllocateNext takes a free service IP chosen at random (upper band first, then the low band
// kept for user-chosen IPs; never the API server's). ErrExhausted when none is left.
func (a *ServiceIPAllocator) AllocateNext() (netip.Addr, error) {
	// C writes the text into this Go buffer (pointer-free memory) during the call.
	var buf [C.PODNET_IP_STR_LEN]C.char
	err := call(a.h, true, "podnet_service_ip_allocator_allocate_next", func(ptr *C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_allocate_next(ptr, &buf[0], C.size_t(len(buf)), cerr)
	})
	if err != nil {
		return netip.Addr{}, err
	}
	s := C.GoString(&buf[0])
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, internalError("AllocateNext", "address %q: %v", s, err)
	}
	return ip, nil
}

// Release frees a service IP and reports whether it was allocated. Releasing a free address
// is not an error, so cleanup can be retried.
func (a *ServiceIPAllocator) Release(ip netip.Addr) (bool, error) {
	return a.ask("Release", "podnet_service_ip_allocator_release", true, ip, func(p *C.podnet_service_ip_allocator, cs *C.char, yes *C.bool, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_release(p, cs, yes, cerr)
	})
}

// IsAllocated reports whether service IP ip is allocated.
func (a *ServiceIPAllocator) IsAllocated(ip netip.Addr) (bool, error) {
	return a.ask("IsAllocated", "podnet_service_ip_allocator_is_allocated", false, ip, func(p *C.podnet_service_ip_allocator, cs *C.char, yes *C.bool, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_is_allocated(p, cs, yes, cerr)
	})
}

// ask runs the C call cop (exclusive: it changes the allocator) that takes a service IP and
// answers yes or no; op names the Go method.
func (a *ServiceIPAllocator) ask(op, cop string, exclusive bool, ip netip.Addr, fn func(*C.podnet_service_ip_allocator, *C.char, *C.bool, **C.podnet_error) C.podnet_status) (bool, error) {
	cs, err := cAddr(op, "service IP", ip)
	if err != nil {
		return false, err
	}
	defer C.free(unsafe.Pointer(cs))
	var yes C.bool
	err = call(a.h, exclusive, cop, func(ptr *C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		return fn(ptr, cs, &yes, cerr)
	})
	if err != nil {
		return false, err
	}
	return bool(yes), nil
}

// Resize changes the range to cidr, keeping every allocation at its address. Only the end may
// move: ErrConflict when the start would move or allocated addresses lie beyond the new end.
func (a *ServiceIPAllocator) Resize(cidr netip.Prefix) error {
	cs, err := cPrefixes("Resize", "service CIDR", []netip.Prefix{cidr})
	if err != nil {
		return err
	}
	defer cs.Free()
	err = call(a.h, true, "podnet_service_ip_allocator_resize", func(ptr *C.podnet_service_ip_allocator, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_resize(ptr, (*C.char)(cs.CStrings[0]), cerr)
	})
	return err
}

// CIDR is the service range (the zero Prefix after Close).
func (a *ServiceIPAllocator) CIDR() netip.Prefix {
	ptr, done, err := a.h.Lock(false)
	if err != nil {
		return netip.Prefix{}
	}
	// The string is owned by the allocator and replaced by Resize: copy it under the lock.
	s := goString(C.podnet_service_ip_allocator_cidr(ptr))
	done()
	p, _ := netip.ParsePrefix(s)
	return p
}

// Size is the number of addresses the allocator manages, the API server's included.
func (a *ServiceIPAllocator) Size() uint64 {
	return count(a.h, func(p *C.podnet_service_ip_allocator) C.uint64_t { return C.podnet_service_ip_allocator_size(p) })
}

// Allocated is the number of allocated addresses.
func (a *ServiceIPAllocator) Allocated() uint64 {
	return count(a.h, func(p *C.podnet_service_ip_allocator) C.uint64_t { return C.podnet_service_ip_allocator_allocated(p) })
}

// Available is the number of free addresses (the API server's included when it is free).
func (a *ServiceIPAllocator) Available() uint64 {
	return count(a.h, func(p *C.podnet_service_ip_allocator) C.uint64_t { return C.podnet_service_ip_allocator_available(p) })
}

// MarshalBinary saves the allocator's state (range and allocations, not the random seed).
// ServiceIPAllocatorFromBytes restores it.
func (a *ServiceIPAllocator) MarshalBinary() ([]byte, error) {
	return marshal(a.h, "podnet_service_ip_allocator_to_bytes", func(p *C.podnet_service_ip_allocator, out **C.podnet_bytes, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_service_ip_allocator_to_bytes(p, out, cerr)
	})
}
