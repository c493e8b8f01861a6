package podnet_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"reflect"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

func mustListen(t *testing.T, path string, addr netip.AddrPort) net.Listener {
	t.Helper()
	ln, err := testworld.ListenIn(path, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dialService dials target from the client pod's netns, sends a line and returns the reply.
func dialService(clientNS string, target netip.AddrPort) (string, error) {
	var c net.Conn
	if err := podnet.RunInNetns(clientNS, func() (err error) {
		c, err = net.DialTimeout("tcp", target.String(), 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	return testworld.Exchange(c)
}

// Services: set, list, conflict, bad input, a real connect from a pod through a ClusterIP to
// another pod (which sees the client pod's own address), refused without endpoints, repair
// after the table was deleted, remove and sync.
func TestServices(t *testing.T) {
	needWorld(t)
	ctx := context.Background()
	deleteOnCleanup(t, "svc-a", "svc-b")
	t.Cleanup(func() { testNode.SyncServices(ctx, nil) })
	a := createOK(t, podnet.SandboxSpec{ID: "svc-a"})
	b := createOK(t, podnet.SandboxSpec{ID: "svc-b"})
	ipA, _ := a.IPv4()
	ipB, _ := b.IPv4()
	cip := addr("10.96.0.10")
	web := podnet.Service{
		Name:       "default/web",
		ClusterIPs: []netip.Addr{cip},
		Ports:      []podnet.ServicePort{{Protocol: podnet.ProtocolTCP, Port: 80, TargetPort: 8080, NodePort: 30080}},
		Endpoints:  []podnet.Endpoint{{IP: ipB, Ready: true, Local: true}},
	}

	// bad input changes nothing
	outside := web
	outside.Name, outside.ClusterIPs = "default/outside", []netip.Addr{addr("10.97.0.1")}
	if c := codeOf(t, testNode.SetService(ctx, outside)); c != podnet.CodeInvalidArgument {
		t.Errorf("ClusterIP outside the service CIDRs: %v", c)
	}
	bad := web
	bad.Name = "a b"
	if c := codeOf(t, testNode.SetService(ctx, bad)); c != podnet.CodeInvalidArgument {
		t.Errorf("bad name: %v", c)
	}
	bad = web
	bad.ClusterIPs = []netip.Addr{{}}
	if c := codeOf(t, testNode.SetService(ctx, bad)); c != podnet.CodeInvalidAddress {
		t.Errorf("zero ClusterIP: %v", c)
	}
	bad = web
	bad.AffinityTimeoutSecs = 100000
	if c := codeOf(t, testNode.SetService(ctx, bad)); c != podnet.CodeInvalidArgument {
		t.Errorf("affinity timeout: %v", c)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := testNode.SetService(cancelled, web); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	// set and list
	if err := testNode.SetService(ctx, web); err != nil {
		t.Fatal(err)
	}
	got, err := testNode.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := web
	want.ExternalTrafficPolicy = podnet.TrafficPolicyCluster
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("ListServices = %+v, want [%+v]", got, want)
	}
	clash := web
	clash.Name = "default/clash"
	clash.Ports = []podnet.ServicePort{{Protocol: podnet.ProtocolTCP, Port: 80, TargetPort: 8080}}
	if c := codeOf(t, testNode.SetService(ctx, clash)); c != podnet.CodeConflict {
		t.Errorf("same IP/port: %v", c)
	}

	// a real connect: pod A -> ClusterIP:80 -> pod B:8080, which sees pod A's own address
	ln := mustListen(t, b.NetnsPath, netip.AddrPortFrom(ipB, 8080))
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() { seen <- testworld.ServeOnce(ln) }()
	reply, err := dialService(a.NetnsPath, netip.AddrPortFrom(cip, 80))
	if err != nil || reply != "pong" {
		t.Fatalf("through the ClusterIP: %q, %v", reply, err)
	}
	if s := <-seen; s != ipA {
		t.Errorf("endpoint saw %s, want the client pod's %s", s, ipA)
	}

	// no ready endpoint: refused at once
	none := web
	none.Endpoints = []podnet.Endpoint{{IP: ipB, Ready: false}}
	if err := testNode.SetService(ctx, none); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := dialService(a.NetnsPath, netip.AddrPortFrom(cip, 80)); err == nil {
		t.Error("connected without a ready endpoint")
	} else if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v: %v", d, err)
	}

	// repair after someone deleted the table
	if err := testNode.SetService(ctx, web); err != nil {
		t.Fatal(err)
	}
	if rebuilt, err := testNode.RepairServices(ctx); err != nil || rebuilt {
		t.Errorf("healthy table: rebuilt %v, %v", rebuilt, err)
	}
	if out, err := exec.Command("nft", "delete", "table", "inet", "podnet-services").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	if rebuilt, err := testNode.RepairServices(ctx); err != nil || !rebuilt {
		t.Errorf("deleted table: rebuilt %v, %v", rebuilt, err)
	}
	go testworld.ServeOnce(ln)
	if reply, err := dialService(a.NetnsPath, netip.AddrPortFrom(cip, 80)); err != nil || reply != "pong" {
		t.Errorf("after repair: %q, %v", reply, err)
	}

	// remove (twice), sync to a list, sync to nothing
	for i := 0; i < 2; i++ {
		if err := testNode.RemoveService(ctx, web.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := testNode.SyncServices(ctx, []podnet.Service{web, clash}); codeOf(t, err) != podnet.CodeConflict {
		t.Errorf("sync with a clash: %v", err)
	}
	if err := testNode.SyncServices(ctx, []podnet.Service{web}); err != nil {
		t.Fatal(err)
	}
	if got, _ := testNode.ListServices(ctx); len(got) != 1 {
		t.Errorf("after sync: %d services", len(got))
	}
	if err := testNode.SyncServices(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := testNode.ListServices(ctx); len(got) != 0 {
		t.Errorf("after sync to nothing: %d services", len(got))
	}
}
