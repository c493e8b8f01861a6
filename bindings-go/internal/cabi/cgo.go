// Package cabi is what the podnet Go packages (podnet, podnet/cluster) share about the C ABI:
// the error type every call returns, the generic handle that owns a C object, and the
// conversions of strings, string lists and byte buffers. It is internal: its API takes C
// values as unsafe.Pointer (each cgo package has its own C types) and is no one else's.
package cabi

// Every cgo flag of the package lives here (see ../../cgo.go for why the include uses angle
// brackets and how the static library is found).

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: -L${SRCDIR}/../../../target/release -l:libpodnet.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
