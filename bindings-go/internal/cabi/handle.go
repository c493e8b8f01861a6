package cabi

import (
	"runtime"
	"sync"
)

// Handle owns one C object for the Go value that wraps it (*Node, the allocators): the
// pointer, the lock that keeps Close from freeing it under a call, an idempotent Close, the
// finalizer that closes a forgotten one, and runtime.KeepAlive after every call. It is the
// only place those are written.
// P is the C pointer type (*C.podnet_node): cgo's C object types are incomplete, so the
// pointer, not the pointee, is the type parameter.
type Handle[P comparable] struct {
	// mu is read-held by calls that only read the object (or, like a node's, are thread-safe
	// in C), write-held by calls that change it and by Close: the C ABI forbids a _free
	// concurrently with any other call on the object.
	mu   sync.RWMutex
	ptr  P
	free func(P)
}

// NewHandle takes ownership of ptr; free releases it (the C type's _free). A handle that
// becomes unreachable without Close is closed by a finalizer, when the garbage collector gets
// to it.
func NewHandle[P comparable](ptr P, free func(P)) *Handle[P] {
	h := &Handle[P]{ptr: ptr, free: free}
	runtime.SetFinalizer(h, (*Handle[P]).Close)
	return h
}

// Close frees the C object once; later calls return ErrClosed. It waits for calls in flight.
// Idempotent; always nil (also for a nil handle).
func (h *Handle[P]) Close() error {
	var zero P
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr == zero {
		return nil
	}
	runtime.SetFinalizer(h, nil)
	h.free(h.ptr)
	h.ptr = zero
	return nil
}

// Lock takes the lock (exclusive: the write lock, for a call that changes the object) and
// returns the pointer and the function that releases it; ErrClosed after Close.
func (h *Handle[P]) Lock(exclusive bool) (P, func(), error) {
	var zero P
	if h == nil {
		return zero, nil, ErrClosed
	}
	unlock := h.mu.RUnlock
	if exclusive {
		h.mu.Lock()
		unlock = h.mu.Unlock
	} else {
		h.mu.RLock()
	}
	if h.ptr == zero {
		unlock()
		return zero, nil, ErrClosed
	}
	return h.ptr, func() { unlock(); runtime.KeepAlive(h) }, nil
}

// Read runs fn with the pointer under the read lock; ErrClosed (fn not run) after Close.
func (h *Handle[P]) Read(fn func(P)) error {
	ptr, done, err := h.Lock(false)
	if err != nil {
		return err
	}
	defer done()
	fn(ptr)
	return nil
}

// Call runs one C call on h's object (exclusive: the call changes it) and turns its status
// and the error object it wrote into an error with take (the package's takeError, since cgo
// gives each package its own C types); op names the C function. ErrClosed after Close.
func Call[P comparable, E any, S any](h *Handle[P], exclusive bool, op string, fn func(P, *E) S, take func(S, E, string) error) error {
	ptr, done, err := h.Lock(exclusive)
	if err != nil {
		return err
	}
	var cerr E
	st := fn(ptr, &cerr)
	done()
	return take(st, cerr, op)
}
