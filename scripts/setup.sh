#!/usr/bin/env bash
# Installs what upgrader and its tests need on a fresh machine: Debian packages when missing
# (etcd for the sandbox, PostgreSQL for the ledger tests, OpenSSH for the transport tests), uv
# (pinned by hash), and then exactly the locked Python set (uv.lock) into .venv, upgrader itself
# editable. Idempotent and quick when everything is there; scripts/test.sh and scripts/demo.sh
# call it. Fails when pyproject.toml and uv.lock disagree: run scripts/update-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
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

# uv reads the lock; it comes from PyPI pinned by hash into a venv of its own (.tools), so the
# project's venv holds exactly the locked set and nothing else.
uv=.tools/bin/uv
want=$(sha256sum scripts/uv-requirements.txt | cut -d' ' -f1)
if [ ! -x "$uv" ] || [ "$(cat .tools/.stamp 2>/dev/null)" != "$want" ]; then
  rm -rf .tools
  python3 -m venv .tools
  log=$(mktemp)
  if ! .tools/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
       -r scripts/uv-requirements.txt >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  echo "$want" > .tools/.stamp
fi

[ "${1:-}" = --no-sync ] && exit 0  # scripts/update-deps.sh: uv only, the lock is about to change

# --locked: refuse (rather than re-resolve) when pyproject.toml and uv.lock disagree.
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv
if ! "$uv" sync --locked --quiet --python python3 --extra postgres --extra dev; then
  echo "error: could not install the locked set; if uv.lock does not match pyproject.toml, run scripts/update-deps.sh" >&2
  exit 1
fi
# uv compiled the dependencies; compile upgrader's own sources too (the editable install runs them
# from here), so no command pays for it, even where PYTHONDONTWRITEBYTECODE is set.
.venv/bin/python -m compileall -q -j 0 upgrader migrations >/dev/null
