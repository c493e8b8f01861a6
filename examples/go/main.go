// two_pods: a container runtime's view of podnet's Go API, end to end (the Go twin of
// examples/c/two_pods.c).
//
// Opens a node on the current network namespace, creates two pods, prints their addresses,
// proves they can talk over TCP (pod-b connects to a server in pod-a, which reports the source
// address it saw), then deletes both pods and closes the node.
//
// Run it as root in a throwaway world, as `make -C bindings-go example` does:
//
//	unshare --net --mount --propagation private -- \
//	  sh -c 'mount -t tmpfs podnet-world /run && exec ./two_pods'
//
// (a new netns plays the node; tmpfs on /run holds the pods' netns pins and podnet's state).
//
// podnet itself never changes a thread's namespace: nothing here needs runtime.LockOSThread
// to call it. Running something *inside* a pod is the runtime's business: podnet.RunInNetns
// enters the pod's netns on a dedicated OS thread that is never given back to the scheduler.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

const port = 8080

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "two_pods:", err)
		var pe *podnet.Error
		if errors.As(err, &pe) {
			fmt.Fprintf(os.Stderr, "two_pods: code %s, operation %q, errno %d\n", pe.Code, pe.Op, int(pe.Errno))
		}
		fmt.Println("two_pods: FAILED")
		os.Exit(1)
	}
	fmt.Println("two_pods: ok")
}

func run() error {
	fmt.Printf("podnet %s (header %s)\n", podnet.Version(), podnet.HeaderVersion)
	// The runtime's logger: podnet calls it from its own threads too (slog is safe for that).
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := podnet.SetLogFunc(podnet.LogInfo, podnet.SlogFunc(logger)); err != nil {
		return err
	}
	defer podnet.SetLogFunc(podnet.LogOff, nil)

	// The node: this process's netns, one IPv4 pod CIDR, bridge mode (the defaults).
	node, err := podnet.OpenNode(podnet.NodeConfig{
		Name:     "example",
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")},
	})
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	defer node.Close()

	ids := []string{"pod-a", "pod-b"}
	// Deleting is idempotent: safe to run for pods that were never created.
	defer func() {
		for _, id := range ids {
			if err := node.DeleteSandbox(id); err != nil {
				fmt.Fprintf(os.Stderr, "two_pods: delete %s: %v\n", id, err)
			}
		}
	}()
	var pods []*podnet.Sandbox
	for _, id := range ids {
		pod, err := node.CreateSandbox(podnet.SandboxSpec{ID: id})
		if err != nil {
			return fmt.Errorf("create sandbox: %w", err)
		}
		show(pod)
		pods = append(pods, pod)
	}
	return talk(pods[0], pods[1])
}

func show(sb *podnet.Sandbox) {
	fmt.Printf("%s: netns %s, %s <-> host %s, mac %s, mode %s\n",
		sb.ID, sb.NetnsPath, sb.IfName, sb.HostIfName, sb.MAC, sb.Mode)
	for i, ip := range sb.IPs {
		fmt.Printf("  ip %s via %s\n", ip, sb.Gateways[i])
	}
}

// talk runs a TCP exchange from pod b to a server in pod a and checks the source address the
// server saw is b's own.
func talk(a, b *podnet.Sandbox) error {
	ipA, _ := a.IPv4()
	ipB, _ := b.IPv4()
	server := netip.AddrPortFrom(ipA, port)

	var ln net.Listener
	if err := podnet.RunInNetns(a.NetnsPath, func() (err error) {
		ln, err = net.Listen("tcp", server.String())
		return err
	}); err != nil {
		return fmt.Errorf("listen in %s: %w", a.ID, err)
	}
	// Close every socket before the pods go: an open socket keeps its netns alive.
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- netip.Addr{}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			io.WriteString(c, "pong")
		}
		seen <- netip.MustParseAddrPort(c.RemoteAddr().String()).Addr()
	}()

	var c net.Conn
	if err := podnet.RunInNetns(b.NetnsPath, func() (err error) {
		c, err = net.DialTimeout("tcp", server.String(), 10*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("connect from %s: %w", b.ID, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, "ping")
	reply, _ := io.ReadAll(c)
	from := <-seen
	fmt.Printf("TCP %s -> %s: reply %q, server saw the client as %s\n", b.ID, server, strings.TrimSpace(string(reply)), from)
	if string(reply) != "pong" {
		return fmt.Errorf("reply %q, want \"pong\"", reply)
	}
	if from != ipB {
		return fmt.Errorf("the server saw %s, not %s's address %s", from, b.ID, ipB)
	}
	return nil
}
