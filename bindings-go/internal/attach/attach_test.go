package attach

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
)

// The ids follow podnet-cni's sandbox_id (cni/src/conf.rs, test `ids`).
func TestSandboxID(t *testing.T) {
	if got := SandboxID("abc", "eth0"); got != "abc" {
		t.Errorf("eth0: %q", got)
	}
	a := SandboxID("abc", "net1")
	if a == SandboxID("abc_net1", "eth0") || !validID(a) || !strings.HasPrefix(a, "abc_net1-") || len(a) != len("abc_net1-")+16 {
		t.Errorf("net1: %q", a)
	}
	long := SandboxID(strings.Repeat("x", 200), "eth0")
	if len(long) > 128 || !validID(long) || long == SandboxID(strings.Repeat("x", 201), "eth0") {
		t.Errorf("long: %q", long)
	}
	if !validID(SandboxID("a..b", "eth0")) {
		t.Errorf("a..b: %q", SandboxID("a..b", "eth0"))
	}
	// FNV-1a 64 of "abc\x00net1", as the plugin computes it.
	if a != "abc_net1-"+fnvHex("abc\x00net1") {
		t.Errorf("hash: %q", a)
	}
}

func fnvHex(s string) string {
	h := uint64(0xcbf29ce484222325)
	for _, b := range []byte(s) {
		h ^= uint64(b)
		h *= 0x100000001b3
	}
	const digits = "0123456789abcdef"
	out := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		out[i] = digits[h&15]
		h >>= 4
	}
	return string(out)
}

func TestPortMapping(t *testing.T) {
	m, err := PortMapping(8080, 80, "UDP", "10.0.0.1")
	want := podnet.PortMapping{Protocol: podnet.ProtocolUDP, HostIP: netip.MustParseAddr("10.0.0.1"), HostPort: 8080, ContainerPort: 80}
	if err != nil || m != want {
		t.Errorf("%+v %v", m, err)
	}
	if m, err := PortMapping(1, 2, "", "0.0.0.0"); err != nil || m.Protocol != podnet.ProtocolTCP || m.HostIP.IsValid() {
		t.Errorf("defaults: %+v %v", m, err)
	}
	for _, bad := range [][2]int32{{0, 80}, {70000, 80}, {80, -1}} {
		if _, err := PortMapping(bad[0], bad[1], "tcp", ""); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := PortMapping(1, 2, "icmp", ""); err == nil {
		t.Error("icmp accepted")
	}
	if _, err := PortMapping(1, 2, "tcp", "nope"); err == nil {
		t.Error("bad host IP accepted")
	}
}

func TestSpecAndResult(t *testing.T) {
	r := Request{Network: "podnet", ContainerID: "c1", IfName: "eth0", NetnsPath: "/run/netns/x",
		Labels: map[string]string{LabelPodName: "web", LabelPodUID: ""}}
	s := r.Spec()
	if s.ID != "c1" || s.Labels[LabelNetwork] != "podnet" || s.Labels[LabelPodName] != "web" || s.Labels[LabelIfName] != "eth0" {
		t.Errorf("%+v", s)
	}
	if _, ok := s.Labels[LabelPodUID]; ok {
		t.Error("empty label kept")
	}
	sb := &podnet.Sandbox{IfName: "eth0", NetnsPath: "/run/netns/x",
		IPs:      []netip.Prefix{netip.MustParsePrefix("10.1.0.2/24"), netip.MustParsePrefix("fd00::2/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("fd00::1")}}
	res := Result(sb)
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.1.0.2/24" || res.IPs[1].Gateway.String() != "fd00::1" ||
		len(res.Routes) != 2 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[1].Dst.String() != "::/0" {
		t.Errorf("%+v", res)
	}
}

// A context that has ended stops the call before any library call (the node is never used).
func TestContextBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SetUp(ctx, nil, []Request{{ContainerID: "x"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("setup: %v", err)
	}
	if err := TearDown(ctx, nil, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("teardown: %v", err)
	}
	if err := GC(ctx, nil, "podnet", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("gc: %v", err)
	}
}
