"""Bad usage exits 2 with click-style usage text, through the real entry point; start-up stays light.

tests/integration/test_wheel_install.py runs the same cases against an installed wheel.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# (argv, what stderr must say). Each is a different kind of parsing error.
USAGE_ERRORS = [
    pytest.param(["--bogus"], "No such option: --bogus", id="unknown-option"),
    pytest.param(["cluster", "add", "prod", "--kubeconfg", "x"], "No such option: --kubeconfg", id="misspelt-option"),
    pytest.param(["plan"], "Missing argument", id="missing-argument"),
    pytest.param(["nosuch"], "No such command 'nosuch'", id="unknown-command"),
    pytest.param(["cluster", "nosuch"], "No such command 'nosuch'", id="unknown-subcommand"),
    pytest.param(["cluster", "list", "-o", "xml"], "'xml' is not one of", id="bad-choice"),
    pytest.param(["plan", "prod", "--to", "v1.33", "--max-unavailable", "abc"], "'abc' is not a valid int",
                 id="bad-integer"),
    pytest.param(["cluster", "add", "prod"], "Missing option '--kubeconfig'", id="missing-option"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS)
def test_usage_errors_exit_2_with_usage_text(cli, argv, message):
    r = cli(*argv)
    assert r.code == 2, r.err
    assert r.err.startswith("Usage: upgrader"), r.err
    assert message in r.err
    assert "for help" in r.err and "Traceback" not in r.err
    assert r.out == ""
    assert not cli.db.exists(), "a usage error must not create the ledger"


def test_help_and_version_exit_0(cli):
    assert cli("--version").out.strip().startswith("upgrader ")
    helped = cli("--help")
    assert helped.code == 0 and "Usage: upgrader" in helped.out and "plan" in helped.out
    assert cli("plan", "--help").code == 0


def _modules_after(argv: list[str], env: dict[str, str]) -> set[str]:
    code = (
        "import sys\n"
        "from upgrader.cli import _run\n"
        f"_run({argv!r})\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(out.stdout.rsplit("MODULES ", 1)[1].split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["plan", "--help"]])
def test_help_and_version_import_neither_sqlalchemy_nor_kubernetes_nor_pydantic(cli, argv):
    loaded = _modules_after(argv, cli.env)
    assert "typer" in loaded  # the probe itself works
    assert not {"sqlalchemy", "kubernetes", "pydantic", "rich", "alembic"} & loaded


def test_ledger_commands_do_not_import_the_other_backends_dialect(cli):
    assert cli("cluster", "list").code == 0  # creates and migrates the ledger (that does need alembic)
    loaded = _modules_after(["cluster", "list"], cli.env)
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert "sqlalchemy.dialects.postgresql" not in loaded
    assert "alembic" not in loaded  # an up-to-date ledger is opened without alembic


def test_the_cyclic_gc_is_off_during_start_up_and_back_for_a_long_command(cli):
    # main() runs the command with the collector off and turns it back on after
    # GC_BACK_AFTER_SECONDS; a stand-in command reports what it saw before and after that moment.
    code = (
        "import gc, time\n"
        "from upgrader import cli\n"
        "cli.GC_BACK_AFTER_SECONDS = 0.2\n"
        "def command(argv):\n"
        "    before = gc.isenabled()\n"
        "    time.sleep(1.0)\n"
        "    print('gc', before, gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "    return 0\n"
        "cli._run = command\n"
        "cli.main([])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=cli.env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["gc", "False", "True", "True"]
