"""The first process of a sandbox node command's namespaces: it assembles the node's ``/`` and runs the command.

The node transport starts ``unshare --mount --uts --ipc --pid --fork --kill-child python -I -S nsinit.py
PLAN... -- COMMAND...`` (see :mod:`.isolation`, which writes PLAN and the mount points it names). In its
private mount namespace this process, still seeing the machine's filesystem:

1. binds the node's directory onto the stage directory: that is the node's ``/``, writable, with its
   ``/etc``, ``/var``, ``/tmp``, ``/root``, ``/run``...;
2. mounts ``/usr`` as a read-only overlay of the node's own ``usr`` (its simulated tools in ``bin`` and
   ``sbin``) over the machine's ``/usr``; the node's ``/bin``, ``/sbin``, ``/lib*`` are links into it, so
   every spelling and every PATH finds the node's tool before the machine's;
3. binds the node's own ``/usr/local``, ``/usr/lib/systemd``, ``/usr/share/keyrings`` writable over that,
   and what the simulated tools run on (the interpreter, upgrader, the sandbox's config.json, the real
   etcdctl) read-only under ``/usr/lib/upgrader-sandbox``;
4. mounts a ``/proc`` of the new pid namespace (its ``sys``, ``sysrq-trigger``, ``irq`` and ``bus``
   read-only) and a small ``/dev`` (null, zero, full, random, urandom, tty);
5. makes that the root (``pivot_root``) and detaches the machine's: nothing of it is left to reach;
6. names the host after the node, drops from the capability bounding set what would act on the
   kernel rather than on files (mounts, devices, modules, raw I/O, clock, reboot, network
   configuration, immutable flags), and execs the command in ``/root``.

It runs with ``-I -S`` (nothing from the environment or the working directory is imported), imports
only ``os``, ``sys`` and ``ctypes`` (every node command pays for its start: no json, re or pathlib), and
builds no shell command: PLAN is a list of arguments (:func:`parse`), the command an argv list. Any
failure before the exec exits 255 with a line on stderr and runs nothing, as ssh does when it
cannot reach a host.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings  # noqa: F401  os.execvp imports it on first use: once the machine's / is gone, too late

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MNT_DETACH = 0x2
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
# glibc has no pivot_root(); its syscall number per architecture (asm-generic ones share 41)
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "loongarch64": 41, "ppc64le": 203,
              "ppc64": 203, "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218}
# Capabilities that act on the kernel or devices rather than on files: with them a command could
# undo the mounts, reach disks, load modules, change the clock, reboot, reconfigure the network
# or make node files undeletable for `sandbox down`. CAP_DAC_READ_SEARCH is the one open_by_handle_at
# needs, which opens any file of a mounted filesystem by its inode number, past every mount (root
# keeps reading its own files through CAP_DAC_OVERRIDE).
DROPPED_CAPS = {
    "CAP_DAC_READ_SEARCH": 2, "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_ADMIN": 12, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25,
    "CAP_MKNOD": 27, "CAP_AUDIT_CONTROL": 30, "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_PERFMON": 38, "CAP_BPF": 39,
}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


class SetupError(Exception):
    """The node's root could not be assembled: nothing is run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {source or fstype} on {target}")


def inside(stage: str, path: str) -> str:
    """A mount point in the node's root, refused when a link leads it elsewhere (the node owns its /etc,
    its /proc and /dev entries: a link there must not move a mount, even within this namespace)."""
    target = stage + path
    if os.path.realpath(target) != target:
        raise SetupError(f"{path} on the node is or passes through a link: not mounting over it")
    return target


