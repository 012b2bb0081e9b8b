"""The playbook reader: the shipped files say exactly what the engine runs today, and every bad copy is
refused in one line naming the file, the step and the field (exit 2)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.plans import Action
from upgrader.domain.playbooks import BUILT_IN, DEFAULT_PLAYBOOKS, PLACEHOLDERS, Role, parse_playbook, substitute
from upgrader.domain.versions import Version
from upgrader.errors import PlaybookError, UsageError
from upgrader.services.playbooks import load_playbooks, playbook_dir, shipped_upgrade_dir, validate_dir
from upgrader.services.yaml_docs import load_yaml

WORKER = """\
role: worker
phases:
  node:
    - name: upgrade-kubeadm
      action: upgrade-kubeadm
    - name: kubeadm-upgrade-node
      action: kubeadm-upgrade-node
{extra}    - name: drain
      action: drain
    - name: upgrade-kubelet
      action: upgrade-kubelet
    - name: uncordon
      action: uncordon
  batch:
    - name: batch-ready
      action: health-gate
"""


def _worker(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "worker.yaml"
    path.write_text(WORKER.format(extra=extra))
    return path


def _read(path: Path, role: Role = Role.WORKER):
    return parse_playbook(load_yaml(path), file=str(path), role=role)


def test_the_shipped_playbooks_are_the_engines_built_in_procedures() -> None:
    shipped = load_playbooks(None)
    for role in Role:
        got = {phase: [s.action for s in steps] for phase, steps in shipped.by_role[role].phases.items()}
        assert got == {phase: list(actions) for phase, actions in BUILT_IN[role].items()}
        default = DEFAULT_PLAYBOOKS.by_role[role].phases
        assert got == {phase: [s.action for s in steps] for phase, steps in default.items()}
        assert shipped.by_role[role].source == str(shipped_upgrade_dir() / f"{role}.yaml")
    assert not shipped.customised


def test_a_check_and_a_command_between_built_in_steps_are_read_with_their_defaults(tmp_path: Path) -> None:
    path = _worker(tmp_path, """\
    - name: pre-drain-hook
      action: command
      with: {argv: [/usr/local/bin/notify, "{node}", "{version}"], idempotent: false}
    - name: dns-ok
      action: check
      with: {argv: [dig, +short, kubernetes.default]}
      when: {manager: dnf}
