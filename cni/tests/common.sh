# Sourced by containerd.sh and podman.sh: what both runtimes' end-to-end scripts do the same way.
# Needs PLUGIN, PODNET and WORK; the caller has entered its namespaces (see runtimes.rs).
set -euo pipefail
: "${PLUGIN:?}" "${PODNET:?}" "${WORK:?}"

step() { echo "== $*"; }
fail() { echo "FAIL: $*"; exit 1; }

STATE="$WORK/podnet"
# HTTP GET with busybox nc (Debian's static busybox wget crashes): prints the body's last line.
REQ='GET / HTTP/1.0\r\n\r\n'
get() { printf "$REQ" | busybox nc -w 3 "$1" "$2" | tail -1; }
# The podnet CLI on node $1, under the plugin's lock: opening a node rebuilds its nf_tables
# table, which must not interleave with a plugin call mapping a host port.
pn_on() { local node=$1; shift; flock "$STATE/cni.lock" "$PODNET" "$@" --state-dir "$STATE" --node "$node"; }

# Fresh tmpfs on WORK and /run (netns pins, runtime state), loopback up.
private_dirs() {
  mount -t tmpfs tmpfs "$WORK"
  mount -t tmpfs tmpfs /run
  ip link set lo up
}

# The busybox-static image, built here (no registry), as an OCI archive in $WORK/image.tar.
IMG=localhost/podnet-busybox:1
build_image() { bash "$(dirname "${BASH_SOURCE[0]}")/image.sh" "$WORK/image" "$WORK/image.tar"; }

# Host port $2 of a pod must answer from the node and from a netns "ext" behind a veth on
# 192.168.$1.0/24 (traffic from outside the node).
check_host_port() {
  local net=$1 port=$2 out
  out=$(get 127.0.0.1 "$port")
  [ "$out" = "hello from podnet" ] || fail "node got: $out"
  ip netns add ext
  ip link add toext type veth peer name eth0 netns ext
  ip addr add "192.168.$net.1/24" dev toext
  ip link set toext up
  ip netns exec ext ip addr add "192.168.$net.2/24" dev eth0
  ip netns exec ext ip link set eth0 up
  ip netns exec ext ip link set lo up
  out=$(printf "$REQ" | ip netns exec ext busybox nc -w 3 "192.168.$net.1" "$port" | tail -1 || true)
  [ "$out" = "hello from podnet" ] || fail "ext got: $out"
  echo "node and external netns got: $out"
}

# After the last pod is gone: no sandbox whose JSON matches $1, no host veth, no host port $3
# (from `check_host_port $2 $3`) left.
check_nothing_left() {
  local sandboxes=$1 net=$2 port=$3 left out
  left=$(pn sandbox list --json)
  echo "$left" | grep -q "$sandboxes" && fail "sandboxes left: $left"
  # DEL sets the host veth down; the kernel destroys it with the runtime's netns, in the
  # background (cleanup_net) once the runtime has removed its pin: wait for that, bounded. The
  # listing is read whole before grep looks at it: `ip | grep -q` under pipefail fails when grep
  # exits at the first match while ip still writes (SIGPIPE), which ended this wait at once.
  local i veths
  for i in $(seq 100); do
    veths=$(ip -br link show type veth)
    grep -q '^pn' <<<"$veths" || break
    sleep 0.1
  done
  [ "$i" -gt 1 ] && echo "host veths gone after $(( (i - 1) * 100 )) ms"
  if grep -q '^pn' <<<"$veths"; then
    echo "host veths left after 10 s: $veths; netns pins: $(ls /run/netns 2>&1)"
    echo "nsfs mounts: $(grep nsfs /proc/self/mountinfo | awk '{print $4, $5}' | paste -sd' ')"
    echo "netns held by (pid: comm, via ns/net or an open fd):"
    local p me
    me=$(readlink /proc/self/ns/net)
    for p in /proc/[0-9]*; do
      { readlink "$p/ns/net"; ls -l "$p/fd" 2>/dev/null | grep -o 'net:\[[0-9]*\]'; } 2>/dev/null | sort -u |
        grep -v "^$me\$" | sed "s|^|  ${p#/proc/}: $(cat "$p/comm" 2>/dev/null) |" || true
    done
    fail "host veths left"
  fi
  pn port list --json | grep -q "$port" && fail "host port left"
  out=$(printf "$REQ" | ip netns exec ext busybox nc -w 2 "192.168.$net.1" "$port" 2>&1 | tail -1 || true)
  [ "$out" = "hello from podnet" ] && fail "hostPort still answers"
  return 0
}
