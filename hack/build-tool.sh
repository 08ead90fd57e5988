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

# build_plain <tool> <version> <package> <binary> <ldflags> <time note>: one binary of a module
# without replace lines, through a plain consumer module.
build_plain() {
  local tool=$1 v=$2 pkg=$3 bin=$4 ld=$5 note=$6 out="$CACHE/bin/$1-$2"
  if [ -x "$out/$bin" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/$tool-$v"
  consumer "$src" "airollout.local/$tool"
  timed "$tool $v: resolving modules" bash -c "cd '$src' && go get -tool $pkg@$v"
  mkdir -p "$out.tmp"
  timed "$tool $v: compiling ($note)" bash -c "cd '$src' && go build -ldflags '$ld' -o '$out.tmp/$bin.part' $pkg && mv '$out.tmp/$bin.part' '$out.tmp/$bin'"
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

build_etcd() { build_plain etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 etcd "-s -w" "about 1-3 min cold"; }

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

build_pulumi() {
  local v=$PULUMI_VERSION out="$CACHE/bin/pulumi-$PULUMI_VERSION"
  if [ -x "$out/pulumi" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/pulumi-$v"
  consumer "$src" airollout.local/pulumi
  timed "pulumi $v: resolving the CLI module" bash -c "cd '$src' && go get -tool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@$v"
  mkdir -p "$out.tmp"
  timed "pulumi $v: compiling the CLI (cold: 5-15 min on 2 cores)" bash -c "cd '$src' && go build -tags osusergo,grpcnotrace -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v' -o '$out.tmp/pulumi.part' github.com/pulumi/pulumi/pkg/v3/cmd/pulumi && mv '$out.tmp/pulumi.part' '$out.tmp/pulumi'"
  # The Node.js language host (module .../sdk/nodejs/cmd/pulumi-language-nodejs/v3) has no tags
  # and the module proxy answers 403 for its pseudo-versions, so it is not built. airollout runs
  # its Pulumi program through the Automation API's inline programs, which host the Node.js
  # language runtime in-process and need no language host binary (see README).
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

build_pulumi_kubernetes() {
  local v=$PULUMI_KUBERNETES_VERSION mod=$PULUMI_KUBERNETES_MODULE out="$CACHE/bin/pulumi-kubernetes-$PULUMI_KUBERNETES_VERSION"
  if [ -x "$out/pulumi-resource-kubernetes" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/pulumi-kubernetes-$v"
  consumer "$src" airollout.local/pulumikubernetes
  timed "pulumi-kubernetes $v: resolving modules" bash -c "cd '$src' && go get github.com/pulumi/pulumi-kubernetes/provider/v4@$mod"
  local moddir
  moddir=$(cd "$src" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)
  # The provider embeds schema-embed.json and terraform-mapping-embed.json, generated files
  # that are not in the module: copy its cmd dir into the consumer and generate them there.
  rm -rf "$src/cmd"; mkdir -p "$src/cmd"
  cp -r "$moddir/cmd/pulumi-resource-kubernetes" "$src/cmd/"
  chmod -R u+w "$src/cmd"
  (cd "$src" && go mod tidy >/dev/null 2>&1 || true)
  timed "pulumi-kubernetes $v: generating embedded schema" bash -c "cd '$src/cmd/pulumi-resource-kubernetes' && VERSION=$v go run generate.go"
  mkdir -p "$out.tmp"
  timed "pulumi-kubernetes $v: compiling pulumi-resource-kubernetes (cold: 5-10 min)" bash -c "cd '$src' && go build -ldflags '-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$v' -o '$out.tmp/pulumi-resource-kubernetes' ./cmd/pulumi-resource-kubernetes"
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

# build_kwok: kwok (sigs.k8s.io/kwok has no replace lines: a plain consumer module), its default
# node and pod stages, and kube-scheduler, which the local control plane lacks and without which
# no pod is ever bound to kwok's fake node. kube-scheduler is built in the kube consumer module
# (it needs the same staging replace lines) and shares its build cache.
build_kwok() {
  local v=$KWOK_VERSION kv=$KUBE_VERSION out="$CACHE/bin/kwok-$KWOK_VERSION-kube-$KUBE_VERSION"
  if [ -x "$out/kwok" ] && [ -x "$out/kube-scheduler" ] && [ -s "$out/stages.yaml" ]; then echo "$out"; return; fi
  need_go
  local src="$CACHE/src/kwok-$v"
  consumer "$src" airollout.local/kwok
  timed "kwok $v: resolving modules" bash -c "cd '$src' && go get -tool sigs.k8s.io/kwok/cmd/kwok@$v"
  mkdir -p "$out.tmp"
  if [ ! -x "$out.tmp/kwok" ]; then
    timed "kwok $v: compiling kwok (cold: 3-8 min on 2 cores)" bash -c "cd '$src' && go build -ldflags '-s -w' -o '$out.tmp/kwok.part' sigs.k8s.io/kwok/cmd/kwok && mv '$out.tmp/kwok.part' '$out.tmp/kwok'"
  fi
  # The kwok binary has no stages of its own (kwokctl writes them into its config): take the
  # "fast" node and pod stages and the lease heartbeat from the module, as kwokctl does.
  local moddir; moddir=$(cd "$src" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  local f
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$moddir/kustomize/stage/$f" ] || { log "kwok $v: stage $f not found in $moddir"; exit 1; }
    printf -- '---\n'; cat "$moddir/kustomize/stage/$f"
  done > "$out.tmp/stages.yaml"
  if [ ! -x "$out.tmp/kube-scheduler" ]; then
    local ksrc="$CACHE/src/kubernetes-$kv" minor=${kv#v1.}; minor=${minor%%.*}
    if ! grep -q '^replace' "$ksrc/go.mod" 2>/dev/null; then
      consumer "$ksrc" airollout.local/kubernetes
      timed "kubernetes $kv: downloading k8s.io/kubernetes go.mod" bash -c "cd '$ksrc' && go mod download -json k8s.io/kubernetes@$kv > kube.json"
      local gomod reps; gomod=$(cd "$ksrc" && sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' kube.json)
      reps=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/src/.*#\1#p' "$gomod")
      [ -n "$reps" ] || { log "found no staging replace lines in $gomod"; exit 1; }
      { echo; echo "replace ("; for m in $reps; do echo "	$m => $m v0.${kv#v1.}"; done; echo ")"; } >> "$ksrc/go.mod"
    fi
    timed "kubernetes $kv: resolving kube-scheduler" bash -c "cd '$ksrc' && go get -tool k8s.io/kubernetes/cmd/kube-scheduler@$kv"
    local pkg="k8s.io/component-base/version"
    local ld="-s -w -X $pkg.gitVersion=$kv -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    timed "kubernetes $kv: compiling kube-scheduler (cold: 3-10 min on 2 cores)" bash -c "cd '$ksrc' && go build -ldflags '$ld' -o '$out.tmp/kube-scheduler.part' k8s.io/kubernetes/cmd/kube-scheduler && mv '$out.tmp/kube-scheduler.part' '$out.tmp/kube-scheduler'"
  fi
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

# build_helm: the helm CLI, used by the tests to lint the chart and render it for a server-side
# dry run.
# build_vegeta: the constant-rate load generator of the gateway benchmark's latency runs.
build_vegeta() { build_plain vegeta "$VEGETA_VERSION" github.com/tsenart/vegeta/v12 vegeta "-s -w" "cold: about 1 min"; }

build_helm() { build_plain helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "cold: 3-8 min on 2 cores"; }

# health_key: the cache key of airollout-health, a digest of every file in hack/health (its
# source, go.mod and go.sum), so an edit there builds a new binary. controller/src/dev/tools.ts
# (healthKey) computes the same digest: NUL after each file name and after each file's content.
health_key() {
  local f
  (cd "$HERE/health" && for f in $(LC_ALL=C ls -1); do
    [ -f "$f" ] || continue
    printf '%s\0' "$f"; cat "$f"; printf '\0'
  done) | sha256sum | cut -c1-12
}

# build_health: airollout-health (hack/health), which runs the real health consumers on live
# objects in the tests: kstatus from sigs.k8s.io/cli-utils and Argo CD's Lua VM (gopher-lua).
# The committed go.mod and go.sum pin every module (-mod=readonly: no resolution at build time).
build_health() {
  local key; key=$(health_key)
  local out="$CACHE/bin/health-$key"
  if [ -x "$out/airollout-health" ]; then echo "$out"; return; fi
  need_go
  local m
  for m in "sigs.k8s.io/cli-utils $KSTATUS_VERSION" "github.com/yuin/gopher-lua $GOPHER_LUA_VERSION"; do
    grep -q "^[[:space:]]*$m\$" "$HERE/health/go.mod" || { log "hack/health/go.mod does not require $m (hack/versions.env)"; exit 1; }
  done
  local src="$CACHE/src/health-$key"
  rm -rf "$src"; mkdir -p "$src"
  cp "$HERE"/health/* "$src/"
  mkdir -p "$out.tmp"
  timed "airollout-health $key: compiling (kstatus $KSTATUS_VERSION, gopher-lua $GOPHER_LUA_VERSION; cold: 1-4 min)" bash -c "cd '$src' && go build -mod=readonly -trimpath -ldflags '-s -w' -o '$out.tmp/airollout-health.part' . && mv '$out.tmp/airollout-health.part' '$out.tmp/airollout-health'"
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

# One build per tool at a time: concurrent callers (a test run and `make demo`, say) wait for
# the first, then find its result in the cache.
mkdir -p "$CACHE"
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.build.lock"
  flock 9
fi

case "${1:-}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  pulumi) build_pulumi ;;
  pulumi-kubernetes) build_pulumi_kubernetes ;;
  kwok) build_kwok ;;
  helm) build_helm ;;
  vegeta) build_vegeta ;;
  health) build_health ;;
  controlplane) build_etcd >/dev/null; build_kube >/dev/null; echo "$CACHE/bin" ;;
  all) build_etcd >/dev/null; build_kube >/dev/null; build_pulumi >/dev/null; build_pulumi_kubernetes >/dev/null; build_kwok >/dev/null; build_helm >/dev/null; build_health >/dev/null; echo "$CACHE/bin" ;;
  *) echo "usage: $0 etcd|kube|pulumi|pulumi-kubernetes|kwok|helm|vegeta|health|controlplane|all" >&2; exit 2 ;;
esac
