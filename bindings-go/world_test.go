package podnet_test

// The privileged tests' world. `make -C bindings-go test` runs the test binary as root inside
// a throwaway network + mount namespace with a tmpfs named "podnet-world" on /run (the root
// Makefile's WORLD): the node is the test process's own netns, pods are pinned under the
// private /run/netns and state lives in the private /run/podnet, so nothing on the machine
// changes. The binary cannot build that world itself (unshare(CLONE_NEWNS) needs a
// single-threaded process, and a Go process never is). Outside it the privileged tests skip,
// or fail when PODNET_REQUIRE_WORLD=1 (CI).

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

const (
	testNodeName = "gotest"
	// netnsPrefix is how the test node's pods' netns pins start (/run/netns/pn-<node>-<id>).
	netnsPrefix = "pn-" + testNodeName + "-"
)

var (
	// inWorld: root, inside the throwaway world (see the top of this file).
	inWorld bool
	// testNode is the node shared by the privileged tests; each test leaves it empty.
	testNode     *podnet.Node
	openTestNode sync.Once
	// nodeNetns identifies the node's netns (the test process's), read before any test runs.
	nodeNetns string

	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr

	testCIDR4 = netip.MustParsePrefix("10.88.0.0/16")
	testCIDR6 = netip.MustParsePrefix("fd00:88::/64")
)

func testConfig() podnet.NodeConfig {
	return podnet.NodeConfig{
		Name:     testNodeName,
		PodCIDRs: []netip.Prefix{testCIDR4, testCIDR6},
		// Services' ClusterIPs (services_test.go).
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")},
	}
}

func TestMain(m *testing.M) {
	inWorld = testworld.Enter()
	if inWorld {
		var err error
		if nodeNetns, err = os.Readlink("/proc/thread-self/ns/net"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if testNode != nil {
		if left, err := testNode.ListSandboxes(); err != nil || len(left) != 0 {
			fmt.Fprintf(os.Stderr, "sandboxes left on the test node: %d (%v)\n", len(left), err)
			code = 1
		}
		testNode.Close()
	}
	os.Exit(code)
}

// needWorld skips a privileged test outside the throwaway world, and opens the test node on
// first use (benchmarks open their own).
func needWorld(t testing.TB) {
	t.Helper()
	if !inWorld {
		t.Skip("needs root in a throwaway world: run `make -C bindings-go test`")
	}
	openTestNode.Do(func() {
		var err error
		if testNode, err = podnet.OpenNode(testConfig()); err != nil {
			fmt.Fprintln(os.Stderr, "open the test node:", err)
			os.Exit(1)
		}
	})
}

// createOK creates a sandbox or fails the test.
func createOK(t testing.TB, spec podnet.SandboxSpec) *podnet.Sandbox {
	t.Helper()
	sb, err := testNode.CreateSandbox(spec)
	if err != nil {
		t.Fatalf("create %s: %v", spec.ID, err)
	}
	return sb
}

// deleteOnCleanup deletes the sandboxes when the test ends, whether it passed or not.
func deleteOnCleanup(t testing.TB, ids ...string) {
	t.Cleanup(func() {
		for _, id := range ids {
			if err := testNode.DeleteSandbox(id); err != nil {
				t.Errorf("cleanup: delete %s: %v", id, err)
			}
		}
	})
}

// assertNothingLeft: no sandbox record, no netns pin of the test node, and (once the kernel
// has finished destroying deleted namespaces) no host veth.
func assertNothingLeft(t testing.TB) {
	t.Helper()
	testworld.AssertEmpty(t, testNode)
}

// codeOf returns the code of a *podnet.Error, or fails the test.
func codeOf(t testing.TB, err error) podnet.Code {
	t.Helper()
	var pe *podnet.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *podnet.Error", err, err)
	}
	return pe.Code
}
