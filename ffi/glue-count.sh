#!/bin/sh
# The C + Go glue per exported core record (issue 11): how many lines a record crossing the
# boundary costs in the hand-written layers, ffi/src (Rust, unit tests cut off), include/podnet.h
# (generated, but every item's doc comment is written by hand in ffi/src) and bindings-go's
# non-test Go files (all packages). "code" lines are those that are not blank and not comments.
# The records are the core's types that cross the boundary (inputs and results):
#   NodeConfig, SandboxSpec, Sandbox (with PortMapping), Peer, PortEntry, CheckReport, GcReport,
#   SyncReport, RepairReport, Plan (input + result), NodeCidrAllocator, ServiceIpAllocator, Service
# and, per result record, the C functions a caller needs to read it (accessors + _free).
set -eu
cd "$(dirname "$0")/.."
RECORDS=13
rust() { for f in ffi/src/*.rs; do awk '/^#\[cfg\(test\)\]/{exit} {print}' "$f"; done; }
gofiles() { find bindings-go -name '*.go' ! -name '*_test.go' | sort; }
lines() { wc -l | tr -d ' '; }
code_rs() { grep -v '^[[:space:]]*$' | grep -v '^[[:space:]]*//' | lines; }
code_c() { grep -v '^[[:space:]]*$' | grep -v '^[[:space:]]*\(/\*\|\*\)' | grep -v '^[[:space:]]*//' | lines; }
r_all=$(rust | lines); r_code=$(rust | code_rs)
h_all=$(lines < include/podnet.h); h_code=$(code_c < include/podnet.h)
g_all=$(gofiles | xargs cat | lines); g_code=$(gofiles | xargs cat | code_rs)
all=$((r_all + h_all + g_all)); code=$((r_code + h_code + g_code))
fns=$(grep -v '^ *\*\|^/\*\|^#' include/podnet.h | grep -o '\bpodnet_[a-z0-9_]*(' | sort -u | wc -l | tr -d ' ')
echo "glue lines (all / code): ffi/src $r_all / $r_code, podnet.h $h_all / $h_code, bindings-go $g_all / $g_code"
echo "total $all / $code lines, $fns C functions, $RECORDS records"
echo "per record: $((all / RECORDS)) lines ($((code / RECORDS)) code), $((fns * 10 / RECORDS / 10)).$((fns * 10 / RECORDS % 10)) C functions"
printf 'C functions to read a result record (accessors + _free):'
for p in sandbox check_report gc_report peer sync_report port_entry repair_report plan_result service; do
  n=$(grep -v '^ *\*\|^/\*\|^#' include/podnet.h | grep -o "\bpodnet_${p}_[a-z0-9_]*(" | sort -u \
      | grep -v "^podnet_${p}_\(spec_\|list_\|new\|add_\|set_\|ip_allocator_\)" | wc -l | tr -d ' ')
  printf ' %s %s' "$p" "$n"
done
echo
