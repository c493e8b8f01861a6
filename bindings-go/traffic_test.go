package podnet_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
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
	ln := listenIn(t, path, pod)
	defer ln.Close()
	go serveOnce(ln)
	c, err := net.DialTimeout("tcp", target.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s from the node: %v", target, err)
	}
	defer c.Close()
	return exchange(t, c)
}

// pingPong listens on ip:8080 in the server netns, dials it from the client netns, sends
// "ping", and returns the client address the server saw and the reply.
func pingPong(t *testing.T, serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string) {
	t.Helper()
	seen, reply, err := pingPongErr(serverNS, ip, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	return seen, reply
}

// pingPongTry is pingPong for a caller that retries: a failure is an empty reply.
func pingPongTry(serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string) {
	seen, reply, _ := pingPongErr(serverNS, ip, clientNS)
	return seen, reply
}

func pingPongErr(serverNS string, ip netip.Addr, clientNS string) (netip.Addr, string, error) {
	target := netip.AddrPortFrom(ip, 8080).String()
	var ln net.Listener
	if err := podnet.RunInNetns(serverNS, func() (err error) {
		ln, err = net.Listen("tcp", target)
		return err
	}); err != nil {
		return netip.Addr{}, "", fmt.Errorf("listen on %s in %s: %w", target, serverNS, err)
	}
	// Every socket is closed on return: an open one would keep its pod's netns alive.
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() { seen <- serveOnce(ln) }()

	var c net.Conn
	if err := podnet.RunInNetns(clientNS, func() (err error) {
		// The socket is created on this thread, in the client pod's netns, and stays there.
		c, err = net.DialTimeout("tcp", target, 5*time.Second)
		return err
	}); err != nil {
		return netip.Addr{}, "", fmt.Errorf("dial %s from %s: %w", target, clientNS, err)
	}
	defer c.Close()
	reply, err := exchangeErr(c)
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

// listenIn opens a TCP listener inside the netns at path.
func listenIn(t *testing.T, path string, addr netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	err := podnet.RunInNetns(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, path, err)
	}
	return ln
}

// serveOnce accepts one connection, answers "pong" to a line and returns the peer address.
func serveOnce(ln net.Listener) netip.Addr {
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

// exchange sends "ping\n" and reads the reply until the server closes.
func exchange(t *testing.T, c net.Conn) string {
	t.Helper()
	reply, err := exchangeErr(c)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func exchangeErr(c net.Conn) (string, error) {
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
