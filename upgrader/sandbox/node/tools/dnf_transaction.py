"""What a dnf transaction prints and does: the table of what changes, the confirmation, the rpm steps.

Changes go into the node's package database (see :mod:`upgrader.sandbox.node.machine`), which the
simulated kubeadm and kubelet read: a new kubeadm is the one ``kubeadm`` runs at once, a new kubelet
is the one the kubelet runs after ``systemctl restart kubelet``. Unlike Debian, no
``daemon-reload`` warning follows a kubelet package change: on RHEL, systemd's rpm file triggers
reload the units at the end of the transaction.
"""

from __future__ import annotations

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.yum_repos import ARCH, Offered, evr_key

RULE = "=" * 80
SIZES_MB = {"kubeadm": 11, "kubelet": 15, "kubectl": 11}  # the pkgs.k8s.io rpms, roughly
# (table heading, summary verb, done heading, the rpm step of the new package)
KINDS = {
    "install": ("Installing:", "Install", "Installed:", "Installing"),
    "upgrade": ("Upgrading:", "Upgrade", "Upgraded:", "Upgrading"),
    "downgrade": ("Downgrading:", "Downgrade", "Downgraded:", "Downgrading"),
}


def run(node: Node, changes: dict[str, Offered], *, answer: bool | None, quiet: bool) -> int:
    """Resolve, confirm and apply the changes (name -> the package to have); 0, or 1 when not confirmed.

    ``answer`` is the command line's (``-y`` True, ``--assumeno`` False); None asks, on stdin."""
    installed = machine.packages(node.layout)
    kinds = {name: _kind(installed.get(name), new) for name, new in changes.items()}
    if not quiet:
        node.say("Dependencies resolved.")
    if not changes:
        if not quiet:
            node.say("Nothing to do.\nComplete!")
        return 0
    _table(node, changes, kinds)
    total = sum(SIZES_MB[n] for n in changes)
    node.say(f"\nTotal download size: {total} M")
    if answer is None:
        answer = node.ask("Is this ok [y/N]: ").lower() in ("y", "yes")
    if not answer:
        node.warn("Operation aborted.")
        return 1
    if not quiet:
        _download(node, changes, total)
        _steps(node, changes, kinds, installed)
    for name, new in changes.items():
        installed[name] = machine.Package(name, new.evr, hold=False)
    machine.save_packages(node.layout, installed)
    if not quiet:
        for kind in KINDS:
            done = [new.nevra for name, new in changes.items() if kinds[name] == kind]
            if done:
                node.say(f"\n{KINDS[kind][2]}\n" + "\n".join(f"  {n}" for n in done))
        node.say("\nComplete!")
    return 0


def _kind(current: machine.Package | None, new: Offered) -> str:
    if current is None:
        return "install"
    return "downgrade" if evr_key(new.evr) < evr_key(current.version) else "upgrade"


def _table(node: Node, changes: dict[str, Offered], kinds: dict[str, str]) -> None:
    node.say(f"{RULE}\n {'Package':<16} {'Architecture':<14} {'Version':<26} {'Repository':<14} Size\n{RULE}")
    for kind, (heading, _, _, _) in KINDS.items():
        names = [n for n in changes if kinds[n] == kind]
        if names:
            node.say(heading)
        for name in names:
            new = changes[name]
            node.say(f" {name:<16} {ARCH:<14} {new.evr:<26} {new.repo:<14} {SIZES_MB[name]:>2} M")
    node.say(f"\nTransaction Summary\n{RULE}")
    counts = {KINDS[k][1]: sum(1 for n in changes if kinds[n] == k) for k in KINDS}
    counts = {verb: count for verb, count in counts.items() if count}
    width = max(len(verb) for verb in counts)
    for verb, count in counts.items():
        node.say(f"{verb:<{width}}  {count} Package" + ("s" if count > 1 else ""))


def _download(node: Node, changes: dict[str, Offered], total: int) -> None:
    node.say("Downloading Packages:")
    for i, (name, new) in enumerate(changes.items(), start=1):
        label = f"({i}/{len(changes)}): {new.nevra}.rpm" if len(changes) > 1 else f"{new.nevra}.rpm"
        node.say(f"{label:<48} 20 MB/s | {SIZES_MB[name]:>3} MB     00:00")
    node.say(f"{'-' * 80}\n{'Total':<48} 20 MB/s | {total:>3} MB     00:00")


def _steps(node: Node, changes: dict[str, Offered], kinds: dict[str, str],
           installed: dict[str, machine.Package]) -> None:
    """rpm's progress lines: each new package, then each replaced one cleaned up, then all verified."""
    old = {n: f"{n}-{installed[n].version}.{ARCH}" for n in changes if kinds[n] != "install"}
    steps = len(changes) + len(old)
    node.say("Running transaction check\nTransaction check succeeded.\nRunning transaction test\n"
             f"Transaction test succeeded.\nRunning transaction\n  {'Preparing':<17}: {'':<50} 1/1")
    lines = [(KINDS[kinds[n]][3], new.nevra) for n, new in changes.items()]
    lines += [("Cleanup", nevra) for nevra in old.values()]
    for i, (step, nevra) in enumerate(lines, start=1):
        node.say(f"  {step:<17}: {nevra:<50} {i}/{steps}")
    for i, nevra in enumerate([new.nevra for new in changes.values()] + list(old.values()), start=1):
        node.say(f"  {'Verifying':<17}: {nevra:<50} {i}/{steps}")