def bind(source: str, target: str, *, read_only: bool) -> None:
    mount(source, target, None, MS_BIND)
    if read_only:  # a bind mount takes its flags from a remount
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def overlay_path(path: str) -> str:
    """A layer path as overlayfs options need it: its separators escaped."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


class Plan:
    """What to assemble: ``NODE ROOT STAGE CWD [--usr LAYER]... [--rw SOURCE INSIDE]... [--ro SOURCE INSIDE]...``"""

    def __init__(self, node: str, root: str, stage: str, cwd: str) -> None:
        self.node, self.root, self.stage, self.cwd = node, root, stage, cwd
        self.usr: list[str] = []
        self.writable: list[tuple[str, str]] = []
        self.read_only: list[tuple[str, str]] = []


def parse(args: list[str]) -> Plan:
    if len(args) < 4:
        raise SetupError("the plan needs NODE ROOT STAGE CWD")
    plan = Plan(*args[:4])
    rest = args[4:]
    while rest:
        flag = rest.pop(0)
        if flag == "--usr" and rest:
            plan.usr.append(rest.pop(0))
        elif flag in ("--rw", "--ro") and len(rest) >= 2:
            (plan.writable if flag == "--rw" else plan.read_only).append((rest.pop(0), rest.pop(0)))
        else:
            raise SetupError(f"unknown plan argument {flag!r}")
    return plan


def assemble(plan: Plan) -> None:
    """Steps 1-4: the node's / at the stage directory, in this mount namespace only."""
    stage = plan.stage
    bind(plan.root, stage, read_only=False)
    lower = ":".join(overlay_path(p) for p in plan.usr)
    mount("overlay", inside(stage, "/usr"), "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, f"lowerdir={lower}")
    for source, path in plan.writable:
        bind(source, inside(stage, path), read_only=False)
    for source, path in plan.read_only:
        bind(source, inside(stage, path), read_only=True)
    _proc(inside(stage, "/proc"))
    _dev(inside(stage, "/dev"))


def _proc(target: str) -> None:
    mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = f"{target}/{name}"
        if os.path.exists(path):
            bind(path, path, read_only=True)


def _dev(target: str) -> None:
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            os.close(os.open(f"{target}/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
            mount(f"/dev/{name}", f"{target}/{name}", None, MS_BIND)
    for name, link in DEV_LINKS.items():
        os.symlink(link, f"{target}/{name}")
    os.mkdir(f"{target}/shm", 0o1777)
    mount("tmpfs", f"{target}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m")


def enter(stage: str) -> None:
    """Step 5: the stage becomes / and the machine's root is detached, so no path leads back to it."""
    machine = os.uname().machine
    number = PIVOT_ROOT.get(machine)
    if number is None:
        raise SetupError(f"pivot_root: unknown system call number on {machine}")
    os.chdir(stage)
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detaching the machine's root")
    os.chdir("/")


def restrict(hostname: str, last_cap: int) -> None:
    """Step 6: the node's hostname, and no capability that reaches past its files."""
    name = hostname.encode()
    _check(_libc.sethostname(name, len(name)), "sethostname")
    for cap in DROPPED_CAPS.values():
        if cap <= last_cap:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    # Inheritable and ambient capabilities pass execve whatever the bounding set says: none at all.
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two of {effective, permitted, inheritable}
    _check(_libc.capget(header, data), "capget")
    data[2] = data[5] = 0
    _check(_libc.capset(header, data), "clearing inheritable capabilities")


def main(args: list[str]) -> int:
    if "--" not in args or args.index("--") == len(args) - 1:
        print("usage: nsinit.py NODE ROOT STAGE CWD [PLAN...] -- COMMAND [ARG...]", file=sys.stderr)
        return 255
    split = args.index("--")
    argv = args[split + 1:]
    try:
        plan = parse(args[:split])
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        assemble(plan)
        enter(plan.stage)
        restrict(plan.node, last_cap)
        os.chdir(plan.cwd)
    except (SetupError, OSError, ValueError) as e:
        print(f"upgrader: sandbox node {args[0] if args else '?'}: cannot isolate the command, nothing was run: "
              f"{e}", file=sys.stderr)
        return 255
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"{argv[0]}: command not found", file=sys.stderr)
        return 127
    except OSError as e:
        print(f"{argv[0]}: {e.strerror}", file=sys.stderr)
        return 126
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
