package podnet

// Every Go value the library takes (NodeConfig, SandboxSpec, Peer, Service) is copied into its
// C builder object here: the object is made from the value's name, then each set field goes
// through one setter call, and the first error frees the object. records.go is the way back.

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import "unsafe"

// build makes a new C object from its required name (what it is, for the error) with newFn,
// the type's _new (cop names it), and applies the Go value's other fields with apply. Any
// failure frees the object (free: the type's _free).
func build[P comparable](op, what, name, cop string, newFn func(name *C.char, out *P, cerr **C.podnet_error) C.podnet_status, free func(P), apply func(P, *setter)) (P, error) {
	var obj, zero P
	if err := checkString(op, what, name); err != nil {
		return zero, err
	}
	cname := C.CString(name)
	var cerr *C.podnet_error
	// The status is read before cerr: Go does not order reading an operand after a call.
	st := newFn(cname, &obj, &cerr)
	C.free(unsafe.Pointer(cname))
	if err := takeError(st, cerr, cop); err != nil {
		return zero, err
	}
	set := &setter{op: op}
	apply(obj, set)
	if set.err != nil {
		free(obj)
		return zero, set.err
	}
	return obj, nil
}

// buildAll builds one C object per value with build, all or nothing, into Go memory holding
// only C pointers (so C may read it, cgo's pointer rules). Call free when C is done with them.
func buildAll[T any, P any](vs []T, build func(*T) (P, error), freeOne func(P)) (objs []P, free func(), err error) {
	objs = make([]P, 0, len(vs))
	free = func() {
		for _, o := range objs {
			freeOne(o)
		}
	}
	for i := range vs {
		o, err := build(&vs[i])
		if err != nil {
			free()
			return nil, nil, err
		}
		objs = append(objs, o)
	}
	return objs, free, nil
}

// arrayPtr points C at the array of objs (a `T *const *` argument); nil when empty.
func arrayPtr[P any](objs []P) *P {
	if len(objs) == 0 {
		return nil
	}
	return &objs[0]
}

// setter applies a Go value's fields to a C builder, one setter call each, and keeps the first
// error: after it, every later call does nothing.
type setter struct {
	op  string
	err error
}

// call runs one C setter (cop names it) unless an earlier one failed.
func (s *setter) call(cop string, fn func(**C.podnet_error) C.podnet_status) {
	if s.err != nil {
		return
	}
	var cerr *C.podnet_error
	st := fn(&cerr)
	s.err = takeError(st, cerr, cop)
}

// str checks v (what it is, for the error) and passes it to a string setter as a C string.
func (s *setter) str(what, v, cop string, fn func(*C.char, **C.podnet_error) C.podnet_status) {
	if s.err == nil {
		s.err = checkString(s.op, what, v)
	}
	if s.err != nil {
		return
	}
	cs := C.CString(v)
	defer C.free(unsafe.Pointer(cs))
	s.call(cop, func(e **C.podnet_error) C.podnet_status { return fn(cs, e) })
}

// addr passes an address or CIDR (its text v) to a setter; an invalid one (the zero
// netip value) is refused before C sees it.
func (s *setter) addr(what string, valid bool, v, cop string, fn func(*C.char, **C.podnet_error) C.podnet_status) {
	if s.err == nil && !valid {
		s.err = argError(CodeInvalidAddress, s.op, "invalid %s %v", what, v)
	}
	s.str(what, v, cop, fn)
}
