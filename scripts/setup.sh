#!/usr/bin/env bash
# Installs what podnet's build, tests, demo and benchmarks need on Debian (run as root).
# Idempotent: skips what is already there.
set -euo pipefail
need=()
# containerd, podman, runc and busybox-static: the podnet-cni end-to-end tests (cni/tests/runtimes.rs).
# etcd-server: the agent's tests start real etcd; protobuf-compiler: protoc for the etcd client.
for p in iproute2 ethtool nftables conntrack containernetworking-plugins netavark valgrind util-linux pkg-config gcc g++ make \
  containerd podman runc busybox-static etcd-server protobuf-compiler; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt >/dev/null
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy >/dev/null
fi
echo "setup: ok"
