#!/bin/sh
# `make bench-c`: sandbox create p50 through the C ABI vs the Rust API, in the same run.
# Usage (as root, in a throwaway netns): bench.sh C_PROGRAM RUST_HARNESS LIBPODNET_SO COUNT
#
# The gate figure comes from RUST_HARNESS (ffi/examples/bench_rust.rs): one process, creates
# alternating between the exported C functions (LIBPODNET_SO, dlopen'ed) and the Rust API. C_PROGRAM
# (tests/c/bench_sandbox.c) runs the same workload from a real C program first; its p50 is
# added as "create_p50_us_c_program" (a separate process: expect a few % of run-to-run noise).
set -eu
c_program=$1 harness=$2 lib=$3 count=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$c_program" "$count" > "$tmp/c"
c=$(awk '{print $2}' "$tmp/c" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}')
# Deleted pods' netns are destroyed by the kernel asynchronously: let that finish first.
sleep 2
"$harness" "$lib" "$count" | sed "s/}\$/,\"create_p50_us_c_program\":$c}/"
