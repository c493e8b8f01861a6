// Package testworld holds the privileged tests' helpers shared by the test binaries of
// package podnet and the adapters (ocicni, gocni): recognising the throwaway world (see
// world_test.go), listing podnet's host veths, and TCP ping-pong between network namespaces
// through podnet.RunInNetns. Test support only: no non-test code imports it.
package testworld

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

// InWorld: root, inside the throwaway world (`make -C bindings-go test`).
func InWorld() bool { return os.Geteuid() == 0 && RunIsWorldTmpfs() }

// entered is what Enter found.
var entered bool

// Enter is for TestMain: it returns InWorld(), and exits the process (status 2) when the
// binary is not in the world but PODNET_REQUIRE_WORLD=1 (as `make test` sets).
func Enter() bool {
	entered = InWorld()
	if !entered && os.Getenv("PODNET_REQUIRE_WORLD") == "1" {
		fmt.Fprintln(os.Stderr, "PODNET_REQUIRE_WORLD=1 but this is not a throwaway world "+
			"(root, tmpfs \"podnet-world\" on /run): run `make -C bindings-go test`")
		os.Exit(2)
	}
	return entered
}

// Main is a whole TestMain: Enter, then run the tests.
func Main(m *testing.M) {
	Enter()
	os.Exit(m.Run())
}

// Require skips the test unless Enter found the throwaway world.
func Require(t testing.TB) {
	t.Helper()
	if !entered {
		t.Skip("needs root in a throwaway world: run `make -C bindings-go test`")
	}
}

// RuntimeNetns makes a network namespace as a container runtime would (`ip netns add`, pinned
// at /run/netns/<name> in the world's private /run), removed when the test ends, and returns
// its path.
func RuntimeNetns(t testing.TB, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// AssertEmpty: the node has no sandbox, no netns pin of the node is left (podnet pins the
// netns it creates at /run/netns/pn-<node>-<id>) and, once the kernel has destroyed them, no
// host veth.
func AssertEmpty(t testing.TB, node *podnet.Node) {
	t.Helper()
	list, err := node.ListSandboxes()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 0 {
		ids := make([]string, len(list))
		for i, s := range list {
			ids[i] = s.ID
		}
		t.Errorf("sandboxes left: %v", ids)
	}
	pins, _ := filepath.Glob("/run/netns/pn-" + node.Name() + "-*")
	if len(pins) != 0 {
		t.Errorf("netns pins left: %v", pins)
	}
	links, err := WaitNoHostVeths(time.Second)
	if err == nil && len(links) != 0 {
		// Deleted pods whose netns the runtime (here the test) still holds: cut off at once
		// (host end down); gc, or a later call after a grace, deletes their veths.
		for _, l := range links {
			if i, err := net.InterfaceByName(l); err == nil && i.Flags&net.FlagUp != 0 {
				t.Errorf("host veth %s of a deleted pod is still up", l)
			}
		}
		if _, err := node.GC(nil); err != nil {
			t.Errorf("gc: %v", err)
		}
		links, err = WaitNoHostVeths(10 * time.Second)
	}
	if err != nil {
		t.Fatalf("interfaces: %v", err)
	}
	if len(links) != 0 {
		t.Errorf("host veths left after 10 s: %v", links)
	}
}

// OpenNode skips the test outside the world, else opens a node with cfg, closed when the
// test ends.
func OpenNode(t testing.TB, cfg podnet.NodeConfig) *podnet.Node {
	t.Helper()
	if !InWorld() {
		t.Skip("needs root in a throwaway world: run `make -C bindings-go test`")
	}
	node, err := podnet.OpenNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// RunIsWorldTmpfs: /run is the tmpfs the WORLD wrapper mounted (source "podnet-world").
func RunIsWorldTmpfs() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "id parent maj:min root mountpoint opts ... - fstype source superopts"
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		if fields[4] == "/run" {
			// The last mount on /run is the visible one.
			found = fields[sep+1] == "tmpfs" && fields[sep+2] == "podnet-world"
		}
	}
	return found
}

