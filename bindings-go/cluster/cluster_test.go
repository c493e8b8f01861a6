package cluster_test

// Tests of the cluster-wide pieces that need no root: Plan and the two allocators.

import (
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/cluster"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func TestPlan(t *testing.T) {
	// The header's worked example.
	r, err := cluster.Plan(cluster.PlanInput{
		ClusterCIDRs:  []netip.Prefix{pfx("10.10.0.0/16")},
		NodeMasks:     []uint8{24},
		MachineSubnet: pfx("10.1.0.0/24"),
		ControlPlane:  9,
		ServiceCIDRs:  []netip.Prefix{pfx("10.0.0.0/16")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Nodes != 254 || r.ControlPlane != 9 || r.Workers != 245 || r.PodsPerNode != 254 || r.PodCapacity != 62230 {
		t.Errorf("plan: %+v", r)
	}
	if len(r.Services) != 1 || r.Services[0].CIDR != pfx("10.0.0.0/16") || r.Services[0].IPs != 65534 {
		t.Errorf("services: %+v", r.Services)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.JSON), &doc); err != nil || doc["workers"] == nil {
		t.Errorf("JSON %q: %v", r.JSON, err)
	}

	// Unwise input: warnings, not errors. IPv6 counts saturate.
	r, err = cluster.Plan(cluster.PlanInput{
		ClusterCIDRs: []netip.Prefix{pfx("10.10.0.0/16"), pfx("fd00:10::/48")},
		NodeMasks:    []uint8{16, 64},
		ServiceCIDRs: []netip.Prefix{pfx("172.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[cluster.PlanWarningCode]bool{}
	for _, w := range r.Warnings {
		codes[w.Code] = true
		if w.Message == "" || w.Code.String() == "" {
			t.Errorf("warning %+v", w)
		}
	}
	if !codes[cluster.PlanWarningNodeMaskNotLonger] || !codes[cluster.PlanWarningServiceRangeTooLarge] {
		t.Errorf("warnings %+v", r.Warnings)
	}
	t.Logf("warnings: %+v", r.Warnings)

	for what, in := range map[string]cluster.PlanInput{
		"no cluster CIDR":  {},
		"mask count":       {ClusterCIDRs: []netip.Prefix{pfx("10.10.0.0/16")}, NodeMasks: []uint8{24, 64}},
		"service overlaps": {ClusterCIDRs: []netip.Prefix{pfx("10.10.0.0/16")}, ServiceCIDRs: []netip.Prefix{pfx("10.10.0.0/24")}},
		"host bits":        {ClusterCIDRs: []netip.Prefix{pfx("10.10.0.1/16")}},
	} {
		if _, err := cluster.Plan(in); !errors.Is(err, podnet.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", what, err)
		}
	}
	if _, err := cluster.Plan(cluster.PlanInput{ClusterCIDRs: []netip.Prefix{{}}}); !errors.Is(err, podnet.ErrInvalidAddress) {
		t.Errorf("zero prefix: %v", err)
	}
	if _, err := cluster.Plan(cluster.PlanInput{ClusterCIDRs: []netip.Prefix{pfx("10.10.0.0/16")}, NodeMasks: []uint8{200}}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("mask 200: %v", err)
	}
}

func TestNodeCIDRAllocator(t *testing.T) {
	a, err := cluster.NewNodeCIDRAllocator(
		[]netip.Prefix{pfx("10.10.0.0/22"), pfx("fd00:10::/62")}, []uint8{24, 64}, []netip.Prefix{pfx("10.96.0.0/12")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Capacity() != 4 || a.Available() != 4 {
		t.Errorf("capacity %d, available %d", a.Capacity(), a.Available())
	}
	first, err := a.Allocate()
	if err != nil || len(first) != 2 || !first[0].Addr().Is4() || !first[1].Addr().Is6() {
		t.Fatalf("allocate: %v, %v", first, err)
	}
	if ok, err := a.IsAllocated(first[0]); err != nil || !ok {
		t.Errorf("is allocated %v: %v, %v", first[0], ok, err)
	}
	// Adopt an existing node's CIDRs.
	if err := a.Occupy(pfx("10.10.3.0/24"), pfx("fd00:10:0:3::/64")); err != nil {
		t.Fatal(err)
	}
	if err := a.Occupy(pfx("10.10.3.0/24")); !errors.Is(err, podnet.ErrAlreadyExists) {
		t.Errorf("occupy twice: %v", err)
	}
	if err := a.Occupy(pfx("10.20.0.0/24")); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("occupy outside: %v", err)
	}
	saved, err := a.MarshalBinary()
	if err != nil || len(saved) == 0 {
		t.Fatalf("marshal: %d bytes, %v", len(saved), err)
	}
	for a.Available() > 0 {
		if _, err := a.Allocate(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Allocate(); !errors.Is(err, podnet.ErrExhausted) {
		t.Errorf("allocate when full: %v", err)
	}
	if n, err := a.Release(first...); err != nil || n != 2 {
		t.Errorf("release: %d, %v", n, err)
	}
	if n, err := a.Release(first...); err != nil || n != 0 {
		t.Errorf("release again: %d, %v", n, err)
	}

	b, err := cluster.NodeCIDRAllocatorFromBytes(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Available() != 2 {
		t.Errorf("restored: available %d, want 2", b.Available())
	}
	if ok, _ := b.IsAllocated(pfx("10.10.3.0/24")); !ok {
		t.Errorf("restored allocator lost an occupied CIDR")
	}
	damaged := append([]byte(nil), saved...)
	damaged[len(damaged)/2] ^= 0xff
	if _, err := cluster.NodeCIDRAllocatorFromBytes(damaged); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("damaged bytes: %v", err)
	}
	if _, err := cluster.NodeCIDRAllocatorFromBytes(nil); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("no bytes: %v", err)
	}
	if _, err := cluster.NewNodeCIDRAllocator(nil, nil, nil); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("no cluster CIDR: %v", err)
	}
	if _, err := cluster.NewNodeCIDRAllocator([]netip.Prefix{pfx("10.0.0.0/16")}, nil,
		[]netip.Prefix{pfx("10.0.1.0/24")}); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("service range inside the cluster CIDR: %v", err)
	}

	a.Close()
	a.Close()
	if _, err := a.Allocate(); !errors.Is(err, podnet.ErrClosed) {
		t.Errorf("allocate after close: %v", err)
	}
	if a.Capacity() != 0 {
		t.Errorf("capacity after close")
	}
}

func TestServiceIPAllocator(t *testing.T) {
	a, err := cluster.NewServiceIPAllocator(pfx("10.96.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.CIDR() != pfx("10.96.0.0/24") || a.Size() != 254 || a.Allocated() != 0 || a.Available() != 254 {
		t.Errorf("new: %v size %d allocated %d available %d", a.CIDR(), a.Size(), a.Allocated(), a.Available())
	}
	if err := a.Allocate(addr("10.96.0.10")); err != nil {
		t.Fatal(err)
	}
	if err := a.Allocate(addr("10.96.0.10")); !errors.Is(err, podnet.ErrAlreadyExists) {
		t.Errorf("allocate twice: %v", err)
	}
	if err := a.Allocate(addr("10.97.0.1")); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("outside: %v", err)
	}
	if err := a.Allocate(netip.Addr{}); !errors.Is(err, podnet.ErrInvalidAddress) {
		t.Errorf("zero address: %v", err)
	}

	// Goroutines share the allocator: every address handed out once.
	var mu sync.Mutex
	seen := map[netip.Addr]bool{addr("10.96.0.10"): true}
	testworld.Go(8, func(int) {
		for i := 0; i < 20; i++ {
			ip, err := a.AllocateNext()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if seen[ip] || ip == addr("10.96.0.1") || !pfx("10.96.0.0/24").Contains(ip) {
				t.Errorf("AllocateNext gave %s", ip)
			}
			seen[ip] = true
			mu.Unlock()
		}
	})()
	if a.Allocated() != 161 {
		t.Errorf("allocated %d, want 161", a.Allocated())
	}
	if ok, err := a.IsAllocated(addr("10.96.0.10")); !ok || err != nil {
		t.Errorf("is allocated: %v %v", ok, err)
	}
	if ok, err := a.Release(addr("10.96.0.10")); !ok || err != nil {
		t.Errorf("release: %v %v", ok, err)
	}
	if ok, err := a.Release(addr("10.96.0.10")); ok || err != nil {
		t.Errorf("release again: %v %v", ok, err)
	}

	saved, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.ServiceIPAllocatorFromBytes(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Allocated() != 160 || b.CIDR() != a.CIDR() {
		t.Errorf("restored: %d allocated, %v", b.Allocated(), b.CIDR())
	}

	// Only the end may move.
	if err := a.Resize(pfx("10.96.0.0/23")); err != nil {
		t.Fatal(err)
	}
	if a.CIDR() != pfx("10.96.0.0/23") || a.Size() != 510 {
		t.Errorf("resized: %v size %d", a.CIDR(), a.Size())
	}
	if err := a.Resize(pfx("10.96.1.0/24")); !errors.Is(err, podnet.ErrConflict) {
		t.Errorf("moving the start: %v", err)
	}
	if _, err := cluster.NewServiceIPAllocator(pfx("10.0.0.0/8")); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Errorf("a /8: %v", err)
	}

	// Exhaustion.
	small, err := cluster.NewServiceIPAllocator(pfx("10.96.0.0/30"))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for i := 0; ; i++ {
		if _, err := small.AllocateNext(); err != nil {
			if !errors.Is(err, podnet.ErrExhausted) || i == 0 {
				t.Errorf("after %d: %v", i, err)
			}
			break
		}
	}
	a.Close()
	if _, err := a.AllocateNext(); !errors.Is(err, podnet.ErrClosed) {
		t.Errorf("after close: %v", err)
	}
	if a.CIDR().IsValid() {
		t.Errorf("CIDR after close")
	}
}
