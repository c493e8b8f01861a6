package ocicni_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
	"github.com/podnet/podnet/bindings-go/ocicni"
)

func TestMain(m *testing.M) { testworld.Main(m) }

// openPlugin opens the test node ("ocitest", in the world's node netns) and a plugin over it
// (Open: Shutdown closes the node).
func openPlugin(t *testing.T) *ocicni.Plugin {
	t.Helper()
	testworld.Require(t)
	p, err := ocicni.Open(podnet.NodeConfig{
		Name:     "ocitest",
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.89.0.0/24")},
	}, ocicni.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func pod(name, netns string, ports ...ocicni.PortMapping) ocicni.PodNetwork {
	return ocicni.PodNetwork{
		Name: name, Namespace: "default", ID: "sb-" + name, UID: "uid-" + name, NetNS: netns,
		RuntimeConfig: map[string]ocicni.RuntimeConfig{"podnet": {PortMappings: ports}},
	}
}

// ipOf reads the pod's IPv4 address from a result, as CRI-O does.
func ipOf(t *testing.T, res []ocicni.NetResult) netip.Addr {
	t.Helper()
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	r, err := types100.GetResult(res[0].Result)
	if err != nil || len(r.IPs) == 0 {
		t.Fatalf("result %+v: %v", res[0].Result, err)
	}
	ip, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	return ip
}

// Two pods through the interface CRI-O calls: addresses, labels, TCP between them, a host
// port from the node, status, GC, teardown, nothing left.
func TestTwoPods(t *testing.T) {
	p := openPlugin(t)
	var plugin ocicni.CNIPlugin = p
	ctx := context.Background()
	if err := plugin.StatusWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	if plugin.GetDefaultNetworkName() != "podnet" || plugin.Name() != "podnet" {
		t.Errorf("names %q %q", plugin.GetDefaultNetworkName(), plugin.Name())
	}
	nsA, nsB := testworld.RuntimeNetns(t, "oci-a"), testworld.RuntimeNetns(t, "oci-b")
	a := pod("a", nsA, ocicni.PortMapping{HostPort: 30081, ContainerPort: 8080, Protocol: "tcp"})
	b := pod("b", nsB)
	resA, err := plugin.SetUpPodWithContext(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	resB, err := plugin.SetUpPod(b)
	if err != nil {
		t.Fatal(err)
	}
	ipA, ipB := ipOf(t, resA), ipOf(t, resB)
	if resA[0].Name != "podnet" || resA[0].Ifname != "eth0" || ipA == ipB {
		t.Errorf("results %+v %s %s", resA[0].NetAttachment, ipA, ipB)
	}
	// Again: the same results (idempotent).
	if again, err := plugin.SetUpPod(a); err != nil || ipOf(t, again) != ipA {
		t.Errorf("set up again: %v", err)
	}

	sb, err := p.Node().GetSandbox("sb-a")
	if err != nil {
		t.Fatal(err)
	}
	testworld.CheckLabels(t, sb, map[string]string{"k8s.pod.namespace": "default", "k8s.pod.name": "a", "k8s.pod.uid": "uid-a",
		"cni.network": "podnet", "cni.container_id": "sb-a", "cni.ifname": "eth0"})
	if sb.NetnsPath != nsA || sb.OwnsNetns || len(sb.Ports) != 1 || sb.Ports[0].HostPort != 30081 {
		t.Errorf("sandbox %+v", sb)
	}

	testworld.CheckTwoPods(t, nsA, ipA, nsB, ipB, netip.AddrPortFrom(sb.Gateways[0], 30081))

	if st, err := plugin.GetPodNetworkStatusWithContext(ctx, a); err != nil || ipOf(t, st) != ipA {
		t.Errorf("status: %v", err)
	}
	// GC keeps the valid pods and sandboxes of other clients; drops the rest of its network.
	other, err := p.Node().CreateSandbox(podnet.SandboxSpec{ID: "not-cni"})
	if err != nil {
		t.Fatal(err)
	}
	if err := plugin.GC(ctx, []*ocicni.PodNetwork{&a, &b}); err != nil {
		t.Fatal(err)
	}
	if list, _ := p.Node().ListSandboxes(); len(list) != 3 {
		t.Errorf("gc removed valid pods: %d left", len(list))
	}
	if err := plugin.GC(ctx, []*ocicni.PodNetwork{&a}); err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.GetPodNetworkStatus(b); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("b after gc: %v", err)
	}
	if _, err := p.Node().GetSandbox(other.ID); err != nil {
		t.Errorf("gc removed another client's sandbox: %v", err)
	}
	if err := p.Node().DeleteSandbox(other.ID); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ { // idempotent
		if err := plugin.TearDownPodWithContext(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := plugin.TearDownPod(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(nsA); err != nil {
		t.Errorf("the runtime's netns was removed: %v", err)
	}
	testworld.AssertEmpty(t, p.Node())
}

// stepCtx is a context whose Err is nil for its first n calls, then Canceled: it ends
// between two steps of a call.
type stepCtx struct {
	context.Context
	n atomic.Int32
}

func (c *stepCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// The context: an ended one creates nothing; one ending between the attachments of a pod
// (after eth0 was created) rolls the pod back whole; refused settings create nothing.
func TestContextAndRefusals(t *testing.T) {
	p := openPlugin(t)
	ns := testworld.RuntimeNetns(t, "oci-ctx")
	two := pod("two", ns)
	two.Networks = []ocicni.NetAttachment{{Name: "podnet", Ifname: "eth0"}, {Name: "podnet", Ifname: "net1"}}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.SetUpPodWithContext(ctx, two); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	dl, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	if _, err := p.SetUpPodWithContext(dl, two); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	testworld.AssertEmpty(t, p.Node())

	step := &stepCtx{Context: context.Background()}
	step.n.Store(1)
	if _, err := p.SetUpPodWithContext(step, two); !errors.Is(err, context.Canceled) {
		t.Errorf("between steps: %v", err)
	}
	testworld.AssertEmpty(t, p.Node())

	// Both attachments when nothing cancels; the second has its own id and interface.
	res, err := p.SetUpPod(two)
	if err != nil || len(res) != 2 || res[1].Ifname != "net1" {
		t.Fatalf("two attachments: %+v %v", res, err)
	}
	if err := p.TearDownPod(two); err != nil {
		t.Fatal(err)
	}

	for name, rc := range map[string]ocicni.RuntimeConfig{
		"bad mac":   {MAC: "02:00:00:00"},
		"multicast": {MAC: "03:00:00:00:00:01"},
		"bandwidth": {Bandwidth: &ocicni.BandwidthConfig{IngressRate: 1}},
		"ipRanges":  {IpRanges: [][]ocicni.IpRange{{{Subnet: "10.9.0.0/24"}}}},
		"bad port":  {PortMappings: []ocicni.PortMapping{{HostPort: 0, ContainerPort: 80}}},
		"bad ip":    {IP: "nope"},
	} {
		bad := pod("bad", ns)
		bad.RuntimeConfig = map[string]ocicni.RuntimeConfig{"podnet": rc}
		if _, err := p.SetUpPod(bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	other := pod("other", ns)
	other.Networks = []ocicni.NetAttachment{{Name: "flannel"}}
	if _, err := p.SetUpPod(other); err == nil {
		t.Error("a foreign network accepted")
	}
	if _, err := p.SetUpPod(pod("nonetns", "")); err == nil {
		t.Error("no netns accepted")
	}
	// A requested address and MAC.
	want := pod("want", ns)
	want.RuntimeConfig = map[string]ocicni.RuntimeConfig{"podnet": {IP: "10.89.0.77", MAC: "02:aa:bb:cc:dd:01"}}
	res, err = p.SetUpPod(want)
	if err != nil || ipOf(t, res) != netip.MustParseAddr("10.89.0.77") {
		t.Errorf("requested IP: %v", err)
	}
	if r, err := types100.GetResult(res[0].Result); err != nil || r.Interfaces[len(r.Interfaces)-1].Mac != "02:aa:bb:cc:dd:01" {
		t.Errorf("requested MAC: %+v %v", r, err)
	}
	if err := p.TearDownPod(want); err != nil {
		t.Fatal(err)
	}
	testworld.AssertEmpty(t, p.Node())
}