// HostVeths lists the node's interfaces named like podnet's host veths ("pn" + 12 hex).
func HostVeths() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "pn") && len(i.Name) == 14 {
			out = append(out, i.Name)
		}
	}
	return out, nil
}

// WaitNoHostVeths waits up to timeout for the host veths to go (the kernel destroys a
// deleted pod's netns, and its veth pair, asynchronously) and returns those left.
func WaitNoHostVeths(timeout time.Duration) ([]string, error) {
	for deadline := time.Now().Add(timeout); ; {
		links, err := HostVeths()
		if err != nil || len(links) == 0 || time.Now().After(deadline) {
			return links, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PingPong listens on ip:8080 in the server netns, dials it from the client netns, sends
// "ping", and returns the client address the server saw and the reply. Every socket is
// closed on return: an open one would keep its pod's netns alive.
func PingPong(serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string, error) {
	target := netip.AddrPortFrom(ip, 8080)
	ln, err := ListenIn(serverNS, target)
	if err != nil {
		return netip.Addr{}, "", err
	}
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() { seen <- ServeOnce(ln) }()

	var c net.Conn
	if err := podnet.RunInNetns(clientNS, func() (err error) {
		// The socket is created on this thread, in the client pod's netns, and stays there.
		c, err = net.DialTimeout("tcp", target.String(), 5*time.Second)
		return err
	}); err != nil {
		return netip.Addr{}, "", fmt.Errorf("dial %s from %s: %w", target, clientNS, err)
	}
	defer c.Close()
	reply, err := Exchange(c)
	if err != nil {
		return netip.Addr{}, "", err
	}
	select {
	case addr := <-seen:
		return addr, reply, nil
	case <-time.After(5 * time.Second):
		return netip.Addr{}, reply, fmt.Errorf("the server did not report")
	}
}

// CheckLabels reports every label of want that sb lacks or holds with another value.
func CheckLabels(t testing.TB, sb *podnet.Sandbox, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if sb.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, sb.Labels[k], v)
		}
	}
}

// CheckTwoPods checks the traffic of two pods an adapter set up: the pod in nsB reaches the
// pod at ipA in nsA and is seen as ipB, and the node reaches the pod in nsA (listening on its
// port 8080) through the host port hostPort.
func CheckTwoPods(t testing.TB, nsA string, ipA netip.Addr, nsB string, ipB netip.Addr, hostPort netip.AddrPort) {
	t.Helper()
	seen, reply, err := PingPong(nsA, ipA, nsB)
	if err != nil || reply != "pong" || seen != ipB {
		t.Errorf("pod to pod: seen %s reply %q: %v", seen, reply, err)
	}
	reply, err = HostPortPingPong(nsA, netip.AddrPortFrom(ipA, 8080), hostPort)
	if err != nil || reply != "pong" {
		t.Errorf("host port: %q %v", reply, err)
	}
}

// Go runs fn(g) on n goroutines (g = 0..n-1) and returns the function that waits for them.
func Go(n int, fn func(g int)) (wait func()) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(g)
		}()
	}
	return wg.Wait
}

// HostPortPingPong listens on pod in the netns at path, dials target from the calling
// process's netns (the node) and returns the reply.
func HostPortPingPong(path string, pod, target netip.AddrPort) (string, error) {
	ln, err := ListenIn(path, pod)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	go ServeOnce(ln)
	c, err := net.DialTimeout("tcp", target.String(), 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial %s from the node: %w", target, err)
	}
	defer c.Close()
	return Exchange(c)
}

// ListenIn opens a TCP listener inside the netns at path.
func ListenIn(path string, addr netip.AddrPort) (net.Listener, error) {
	var ln net.Listener
	err := podnet.RunInNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, path, err)
	}
	return ln, nil
}

// ServeOnce accepts one connection, answers "pong" to a line and returns the peer address.
func ServeOnce(ln net.Listener) netip.Addr {
	c, err := ln.Accept()
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		return netip.Addr{}
	}
	io.WriteString(c, "pong")
	return netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
}

// Exchange sends "ping\n" and reads the reply until the server closes.
func Exchange(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
