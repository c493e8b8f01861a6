package podnet_test

import (
	"net/netip"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

// Real traffic: a TCP listener in pod A's netns, a dial from pod B's netns, over IPv4 and
// IPv6; the server sees pod B's own address (no NAT between pods of a node).
func TestTrafficBetweenPods(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "talk-a", "talk-b")
	a := createOK(t, podnet.SandboxSpec{ID: "talk-a"})
	b := createOK(t, podnet.SandboxSpec{ID: "talk-b"})
	for _, family := range []string{"IPv4", "IPv6"} {
		t.Run(family, func(t *testing.T) {
			pick := (*podnet.Sandbox).IPv4
			if family == "IPv6" {
				pick = (*podnet.Sandbox).IPv6
			}
			ipA, _ := pick(a)
			ipB, _ := pick(b)
			seen, reply := pingPong(t, a.NetnsPath, ipA, b.NetnsPath)
			if reply != "pong" {
				t.Errorf("reply %q", reply)
			}
			if seen != ipB {
				t.Errorf("server saw %s, want pod B's %s", seen, ipB)
			}
			t.Logf("%s -> %s: %q, server saw %s", b.ID, ipA, reply, seen)
		})
	}
	for _, id := range []string{"talk-a", "talk-b"} {
		if err := testNode.DeleteSandbox(id); err != nil {
			t.Fatal(err)
		}
	}
	assertNothingLeft(t)
}

// Host ports: from the node itself (its own netns, the test process's), the pod's host port
// on the node's address reaches the container port.
func TestTrafficThroughHostPort(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "hp-a")
	a := createOK(t, podnet.SandboxSpec{ID: "hp-a", Ports: []podnet.PortMapping{
		{Protocol: podnet.ProtocolTCP, HostPort: 30080, ContainerPort: 8080},
	}})
	ipA, _ := a.IPv4()
	// The node's address on the bridge (the pod's gateway), port 30080.
	reply := hostPortPingPong(t, a.NetnsPath, netip.AddrPortFrom(ipA, 8080), netip.AddrPortFrom(a.Gateways[0], 30080))
	if reply != "pong" {
		t.Errorf("reply %q", reply)
	}
	// The sockets are closed: an open socket would keep the pod's netns (and veth) alive.
	if err := testNode.DeleteSandbox("hp-a"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t)
}

// hostPortPingPong listens on pod in the netns at path and dials target from the node.
func hostPortPingPong(t *testing.T, path string, pod, target netip.AddrPort) string {
	t.Helper()
	reply, err := testworld.HostPortPingPong(path, pod, target)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// pingPong listens on ip:8080 in the server netns, dials it from the client netns, sends
// "ping", and returns the client address the server saw and the reply.
func pingPong(t *testing.T, serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string) {
	t.Helper()
	seen, reply, err := testworld.PingPong(serverNS, ip, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	return seen, reply
}

// pingPongTry is pingPong for a caller that retries: a failure is an empty reply.
func pingPongTry(serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string) {
	seen, reply, _ := testworld.PingPong(serverNS, ip, clientNS)
	return seen, reply
}
