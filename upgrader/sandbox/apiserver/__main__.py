"""``python -m upgrader.sandbox.apiserver``: one sandbox API server as its own process.

Prints exactly one line on stdout, ``listening HOST:PORT``, once it accepts connections (the
supervisor waits for it), and exits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from upgrader.sandbox.apiserver import emulation, health
from upgrader.sandbox.apiserver.server import ApiServer, ServerConfig


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    p = argparse.ArgumentParser(prog="python -m upgrader.sandbox.apiserver",
                                description="Sandbox Kubernetes API server backed by etcd.")
    p.add_argument("--etcd-endpoints", required=True, help="comma-separated etcd client URLs")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (loopback only; port 0 = any free port)")
    p.add_argument("--git-version", default="v1.30.6", help="the version /version reports, e.g. v1.30.6")
    p.add_argument("--node-name", default=None, help="the control-plane node this server runs on (informational)")
    p.add_argument("--unready", action="store_true", help='fault "apiserver-unready": /readyz answers 500')
    p.add_argument("--etcd-prefix", default="/registry", help="key prefix of every object in etcd")
    p.add_argument("--emulated-version", default=None,
                   help="KEP-4330 emulation, 1.33 or kube=1.33, within the range of --git-version's minor")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host.startswith("127.") and host != "localhost":
        p.error("--listen must be a loopback address")
    try:
        health.version_info(args.git_version)
    except ValueError as e:
        p.error(str(e))
    emulated = None
    if args.emulated_version is not None:
        emulated = _emulated_minor(args.git_version, args.emulated_version)
    return ServerConfig(etcd_endpoints=tuple(e for e in args.etcd_endpoints.split(",") if e), host=host,
                        port=int(port), git_version=args.git_version, node_name=args.node_name,
                        unready=args.unready, etcd_prefix=args.etcd_prefix, emulated_minor=emulated)


def _emulated_minor(git_version: str, value: str) -> int:
    """The minor this binary emulates; exits as kube-apiserver does when it refuses the value."""
    major, minor = (int(p) for p in git_version.lstrip("v").split(".")[:2])
    try:
        return emulation.parse(value, major=major, minor=minor)
    except emulation.EmulationError as e:
        if str(e).startswith("unknown flag"):
            print(f"Error: {e}", file=sys.stderr)
        else:  # component-base's cli.Run logs the failed validation, then exits 1
            stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
            print(f'E{stamp}.000000       1 run.go:72] "command failed" err="{e}"', file=sys.stderr)
        raise SystemExit(1) from e


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        server = ApiServer(config).start()
    except OSError as e:  # most often: the port is taken
        print(f"error: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening {config.host}:{server.port}", flush=True)
    while not stop.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
