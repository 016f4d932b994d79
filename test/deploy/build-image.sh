#!/usr/bin/env bash
# Builds the repository's Dockerfile with buildah into local storage as localhost/mirrorfarm:<version> (the
# chart's default image, mirrorfarm:<appVersion>), on the locally assembled base image (base-image.sh), with
# no registry: the base is never pulled. Layers are cached (--layers), so a rebuild after a change to src/
# reruns only the compile; --force-rm leaves no build container behind, failed builds included. Run as root, like base-image.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/test/deploy/containers.conf}"
VERSION="$(node -p 'require("./package.json").version')"
IMAGE="${MIRRORFARM_IMAGE:-localhost/mirrorfarm:$VERSION}"

if [ "$(id -u)" != 0 ] && [ "${MIRRORFARM_REQUIRE_CONTAINERS:-}" != 1 ]; then
  echo "build-image.sh: not root, so no image is built; the container tests will say they are skipped" >&2
  exit 0
fi
bash test/deploy/base-image.sh
log="$(mktemp /tmp/mf-build-image.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
# --network host: the build stages reach the Debian and npm mirrors the way this machine does, and npm trusts
# what this machine's npm trusts (a CA bundle of its own, as behind a TLS-intercepting proxy).
ca_args=()
cafile="$(npm config get cafile 2>/dev/null || true)"
if [ -n "$cafile" ] && [ "$cafile" != null ] && [ -f "$cafile" ]; then
  ca_args=(--volume "$cafile:/run/build-npm-ca.crt:ro" --build-arg npm_config_cafile=/run/build-npm-ca.crt)
fi
if ! buildah --runtime /usr/sbin/runc bud --pull=false --layers --force-rm --network host "${ca_args[@]}" \
  --build-arg VERSION="$VERSION" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$IMAGE" -f Dockerfile . > "$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "build-image.sh: buildah bud failed (full log above)" >&2
  exit 1
fi
# No `buildah rmi --prune`: the untagged images it removes are the cached layers that make a rebuild fast.
echo "build-image.sh: built $IMAGE"
