package podnet

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// RunInNetns runs fn on a fresh OS thread that has entered the network namespace at path (a
// Sandbox's NetnsPath) and returns what fn returned. Sockets fn creates belong to that
// namespace for good, whichever thread uses them later; goroutines fn starts run elsewhere,
// in the process's namespace.
//
// The library itself never does this (it never changes a thread's namespace); this is for the
// caller's own work inside a pod: a listener, a dial, a probe. The way it is done is the safe
// one (the CNI plugins' ns package does the same): the goroutine locks its thread, setns(2)s
// it and never unlocks it, so the thread exits with the goroutine instead of going back to
// the scheduler in the pod's namespace. The process's main thread cannot exit (the runtime
// parks it instead, and parked in a pod's namespace it would keep that namespace and its veth
// alive after the pod is deleted): a goroutine that finds itself on the main thread keeps it
// locked while another goroutine, necessarily on another thread, does the work. Close a pod's
// sockets before deleting the pod: an open socket keeps its namespace alive too.
func RunInNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	var run func()
	run = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			done := make(chan struct{})
			go func() { run(); close(done) }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		// No UnlockOSThread from here on: this thread must never run another goroutine.
		f, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("podnet: enter netns: %w", err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("podnet: setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}
	go run()
	return <-errc
}
