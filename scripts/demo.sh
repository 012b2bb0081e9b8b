#!/usr/bin/env bash
# upgrader's main job, from nothing: set up, start a sandbox kubeadm cluster at v1.30 (real etcd, a
# Kubernetes API, 3 control-plane and 3 worker nodes), observe it, check that an upgrade may start,
# plan the upgrade to v1.32, apply it node by node (live progress on a terminal: drains, snapshots
# before each control-plane hop, health gates), then show the cluster's history and the run's steps.
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
up preflight demo --to v1.32
plan_id=$(.venv/bin/upgrader plan demo --to v1.32 --max-unavailable 2 -o json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
up plans show "$plan_id"
up apply "$plan_id" --yes --gate-interval 1s
run_id=$(.venv/bin/upgrader runs list demo -o json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
up history demo
up runs show "$run_id"
echo "\$ kubectl --kubeconfig $demo/upgrader/sandboxes/demo/kubeconfig get nodes -o wide"
kubectl --kubeconfig "$demo/upgrader/sandboxes/demo/kubeconfig" get nodes -o wide || true
echo
if [ "${KEEP:-0}" = 1 ]; then
  echo "sandbox kept: export XDG_DATA_HOME=$demo UPGRADER_DB=$demo/ledger.db; upgrader sandbox down demo"
fi
