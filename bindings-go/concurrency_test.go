package podnet_test

import (
	"fmt"
	"net/netip"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/testworld"
)

// 16 goroutines share one *Node: together they create 200 sandboxes (while others list, get
// and check), every address is distinct, then they delete them all and nothing is left.
func TestConcurrentCreateDelete(t *testing.T) {
	needWorld(t)
	const goroutines, total = 16, 200
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("conc-%03d", i)
	}
	t.Cleanup(func() {
		for _, id := range ids {
			testNode.DeleteSandbox(id)
		}
	})

	// each runs fn(i) for its share of the indexes, on `goroutines` goroutines.
	each := func(fn func(i int) error) []error {
		errs := make([]error, total)
		testworld.Go(goroutines, func(g int) {
			for i := g; i < total; i += goroutines {
				errs[i] = fn(i)
			}
		})()
		return errs
	}

	sandboxes := make([]*podnet.Sandbox, total)
	stop := make(chan struct{})
	readerErrs := make(chan error, 4)
	readersDone := testworld.Go(4, func(int) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			list, err := testNode.ListSandboxes()
			if err != nil {
				readerErrs <- err
				return
			}
			for _, s := range list {
				// A listed pod may be deleted by the time we look again: only check the call.
				if _, err := testNode.GetSandbox(s.ID); err != nil && codeOf(t, err) != podnet.CodeNotFound {
					readerErrs <- err
					return
				}
			}
		}
	})

	for i, err := range each(func(i int) error {
		sb, err := testNode.CreateSandbox(podnet.SandboxSpec{ID: ids[i]})
		sandboxes[i] = sb
		return err
	}) {
		if err != nil {
			t.Errorf("create %s: %v", ids[i], err)
		}
	}
	if t.Failed() {
		close(stop)
		readersDone()
		t.FailNow()
	}

	seen := map[netip.Addr]string{}
	for i, sb := range sandboxes {
		for _, p := range sb.IPs {
			if other, dup := seen[p.Addr()]; dup {
				t.Errorf("%s and %s both have %s", other, ids[i], p.Addr())
			}
			seen[p.Addr()] = ids[i]
		}
	}
	if len(seen) != 2*total {
		t.Errorf("%d distinct addresses, want %d", len(seen), 2*total)
	}
	list, err := testNode.ListSandboxes()
	if err != nil || len(list) != total {
		t.Fatalf("list: %d sandboxes, %v", len(list), err)
	}
	for i, err := range each(func(i int) error {
		rep, err := testNode.CheckSandbox(ids[i])
		if err == nil && !rep.OK {
			err = fmt.Errorf("problems: %q", rep.Problems)
		}
		return err
	}) {
		if err != nil {
			t.Errorf("check %s: %v", ids[i], err)
		}
	}

	for i, err := range each(func(i int) error { return testNode.DeleteSandbox(ids[i]) }) {
		if err != nil {
			t.Errorf("delete %s: %v", ids[i], err)
		}
	}
	close(stop)
	readersDone()
	close(readerErrs)
	for err := range readerErrs {
		t.Errorf("reader: %v", err)
	}
	assertNothingLeft(t)

	// The addresses are free again: a fresh pod gets one of them.
	sb := createOK(t, podnet.SandboxSpec{ID: "conc-after"})
	deleteOnCleanup(t, "conc-after")
	if ip, _ := sb.IPv4(); seen[ip] == "" {
		t.Logf("after: %s was not among the freed addresses (allocation order may move on)", ip)
	}
}
