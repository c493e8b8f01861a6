#!/usr/bin/env bash
# podman 4.3 (CNI backend) end to end with podnet-cni, run by tests/podman.rs inside
# `unshare --pid --fork --mount-proc --mount --net --propagation private`: a private netns is the
# node; a tmpfs on /run and podman's own containers.conf / storage.conf keep its storage, netns
# pins, network configs and plugin dir under WORK. Nothing outside these namespaces changes
# except the cgroups runc creates for the containers (removed with them).
# Inputs: PLUGIN (podnet-cni), PODNET (the podnet CLI), WORK (an empty dir).
source "$(dirname "$0")/common.sh"

private_dirs
mkdir -p "$WORK/bin" "$WORK/net.d" "$WORK/tmp"
cp "$PLUGIN" "$WORK/bin/podnet"
pn() { pn_on pdm "$@"; }
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
NETS=$(pm network ls --format '{{.Name}}')
grep -qx podnet <<<"$NETS" || fail "podman does not list the podnet network: $NETS"

step "a busybox-static image, built here and loaded (no registry)"
build_image
pm load -q -i "$WORK/image.tar" >/dev/null
pm image exists "$IMG" || fail "image not loaded: $(pm images)"

step "container srv: podman run --network podnet -p 30081:80"
pm run -d --name srv --cgroup-parent "/$CG" --network podnet -p 30081:80 "$IMG" /bin/httpd -f -p 80 -h /www >/dev/null
SRV_IP=$(pm inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' srv)
echo "srv has $SRV_IP"
case "$SRV_IP" in 10.89.0.*) ;; *) fail "srv's address $SRV_IP is not from podnet's CIDR" ;; esac
LIST=$(pn sandbox list --json)
echo "$LIST" | grep -q '"k8s.pod.name": "srv"' || fail "podnet sandbox list does not name srv: $LIST"
pn sandbox list
ADDRS=$(pm exec srv /bin/ip -4 -o addr show eth0)
grep -q "$SRV_IP/24" <<<"$ADDRS" || fail "srv's eth0 lacks $SRV_IP: $ADDRS"
for _ in $(seq 50); do [ "$(get "$SRV_IP" 80 2>/dev/null)" = "hello from podnet" ] && break; sleep 0.1; done

step "container cli reaches srv by pod IP"
OUT=$(pm run --rm --name cli --cgroup-parent "/$CG" --network podnet "$IMG" /bin/sh -c "printf '$REQ' | nc -w 3 $SRV_IP 80" | tail -1)
[ "$OUT" = "hello from podnet" ] || fail "cli got: $OUT"
echo "cli got: $OUT"

step "the hostPort answers from the node and from an external netns"
check_host_port 80 30081

step "stopping srv removes everything"
pm stop -t 0 srv >/dev/null
pm rm srv >/dev/null
check_nothing_left '"id"' 80 30081
echo "PODMAN-E2E-OK"
