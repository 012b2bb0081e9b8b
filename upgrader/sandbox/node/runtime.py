"""What a sandbox node's simulated tools run on, and where a node isolated in its namespaces sees it.

The simulated tools are ``python -m upgrader.sandbox.node.tools TOOL``: they need this interpreter,
upgrader itself and its third-party packages, and the real etcdctl and kubectl they hand the
checked command lines to. A node's ``/`` has none of the machine's files, so these are bound
read-only under :data:`RUNTIME` on the node (the machine's own paths may be node paths there:
pyenv keeps its interpreters under ``/root``, tests keep sandboxes under ``/tmp``):

- ``python``: the interpreter's installation (``sys.base_prefix``); a shared libpython is found
  through LD_LIBRARY_PATH, which the tools drop again before they run anything;
- ``path/N``: the directory holding the ``upgrader`` package, then the environment's site-packages;
- ``sandbox/config.json``: the sandbox's fixed facts (ports, members, timeouts), nothing else of the
  sandbox directory (other nodes' roots, its state, its faults stay out of reach);
- ``libexec/etcdctl``: the real etcdctl, on no PATH and under none of the ``/bin``, ``/usr/bin``
  spellings (those name the node's own etcdctl). kubectl needs no bind when it lives in ``/usr``
  outside bin and sbin (Google's packaging: a dispatcher that runs its siblings), as the overlay
  shows the machine's ``/usr`` there anyway; otherwise it is bound like etcdctl.
"""

from __future__ import annotations

import functools
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import upgrader

RUNTIME = "/usr/lib/upgrader-sandbox"
SANDBOX_DIR = f"{RUNTIME}/sandbox"  # what the tools get as UPGRADER_SANDBOX_DIR
CONFIG = "config.json"
REAL_TOOLS = ("etcdctl", "kubectl")
_SHADOWED = ("/usr/bin/", "/usr/sbin/")  # where the node's own tools hide the machine's


class RuntimeUnavailableError(Exception):
    """This interpreter cannot be shown to a node: it is not inside its own installation."""


@dataclass(frozen=True, slots=True)
class Mount:
    """A file or directory of this machine, bound read-only at ``inside`` on every isolated node."""

    source: str
    inside: str
    is_dir: bool


@dataclass(frozen=True, slots=True)
class Runtime:
    """The interpreter, upgrader and real tools as an isolated node sees them."""

    mounts: tuple[Mount, ...]
    python: str  # the interpreter's path on the node
    pythonpath: tuple[str, ...]
    library_path: str | None  # where a shared libpython is on the node, when it needs finding
    real: tuple[tuple[str, str], ...]  # (tool, its path on the node) for each real tool found

    def real_tool(self, name: str) -> str | None:
        return dict(self.real).get(name)


def _within(path: Path, base: Path) -> str:
    if not path.is_relative_to(base):
        raise RuntimeUnavailableError(f"{path} is not inside {base}: this interpreter cannot be shown to a "
                                      "sandbox node")
    return str(path.relative_to(base))


def _real_tools() -> tuple[list[Mount], list[tuple[str, str]]]:
    mounts, real = [], []
    for name in REAL_TOOLS:
        found = shutil.which(name)  # as `sandbox up` found etcdctl: on the operator's PATH
        if found is None:
            continue
        target = str(Path(found).resolve())
        if target.startswith("/usr/") and not target.startswith((*_SHADOWED, "/usr/local/")):
            real.append((name, target))  # the node's /usr shows it as it is
            continue
        inside = f"{RUNTIME}/libexec/{name}"
        mounts.append(Mount(target, inside, is_dir=False))
        real.append((name, inside))
    return mounts, real


@functools.cache
def current() -> Runtime:
    """The runtime of this process: what a node needs to run the tools the way this upgrader would."""
    base = Path(sys.base_prefix).resolve()
    python = f"{RUNTIME}/python/{_within(Path(sys.executable).resolve(), base)}"
    source = Path(upgrader.__file__).resolve().parent.parent
    sites = [Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")]
    path_dirs = [d for d in dict.fromkeys([source, *sites]) if d.is_dir()]
    mounts = [Mount(str(base), f"{RUNTIME}/python", is_dir=True)]
    mounts += [Mount(str(d), f"{RUNTIME}/path/{i}", is_dir=True) for i, d in enumerate(path_dirs)]
    library_path = None
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and Path(libdir).resolve().is_relative_to(base):
        library_path = f"{RUNTIME}/python/{_within(Path(libdir).resolve(), base)}"
    tool_mounts, real = _real_tools()
    return Runtime(mounts=(*mounts, *tool_mounts), python=python,
                   pythonpath=tuple(f"{RUNTIME}/path/{i}" for i in range(len(path_dirs))),
                   library_path=library_path, real=tuple(real))


def config_mount(sandbox_dir: Path) -> Mount:
    """The sandbox's config.json, read-only, where the tools look for it."""
    return Mount(str(Path(sandbox_dir).resolve() / CONFIG), f"{SANDBOX_DIR}/{CONFIG}", is_dir=False)
