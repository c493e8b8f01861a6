package podnet

/*
#include <podnet.h>

// Defined by the //export below (this preamble may only declare, cgo's rule for files with
// //export); the prototype matches the one cgo writes into _cgo_export.h.
extern void podnetGoLog(void *user_data, podnet_log_level level, char *target, char *message);
*/
import "C"

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"unsafe"
)

// LogFunc receives one log record: its level, target (the podnet module, e.g.
// "podnet::sandbox") and message (one line: "span{fields}: message key=value ...").
//
// It is called from the library's threads and from the goroutines calling podnet, possibly
// concurrently: it must be safe for concurrent use. It must not call podnet (that deadlocks)
// nor block for long; a panic in it is recovered and the record dropped.
type LogFunc func(level LogLevel, target, message string)

var (
	// logMu serializes SetLogFunc; logFunc is what podnetGoLog calls.
	logMu   sync.Mutex
	logFunc atomic.Pointer[LogFunc]
)

// SetLogFunc routes podnet's log records at max and more severe to fn. It is process-wide:
// it applies to every node. fn nil or max LogOff turns logging off. When SetLogFunc returns,
// the previous function is no longer running and will not be called again. Logging is off
// until this is first called.
//
// ErrConflict means another logger of the library's owns the process (a Rust host that
// installed its own tracing subscriber); the previous setting then stays.
func SetLogFunc(max LogLevel, fn LogFunc) error {
	logMu.Lock()
	defer logMu.Unlock()
	var cerr *C.podnet_error
	if fn == nil || max == LogOff {
		st := C.podnet_set_log_callback(C.PODNET_LOG_LEVEL_OFF, nil, nil, &cerr)
		if err := takeError(st, cerr, "podnet_set_log_callback"); err != nil {
			return err
		}
		// The library no longer runs the callback: nothing reads logFunc now.
		logFunc.Store(nil)
		return nil
	}
	prev := logFunc.Swap(&fn)
	// user_data is NULL: the function lives in logFunc, so no Go pointer goes to C.
	st := C.podnet_set_log_callback(C.podnet_log_level(max), C.podnet_log_fn(C.podnetGoLog), nil, &cerr)
	if err := takeError(st, cerr, "podnet_set_log_callback"); err != nil {
		logFunc.Store(prev)
		return err
	}
	return nil
}

//export podnetGoLog
func podnetGoLog(_ unsafe.Pointer, level C.podnet_log_level, target, message *C.char) {
	f := logFunc.Load()
	if f == nil {
		return
	}
	// A panic must not unwind into the library's frames: drop the record instead.
	defer func() { _ = recover() }()
	(*f)(LogLevel(level), C.GoString(target), C.GoString(message))
}

// SlogFunc returns a LogFunc that writes each record to logger, at slog.LevelError,
// LevelWarn, LevelInfo, LevelDebug, and LevelDebug-4 for LogTrace, with the target as the
// attribute "target".
func SlogFunc(logger *slog.Logger) LogFunc {
	return func(level LogLevel, target, message string) {
		lvl := slog.LevelDebug - 4
		switch level {
		case LogError:
			lvl = slog.LevelError
		case LogWarn:
			lvl = slog.LevelWarn
		case LogInfo:
			lvl = slog.LevelInfo
		case LogDebug:
			lvl = slog.LevelDebug
		}
		logger.LogAttrs(context.Background(), lvl, message, slog.String("target", target))
	}
}
