#!/usr/bin/env bash
# upgrader's main job, from nothing: set up, start a sandbox kubeadm cluster (real etcd, a
# Kubernetes API, simulated nodes), observe it, check that an upgrade may start, take a verified
# snapshot of it, and plan a multi-minor upgrade of it.
# Everything lives in a throwaway directory with its own ledger; the sandbox is stopped at the
# end unless KEEP=1 (then `upgrader sandbox down demo` with the printed XDG_DATA_HOME stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
demo=$(mktemp -d -t upgrader-demo.XXXXXX)
export XDG_DATA_HOME="$demo" UPGRADER_DB="$demo/ledger.db"
up() { echo "\$ upgrader $*"; .venv/bin/upgrader "$@"; echo; }
if [ "${KEEP:-0}" != 1 ]; then
  trap '.venv/bin/upgrader sandbox down demo >/dev/null 2>&1 || true; rm -rf "$demo"' EXIT
fi

up sandbox up demo --version v1.30.6 --control-planes 3 --workers 3
up cluster skip demo v1.31.13 --reason "example: a regression we hit in staging"
up inventory demo
up preflight demo --to v1.33
up snapshot create demo --label before-v1.33
up plan demo --to v1.33 --max-unavailable 2
up snapshot list demo
up node exec demo cp-1 -- kubeadm version -o short
echo "\$ kubectl --kubeconfig $demo/upgrader/sandboxes/demo/kubeconfig get nodes -o wide"
kubectl --kubeconfig "$demo/upgrader/sandboxes/demo/kubeconfig" get nodes -o wide || true
echo
up cluster show demo
if [ "${KEEP:-0}" = 1 ]; then
  echo "sandbox kept: export XDG_DATA_HOME=$demo UPGRADER_DB=$demo/ledger.db; upgrader sandbox down demo"
fi
