package podnet

// #include <podnet.h>
import "C"

import (
	"unsafe"

	"github.com/podnet/podnet/bindings-go/internal/cabi"
)

// The error type and codes are shared with package cluster (internal/cabi defines them once).

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

// The codes of include/podnet.h (PODNET_STATUS_*).
const (
	CodeOK              = cabi.CodeOK
	CodeInvalidArgument = cabi.CodeInvalidArgument
	CodeNullArgument    = cabi.CodeNullArgument
	CodeInvalidUTF8     = cabi.CodeInvalidUTF8
	CodeNotFound        = cabi.CodeNotFound
	CodeAlreadyExists   = cabi.CodeAlreadyExists
	CodeExhausted       = cabi.CodeExhausted
	CodeConflict        = cabi.CodeConflict
	CodePermission      = cabi.CodePermission
	CodeKernel          = cabi.CodeKernel
	CodeIO              = cabi.CodeIO
	CodeInconsistent    = cabi.CodeInconsistent
	CodeInternal        = cabi.CodeInternal
	CodePanic           = cabi.CodePanic
	CodeTooLong         = cabi.CodeTooLong
	CodeInvalidAddress  = cabi.CodeInvalidAddress
	// CodeNotReady: the node is not ready for pods yet (its cluster agent is still starting).
	CodeNotReady = cabi.CodeNotReady
)

// Sentinel errors, one per code: errors.Is(err, ErrNotFound) is true for an *Error whose Code
// is CodeNotFound.
var (
	ErrInvalidArgument = cabi.ErrInvalidArgument
	ErrNullArgument    = cabi.ErrNullArgument
	ErrInvalidUTF8     = cabi.ErrInvalidUTF8
	ErrNotFound        = cabi.ErrNotFound
	ErrAlreadyExists   = cabi.ErrAlreadyExists
	ErrExhausted       = cabi.ErrExhausted
	ErrConflict        = cabi.ErrConflict
	ErrPermission      = cabi.ErrPermission
	ErrKernel          = cabi.ErrKernel
	ErrIO              = cabi.ErrIO
	ErrInconsistent    = cabi.ErrInconsistent
	ErrInternal        = cabi.ErrInternal
	ErrPanic           = cabi.ErrPanic
	ErrTooLong         = cabi.ErrTooLong
	ErrInvalidAddress  = cabi.ErrInvalidAddress
	// ErrNotReady: a sandbox create before the node's cluster agent was ready; retry later.
	ErrNotReady = cabi.ErrNotReady
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
