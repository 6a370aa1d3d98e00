#!/usr/bin/env bash
# Fetches Temporal's public API protos at a pinned version and checks their integrity.
#
# The protos are a build dependency, never committed. They come from the npm package
# @temporalio/core-bridge, which ships them under sdk-core/crates/protos/protos/.
# Usage: fetch-temporal-api.sh <output-dir>
set -euo pipefail

readonly PACKAGE="@temporalio/core-bridge"
readonly VERSION="1.24.0"
readonly SHA256="5f58de2e98bdc4711be3cbb06cc08bc39cb274cbbac41d02f0352bfe1630a8f7"

out="$1"
stamp="$out/.almanac-api-$VERSION-$SHA256"
if [[ -f "$stamp" ]]; then
  exit 0
fi

cache="${ALMANAC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/almanac}"
mkdir -p "$cache"
tarball="$cache/temporalio-core-bridge-$VERSION.tgz"

if [[ ! -f "$tarball" ]] || ! echo "$SHA256  $tarball" | sha256sum --check --status; then
  command -v npm >/dev/null || { echo "npm is needed to fetch the Temporal API protos (apt-get install npm)" >&2; exit 1; }
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
  mv "$tmp"/temporalio-core-bridge-"$VERSION".tgz "$tarball"
  rm -rf "$tmp"
fi
if ! echo "$SHA256  $tarball" | sha256sum --check --status; then
  echo "integrity check failed for $tarball" >&2
  rm -f "$tarball"
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
prefix="package/sdk-core/crates/protos/protos"
tar xzf "$tarball" -C "$out" --strip-components=5 \
  "$prefix/api_upstream/temporal/api" \
  "$prefix/api_upstream/google/api" \
  "$prefix/api_upstream/nexusannotations" \
  "$prefix/google/rpc/status.proto"
# Flatten api_upstream/ so that imports such as "temporal/api/..." resolve from $out.
mv "$out/api_upstream/temporal" "$out/temporal"
mkdir -p "$out/google"
mv "$out/api_upstream/google/api" "$out/google/api"
mv "$out/api_upstream/nexusannotations" "$out/nexusannotations"
rmdir "$out/api_upstream/google" "$out/api_upstream"
# Services for Nexus operations are not part of the contract Almanac serves.
rm -rf "$out/temporal/api/nexusservices"
# The package temporal.api.namespace.v1 becomes the C++ namespace temporal::api::namespace,
# a keyword that this protoc (3.21) does not escape. Package names never reach the wire for
# these messages (gRPC paths use the service packages; none of them travels in an Any), so
# the package is renamed to temporal.api.namespace_.v1. See docs/design/api-protos.md.
grep -rlF 'temporal.api.namespace.v1' "$out" --include='*.proto' | \
  xargs sed -i 's/temporal\.api\.namespace\.v1/temporal.api.namespace_.v1/g'
touch "$stamp"
