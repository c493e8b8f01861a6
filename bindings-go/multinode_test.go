package podnet_test

// Privileged tests of peers (two nodes, each in its own netns inside the world, joined by a
// veth underlay), of host-port management on a live sandbox, nftables repair, and per-pod mode.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

// ipCmd runs ip(8) with args or fails the test.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
}

// twoNodes builds netns <tag>-a and <tag>-b joined by veth ul0 (10.201.0.1/24 and .2/24) and
// opens a node on each: pod CIDRs 10.30.1.0/24 and 10.30.2.0/24 in cluster 10.30.0.0/16.
func twoNodes(t *testing.T, tag string, mode podnet.CrossNodeMode) (a, b *podnet.Node, peerA, peerB podnet.Peer) {
	t.Helper()
	nsA, nsB := tag+"-a", tag+"-b"
	ipCmd(t, "netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ipCmd(t, "netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	ipCmd(t, "link", "add", "ul0", "netns", nsA, "type", "veth", "peer", "name", "ul0", "netns", nsB)
	for i, ns := range []string{nsA, nsB} {
		ipCmd(t, "-n", ns, "addr", "add", fmt.Sprintf("10.201.0.%d/24", i+1), "dev", "ul0")
		ipCmd(t, "-n", ns, "link", "set", "ul0", "up")
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	open := func(i int, ns string) *podnet.Node {
		n, err := podnet.OpenNode(podnet.NodeConfig{
			Name:         ns,
			NetnsPath:    "/run/netns/" + ns,
			PodCIDRs:     []netip.Prefix{pfx(fmt.Sprintf("10.30.%d.0/24", i+1))},
			ClusterCIDRs: []netip.Prefix{pfx("10.30.0.0/16")},
			Underlay:     podnet.Underlay{Address: addr(fmt.Sprintf("10.201.0.%d", i+1)), Interface: "ul0"},
			CrossNode:    mode,
		})
		if err != nil {
			t.Fatalf("open %s: %v", ns, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b = open(0, nsA), open(1, nsB)
	peerA = podnet.Peer{Name: nsA, UnderlayIP: addr("10.201.0.1"), PodCIDRs: []netip.Prefix{pfx("10.30.1.0/24")}}
	peerB = podnet.Peer{Name: nsB, UnderlayIP: addr("10.201.0.2"), PodCIDRs: []netip.Prefix{pfx("10.30.2.0/24")}}
	return a, b, peerA, peerB
}

func TestPeers(t *testing.T) {
	needWorld(t)
	for _, mode := range []podnet.CrossNodeMode{podnet.CrossNodeOverlay, podnet.CrossNodeRouted} {
		t.Run(mode.String(), func(t *testing.T) {
			tag := "mn" + mode.String()[:2]
			a, b, peerA, peerB := twoNodes(t, tag, mode)
			st, err := a.Status()
			if err != nil {
				t.Fatal(err)
			}
			overlay := mode == podnet.CrossNodeOverlay
			if st.Name != peerA.Name || !st.Ready || len(st.Gateways) != 1 || (len(st.VTEPMAC) == 6) != overlay ||
				(overlay && st.PodMTU != 1450) {
				t.Errorf("status of %s: %+v", mode, st)
			}
			rep, err := a.SyncPeers([]podnet.Peer{peerB})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Peers != 1 || rep.Added == 0 {
				t.Errorf("first sync: %+v", rep)
			}
			if err := b.AddPeer(peerA); err != nil {
				t.Fatal(err)
			}
			// Converged: a second sync changes nothing.
			if rep, err := a.SyncPeers([]podnet.Peer{peerB}); err != nil || rep.Added != 0 || rep.Removed != 0 {
				t.Errorf("second sync: %+v, %v", rep, err)
			}
			peers, err := a.ListPeers()
			if err != nil || len(peers) != 1 {
				t.Fatalf("list: %+v, %v", peers, err)
			}
			got := peers[0]
			if got.Name != peerB.Name || got.UnderlayIP != peerB.UnderlayIP ||
				!reflect.DeepEqual(got.PodCIDRs, peerB.PodCIDRs) || len(got.VTEPMAC) != 6 {
				t.Errorf("listed %+v, added %+v", got, peerB)
			}
			// The node reports the VTEP MAC its peers derive for it.
			if stB, err := b.Status(); err != nil || (overlay && stB.VTEPMAC.String() != got.VTEPMAC.String()) {
				t.Errorf("b's own VTEP MAC %v vs the one a programs %v (%v)", stB, got.VTEPMAC, err)
			}

			// A pod on each node; pod a1 dials pod b1 across the nodes.
			a1, err := a.CreateSandbox(podnet.SandboxSpec{ID: "a1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.DeleteSandbox("a1") })
			b1, err := b.CreateSandbox(podnet.SandboxSpec{ID: "b1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.DeleteSandbox("b1") })
			ipA1, _ := a1.IPv4()
			ipB1, _ := b1.IPv4()
			seen, reply := pingPong(t, b1.NetnsPath, ipB1, a1.NetnsPath)
			if reply != "pong" || seen != ipA1 {
				t.Errorf("a1 -> b1: reply %q, server saw %s (want %s: no NAT inside the cluster)", reply, seen, ipA1)
			}

			// Remove and re-add; sync to nothing removes everything.
			if err := a.RemovePeer(peerB.Name); err != nil {
				t.Fatal(err)
			}
			if err := a.RemovePeer(peerB.Name); err != nil {
				t.Errorf("remove again: %v", err)
			}
			if peers, _ := a.ListPeers(); len(peers) != 0 {
				t.Errorf("after remove: %+v", peers)
			}
			if err := a.AddPeer(got); err != nil { // a listed peer goes back in as it is
				t.Fatal(err)
			}
			if rep, err := a.SyncPeers(nil); err != nil || rep.Peers != 0 || rep.Removed == 0 {
				t.Errorf("sync to nothing: %+v, %v", rep, err)
			}
			for _, n := range []*podnet.Node{a, b} {
				for _, id := range []string{"a1", "b1"} {
					if err := n.DeleteSandbox(id); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
}

func TestPeersRefused(t *testing.T) {
	needWorld(t)
	peer := podnet.Peer{Name: "other", UnderlayIP: addr("10.201.0.9"), PodCIDRs: []netip.Prefix{pfx("10.31.0.0/24")}}
	// The test node has no underlay.
	if err := testNode.AddPeer(peer); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("peer on a node without underlay: %v", err)
	}
	a, _, _, peerB := twoNodes(t, "mnrf", podnet.CrossNodeOverlay)
	for what, c := range map[string]struct {
		peer podnet.Peer
		code podnet.Code
	}{
		"no underlay IP":      {podnet.Peer{Name: "x", PodCIDRs: peer.PodCIDRs}, podnet.CodeInvalidAddress},
		"bad name":            {podnet.Peer{Name: "a/b", UnderlayIP: peer.UnderlayIP, PodCIDRs: peer.PodCIDRs}, podnet.CodeInvalidArgument},
		"NUL in name":         {podnet.Peer{Name: "a\x00", UnderlayIP: peer.UnderlayIP, PodCIDRs: peer.PodCIDRs}, podnet.CodeInvalidArgument},
		"no pod CIDR":         {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP}, podnet.CodeInvalidArgument},
		"host bits":           {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP, PodCIDRs: []netip.Prefix{pfx("10.31.0.1/24")}}, podnet.CodeInvalidArgument},
		"overlaps own CIDR":   {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP, PodCIDRs: []netip.Prefix{pfx("10.30.1.0/24")}}, podnet.CodeConflict},
		"short MAC":           {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP, PodCIDRs: peer.PodCIDRs, VTEPMAC: net.HardwareAddr{1, 2, 3}}, podnet.CodeInvalidArgument},
		"multicast MAC":       {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP, PodCIDRs: peer.PodCIDRs, VTEPMAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}}, podnet.CodeInvalidArgument},
		"loopback underlay":   {podnet.Peer{Name: "x", UnderlayIP: addr("127.0.0.1"), PodCIDRs: peer.PodCIDRs}, podnet.CodeInvalidArgument},
		"unparsable CIDR":     {podnet.Peer{Name: "x", UnderlayIP: peer.UnderlayIP, PodCIDRs: []netip.Prefix{{}}}, podnet.CodeInvalidAddress},
		"the node itself":     {podnet.Peer{Name: "mnrf-a", UnderlayIP: addr("10.201.0.1"), PodCIDRs: peer.PodCIDRs}, podnet.CodeInvalidArgument},
		"duplicate (in sync)": {peerB, podnet.CodeInvalidArgument},
	} {
		var err error
		if what == "duplicate (in sync)" {
			_, err = a.SyncPeers([]podnet.Peer{c.peer, c.peer})
		} else {
			err = a.AddPeer(c.peer)
		}
		if code := codeOf(t, err); code != c.code {
			t.Errorf("%s: %v, want %s", what, err, c.code)
		}
	}
	if peers, _ := a.ListPeers(); len(peers) != 0 {
		t.Errorf("refused peers were recorded: %+v", peers)
	}
	// A peer that is not a podnet node brings its own VTEP MAC (flannel's annotation).
	flannel := peer
	flannel.VTEPMAC = net.HardwareAddr{0x0e, 0x12, 0x34, 0x56, 0x78, 0x9a}
	if err := a.AddPeer(flannel); err != nil {
		t.Fatal(err)
	}
	peers, err := a.ListPeers()
	if err != nil || len(peers) != 1 || peers[0].VTEPMAC.String() != "0e:12:34:56:78:9a" {
		t.Errorf("peer with its own VTEP MAC: %+v, %v", peers, err)
	}
}

func TestHostPortsOnLiveSandbox(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "pm-1", "pm-2")
	createOK(t, podnet.SandboxSpec{ID: "pm-1"})
	createOK(t, podnet.SandboxSpec{ID: "pm-2"})
	tcp := podnet.PortMapping{Protocol: podnet.ProtocolTCP, HostPort: 31080, ContainerPort: 8080}
	udp := podnet.PortMapping{Protocol: podnet.ProtocolUDP, HostIP: addr("10.88.0.1"), HostPort: 31053, ContainerPort: 53}
	sb, err := testNode.AddPorts("pm-1", []podnet.PortMapping{tcp, udp})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sb.Ports, []podnet.PortMapping{tcp, udp}) {
		t.Errorf("after add: %+v", sb.Ports)
	}
	// Idempotent.
	if sb, err := testNode.AddPorts("pm-1", []podnet.PortMapping{tcp}); err != nil || len(sb.Ports) != 2 {
		t.Errorf("add again: %+v, %v", sb, err)
	}
	if _, err := testNode.AddPorts("pm-2", []podnet.PortMapping{tcp}); !errors.Is(err, podnet.ErrConflict) {
		t.Errorf("another sandbox on the same host port: %v", err)
	}
	if _, err := testNode.AddPorts("nope", []podnet.PortMapping{tcp}); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("unknown sandbox: %v", err)
	}
	if _, err := testNode.AddPorts("pm-1", []podnet.PortMapping{{Protocol: 99, HostPort: 1, ContainerPort: 1}}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("bad protocol: %v", err)
	}

	entries, err := testNode.ListPorts()
	if err != nil || len(entries) != 2 {
		t.Fatalf("list: %+v, %v", entries, err)
	}
	pm1, _ := testNode.GetSandbox("pm-1")
	ip4, _ := pm1.IPv4()
	ip6, _ := pm1.IPv6()
	if e := entries[0]; e.SandboxID != "pm-1" || e.PortMapping != tcp || !reflect.DeepEqual(e.PodIPs, []netip.Addr{ip4, ip6}) {
		t.Errorf("entry 0: %+v", e)
	}
	if e := entries[1]; e.PortMapping != udp || !reflect.DeepEqual(e.PodIPs, []netip.Addr{ip4}) {
		t.Errorf("entry 1 (host IP of one family): %+v", e)
	}

	// Repair: healthy, then after a ruleset flush; the host port works again.
	if rep, err := testNode.Repair(); err != nil || rep.TableRecreated || rep.PortsRestored != 0 {
		t.Errorf("repair of a healthy node: %+v, %v", rep, err)
	}
	if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
		t.Fatalf("nft flush ruleset: %v %s", err, out)
	}
	rep, err := testNode.Repair()
	if err != nil || !rep.TableRecreated || rep.PortsRestored < 2 {
		t.Errorf("repair after a flush: %+v, %v", rep, err)
	}
	if reply := hostPortPingPong(t, pm1.NetnsPath, netip.AddrPortFrom(ip4, 8080), netip.AddrPortFrom(addr("10.88.0.1"), 31080)); reply != "pong" {
		t.Errorf("through the repaired host port: %q", reply)
	}

	sb, err = testNode.RemovePorts("pm-1", []podnet.PortMapping{tcp, {Protocol: podnet.ProtocolTCP, HostPort: 1, ContainerPort: 1}})
	if err != nil || !reflect.DeepEqual(sb.Ports, []podnet.PortMapping{udp}) {
		t.Errorf("remove: %+v, %v", sb, err)
	}
	// Freed: the other sandbox may take it now.
	if _, err := testNode.AddPorts("pm-2", []podnet.PortMapping{tcp}); err != nil {
		t.Errorf("after remove: %v", err)
	}
	if _, err := testNode.RemovePorts("pm-1", []podnet.PortMapping{tcp, tcp}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("a mapping listed twice: %v", err)
	}
	if _, err := testNode.RemovePorts("nope", nil); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("remove on unknown sandbox: %v", err)
	}
	for _, id := range []string{"pm-1", "pm-2"} {
		if err := testNode.DeleteSandbox(id); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := testNode.ListPorts(); len(entries) != 0 {
		t.Errorf("ports left: %+v", entries)
	}
	assertNothingLeft(t)
}

// A routed pod on the bridge node: /32 and /128, link-local gateways, and it reaches a bridge
// pod (proxy ARP / NDP) in both families.
func TestRoutedPodOnBridgeNode(t *testing.T) {
	needWorld(t)
	deleteOnCleanup(t, "routed-1", "bridged-1")
	r := createOK(t, podnet.SandboxSpec{ID: "routed-1", Mode: podnet.ModeRouted})
	br := createOK(t, podnet.SandboxSpec{ID: "bridged-1"})
	if r.Mode != podnet.ModeRouted || br.Mode != podnet.ModeBridge {
		t.Errorf("modes %s, %s", r.Mode, br.Mode)
	}
	for _, p := range r.IPs {
		if p.Bits() != p.Addr().BitLen() {
			t.Errorf("routed pod address %v is not a host prefix", p)
		}
	}
	wantGW := []netip.Addr{addr("169.254.1.1"), addr("fe80::1")}
	if !reflect.DeepEqual(r.Gateways, wantGW) {
		t.Errorf("routed gateways %v, want %v", r.Gateways, wantGW)
	}
	if _, err := testNode.CreateSandbox(podnet.SandboxSpec{ID: "x", Mode: 7}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("mode 7: %v", err)
	}
	for _, pick := range []func(*podnet.Sandbox) (netip.Addr, bool){(*podnet.Sandbox).IPv4, (*podnet.Sandbox).IPv6} {
		ipBr, _ := pick(br)
		ipR, _ := pick(r)
		var seen netip.Addr
		var reply string
		// Neighbour resolution through the proxy can take a moment on a fresh pod.
		for try := 0; try < 3; try++ {
			if seen, reply = pingPongTry(br.NetnsPath, ipBr, r.NetnsPath); reply == "pong" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if reply != "pong" || seen != ipR {
			t.Errorf("routed -> bridge %s: reply %q, server saw %s, want %s", ipBr, reply, seen, ipR)
		}
	}
	for _, id := range []string{"routed-1", "bridged-1"} {
		if err := testNode.DeleteSandbox(id); err != nil {
			t.Fatal(err)
		}
	}
	assertNothingLeft(t)
}

func TestMultiNodeConfigRefused(t *testing.T) {
	base := func() podnet.NodeConfig {
		return podnet.NodeConfig{Name: "n", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.30.1.0/24")}}
	}
	for _, c := range []struct {
		what   string
		change func(*podnet.NodeConfig)
		code   podnet.Code
	}{
		{"pod CIDR outside the cluster CIDR", func(c *podnet.NodeConfig) { c.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.40.0.0/16")} }, podnet.CodeInvalidArgument},
		{"cross-node mode", func(c *podnet.NodeConfig) { c.CrossNode = 9 }, podnet.CodeInvalidArgument},
		{"VNI", func(c *podnet.NodeConfig) { c.VXLANVNI = 1 << 24 }, podnet.CodeInvalidArgument},
		{"VXLAN device", func(c *podnet.NodeConfig) { c.VXLANDevice = "a/b" }, podnet.CodeInvalidArgument},
		{"loopback underlay", func(c *podnet.NodeConfig) { c.Underlay.Address = netip.MustParseAddr("127.0.0.1") }, podnet.CodeInvalidArgument},
		{"underlay interface without address", func(c *podnet.NodeConfig) { c.Underlay.Interface = "eth0" }, podnet.CodeInvalidAddress},
		{"long underlay interface", func(c *podnet.NodeConfig) {
			c.Underlay = podnet.Underlay{Address: netip.MustParseAddr("10.0.0.1"), Interface: "i234567890123456"}
		}, podnet.CodeTooLong},
	} {
		cfg := base()
		c.change(&cfg)
		refused(t, c.what, cfg.Validate(), c.code, "")
	}
	cfg := base()
	cfg.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}
	cfg.Underlay = podnet.Underlay{Address: netip.MustParseAddr("192.168.1.10"), Interface: "eth0"}
	cfg.CrossNode = podnet.CrossNodeAuto
	cfg.VXLANVNI, cfg.VXLANPort, cfg.VXLANDevice = 42, 4789, "vx0"
	cfg.KeepVXLANTxChecksumOffload, cfg.DisableEgressMasquerade = true, true
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid multi-node config: %v", err)
	}
	cfg.DisableVXLANTxChecksumOffload = true
	refused(t, "both TX checksum overrides", cfg.Validate(), podnet.CodeInvalidArgument, "")
	cfg.KeepVXLANTxChecksumOffload = false
	if err := cfg.Validate(); err != nil {
		t.Errorf("offload forced off: %v", err)
	}
}
