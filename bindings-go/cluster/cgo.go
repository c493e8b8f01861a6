// Package cluster is the cluster-wide part of podnet's Go API: address planning (Plan) and the
// node CIDR and service IP allocators. Pure values: no node, no privilege, no kernel; the
// caller stores the allocators (MarshalBinary) wherever the cluster keeps its truth.
//
//	import "github.com/podnet/podnet/bindings-go/cluster"
//
// Errors are the same *podnet.Error values as package podnet's (errors.Is(err,
// podnet.ErrExhausted) works); a closed allocator returns podnet.ErrClosed.
package cluster

// Every cgo flag of the package lives here (see ../cgo.go for the reasons of each).

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -l:libpodnet.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
