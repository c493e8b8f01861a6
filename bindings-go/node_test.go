package podnet_test

// Privileged tests of one node: the sandbox lifecycle, idempotence, host ports, check, gc,
// Close and the finalizer, the log function, and the promise that no thread changes netns.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

func TestLifecycle(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "life-1", "life-2")
	a := createOK(t, podnet.SandboxSpec{ID: "life-1"})
	if a.ID != "life-1" || a.IfName != "eth0" || a.NetnsPath != "/run/netns/"+netnsPrefix+"life-1" ||
		!a.OwnsNetns || a.Mode != podnet.ModeBridge {
		t.Errorf("sandbox: %+v", a)
	}
	if !strings.HasPrefix(a.HostIfName, "pn") || len(a.HostIfName) != 14 {
		t.Errorf("host veth %q", a.HostIfName)
	}
	if len(a.MAC) != 6 || a.MAC[0] != 0x0a || a.MAC[1] != 0x58 {
		t.Errorf("MAC %v", a.MAC)
	}
	ip4, ok4 := a.IPv4()
	ip6, ok6 := a.IPv6()
	if len(a.IPs) != 2 || !ok4 || !ok6 || !testCIDR4.Contains(ip4) || !testCIDR6.Contains(ip6) ||
		a.IPs[0].Bits() != testCIDR4.Bits() {
		t.Errorf("IPs %v", a.IPs)
	}
	wantGW := []netip.Addr{netip.MustParseAddr("10.88.0.1"), netip.MustParseAddr("fd00:88::1")}
	if !reflect.DeepEqual(a.Gateways, wantGW) {
		t.Errorf("gateways %v, want %v", a.Gateways, wantGW)
	}
	if _, err := os.Stat(a.NetnsPath); err != nil {
		t.Errorf("netns pin: %v", err)
	}

	got, err := testNode.GetSandbox("life-1")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("get: %+v, %v; want %+v", got, err, a)
	}

	// A second pod with its own interface name and a requested address.
	b := createOK(t, podnet.SandboxSpec{
		ID: "life-2", IfName: "net1", IPs: []netip.Addr{netip.MustParseAddr("10.88.0.200")},
	})
	if b.IfName != "net1" || b.IPs[0] != netip.MustParsePrefix("10.88.0.200/16") {
		t.Errorf("life-2: %+v", b)
	}

	list, err := testNode.ListSandboxes()
	if err != nil || len(list) != 2 || list[0].ID != "life-1" || list[1].ID != "life-2" {
		t.Fatalf("list: %v, %v", list, err)
	}
	if !reflect.DeepEqual(list[0], a) {
		t.Errorf("listed %+v, created %+v", list[0], a)
	}

	rep, err := testNode.CheckSandbox("life-1")
	if err != nil || !rep.OK || rep.ID != "life-1" || len(rep.Problems) != 0 {
		t.Errorf("check: %+v, %v", rep, err)
	}

	for _, id := range []string{"life-1", "life-2", "life-1", "never-existed"} {
		if err := testNode.DeleteSandbox(id); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}
	_, err = testNode.GetSandbox("life-1")
	if !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	var pe *podnet.Error
	if errors.As(err, &pe) && (pe.Op == "" || !strings.Contains(pe.Message, "life-1")) {
		t.Errorf("error fields: %#v", pe)
	}
	if _, err := testNode.CheckSandbox("life-1"); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("check after delete: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(a.NetnsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns pin after delete: %v", err)
	}
	// Results are copies: they outlive the pods.
	if a.ID != "life-1" {
		t.Errorf("sandbox value changed")
	}
	assertNothingLeft(t)
}

