package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net/netip"
	"unsafe"
)

// takeBytes copies a podnet_bytes into Go memory and frees it.
func takeBytes(b *C.podnet_bytes) []byte {
	defer C.podnet_bytes_free(b)
	n := int(C.podnet_bytes_len(b))
	if n == 0 {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(C.podnet_bytes_data(b)), C.int(n))
}

// bytesPtr points C at data (pointer-free Go memory, readable during the call); nil when
// empty.
func bytesPtr(data []byte) *C.uint8_t {
	if len(data) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&data[0]))
}

// cStrings is an array of C strings that C may read: Go memory holding only C pointers (cgo
// pointer rules allow passing it).
type cStrings []*C.char

func (c cStrings) ptr() **C.char {
	if len(c) == 0 {
		return nil
	}
	return &c[0]
}

func (c cStrings) free() {
	for _, p := range c {
		C.free(unsafe.Pointer(p))
	}
}

// cPrefixes converts prefixes to C strings (free them with free).
func cPrefixes(op, what string, ps []netip.Prefix) (cStrings, error) {
	out := make(cStrings, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			out.free()
			return nil, argError(CodeInvalidAddress, op, "invalid %s %v", what, p)
		}
		out = append(out, C.CString(p.String()))
	}
	return out, nil
}

// cAddr converts an address to a new C string (free it).
func cAddr(op, what string, a netip.Addr) (*C.char, error) {
	if !a.IsValid() {
		return nil, argError(CodeInvalidAddress, op, "invalid %s %v", what, a)
	}
	return C.CString(a.String()), nil
}
