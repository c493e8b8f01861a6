package podnet_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

// An agent whose etcd is unreachable: refused inputs, then started, never ready, its status
// says why, and Close is idempotent. (The agent against real etcd is tested in Rust:
// cluster/tests/agent.rs.)
func TestAgentWithoutStore(t *testing.T) {
	cfg := podnet.NodeConfig{Name: "goagent"}
	opts := podnet.AgentOptions{EtcdEndpoints: []string{"http://127.0.0.1:9"}, LeaseTTL: time.Minute,
		StateFile: t.TempDir() + "/agent.json"}
	if _, err := podnet.StartAgent(cfg, opts); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Fatalf("no underlay: %v", err)
	}
	cfg.Underlay = podnet.Underlay{Address: netip.MustParseAddr("10.0.0.1")}
	bad := opts
	bad.EtcdEndpoints = []string{"etcd.example:2379"}
	if _, err := podnet.StartAgent(cfg, bad); !errors.Is(err, podnet.ErrInvalidArgument) {
		t.Fatalf("bad endpoint: %v", err)
	}
	a, err := podnet.StartAgent(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := a.WaitReady(ctx); !errors.Is(err, podnet.ErrIO) {
		t.Fatalf("WaitReady: %v", err)
	}
	if a.Ready() {
		t.Fatal("ready without a store")
	}
	s, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Node != "goagent" || s.Ready || s.StoreReachable || !strings.Contains(s.LastError, "127.0.0.1:9") {
		t.Fatalf("status: %+v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Status(); !errors.Is(err, podnet.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
