#!/usr/bin/env bash
# containerd end to end with podnet-cni, run by tests/runtimes.rs inside
# `unshare --pid --fork --mount-proc --mount --net --propagation private`: a private netns is the node, a tmpfs on /run
# and overlays on /etc and /opt give containerd, its shims and ctr's go-cni (which reads only
# /etc/cni/net.d and /opt/cni/bin) their own dirs. Nothing outside these namespaces changes
# except the cgroups runc creates for the two containers (removed with them).
# Inputs: PLUGIN (podnet-cni), PODNET (the podnet CLI), WORK (an empty dir).
source "$(dirname "$0")/common.sh"

private_dirs
for d in etc opt; do
  mkdir -p "$WORK/ov/$d/up" "$WORK/ov/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$WORK/ov/$d/up,workdir=$WORK/ov/$d/work" "/$d"
done
mkdir -p /etc/cni/net.d /opt/cni/bin /run/netns
cp "$PLUGIN" /opt/cni/bin/podnet

SOCK="$WORK/containerd.sock"
pn() { pn_on ctrd "$@"; }
# A namespace of our own: it names the containers' cgroup parent, removed at the end.
NS="podnet-test-$$"
ctr() { command ctr --address "$SOCK" --namespace "$NS" "$@"; }

cleanup() {
  set +e
  local pids
  pids=$(cat "$WORK"/state/io.containerd.runtime.v2.task/*/*/shim.pid 2>/dev/null)
  for id in srv cli; do
    ctr task kill -s KILL "$id" >/dev/null 2>&1
  done
  [ -n "${SRV:-}" ] && timeout 10 tail --pid="$SRV" -f /dev/null
  for id in srv cli; do
    ctr task rm -f "$id" >/dev/null 2>&1
    ctr container rm "$id" >/dev/null 2>&1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  [ -n "${CTRD:-}" ] && kill "$CTRD" 2>/dev/null && wait "$CTRD" 2>/dev/null
  for c in /sys/fs/cgroup/*/"$NS"; do [ -d "$c" ] && rmdir "$c"; done
  umount -l /etc /opt 2>/dev/null
}
trap cleanup EXIT

step "containerd with its own root, state and socket"
cat > "$WORK/config.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
EOF
containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
CTRD=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$WORK/containerd.log"; fail "containerd did not start"; }

step "a busybox-static image, built here and imported (no registry)"
build_image
ctr images import "$WORK/image.tar" >/dev/null
IMAGES=$(ctr images ls -q)
grep -qx "$IMG" <<<"$IMAGES" || fail "image not imported: $IMAGES"

# ctr has no -p: a static runtimeConfig in the conflist stands in for the portMappings
# capability a CRI runtime would fill in (libcni passes it through when no capability arg is set).
conflist() {
  cat > /etc/cni/net.d/10-podnet.conflist <<EOF
{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"podnet","node":"ctrd","podCIDRs":["10.88.0.0/24"],
 "bridge":"podnet0","stateDir":"$STATE","netnsDir":"$WORK/pins","capabilities":{"portMappings":true}$1}]}
EOF
}

step "container srv: ctr run --cni, httpd on :80, hostPort 30080"
conflist ',"runtimeConfig":{"portMappings":[{"hostPort":30080,"containerPort":80,"protocol":"tcp"}]}'
ctr run --rm --cni "$IMG" srv /bin/httpd -f -p 80 -h /www >"$WORK/srv.log" 2>&1 &
SRV=$!
SRV_IP=""
for _ in $(seq 100); do
  SRV_IP=$(pn sandbox list 2>/dev/null |
    grep "$NS-srv" | grep -o '10\.88\.0\.[0-9]*' | head -1 || true)
  [ -n "$SRV_IP" ] && break
  sleep 0.1
done
[ -n "$SRV_IP" ] || { cat "$WORK/srv.log"; fail "srv got no address"; }
echo "srv has $SRV_IP"
LIST=$(pn sandbox list)
echo "$LIST"
echo "$LIST" | grep -q "$NS-srv" || fail "podnet sandbox list does not show $NS-srv"
ADDRS=$(ctr task exec --exec-id ipa srv /bin/ip -4 addr show eth0)
grep -q "$SRV_IP/24" <<<"$ADDRS" || fail "srv's eth0 lacks $SRV_IP: $ADDRS"

for _ in $(seq 50); do [ "$(get "$SRV_IP" 80 2>/dev/null)" = "hello from podnet" ] && break; sleep 0.1; done
[ "$(get "$SRV_IP" 80)" = "hello from podnet" ] || { cat "$WORK/srv.log"; fail "srv does not answer on $SRV_IP:80"; }

step "container cli reaches srv by pod IP"
conflist ''
OUT=$(ctr run --rm --cni "$IMG" cli /bin/sh -c "ip -4 -o addr show eth0; printf '$REQ' | nc -w 3 $SRV_IP 80" 2>&1) ||
  fail "cli: $OUT"
echo "$OUT" | head -1
echo "$OUT" | head -1 | grep -q "inet 10\.88\.0\." || fail "cli has no pod address: $OUT"
OUT=$(echo "$OUT" | tail -1)
[ "$OUT" = "hello from podnet" ] || fail "cli got: $OUT"
echo "cli got: $OUT"

step "the hostPort answers from the node and from an external netns"
check_host_port 79 30080

step "stopping srv removes everything"
ctr task kill -s KILL srv    # busybox httpd is the container's PID 1: it ignores SIGTERM
wait "$SRV" || true
SRV=""
check_nothing_left "$NS-" 79 30080
echo "CONTAINERD-E2E-OK"
