package podnet_test

// Benchmarks of the Go path (root, throwaway world; `make -C bindings-go bench` also runs the
// Rust-API figure in the same world and prints the ratio).
//
// The node is set up exactly as ffi/examples/bench_rust.rs sets up its own (name "bench",
// 10.240.0.0/16, bridge mode): bench.sh alternates between the two programs, so both see the
// same node, the same kernel and the same background load. BENCH_SAMPLES=<file> writes the
// per-call create times (µs, one per line) of the last run of a benchmark.

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	podnet "github.com/podnet/podnet/bindings-go"
)

var (
	benchNode     *podnet.Node
	openBenchNode sync.Once
)

func needBenchNode(b *testing.B) *podnet.Node {
	needWorldOnly(b)
	openBenchNode.Do(func() {
		var err error
		benchNode, err = podnet.OpenNode(podnet.NodeConfig{
			Name:     "bench",
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.240.0.0/16")},
		})
		if err != nil {
			b.Fatal(err)
		}
		// Warm-up, as bench_rust does.
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("warm-go-%d", i)
			if _, err := benchNode.CreateSandbox(podnet.SandboxSpec{ID: id}); err != nil {
				b.Fatal(err)
			}
			if err := benchNode.DeleteSandbox(id); err != nil {
				b.Fatal(err)
			}
		}
	})
	if benchNode == nil {
		b.Fatal("no bench node")
	}
	return benchNode
}

func needWorldOnly(b *testing.B) {
	if !inWorld {
		b.Skip("needs root in a throwaway world: run `make -C bindings-go bench`")
	}
}

// BenchmarkCreateDelete: one op = create a sandbox through Go (spec in, Sandbox out) and
// delete it. Reports the p50 of the create and delete calls besides ns/op and allocs/op.
func BenchmarkCreateDelete(b *testing.B) {
	node := needBenchNode(b)
	create := make([]float64, 0, b.N)
	del := make([]float64, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "go-" + strconv.Itoa(i)
		t0 := time.Now()
		if _, err := node.CreateSandbox(podnet.SandboxSpec{ID: id}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := node.DeleteSandbox(id); err != nil {
			b.Fatal(err)
		}
		create = append(create, us(t1.Sub(t0)))
		del = append(del, us(time.Since(t1)))
	}
	b.StopTimer()
	b.ReportMetric(p50(create), "create-p50-µs")
	b.ReportMetric(p50(del), "delete-p50-µs")
	writeSamples(b, create)
}

// BenchmarkCreateRounds mirrors bench_rust's rounds: one op = two creates (both timed), then
// two deletes, so each create sees the same node size and background teardown as the Rust
// side's. This is the figure bench.sh compares with the Rust API.
func BenchmarkCreateRounds(b *testing.B) {
	node := needBenchNode(b)
	create := make([]float64, 0, 2*b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids := [2]string{"goa-" + strconv.Itoa(i), "gob-" + strconv.Itoa(i)}
		for _, id := range ids {
			t0 := time.Now()
			if _, err := node.CreateSandbox(podnet.SandboxSpec{ID: id}); err != nil {
				b.Fatal(err)
			}
			create = append(create, us(time.Since(t0)))
		}
		for _, id := range ids {
			if err := node.DeleteSandbox(id); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(p50(create), "create-p50-µs")
	writeSamples(b, create)
}

// BenchmarkGetSandbox: read one record back (no kernel work): the cost of the Go path itself
// (cgo calls, C strings, copying the result) on top of the library's.
func BenchmarkGetSandbox(b *testing.B) {
	node := needBenchNode(b)
	if _, err := node.CreateSandbox(podnet.SandboxSpec{ID: "probe-go"}); err != nil {
		b.Fatal(err)
	}
	defer node.DeleteSandbox("probe-go")
	get := make([]float64, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := node.GetSandbox("probe-go"); err != nil {
			b.Fatal(err)
		}
		get = append(get, us(time.Since(t0)))
	}
	b.StopTimer()
	b.ReportMetric(p50(get), "get-p50-µs")
	writeSamples(b, get)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func p50(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// writeSamples writes v to $BENCH_SAMPLES (each run of a benchmark replaces the file, so it
// ends up with the last, full-length run).
func writeSamples(b *testing.B, v []float64) {
	path := os.Getenv("BENCH_SAMPLES")
	if path == "" {
		return
	}
	var sb strings.Builder
	for _, x := range v {
		sb.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}
