package podnet

// #include <podnet.h>
import "C"

import (
	"unsafe"

	"github.com/podnet/podnet/bindings-go/internal/cabi"
)

// The error type is shared with package cluster (internal/cabi defines it once); the codes are
// declared with the other enums (enums.go).

// Code is the reason a podnet call failed: the C ABI's podnet_status. The values are stable
// (never renumbered); a later library may return codes this package has no constant for, and
// callers should treat those like CodeInternal. String gives the library's stable name.
type Code = cabi.Code

// Error is a failed podnet call: Code is the reason, Op the operation that failed ("create
// sandbox web-1: allocate address from 10.1.0.0/24", or the C function's name for an argument
// the library refused), Message the whole description ("<operation>: <cause>"), Errno the
// errno behind it (0 if none). errors.Is(err, ErrNotFound) (and the other Err* sentinels)
// matches on Code; when Errno is set, errors.Is(err, syscall.EEXIST) and
// errors.Is(err, fs.ErrNotExist) work too.
type Error = cabi.Error

// Sentinel errors, one per code: errors.Is(err, ErrNotFound) is true for an *Error whose Code
// is CodeNotFound.
var (
	ErrInvalidArgument = cabi.NewSentinel(CodeInvalidArgument, "invalid argument")
	ErrNullArgument    = cabi.NewSentinel(CodeNullArgument, "null argument")
	ErrInvalidUTF8     = cabi.NewSentinel(CodeInvalidUTF8, "invalid utf-8")
	ErrNotFound        = cabi.NewSentinel(CodeNotFound, "not found")
	ErrAlreadyExists   = cabi.NewSentinel(CodeAlreadyExists, "already exists")
	ErrExhausted       = cabi.NewSentinel(CodeExhausted, "exhausted")
	ErrConflict        = cabi.NewSentinel(CodeConflict, "conflict")
	ErrPermission      = cabi.NewSentinel(CodePermission, "permission denied")
	ErrKernel          = cabi.NewSentinel(CodeKernel, "kernel error")
	ErrIO              = cabi.NewSentinel(CodeIO, "i/o error")
	ErrInconsistent    = cabi.NewSentinel(CodeInconsistent, "inconsistent")
	ErrInternal        = cabi.NewSentinel(CodeInternal, "internal error")
	ErrPanic           = cabi.NewSentinel(CodePanic, "panic")
	ErrTooLong         = cabi.NewSentinel(CodeTooLong, "too long")
	ErrInvalidAddress  = cabi.NewSentinel(CodeInvalidAddress, "invalid address")
	// ErrNotReady: a sandbox create before the node's cluster agent was ready; retry later.
	ErrNotReady = cabi.NewSentinel(CodeNotReady, "not ready")
)

// ErrClosed is returned (wrapped) by every method of a Node or an allocator after Close.
var ErrClosed = cabi.ErrClosed

// takeError turns a status and the podnet_error a failed call wrote into an *Error and frees
// the C object.
func takeError(status C.podnet_status, cerr *C.podnet_error, op string) error {
	return cabi.TakeError(uint32(status), unsafe.Pointer(cerr), op)
}

var (
	argError      = cabi.ArgError
	internalError = cabi.InternalError
	checkString   = cabi.CheckString
)
