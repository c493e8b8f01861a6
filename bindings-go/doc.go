// Package podnet is the Go API of podnet, Kubernetes pod networking as a library: it wraps
// libpodnet's C ABI (include/podnet.h) with cgo and links libpodnet.a statically.
//
//	import podnet "github.com/podnet/podnet/bindings-go"
//
//	node, err := podnet.OpenNode(podnet.NodeConfig{
//		Name:     "node1",
//		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")},
//	})
//	if err != nil { ... }
//	defer node.Close()
//	pod, err := node.CreateSandbox(podnet.SandboxSpec{ID: "web-1"})
//	if errors.Is(err, podnet.ErrAlreadyExists) { ... }
//	fmt.Println(pod.IPs[0], pod.NetnsPath)
//	err = node.DeleteSandbox("web-1") // idempotent
//
// Build the library first, once: `make lib` at the repository root (bindings-go/README.md has
// the details and the make targets).
//
// # Objects and lifetimes
//
// Every C object this package holds lives in one generic handle (pointer, lock, idempotent
// Close, finalizer, KeepAlive: handle.go), and every record the library returns is copied into
// Go in one file (records.go) from the library's one-call record views.
//
// Configurations and specs (NodeConfig, SandboxSpec, Peer, PortMapping) and results
// (Sandbox, CheckReport, GCReport, SyncReport, PortEntry, RepairReport) are plain Go
// values: a call copies them into or out of the library and frees the C objects before it
// returns. The objects that hold a C handle are *Node and package cluster's allocators: Close them (Close is idempotent; later calls return ErrClosed); a
// finalizer closes a forgotten one as a safety net. C never keeps a Go pointer.
//
// # Errors
//
// Every failure is an *Error carrying the library's Code, the failed operation, the message
// and the errno. errors.Is(err, ErrNotFound) and the other Err* sentinels match on the code;
// errors.Is(err, syscall.EPERM) matches on the errno.
//
// # Goroutines, threads and namespaces
//
// A *Node is safe for concurrent use by many goroutines; the library runs the calls in
// parallel (calls for the same sandbox id serialize). So are package cluster's allocators (the Go wrapper
// serializes the calls that change them). The library never changes the calling
// thread's namespaces, never forks and never execs, so callers never need
// runtime.LockOSThread.
//
// Running something inside a pod (a listener, a dial) is the caller's business, not the
// library's: RunInNetns(sandbox.NetnsPath, fn) runs fn on a fresh OS thread that has entered
// the pod's namespace and is never given back to the scheduler (nor is it ever the main
// thread, which the runtime cannot end); sockets fn creates keep that namespace. Close a pod's
// sockets before deleting it: an open socket keeps its namespace alive too.
//
// The node is bound to NodeConfig.NetnsPath, or when it is empty to the network namespace of
// the thread calling OpenNode. In a Go program all threads normally share one (the process's);
// a program that moves threads between namespaces should set NetnsPath.
package podnet
