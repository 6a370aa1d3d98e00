#!/usr/bin/env bash
# Builds Temporal's own Web UI server into build/web-ui/: the binary ui-server (the Go module
# github.com/temporalio/ui-server/v2, which embeds the UI's pages) and config/base.yaml to run
# it with. Everything comes from the Go module proxy, checked against Go's checksum database;
# nothing third-party is kept outside build/. When `go` is missing or older than the UI server
# needs, a Go toolchain is fetched from the proxy too (build/go-toolchain/). Quick when built.
#
#   bash scripts/build-web-ui.sh
#   TEMPORAL_ADDRESS=127.0.0.1:7233 TEMPORAL_UI_PORT=8233 \
#       build/web-ui/ui-server --root build/web-ui start      # then open http://127.0.0.1:8233
set -euo pipefail
cd "$(dirname "$0")/.."

ui_version=v2.58.1
# ui-server v2.58.1's go.mod asks for go 1.26.10 and for two versions the module proxy does
# not serve; each is replaced by the nearest version it serves.
go_min=1.26.10
replaces=(
  "github.com/labstack/echo/v4 v4.16.1 => github.com/labstack/echo/v4 v4.16.0"
  "go.temporal.io/api v1.64.0 => go.temporal.io/api v1.64.1"
)
# The toolchain fetched when the machine's go is too old: golang.org/toolchain from the proxy,
# whose zip's checksum-database hash is h1:KyINmJ/FQdKRmDYGuTAAXkumyeR2DyUlSNHZj7XaLFg=.
go_fetch=1.26.11
go_fetch_sha256=e1edb778de0aa08c8e827f5a873b35a46afe680fb241482c531725b2355e470d
go_proxy=https://proxy.golang.org

out=build/web-ui
work=build/web-ui-build   # the generated go.mod and go.sum
stamp="ui-server $ui_version; ${replaces[*]}"

write_config() {
  mkdir -p "$out/config"
  cat > "$out/config/base.yaml" <<'EOF'
# enable-template
# Written by scripts/build-web-ui.sh. TEMPORAL_ADDRESS is the server's gRPC address,
# TEMPORAL_UI_HOST and TEMPORAL_UI_PORT where the UI listens.
temporalGrpcAddress: {{ env "TEMPORAL_ADDRESS" | default "127.0.0.1:7233" }}
host: {{ env "TEMPORAL_UI_HOST" | default "127.0.0.1" }}
port: {{ env "TEMPORAL_UI_PORT" | default "8233" }}
publicPath: ""
enableUi: true
defaultNamespace: default
refreshInterval: 0s
disableNewsFetch: true
notifyOnNewVersion: false
auth:
  enabled: false
cors:
  cookieInsecure: true
  allowOrigins: []
EOF
}

if [[ -x "$out/ui-server" && "$(cat "$out/.built" 2>/dev/null)" == "$stamp" ]]; then
  write_config
  echo "web UI: $out/ui-server ($ui_version) is up to date"
  exit 0
fi

# A Go toolchain: the machine's when it is new enough, else the pinned one from the proxy.
version_at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }
go_bin=""
if command -v go >/dev/null; then
  have=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)
  have=${have#go}
  if [[ -n "$have" ]] && version_at_least "$have" "$go_min"; then
    go_bin=$(command -v go)
  fi
fi
if [[ -z "$go_bin" ]]; then
  toolchain="build/go-toolchain/go$go_fetch"
  if [[ ! -x "$toolchain/bin/go" ]]; then
    echo "web UI: fetching Go $go_fetch from the module proxy"
    rm -rf "$toolchain" "$toolchain.partial"
    mkdir -p "$(dirname "$toolchain")"
    module_version="v0.0.1-go$go_fetch.linux-amd64"
    python3 - "$go_proxy/golang.org/toolchain/@v/$module_version.zip" \
      "$go_fetch_sha256" "golang.org/toolchain@$module_version/" "$toolchain.partial" <<'EOF'
import hashlib, io, os, sys, urllib.request, zipfile
url, want, prefix, dest = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=300).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{url}: sha256 {got}, expected {want}")
with zipfile.ZipFile(io.BytesIO(data)) as archive:
    for entry in archive.infolist():
        # Every entry is under golang.org/toolchain@VERSION/: that folder becomes `dest`.
        if not entry.filename.startswith(prefix):
            sys.exit(f"{url}: unexpected entry {entry.filename}")
        name = entry.filename[len(prefix):]
        if not name or name.endswith("/") or ".." in name.split("/"):
            continue
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(archive.read(entry))
        mode = (entry.external_attr >> 16) & 0o777
        os.chmod(path, mode or 0o644)
EOF
    mv "$toolchain.partial" "$toolchain"
  fi
  go_bin="$PWD/$toolchain/bin/go"
fi
go_version=$("$go_bin" version)
echo "web UI: building ui-server $ui_version with $go_version"

# A module of our own that requires the UI server, with the replacements; go.sum is written
# by the build, every module checked against the checksum database (through the proxy).
mkdir -p "$work" "$out"
{
  echo "module almanac.invalid/web-ui-build"
  echo
  echo "go $go_min"
  echo
  echo "require github.com/temporalio/ui-server/v2 $ui_version"
  for r in "${replaces[@]}"; do
    echo
    echo "replace $r"
  done
} > "$work/go.mod"
rm -f "$work/go.sum"

(
  cd "$work"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath -buildvcs=false" CGO_ENABLED=0
  export GOPROXY="${GOPROXY:-$go_proxy}"
  "$go_bin" build -ldflags="-s -w" -o ../web-ui/ui-server.new \
    github.com/temporalio/ui-server/v2/cmd/server
)
mv "$out/ui-server.new" "$out/ui-server"
write_config
echo "$stamp" > "$out/.built"
echo "web UI: built $out/ui-server ($("$out/ui-server" --version))"
