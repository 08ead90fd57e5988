#!/usr/bin/env bash
# `make demo`: the main story on the embedded local control plane.
#   1. start etcd + kube-apiserver + kube-controller-manager (built from Go modules, cached)
#   2. install the AIRollout CRD, start the controller (leader-elected, detached)
#   3. kubectl apply the example AIRollout and show what users see: get, describe, events, status
# `make demo-down` (hack/demo.sh down) stops the controller and the control plane.
set -euo pipefail
cd "$(dirname "$0")/.."
AIR="bin/airollout"
DEV_DIR="${AIROLLOUT_DEV_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/airollout/dev}"
export AIROLLOUT_DEV_DIR="$DEV_DIR"
PIDFILE="$DEV_DIR/controller.pid"

stop_controller() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    echo "controller stopped"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = down ]; then
  stop_controller
  "$AIR" dev down
  exit 0
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
t0=$(date +%s)

step "Local control plane (first run builds Kubernetes from Go modules: 10-25 min; later runs start in seconds)"
eval "$("$AIR" dev up)"
KUBECTL="$(node_modules/.bin/node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(s.kubectl)' "$DEV_DIR/state.json")"
export PATH="$(dirname "$KUBECTL"):$PATH"
echo "export KUBECONFIG=$KUBECONFIG"
kubectl version 2>/dev/null | sed 's/^/  /'

step "Install the AIRollout CRD"
kubectl apply --server-side -f crds/airollout.yaml
kubectl wait --for=condition=Established --timeout=60s crd/airollouts.airollout.dev

step "Start the controller (log: $DEV_DIR/logs/controller.log)"
stop_controller
nohup "$AIR" controller --metrics-port 0 --lease-namespace kube-system >"$DEV_DIR/logs/controller.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 100); do grep -q '"became leader"' "$DEV_DIR/logs/controller.log" && break; sleep 0.2; done
grep -q '"became leader"' "$DEV_DIR/logs/controller.log" || { echo "controller did not start; see $DEV_DIR/logs/controller.log"; tail -20 "$DEV_DIR/logs/controller.log"; exit 1; }
echo "controller is leader (pid $(cat "$PIDFILE"))"

step "An invalid rollout is rejected by the API server, naming the field"
sed 's/setWeight: 5$/setWeight: 150/' examples/airollout.yaml | kubectl apply -f - 2>&1 | sed 's/^/  /' || true

step "kubectl apply -f examples/airollout.yaml"
kubectl apply -f examples/airollout.yaml
for _ in $(seq 100); do
  phase=$(kubectl get air triage-bot -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ -n "$phase" ] && break; sleep 0.2
done

step "kubectl get air"
kubectl get air -o wide
step "kubectl airollout status triage-bot"
"$AIR" status triage-bot
step "kubectl get events"
kubectl get events --field-selector involvedObject.kind=AIRollout
step "kubectl explain airollout.spec.shadow.compare"
kubectl explain airollout.spec.shadow.compare | head -20

cat <<MSG

Demo finished in $(( $(date +%s) - t0 ))s. The control plane and the controller keep running:
  export KUBECONFIG=$KUBECONFIG
  export PATH=$(dirname "$KUBECTL"):\$PATH
  kubectl get air -w
  tail -f $DEV_DIR/logs/controller.log
Stop everything with: make demo-down
MSG
