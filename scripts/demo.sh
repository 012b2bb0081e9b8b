#!/usr/bin/env bash
# upgrader's main job, from nothing: set up, register a cluster, and plan a multi-minor upgrade.
# Everything lives in a throwaway directory (its own ledger); nothing touches a real cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
demo=$(mktemp -d -t upgrader-demo.XXXXXX)
export UPGRADER_DB="$demo/ledger.db"
up() { echo "\$ upgrader $*"; .venv/bin/upgrader "$@"; echo; }

cat > "$demo/kubeconfig" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: prod-admin, context: {cluster: prod, user: admin}}]
current-context: prod-admin
users: [{name: admin, user: {}}]
KUBECONFIG
cp scripts/demo-inventory.json "$demo/inventory.json"

up cluster add prod --kubeconfig "$demo/kubeconfig"
up cluster skip prod v1.31.13 --reason "example: a regression we hit in staging"
up plan prod --to v1.33 --state "$demo/inventory.json" --max-unavailable 2
echo "ledger: $UPGRADER_DB"
