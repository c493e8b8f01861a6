package cabi

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import "unsafe"

// GoStrings copies the strings of a podnet_string_list (its items and count, passed apart so
// the list itself need not escape to the heap); an empty list gives nil.
func GoStrings(list unsafe.Pointer, count int) []string {
	if list == nil || count == 0 {
		return nil
	}
	items := unsafe.Slice((**C.char)(list), count)
	out := make([]string, len(items))
	for i, s := range items {
		if s != nil {
			out[i] = C.GoString(s)
		}
	}
	return out
}

// CStrings is an array of C strings that C may read: Go memory holding only C pointers (cgo
// pointer rules allow passing it). Free it with Free.
type CStrings []unsafe.Pointer

// NewCStrings converts ss to C strings (the caller has checked them).
func NewCStrings(ss []string) CStrings {
	out := make(CStrings, len(ss))
	for i, s := range ss {
		out[i] = unsafe.Pointer(C.CString(s))
	}
	return out
}

// Ptr is the array for C (a `const char *const *`; nil when empty): convert it to the
// package's **C.char.
func (c CStrings) Ptr() unsafe.Pointer {
	if len(c) == 0 {
		return nil
	}
	return unsafe.Pointer(&c[0])
}

// Free frees the strings.
func (c CStrings) Free() {
	for _, p := range c {
		C.free(p)
	}
}

// TakeBytes copies a podnet_bytes (b: a *C.podnet_bytes of any package) into Go memory and
// frees it.
func TakeBytes(b unsafe.Pointer) []byte {
	cb := (*C.podnet_bytes)(b)
	defer C.podnet_bytes_free(cb)
	n := int(C.podnet_bytes_len(cb))
	if n == 0 {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(C.podnet_bytes_data(cb)), C.int(n))
}
