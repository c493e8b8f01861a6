package gocni_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	cni "github.com/containerd/go-cni"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/gocni"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

// newNetPlugin is the line a containerd fork changes: where it called cni.New with its conf
// and bin dirs, it calls gocni.New (here over the test's node; gocni.Open takes a
// podnet.NodeConfig instead, see TestOpen). The result is used only as a cni.CNI.
func newNetPlugin(t *testing.T) cni.CNI {
	t.Helper()
	node := testworld.OpenNode(t, podnet.NodeConfig{
		Name:     "gocnitest",
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.90.0.0/24")},
	})
	return gocni.New(node, gocni.Options{})
}

// Open owns its node: Close closes it (twice is fine), a bad config is an error.
func TestOpen(t *testing.T) {
	if _, err := gocni.Open(podnet.NodeConfig{Name: "x"}, gocni.Options{}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("no pod CIDR: %v", err)
	}
	testworld.Require(t)
	c, err := gocni.Open(podnet.NodeConfig{Name: "gocniopen", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.91.0.0/24")}},
		gocni.Options{NetworkName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetConfig().Networks[0].Config.Name != "other" || c.Status() != nil {
		t.Errorf("config %+v", c.GetConfig())
	}
	if c.Close() != nil || c.Close() != nil || !errors.Is(c.Status(), podnet.ErrClosed) {
		t.Errorf("after close: %v", c.Status())
	}
}

// podOpts are the options containerd's CRI plugin builds for a pod (cniNamespaceOpts): the
// K8S_POD_* labels, port mappings, DNS, pod annotations, all with go-cni's constructors.
func podOpts(name string, ports ...cni.PortMapping) []cni.NamespaceOpts {
	return []cni.NamespaceOpts{
		cni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE":          "default",
			"K8S_POD_NAME":               name,
			"K8S_POD_INFRA_CONTAINER_ID": "sb-" + name,
			"K8S_POD_UID":                "uid-" + name,
			"IgnoreUnknown":              "1",
		}),
		cni.WithCapability("io.kubernetes.cri.pod-annotations", map[string]string{"a": "b"}),
		cni.WithCapabilityPortMap(ports),
		cni.WithCapabilityDNS(cni.DNS{Servers: []string{"10.96.0.10"}}),
	}
}

func ipOf(t *testing.T, r *cni.Result) netip.Addr {
	t.Helper()
	eth0 := r.Interfaces["eth0"]
	if eth0 == nil || len(eth0.IPConfigs) == 0 {
		t.Fatalf("result %+v", r)
	}
	ip, _ := netip.AddrFromSlice(eth0.IPConfigs[0].IP.To4())
	return ip
}

// Two pods the way containerd sets them up: labels from the options, TCP between them, a host
// port from the node, Check, Remove, nothing left.
func TestTwoPods(t *testing.T) {
	netPlugin := newNetPlugin(t)
	ctx := context.Background()
	if err := netPlugin.Load(cni.WithLoNetwork, cni.WithDefaultConf); err != nil {
		t.Fatal(err)
	}
	if err := netPlugin.Status(); err != nil {
		t.Fatal(err)
	}
	conf := netPlugin.GetConfig()
	if len(conf.Networks) != 1 || conf.Networks[0].Config.Name != "podnet" || conf.Networks[0].Config.Plugins[0].Network.Type != "podnet" {
		t.Errorf("config %+v", conf)
	}
	nsA, nsB := testworld.RuntimeNetns(t, "gocni-a"), testworld.RuntimeNetns(t, "gocni-b")
	rA, err := netPlugin.Setup(ctx, "sb-a", nsA, podOpts("a", cni.PortMapping{HostPort: 30082, ContainerPort: 8080, Protocol: "tcp"})...)
	if err != nil {
		t.Fatal(err)
	}
	rB, err := netPlugin.SetupSerially(ctx, "sb-b", nsB, podOpts("b")...)
	if err != nil {
		t.Fatal(err)
	}
	ipA, ipB := ipOf(t, rA), ipOf(t, rB)
	if ipA == ipB || rA.Interfaces["eth0"].Sandbox != nsA || len(rA.Raw()) != 1 || rA.Raw()[0].IPs[0].Address.IP.To4().String() != ipA.String() {
		t.Errorf("results %+v %+v", rA, rB)
	}

	node := netPlugin.(*gocni.CNI).Node()
	sb, err := node.GetSandbox("sb-a")
	if err != nil {
		t.Fatal(err)
	}
	testworld.CheckLabels(t, sb, map[string]string{"k8s.pod.namespace": "default", "k8s.pod.name": "a", "k8s.pod.uid": "uid-a",
		"k8s.pod.infra_container_id": "sb-a", "cni.network": "podnet", "cni.container_id": "sb-a"})
	if len(sb.Ports) != 1 || sb.Ports[0].HostPort != 30082 || sb.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports %+v", sb.Ports)
	}

	testworld.CheckTwoPods(t, nsA, ipA, nsB, ipB, netip.AddrPortFrom(sb.Gateways[0], 30082))
	if err := netPlugin.Check(ctx, "sb-a", nsA); err != nil {
		t.Errorf("check: %v", err)
	}
	for i := 0; i < 2; i++ { // idempotent
		for _, id := range []string{"sb-a", "sb-b"} {
			if err := netPlugin.Remove(ctx, id, "/run/netns/gocni-"+id[3:]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := netPlugin.Check(ctx, "sb-a", nsA); !errors.Is(err, podnet.ErrNotFound) {
		t.Errorf("check after remove: %v", err)
	}
	testworld.AssertEmpty(t, node)
}

// The context: an ended one creates nothing; one that ends while the create runs lets it
// finish, then removes the sandbox. Refused capabilities create nothing.
func TestContextAndRefusals(t *testing.T) {
	netPlugin := newNetPlugin(t)
	node := netPlugin.(*gocni.CNI).Node()
	ns := testworld.RuntimeNetns(t, "gocni-ctx")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := netPlugin.Setup(ctx, "c1", ns, podOpts("c1")...); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// A deadline shorter than a create (~ms): the create that started completes, then is
	// rolled back because nobody waits for its result.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Microsecond)
	defer cancel2()
	if _, err := netPlugin.Setup(short, "c2", ns, podOpts("c2")...); !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("short deadline: %v (the create beat it)", err)
		netPlugin.Remove(context.Background(), "c2", ns)
	}
	testworld.AssertEmpty(t, node)

	for name, opt := range map[string]cni.NamespaceOpts{
		"mac":       cni.WithCapability("mac", "02:00:00:00:00:01"),
		"bandwidth": cni.WithCapabilityBandWidth(cni.BandWidth{IngressRate: 1}),
		"ipRanges":  cni.WithCapabilityIPRanges([]cni.IPRanges{{Subnet: "10.9.0.0/24"}}),
		"bad port":  cni.WithCapabilityPortMap([]cni.PortMapping{{HostPort: 1, ContainerPort: 0}}),
		"bad ip":    cni.WithCapability("ips", []string{"nope"}),
	} {
		if _, err := netPlugin.Setup(context.Background(), "bad", ns, opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	r, err := netPlugin.Setup(context.Background(), "want", ns, cni.WithCapability("ips", []string{"10.90.0.77/24"}))
	if err != nil || ipOf(t, r) != netip.MustParseAddr("10.90.0.77") {
		t.Errorf("requested IP: %+v %v", r, err)
	}
	if err := netPlugin.Remove(context.Background(), "want", ns); err != nil {
		t.Fatal(err)
	}
	testworld.AssertEmpty(t, node)
}