""")
    playbook = _read(path)
    hook, check = playbook.phases["node"][2:4]
    assert (hook.action, hook.number, hook.args) == (
        Action.COMMAND, 3, {"argv": ["/usr/local/bin/notify", "{node}", "{version}"], "timeout": 300.0,
                            "idempotent": False})
    assert (check.action, check.manager, check.args) == (
        Action.CHECK, "dnf", {"argv": ["dig", "+short", "kubernetes.default"], "timeout": 30.0, "retries": 3,
                              "interval": 5.0})


REFUSED = [
    # (the step added before drain, the message's expected "step N (name): field F" and its reason)
    ("    - name: x\n      action: reboot-everything\n",
     r"step 3 \(x\): field action: unknown action 'reboot-everything'"),
    ("    - name: x\n      action: command\n",
     r"step 3 \(x\): field with: is required \(the command step's arguments: argv, timeout, idempotent\)"),
    ("    - name: x\n      action: command\n      with: {timeout: 5}\n", r"step 3 \(x\): field argv: is required"),
    ("    - name: x\n      action: command\n      with: {argv: 'systemctl restart foo; rm -rf /'}\n",
     r"step 3 \(x\): field argv: expected a list of strings .*shell strings are never run"),
    ("    - name: x\n      action: command\n      with: {argv: [echo, 'v{version}']}\n",
     r"step 3 \(x\): field argv\[1\]: 'v\{version\}': a placeholder is a whole argument"),
    ("    - name: x\n      action: command\n      with: {argv: [echo, '{cluster}']}\n",
     r"field argv\[1\]: '\{cluster\}': a placeholder is a whole argument"),
    ("    - name: x\n      action: command\n      with: {argv: [echo, {node}]}\n",
     r"field argv\[1\]: YAML read \{node\} as a mapping: quote it"),
    ("    - name: x\n      action: command\n      with: {argv: [/bin/true], shell: true}\n",
     r"step 3 \(x\): field shell: unknown field"),
    ("    - name: x\n      action: check\n      with: {argv: [/bin/true], http: /readyz}\n",
     r"field with: a check has either argv"),
    ("    - name: x\n      action: check\n      with: {http: 'https://evil.example/'}\n",
     r"field http: expected a path"),
    ("    - name: x\n      action: check\n      with: {http: /readyz, retries: -1}\n",
     r"field retries: expected a number"),
    ("    - name: x\n      action: check\n      with: {http: /readyz}\n      when: {manager: apt}\n",
     r"field when: an http check runs on no node"),
    ("    - name: x\n      action: command\n      with: {argv: [/bin/true]}\n      when: {manager: zypper}\n",
     r"field manager: expected one of apt, dnf"),
    ("    - name: x\n      action: command\n      with: {argv: [/bin/true]}\n      colour: red\n",
     r"field colour: unknown field"),
    ("    - name: drain\n      action: command\n      with: {argv: [/bin/true]}\n",
     r"step 4 \(drain\): field name: 'drain' names another"),
    ("    - name: Bad_Name\n      action: command\n      with: {argv: [/bin/true]}\n",
     r"field name: expected lowercase words"),
    ("    - action: command\n      with: {argv: [/bin/true]}\n", r"step 3: field name: is required"),
    ("    - name: x\n      action: snapshot\n",
     r"field action: snapshot is not a step of the worker playbook's node phase"),
    ("    - name: x\n      action: drain\n      with: {argv: [/bin/true]}\n",
     r"field with: the built-in step drain takes no with"),
    ("    - name: x\n      action: restore-etcd\n", r"field action: unknown action 'restore-etcd'"),
]


@pytest.mark.parametrize(("extra", "message"), REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_a_bad_step_is_refused_naming_the_file_the_step_and_the_field(tmp_path: Path, extra: str,
                                                                      message: str) -> None:
    path = _worker(tmp_path, extra)
    with pytest.raises(PlaybookError) as caught:
        _read(path)
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith(f"{path}:")
    assert re.search(message, caught.value.message), caught.value.message


def test_a_kubelet_upgraded_without_a_drain_before_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(WORKER.format(extra="").replace("    - name: drain\n      action: drain\n", ""))
    with pytest.raises(PlaybookError, match=r"step 3 \(upgrade-kubelet\): field action: upgrade-kubelet needs drain "
                       r"before it \(a kubelet is upgraded only on a drained node\)"):
        _read(path)


def test_built_in_steps_moved_repeated_or_left_out_are_refused(tmp_path: Path) -> None:
    moved = WORKER.format(extra="").replace(
        "    - name: upgrade-kubelet\n      action: upgrade-kubelet\n    - name: uncordon\n      action: uncordon\n",
        "    - name: uncordon\n      action: uncordon\n    - name: upgrade-kubelet\n      action: upgrade-kubelet\n")
    (tmp_path / "worker.yaml").write_text(moved)
    with pytest.raises(PlaybookError, match=r"step 4 \(uncordon\): field action: uncordon needs upgrade-kubelet"):
        _read(tmp_path / "worker.yaml")
    (tmp_path / "worker.yaml").write_text(WORKER.format(extra="    - name: again\n      action: upgrade-kubeadm\n"))
    with pytest.raises(PlaybookError, match=r"step 3 \(again\): field action: upgrade-kubeadm appears twice"):
        _read(tmp_path / "worker.yaml")
    (tmp_path / "worker.yaml").write_text(WORKER.format(extra="").replace(
        "    - name: uncordon\n      action: uncordon\n", ""))
    with pytest.raises(PlaybookError, match=r"worker.yaml: field phases.node: the built-in step uncordon is missing"):
        _read(tmp_path / "worker.yaml")


def test_document_level_refusals(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    for text, message in [
        ("role: control-plane\nphases: {}\n", r"field role: this file holds the worker playbook"),
        ("role: worker\n", r"field phases: is required \(the worker playbook's phases: node, batch\)"),
        ("role: worker\nphases: {node: []}\n", r"field phases.node: expected a list of steps"),
        (WORKER.format(extra="") + "  extra: []\n", r"field extra: unknown field"),
        (WORKER.format(extra="").replace("  batch:\n    - name: batch-ready\n      action: health-gate\n", ""),
         r"field phases.batch: is required"),
        (WORKER.format(extra="").replace("      action: health-gate\n", "      action: check\n      with: "
                                         "{argv: [/bin/true]}\n"), r"field argv: this phase runs once for the batch"),
        ("role: worker\nrole: worker\n", r"duplicate key 'role'"),
    ]:
        path.write_text(text)
        with pytest.raises(PlaybookError, match=message):
            _read(path)


@given(st.text(alphabet="{}nodeversiminrcl-_ ", min_size=1, max_size=12))
def test_an_argv_item_with_a_brace_must_be_exactly_a_placeholder(item: str) -> None:
    doc = {"role": "worker", "phases": {
        "node": [{"name": "hook", "action": "command", "with": {"argv": ["echo", item]}},
                 *({"name": str(a), "action": str(a)} for a in BUILT_IN[Role.WORKER]["node"])],
        "batch": [{"name": "gate", "action": "health-gate"}]}}
    if ("{" in item or "}" in item) and item not in PLACEHOLDERS:
        with pytest.raises(PlaybookError, match=r"step 1 \(hook\): field argv\[1\]"):
            parse_playbook(doc, file="w.yaml", role=Role.WORKER)
    else:
        playbook = parse_playbook(doc, file="w.yaml", role=Role.WORKER)
        argv = substitute(playbook.phases["node"][0].args, node="w-1", version=Version(1, 31, 4))["argv"]
        assert argv == ["echo", {"{node}": "w-1", "{version}": "v1.31.4", "{minor}": "v1.31"}.get(item, item)]


def test_a_directory_is_checked_at_the_edge(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        playbook_dir(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        playbook_dir(str(tmp_path / "file"))
    with pytest.raises(UsageError, match=r"without '\.\.'"):
        playbook_dir(f"{tmp_path}/../{tmp_path.name}")
    with pytest.raises(PlaybookError, match="holds no playbook"):
        validate_dir(str(tmp_path))
    (tmp_path / "workers.yaml").write_text("role: worker\n")
    with pytest.raises(PlaybookError, match=r"workers.yaml: not a role's playbook"):
        validate_dir(str(tmp_path))


def test_a_copy_with_some_roles_takes_the_others_from_the_shipped_set(tmp_path: Path) -> None:
    (tmp_path / "upgrade").mkdir()
    shutil.copy(shipped_upgrade_dir() / "worker.yaml", tmp_path / "upgrade" / "worker.yaml")
    found = validate_dir(str(tmp_path))
    assert found.files == (str(tmp_path / "upgrade" / "worker.yaml"),)
    assert found.playbooks.by_role[Role.WORKER].source == str(tmp_path / "upgrade" / "worker.yaml")
    assert found.playbooks.by_role[Role.CONTROL_PLANE].source == str(shipped_upgrade_dir() / "control-plane.yaml")