func TestIdempotence(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "same-1")
	a := createOK(t, podnet.SandboxSpec{ID: "same-1"})
	again := createOK(t, podnet.SandboxSpec{ID: "same-1"})
	if !reflect.DeepEqual(a, again) {
		t.Errorf("repeated create: %+v, first %+v", again, a)
	}
	_, err := testNode.CreateSandbox(podnet.SandboxSpec{ID: "same-1", IfName: "eth9"})
	if !errors.Is(err, podnet.ErrAlreadyExists) {
		t.Errorf("different spec, same id: %v, want ErrAlreadyExists", err)
	}
	if err := testNode.DeleteSandbox("same-1"); err != nil {
		t.Fatal(err)
	}
	// Re-create right after the delete (the kernel may still be destroying the old veth).
	createOK(t, podnet.SandboxSpec{ID: "same-1"})
	if err := testNode.DeleteSandbox("same-1"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t)
}

func TestRefusedByNode(t *testing.T) {
	needWorld(t)
	for what, spec := range map[string]podnet.SandboxSpec{
		"outside the pod CIDR": {ID: "bad-1", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.5")}},
		"the gateway":          {ID: "bad-2", IPs: []netip.Addr{netip.MustParseAddr("10.88.0.1")}},
		"missing netns":        {ID: "bad-3", NetnsPath: "/run/netns/does-not-exist"},
	} {
		sb, err := testNode.CreateSandbox(spec)
		if err == nil || sb != nil {
			t.Errorf("%s: accepted", what)
			testNode.DeleteSandbox(spec.ID)
			continue
		}
		var pe *podnet.Error
		if !errors.As(err, &pe) || pe.Message == "" {
			t.Errorf("%s: %v", what, err)
		}
		t.Logf("%s: %v (%s)", what, err, pe.Code)
	}
	assertNothingLeft(t)
}

// A netns the runtime made: podnet attaches to it and leaves it in place on delete.
func TestRuntimeNetns(t *testing.T) {
	needWorld(t)
	pin := "/run/netns/runtime-made"
	if out, err := exec.Command("ip", "netns", "add", "runtime-made").CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", "runtime-made").Run()
	deleteOnCleanup(t, "adopt-1")
	sb := createOK(t, podnet.SandboxSpec{ID: "adopt-1", NetnsPath: pin})
	if sb.OwnsNetns || sb.NetnsPath != pin {
		t.Errorf("adopted netns: %+v", sb)
	}
	if err := testNode.DeleteSandbox("adopt-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("podnet removed a netns it did not create: %v", err)
	}
	// The pod is cut off at once; its veth goes with the netns, which the runtime removes next.
	if out, _ := exec.Command("ip", "-n", "runtime-made", "link", "show", "eth0").CombinedOutput(); !strings.Contains(string(out), "NO-CARRIER") {
		t.Errorf("the pod's interface is not cut off: %s", out)
	}
	exec.Command("ip", "netns", "del", "runtime-made").Run()
	assertNothingLeft(t)
}

func TestPorts(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "port-1", "port-2")
	ports := []podnet.PortMapping{
		{Protocol: podnet.ProtocolTCP, HostPort: 8080, ContainerPort: 80},
		{Protocol: podnet.ProtocolUDP, HostIP: netip.MustParseAddr("10.88.0.1"), HostPort: 5353, ContainerPort: 53},
	}
	sb := createOK(t, podnet.SandboxSpec{ID: "port-1", Ports: ports})
	if !reflect.DeepEqual(sb.Ports, ports) {
		t.Errorf("ports %+v, want %+v", sb.Ports, ports)
	}
	got, err := testNode.GetSandbox("port-1")
	if err != nil || !reflect.DeepEqual(got.Ports, ports) {
		t.Errorf("get: %+v, %v", got, err)
	}
	// Another sandbox may not take the same host port.
	_, err = testNode.CreateSandbox(podnet.SandboxSpec{ID: "port-2", Ports: ports[:1]})
	if !errors.Is(err, podnet.ErrConflict) {
		t.Errorf("second sandbox on host port 8080: %v, want ErrConflict", err)
	}
	if _, err := testNode.GetSandbox("port-2"); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("refused sandbox was recorded: %v", err)
	}
	if err := testNode.DeleteSandbox("port-1"); err != nil {
		t.Fatal(err)
	}
	// Freed with the sandbox.
	createOK(t, podnet.SandboxSpec{ID: "port-2", Ports: ports[:1]})
	if err := testNode.DeleteSandbox("port-2"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t)
}

