#!/usr/bin/env bash
# upgrader's main job, from nothing: set up, start a sandbox kubeadm cluster at v1.30 (real etcd, a
# Kubernetes API, 3 control-plane and 3 worker nodes), observe it, check that an upgrade may start,
# plan the upgrade to v1.32, apply it node by node (live progress on a terminal: drains, snapshots
# before each control-plane hop, health gates), show the cluster's history and the run's steps, then
# roll it back to v1.30: the preview with what will be lost, the rollback, the history again.
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
kube() { echo "\$ kubectl $*"; kubectl --kubeconfig "$demo/upgrader/sandboxes/demo/kubeconfig" "$@"; echo; }
kube get nodes -o wide
# The new version misbehaves: back to where the run started. First what it costs (a write made after
# the snapshot is named as lost), then the rollback itself, from the snapshot taken before the first hop.
echo "\$ kubectl create configmap written-after-the-upgrade --from-literal=note=lost-by-the-rollback"
kubectl create configmap written-after-the-upgrade --from-literal=note=lost-by-the-rollback --dry-run=client -o json \
  | kubectl --kubeconfig "$demo/upgrader/sandboxes/demo/kubeconfig" create --validate=false -f -  # JSON, not protobuf
echo
up rollback demo --dry-run
up rollback demo --yes
up history demo
kube get nodes -o wide
if [ "${KEEP:-0}" = 1 ]; then
  echo "sandbox kept: export XDG_DATA_HOME=$demo UPGRADER_DB=$demo/ledger.db; upgrader sandbox down demo"
fi
