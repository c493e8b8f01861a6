package cabi

// #include <podnet.h>
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"
)

// Code is the reason a podnet call failed: the C ABI's podnet_status. The values are stable
// (never renumbered); a later library may return codes this package has no constant for, and
// callers should treat those like CodeInternal.
type Code uint32

// The codes this package uses itself (package podnet declares them all).
const (
	CodeInvalidArgument Code = C.PODNET_STATUS_INVALID_ARGUMENT
	CodeInternal        Code = C.PODNET_STATUS_INTERNAL
	CodeInvalidAddress  Code = C.PODNET_STATUS_INVALID_ADDRESS
)

// String is the library's stable lowercase name of the code ("not_found"), "unknown" for a
// value it does not know.
func (c Code) String() string {
	return C.GoString(C.podnet_status_str(C.podnet_status(c)))
}

// Error is a failed podnet call.
//
// Code is the reason, Op the operation that failed ("create sandbox web-1: allocate address
// from 10.1.0.0/24", or the C function's name for an argument the library refused), Message
// the whole description ("<operation>: <cause>"), Errno the errno behind it (0 if none).
//
// errors.Is(err, podnet.ErrNotFound) (and the other Err* sentinels, made by NewSentinel)
// matches on Code; when Errno is set, errors.Is(err, syscall.EEXIST) and
// errors.Is(err, fs.ErrNotExist) work too.
type Error struct {
	Code    Code
	Op      string
	Message string
	Errno   syscall.Errno
}

// Error returns "podnet: " and the message.
func (e *Error) Error() string {
	if e.Message == "" {
		return "podnet: " + e.Op + ": " + e.Code.String()
	}
	return "podnet: " + e.Message
}

// Is reports whether target is the sentinel of e's code (podnet.ErrNotFound for
// CodeNotFound, ...).
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && s.code == e.Code
}

// Unwrap returns the errno behind the failure, or nil.
func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// sentinel is the type of the Err* values: it matches every *Error with its code.
type sentinel struct {
	code Code
	name string
}

func (s *sentinel) Error() string { return "podnet: " + s.name }

// NewSentinel returns the sentinel error of code: errors.Is(err, it) is true for every *Error
// with that code. Its text is "podnet: " and name.
func NewSentinel(code Code, name string) error { return &sentinel{code, name} }

// ErrClosed is returned by every method of a Go object whose C object was freed (Close).
var ErrClosed = errors.New("podnet: node is closed")

// TakeError turns a status and the podnet_error a failed call wrote (cerr: a
// *C.podnet_error of any package, or nil) into an *Error and frees the C object. op names the
// call when the library gave no error object.
func TakeError(status uint32, cerrp unsafe.Pointer, op string) error {
	cerr := (*C.podnet_error)(cerrp)
	if status == C.PODNET_STATUS_OK {
		if cerr != nil { // a successful call never writes err_out; free defensively all the same
			C.podnet_error_free(cerr)
		}
		return nil
	}
	e := &Error{Code: Code(status), Op: op}
	if cerr != nil {
		e.Code = Code(C.podnet_error_status(cerr))
		if s := C.podnet_error_operation(cerr); s != nil {
			e.Op = C.GoString(s)
		}
		if s := C.podnet_error_message(cerr); s != nil {
			e.Message = C.GoString(s)
		}
		e.Errno = syscall.Errno(C.podnet_error_errno(cerr))
		C.podnet_error_free(cerr)
	}
	return e
}

// ArgError is a Go-side refusal, before any C call: the same *Error type, so errors.Is works
// the same way.
func ArgError(code Code, op, format string, args ...any) error {
	return &Error{Code: code, Op: op, Message: op + ": " + fmt.Sprintf(format, args...)}
}

// InternalError reports output of the library this package cannot read (a bug on one side).
func InternalError(op, format string, args ...any) error {
	return ArgError(CodeInternal, op, format, args...)
}

// CheckString refuses strings C would silently truncate (an embedded NUL).
func CheckString(op, what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ArgError(CodeInvalidArgument, op, "%s %q contains a NUL byte", what, s)
	}
	return nil
}
