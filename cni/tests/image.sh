#!/usr/bin/env bash
# Build the end-to-end tests' image without a registry: a busybox-static rootfs (sh, httpd, nc,
# ip, ...) with /www/index.html, packed as an OCI image archive that `ctr images import` and
# `podman load` both read, named localhost/podnet-busybox:1.
# Usage: image.sh WORKDIR OUT.tar
set -euo pipefail
W=$1 OUT=$2
R="$W/rootfs" O="$W/oci"
mkdir -p "$R/bin" "$R/www" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev" "$O/blobs/sha256"
cp /bin/busybox "$R/bin/busybox"
for a in sh httpd nc ip sleep cat printf; do ln -sf busybox "$R/bin/$a"; done
echo "hello from podnet" > "$R/www/index.html"
tar -C "$R" -cf "$W/layer.tar" .
blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$O/blobs/sha256/$d"; echo "$d"; }
sz() { stat -c %s "$1"; }
LAYER=$(blob "$W/layer.tar")
cat > "$W/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:$LAYER"]}}
JSON
CONF=$(blob "$W/config.json")
cat > "$W/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$CONF","size":$(sz "$W/config.json")},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$LAYER","size":$(sz "$W/layer.tar")}]}
JSON
MAN=$(blob "$W/manifest.json")
cat > "$O/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$MAN",
 "size":$(sz "$W/manifest.json"),"annotations":{"io.containerd.image.name":"localhost/podnet-busybox:1",
 "org.opencontainers.image.ref.name":"localhost/podnet-busybox:1"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' > "$O/oci-layout"
tar -C "$O" -cf "$OUT" .
