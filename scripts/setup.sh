#!/usr/bin/env bash
# Installs what upgrader and its tests need on a fresh machine: Debian packages when missing
# (etcd for the sandbox, PostgreSQL for the ledger tests), the venv, and upgrader itself (editable).
# Idempotent and quick when everything is there; scripts/test.sh and scripts/demo.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# kubectl (a real client none of us wrote) drives the sandbox tests. Machine images of this kind ship
# it (/usr/bin/kubectl); Debian's own kubernetes-client is far too old, so only the image's apt
# source can provide it.
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: need root to apt-get install ${missing[*]} (or install them yourself)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian postgresql package starts a cluster on 5432; the tests use their own throwaway one.

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.upgrader-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing upgrader and its Python dependencies into .venv"
  log=$(mktemp)
  # pip and setuptools are chatty on success; show their output only when they fail.
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[postgres,dev]'; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
