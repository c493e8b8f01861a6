#!/usr/bin/env bash
# podman 4.3 (CNI backend) end to end with podnet-cni, run by tests/podman.rs inside
# `unshare --pid --fork --mount-proc --mount --net --propagation private`: a private netns is the
# node; a tmpfs on /run and podman's own containers.conf / storage.conf keep its storage, netns
# pins, network configs and plugin dir under WORK. Nothing outside these namespaces changes
# except the cgroups runc creates for the containers (removed with them).
# Inputs: PLUGIN (podnet-cni), PODNET (the podnet CLI), WORK (an empty dir).
set -euo pipefail
: "${PLUGIN:?}" "${PODNET:?}" "${WORK:?}"

step() { echo "== $*"; }
fail() { echo "FAIL: $*"; exit 1; }

mount -t tmpfs tmpfs "$WORK"
mount -t tmpfs tmpfs /run
mkdir -p "$WORK/bin" "$WORK/net.d" "$WORK/tmp"
cp "$PLUGIN" "$WORK/bin/podnet"
ip link set lo up
STATE="$WORK/podnet"
# The podnet CLI on this node, under the plugin's lock: opening a node rebuilds its nf_tables
# table, which must not interleave with a plugin call mapping a host port.
pn() { flock "$STATE/cni.lock" "$PODNET" "$@" --state-dir "$STATE" --node pdm; }
# The cgroup parent podman gives containers with cgroupfs: our own, removed at the end.
CG="podnet-test-$$"

cat > "$WORK/containers.conf" <<EOF
[containers]
cgroupns = "private"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$WORK/bin", "/usr/lib/cni"]
network_config_dir = "$WORK/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
runtime = "runc"
tmp_dir = "$WORK/tmp"
EOF
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/runroot"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"
: > "$WORK/registries.conf"
pm() { podman --cgroup-manager cgroupfs "$@"; }

REQ='GET / HTTP/1.0\r\n\r\n'
get() { printf "$REQ" | busybox nc -w 3 "$1" "$2" | tail -1; }

cleanup() {
  set +e
  pm rm -f -t 0 srv cli >/dev/null 2>&1
  for c in /sys/fs/cgroup/*/"$CG"; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
}
trap cleanup EXIT

step "podnet's conflist for podman's CNI backend"
cat > "$WORK/net.d/podnet.conflist" <<EOF
{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"podnet","node":"pdm","podCIDRs":["10.89.0.0/24"],
 "bridge":"podnet0","stateDir":"$STATE","netnsDir":"$WORK/pins","capabilities":{"portMappings":true,"ips":true}}]}
EOF
pm network ls --format '{{.Name}}' | grep -qx podnet || fail "podman does not list the podnet network: $(pm network ls)"

step "a busybox-static image, built here and loaded (no registry)"
bash "$(dirname "$0")/image.sh" "$WORK/image" "$WORK/image.tar"
pm load -q -i "$WORK/image.tar" >/dev/null
IMG=localhost/podnet-busybox:1
pm image exists "$IMG" || fail "image not loaded: $(pm images)"

step "container srv: podman run --network podnet -p 30081:80"
pm run -d --name srv --cgroup-parent "/$CG" --network podnet -p 30081:80 "$IMG" /bin/httpd -f -p 80 -h /www >/dev/null
SRV_IP=$(pm inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' srv)
echo "srv has $SRV_IP"
case "$SRV_IP" in 10.89.0.*) ;; *) fail "srv's address $SRV_IP is not from podnet's CIDR" ;; esac
LIST=$(pn sandbox list --json)
echo "$LIST" | grep -q '"k8s.pod.name": "srv"' || fail "podnet sandbox list does not name srv: $LIST"
pn sandbox list
pm exec srv /bin/ip -4 -o addr show eth0 | grep -q "$SRV_IP/24" || fail "srv's eth0 lacks $SRV_IP"
for _ in $(seq 50); do [ "$(get "$SRV_IP" 80 2>/dev/null)" = "hello from podnet" ] && break; sleep 0.1; done

step "container cli reaches srv by pod IP"
OUT=$(pm run --rm --name cli --cgroup-parent "/$CG" --network podnet "$IMG" /bin/sh -c "printf '$REQ' | nc -w 3 $SRV_IP 80" | tail -1)
[ "$OUT" = "hello from podnet" ] || fail "cli got: $OUT"
echo "cli got: $OUT"

step "the hostPort answers from the node and from an external netns"
OUT=$(get 127.0.0.1 30081)
[ "$OUT" = "hello from podnet" ] || fail "node got: $OUT"
ip netns add ext
ip link add toext type veth peer name eth0 netns ext
ip addr add 192.168.80.1/24 dev toext
ip link set toext up
ip netns exec ext ip addr add 192.168.80.2/24 dev eth0
ip netns exec ext ip link set eth0 up
OUT=$(printf "$REQ" | ip netns exec ext busybox nc -w 3 192.168.80.1 30081 | tail -1 || true)
[ "$OUT" = "hello from podnet" ] || fail "ext got: $OUT"
echo "node and external netns got: $OUT"

step "stopping srv removes everything"
pm stop -t 0 srv >/dev/null
pm rm srv >/dev/null
LEFT=$(pn sandbox list --json)
echo "$LEFT" | grep -q '"id"' && fail "sandboxes left: $LEFT"
ip -br link show type veth | grep -q '^pn' && fail "host veths left: $(ip -br link show type veth)"
pn port list --json | grep -q 30081 && fail "host port left"
OUT=$(printf "$REQ" | ip netns exec ext busybox nc -w 2 192.168.80.1 30081 2>&1 | tail -1 || true)
[ "$OUT" = "hello from podnet" ] && fail "hostPort still answers"
echo "PODMAN-E2E-OK"
