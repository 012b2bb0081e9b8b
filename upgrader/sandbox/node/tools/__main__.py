"""``python -m upgrader.sandbox.nodecmd TOOL ARGS...``: what every wrapper on a sandbox node runs.

The registry is the package's simulated tools plus the guards for host tools (see ``shims``): every
wrapper a node has resolves to something here, so none can fall through to a host binary.
"""

import sys

from upgrader.sandbox.nodecmd import Node, Tool, shims, tools


def registry() -> dict[str, Tool]:
    from upgrader.sandbox.nodecmd import dpkg, etcdctl, hosttools, kubectl

    found: dict[str, Tool] = {name: hosttools.refuse(name) for name in shims.REFUSED}
    return found | tools() | {
        "etcdctl": etcdctl.main,
        "kubectl": kubectl.main,
        "kubelet": hosttools.kubelet,
        "apt": hosttools.apt_front,
        "apt-cache": hosttools.apt_cache,
        "dpkg": dpkg.dpkg,
        "dpkg-query": dpkg.dpkg_query,
        "hostname": hosttools.hostname,
        "sudo": hosttools.sudo,
    }


def run(argv: list[str]) -> int:
    known = registry()
    if not argv or argv[0] not in known:
        print(f"usage: python -m upgrader.sandbox.nodecmd {{{','.join(sorted(known))}}} ARGS...", file=sys.stderr)
        return 2
    return known[argv[0]](Node.from_env(), argv[1:])


sys.exit(run(sys.argv[1:]))