func TestCheckFindsProblems(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "broken-1")
	sb := createOK(t, podnet.SandboxSpec{ID: "broken-1"})
	if out, err := exec.Command("ip", "link", "del", sb.HostIfName).CombinedOutput(); err != nil {
		t.Fatalf("ip link del: %v %s", err, out)
	}
	rep, err := testNode.CheckSandbox("broken-1")
	if err != nil || rep.OK || len(rep.Problems) == 0 {
		t.Fatalf("check of a pod without its veth: %+v, %v", rep, err)
	}
	t.Logf("problems: %q", rep.Problems)
	if err := testNode.DeleteSandbox("broken-1"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t)
}

func TestGC(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "gc-a", "gc-b", "gc-c")
	for _, id := range []string{"gc-a", "gc-b", "gc-c"} {
		createOK(t, podnet.SandboxSpec{ID: id})
	}
	rep, err := testNode.GC([]string{"gc-a"})
	if err != nil {
		t.Fatal(err)
	}
	// IPs: the deleted pods' addresses, released once their veths are gone (and earlier tests').
	if !reflect.DeepEqual(sorted(rep.Sandboxes), []string{"gc-b", "gc-c"}) || len(rep.Errors) != 0 ||
		len(rep.IPs) < 2 || len(rep.Netns) != 0 {
		t.Errorf("gc report: %+v", rep)
	}
	if list, _ := testNode.ListSandboxes(); len(list) != 1 || list[0].ID != "gc-a" {
		t.Errorf("after gc: %v", list)
	}
	// Bad ids are refused before anything is deleted.
	if _, err := testNode.GC([]string{"gc-a", "a/b"}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("gc with a bad id: %v", err)
	}
	if _, err := testNode.GC([]string{"gc-a", "x\x00"}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("gc with a NUL: %v", err)
	}
	// An orphan netns pin (no record) is removed too.
	if err := os.WriteFile("/run/netns/"+netnsPrefix+"orphan", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = testNode.GC(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Sandboxes, []string{"gc-a"}) || len(rep.Errors) != 0 {
		t.Errorf("gc of everything: %+v", rep)
	}
	t.Logf("gc report: %+v", rep)
	assertNothingLeft(t)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// A second handle on the same node: Close is idempotent, waits for the calls in flight, and
// makes later calls return ErrClosed, while the pods stay.
func TestClose(t *testing.T) {
	needWorld(t)
	node, err := podnet.OpenNode(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	deleteOnCleanup(t, "close-1")
	if _, err := node.CreateSandbox(podnet.SandboxSpec{ID: "close-1"}); err != nil {
		t.Fatal(err)
	}
	// Calls race with Close: each either completes or reports ErrClosed.
	var wg sync.WaitGroup
	var closedSeen atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_, err := node.GetSandbox("close-1")
				if errors.Is(err, podnet.ErrClosed) {
					closedSeen.Add(1)
					return
				}
				if err != nil {
					t.Errorf("get during close: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := node.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	wg.Wait()
	if err := node.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := node.ListSandboxes(); !errors.Is(err, podnet.ErrClosed) {
		t.Errorf("list after close: %v", err)
	}
	if err := node.DeleteSandbox("close-1"); !errors.Is(err, podnet.ErrClosed) {
		t.Errorf("delete after close: %v", err)
	}
	// The pod outlived the handle.
	if _, err := testNode.GetSandbox("close-1"); err != nil {
		t.Errorf("pod after its handle closed: %v", err)
	}
	t.Logf("%d goroutines saw ErrClosed", closedSeen.Load())
}

// A forgotten Node is closed by its finalizer: the library's threads for it go away.
func TestFinalizer(t *testing.T) {
	needWorld(t)
	before := podnetThreads(t)
	func() {
		node, err := podnet.OpenNode(testConfig())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := node.ListSandboxes(); err != nil {
			t.Fatal(err)
		}
	}()
	// The new node's threads (nothing else runs podnet calls meanwhile).
	var started []string
	for tid := range podnetThreads(t) {
		if !before[tid] {
			started = append(started, tid)
		}
	}
	if len(started) == 0 {
		t.Fatal("opening a node started no podnet thread")
	}
	alive := func() []string {
		now := podnetThreads(t)
		var out []string
		for _, tid := range started {
			if now[tid] {
				out = append(out, tid)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(alive()) > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if left := alive(); len(left) > 0 {
		t.Errorf("the finalizer did not close the node: its threads %v of %v still run", left, started)
	}
	t.Logf("the node's threads %v ended after it became unreachable", started)
}

// podnetThreads is the set of the library's threads (named "podnet-..."), by tid.
func podnetThreads(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		comm, err := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "podnet") {
			out[e.Name()] = true
		}
	}
	return out
}

// The library never changes a thread's netns: a goroutine locked to its thread sees the same
// netns before and after many calls, and no thread of the process is elsewhere afterwards.
func TestThreadsStayInNodeNetns(t *testing.T) {
	needWorld(t)
	nodeNS := nodeNetns
	done := make(chan error)
	go func() {
		// Locked only so the test can read this thread's netns: the library does not need it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before := nsID(t, "/proc/thread-self/ns/net")
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("thread-%d", i)
			if _, err := testNode.CreateSandbox(podnet.SandboxSpec{ID: id}); err != nil {
				done <- err
				return
			}
			if _, err := testNode.CheckSandbox(id); err != nil {
				done <- err
				return
			}
			if err := testNode.DeleteSandbox(id); err != nil {
				done <- err
				return
			}
		}
		if after := nsID(t, "/proc/thread-self/ns/net"); after != before || after != nodeNS {
			done <- fmt.Errorf("thread netns %s -> %s (node %s)", before, after, nodeNS)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// podnet's own short-lived namespace threads may still be exiting: retry a little.
	var elsewhere []string
	for try := 0; try < 20; try++ {
		elsewhere = threadsNotIn(t, nodeNS)
		if len(elsewhere) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(elsewhere) != 0 {
		t.Errorf("threads outside the node netns: %v", elsewhere)
	}
	assertNothingLeft(t)
}

func nsID(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func threadsNotIn(t *testing.T, ns string) []string {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		s, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net")
		if err != nil {
			continue // exited meanwhile
		}
		if s != ns {
			out = append(out, e.Name()+":"+s)
		}
	}
	return out
}

func TestLogFunc(t *testing.T) {
	needWorld(t)
	var mu sync.Mutex
	var records []string
	collect := func(level podnet.LogLevel, target, message string) {
		mu.Lock()
		records = append(records, fmt.Sprintf("%s %s %s", level, target, message))
		mu.Unlock()
	}
	if err := podnet.SetLogFunc(podnet.LogDebug, collect); err != nil {
		t.Fatal(err)
	}
	defer podnet.SetLogFunc(podnet.LogOff, nil)
	deleteOnCleanup(t, "log-1")
	createOK(t, podnet.SandboxSpec{ID: "log-1"})
	createOK(t, podnet.SandboxSpec{ID: "log-1"}) // the repeat is logged at debug
	if err := testNode.DeleteSandbox("log-1"); err != nil {
		t.Fatal(err)
	}
	if err := podnet.SetLogFunc(podnet.LogOff, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(records)
	got := strings.Join(records, "\n")
	mu.Unlock()
	if n == 0 || !strings.Contains(got, "podnet") || !strings.Contains(got, "log-1") {
		t.Errorf("records: %q", got)
	}
	t.Logf("%d records, e.g. %q", n, records[0])
	// Off: nothing more arrives.
	createOK(t, podnet.SandboxSpec{ID: "log-1"})
	if err := testNode.DeleteSandbox("log-1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(records) != n {
		t.Errorf("records after logging off: %q", records[n:])
	}
	mu.Unlock()

	// A panicking log function drops the record, nothing else.
	if err := podnet.SetLogFunc(podnet.LogTrace, func(podnet.LogLevel, string, string) { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	createOK(t, podnet.SandboxSpec{ID: "log-1"})
	if err := testNode.DeleteSandbox("log-1"); err != nil {
		t.Fatal(err)
	}

	// slog.
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := podnet.SetLogFunc(podnet.LogDebug, podnet.SlogFunc(logger)); err != nil {
		t.Fatal(err)
	}
	createOK(t, podnet.SandboxSpec{ID: "log-1"})
	createOK(t, podnet.SandboxSpec{ID: "log-1"})
	if err := testNode.DeleteSandbox("log-1"); err != nil {
		t.Fatal(err)
	}
	if err := podnet.SetLogFunc(podnet.LogOff, nil); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, "target=podnet") {
		t.Errorf("slog output: %q", s)
	}
	assertNothingLeft(t)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Errno reaches errors.Is: opening a node bound to a netns path that does not exist.
func TestErrnoOfOpen(t *testing.T) {
	needWorld(t)
	cfg := testConfig()
	cfg.Name = "errno"
	cfg.NetnsPath = "/run/netns/no-such-node"
	node, err := podnet.OpenNode(cfg)
	if err == nil {
		node.Close()
		t.Fatal("opened a node on a missing netns")
	}
	var pe *podnet.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%v", err)
	}
	t.Logf("%v (code %s, errno %d)", err, pe.Code, int(pe.Errno))
	if !errors.Is(err, podnet.ErrNotFound) && !errors.Is(err, syscall.ENOENT) {
		t.Errorf("want not found / ENOENT: %#v", pe)
	}
}

// Labels are kept with the sandbox and come back from create, get and list; a bad one is
// refused before anything is created.
func TestLabels(t *testing.T) {
	needWorld(t)
	labels := map[string]string{"k8s.pod.name": "web-0", "k8s.pod.namespace": "shop", "empty": ""}
	mac, _ := net.ParseMAC("02:aa:bb:cc:dd:01")
	sb := createOK(t, podnet.SandboxSpec{ID: "labels-1", Labels: labels, MAC: mac})
	deleteOnCleanup(t, "labels-1")
	if !reflect.DeepEqual(sb.Labels, labels) {
		t.Errorf("created: labels %v, want %v", sb.Labels, labels)
	}
	if sb.MAC.String() != "02:aa:bb:cc:dd:01" {
		t.Errorf("requested MAC: got %v", sb.MAC)
	}
	got, err := testNode.GetSandbox("labels-1")
	if err != nil || !reflect.DeepEqual(got.Labels, labels) {
		t.Errorf("get: labels %v (%v), want %v", got.Labels, err, labels)
	}
	list, err := testNode.ListSandboxes()
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0].Labels, labels) {
		t.Errorf("list: %v (%v)", list, err)
	}
	_, err = testNode.CreateSandbox(podnet.SandboxSpec{ID: "labels-2", Labels: map[string]string{"a=b": "x"}})
	if codeOf(t, err) != podnet.CodeInvalidArgument {
		t.Errorf("label key with '=': %v, want invalid argument", err)
	}
	if plain := createOK(t, podnet.SandboxSpec{ID: "labels-3"}); plain.Labels != nil {
		t.Errorf("no labels: %v, want nil", plain.Labels)
	}
	deleteOnCleanup(t, "labels-3")
}
