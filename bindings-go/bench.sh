#!/bin/sh
# `make -C bindings-go bench`: sandbox create through the Go binding vs the Rust API, measured
# in the same run. Usage (as root, inside a throwaway netns + tmpfs /run, as the Makefile does):
#
#   bench.sh GO_TEST_BINARY BENCH_RUST LIBPODNET_SO COUNT ROUNDS
#
# GO_TEST_BINARY is bindings-go's test binary (`go test -c`, no -race); BENCH_RUST is
# ffi/examples/bench_rust (which also measures the C ABI, through LIBPODNET_SO). The COUNT
# creates per side are split into ROUNDS chunks that alternate between the two programs (the
# first one flips every round), so slow drift in the machine's state hits both alike; both
# programs set up the same node ("bench", 10.240.0.0/16) and the same rounds (two creates,
# then two deletes). The p50s are over all the samples of each side. Then one more Go run
# gives ns/op and allocs/op of a create+delete and of a get. Prints one JSON line.
set -eu
go_bin=$1 rust_bin=$2 lib=$3 count=$4 rounds=$5
per=$(( (count + rounds - 1) / rounds ))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/go.samples"
: > "$tmp/rust.samples"

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

run_go() {
	# One op = two creates: per/2 ops give `per` create samples, like bench_rust's `per` rounds
	# give `per` Rust samples.
	BENCH_SAMPLES="$tmp/go.last" "$go_bin" -test.run '^$' -test.bench '^BenchmarkCreateRounds$' \
		-test.benchtime "$(( (per + 1) / 2 ))x" -test.count 1 > "$tmp/go.out"
	cat "$tmp/go.last" >> "$tmp/go.samples"
}

run_rust() {
	BENCH_SAMPLES="$tmp/rust.last" "$rust_bin" "$lib" "$per" > "$tmp/rust.out"
	# "c_us rust_us" per round.
	cat "$tmp/rust.last" >> "$tmp/rust.samples"
	tail -n 1 "$tmp/rust.out" >> "$tmp/rust.json"
}

i=0
while [ "$i" -lt "$rounds" ]; do
	if [ $(( i % 2 )) -eq 0 ]; then run_go; sleep 2; run_rust; else run_rust; sleep 2; run_go; fi
	# Deleted pods' netns are destroyed by the kernel asynchronously: let that finish first.
	sleep 2
	i=$(( i + 1 ))
done

go_p50=$(median < "$tmp/go.samples")
rust_p50=$(awk '{print $2}' "$tmp/rust.samples" | median)
c_p50=$(awk '{print $1}' "$tmp/rust.samples" | median)
n_go=$(wc -l < "$tmp/go.samples")
n_rust=$(wc -l < "$tmp/rust.samples")
rust_get=$(sed -n 's/.*"get_p50_us_rust":\([0-9.]*\).*/\1/p' "$tmp/rust.json" | median)
c_get=$(sed -n 's/.*"get_p50_us_c":\([0-9.]*\).*/\1/p' "$tmp/rust.json" | median)

# ns/op and allocs/op: the standard benchmark output.
"$go_bin" -test.run '^$' -test.bench '^(BenchmarkCreateDelete|BenchmarkGetSandbox)$' \
	-test.benchtime "${per}x" -test.count 1 > "$tmp/go.std"
field() { # benchmark name, unit -> value
	awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" {for (i=2;i<NF;i++) if ($(i+1)==unit) print $i}' "$tmp/go.std"
}
cd_ns=$(field BenchmarkCreateDelete ns/op)
cd_allocs=$(field BenchmarkCreateDelete allocs/op)
cd_bytes=$(field BenchmarkCreateDelete B/op)
cd_create=$(field BenchmarkCreateDelete create-p50-µs)
cd_delete=$(field BenchmarkCreateDelete delete-p50-µs)
get_ns=$(field BenchmarkGetSandbox ns/op)
get_allocs=$(field BenchmarkGetSandbox allocs/op)
get_p50=$(field BenchmarkGetSandbox get-p50-µs)

awk -v g="$go_p50" -v r="$rust_p50" -v c="$c_p50" -v ng="$n_go" -v nr="$n_rust" -v rounds="$rounds" \
	-v cdns="$cd_ns" -v cda="$cd_allocs" -v cdb="$cd_bytes" -v cdc="$cd_create" -v cdd="$cd_delete" \
	-v gns="$get_ns" -v ga="$get_allocs" -v gp="$get_p50" -v rg="$rust_get" -v cg="$c_get" 'BEGIN {
	printf "{\"go_create_p50_us\":%.1f,\"rust_create_p50_us\":%.1f,\"ratio\":%.4f,\"c_create_p50_us\":%.1f,", g, r, g / r, c
	printf "\"samples_go\":%d,\"samples_rust\":%d,\"rounds\":%d,", ng, nr, rounds
	printf "\"go_create_delete_ns_per_op\":%d,\"go_create_delete_allocs_per_op\":%d,\"go_create_delete_bytes_per_op\":%d,", cdns, cda, cdb
	printf "\"go_create_delete_create_p50_us\":%.1f,\"go_create_delete_delete_p50_us\":%.1f,", cdc, cdd
	printf "\"go_get_ns_per_op\":%d,\"go_get_allocs_per_op\":%d,\"go_get_p50_us\":%.2f,\"rust_get_p50_us\":%.2f,\"c_get_p50_us\":%.2f}\n", gns, ga, gp, rg, cg
}'
