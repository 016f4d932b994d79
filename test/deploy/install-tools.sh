#!/usr/bin/env bash
# Installs the pinned tools the chart tests use into a cache (kept between runs):
#   helm, built from its Go module (release tarballs are not downloaded), and
#   kubernetes-validate from PyPI, which ships the Kubernetes API JSON schemas of each Kubernetes version
#   (so no schema is fetched at test time).
# Prints nothing when both are already there. Override the cache with MIRRORFARM_TOOLS.
set -euo pipefail
HELM_VERSION=v3.21.4
KUBERNETES_VALIDATE_VERSION=1.37.0
TOOLS="${MIRRORFARM_TOOLS:-$HOME/.cache/mirrorfarm-tools}"
mkdir -p "$TOOLS/bin"

if ! [ -x "$TOOLS/bin/helm" ] || ! grep -qx "$HELM_VERSION" "$TOOLS/bin/helm.version" 2>/dev/null; then
  echo "installing helm $HELM_VERSION into $TOOLS/bin"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$TOOLS/bin/helm.version"
fi

KV="$TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if ! [ -d "$KV/kubernetes_validate" ]; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $KV"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$KV.tmp" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  rm -rf "$KV" && mv "$KV.tmp" "$KV"
fi
