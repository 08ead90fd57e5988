#!/usr/bin/env bash
# Builds one Go tool the project runs (the local control plane, Pulumi) from the Go module proxy
# and caches it by version under $AIROLLOUT_CACHE (default ~/.cache/airollout), outside the checkout.
# Usage: hack/build-tool.sh <etcd|kube|pulumi|...> ; prints the path of the built bin directory.
# A second call with the same version is a no-op. Progress goes to stderr.
set -euo pipefail

CACHE="${AIROLLOUT_CACHE:-$HOME/.cache/airollout}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

log() { printf '[airollout build] %s\n' "$*" >&2; }

need_go() {
  [ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { log "Go is required (go 1.26+ on PATH)"; exit 1; }
}

# consumer <dir> <module-name>: a fresh throw-away module that records tools with go get -tool.
consumer() {
  mkdir -p "$1"
  if [ ! -f "$1/go.mod" ]; then
    (cd "$1" && go mod init "$2" >/dev/null 2>&1)
  fi
}

timed() { # timed <label> <cmd...>
  local label=$1; shift
  local t0; t0=$(date +%s)
  log "$label ..."
  "$@"
  log "$label done in $(( $(date +%s) - t0 ))s"
}

build_etcd() {
  local v=$ETCD_VERSION out="$CACHE/bin/etcd-$ETCD_VERSION"
  if [ -x "$out/etcd" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/etcd-$v"
  consumer "$src" airollout.local/etcd
  timed "etcd $v: resolving modules" bash -c "cd '$src' && go get -tool go.etcd.io/etcd/server/v3@$v"
  mkdir -p "$out.tmp"
  timed "etcd $v: compiling (about 1-3 min cold)" bash -c "cd '$src' && go build -ldflags '-s -w' -o '$out.tmp/etcd' go.etcd.io/etcd/server/v3"
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

build_kube() {
  local v=$KUBE_VERSION out="$CACHE/bin/kubernetes-$KUBE_VERSION"
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kubectl" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/kubernetes-$v" minor=${v#v1.}; minor=${minor%%.*}
  local staging="v0.${v#v1.}"
  consumer "$src" airollout.local/kubernetes
  if ! grep -q '^replace' "$src/go.mod" 2>/dev/null; then
    timed "kubernetes $v: downloading k8s.io/kubernetes go.mod" bash -c "cd '$src' && go mod download -json k8s.io/kubernetes@$v > kube.json"
    local gomod; gomod=$(cd "$src" && sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' kube.json)
    # Every staging module k8s.io/kubernetes replaces with ./staging/src/... is pinned to its
    # published tag v0.N.M instead (kubernetes/kubernetes#79384).
    local reps; reps=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/src/.*#\1#p' "$gomod")
    [ -n "$reps" ] || { log "found no staging replace lines in $gomod"; exit 1; }
    { echo; echo "replace ("; for m in $reps; do echo "	$m => $m $staging"; done; echo ")"; } >> "$src/go.mod"
    log "kubernetes $v: pinned $(echo "$reps" | wc -l) staging modules to $staging"
  fi
  timed "kubernetes $v: resolving modules" bash -c "cd '$src' && go get -tool k8s.io/kubernetes/cmd/kube-apiserver@$v k8s.io/kubernetes/cmd/kube-controller-manager@$v k8s.io/kubernetes/cmd/kubectl@$v"
  local pkg="k8s.io/component-base/version"
  local ld="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$out.tmp"
  local b
  for b in kube-apiserver kube-controller-manager kubectl; do
    if [ -x "$out.tmp/$b" ]; then continue; fi
    timed "kubernetes $v: compiling $b (cold: 5-15 min on 2 cores)" bash -c "cd '$src' && go build -ldflags '$ld' -o '$out.tmp/$b.part' k8s.io/kubernetes/cmd/$b && mv '$out.tmp/$b.part' '$out.tmp/$b'"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

case "${1:-}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  all) build_etcd >/dev/null; build_kube >/dev/null; echo "$CACHE/bin" ;;
  *) echo "usage: $0 etcd|kube|all" >&2; exit 2 ;;
esac
