"""The schedule explainers' texts: a crontab entry, systemd units and a CronJob, read back the way
cron, the shell, systemd and Kubernetes would read them."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.schedule_cronjob import cronjob_object
from upgrader.domain.schedule_units import cron_line, systemd_units
from upgrader.errors import InvalidNameError, UsageError

TICK = ["schedule", "tick", "-o", "json"]
TIMEOUT = ["timeout", "--kill-after=2m", "1440m"]
# Text without control characters (a newline would be another crontab line or unit directive).
printable = st.text(st.characters(min_codepoint=32, blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
paths = printable.map(lambda s: "/" + s)


def cron_command(command: str) -> str:
    """What cron hands the shell (cronie's and Debian cron's loop): ``\\%`` is a ``%``, any other
    backslash pair is kept as it is, and a bare ``%`` ends the command (the rest becomes its stdin)."""
    out, escaped = [], False
    for ch in command:
        if escaped:
            out[-1:] = [ch] if ch == "%" else [out[-1], ch]
            escaped = False
            continue
        if ch == "%":
            break
        escaped = ch == "\\"
        out.append(ch)
    return "".join(out)


def cron_entry(text: str) -> tuple[list[str], list[str]]:
    """The schedule fields and the argv the shell gets, as cron reads the last line."""
    entry = text.splitlines()[-1]
    *fields, command = entry.split(" ", 5)
    return fields, shlex.split(cron_command(command))


def cron_env(text: str) -> dict[str, str]:
    """What cron sets from the ``NAME=value`` lines: one pair of matching outer quotes is stripped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "=" in line.split(" ", 1)[0]:
            name, value = line.split("=", 1)
            assert value[0] == value[-1] and value[0] in "\"'"
            out[name] = value[1:-1]
    return out


def units(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections and their settings in order (keys may repeat, as Environment= does)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, value = line.split("=", 1)
            assert current is not None
            current.append((key, value))
    return sections


def systemd_words(value: str) -> list[str]:
    """A setting's words as systemd reads them: %% is a %, double quotes with \\\\ and \\" escapes."""
    return shlex.split(value.replace("%%", "%"))


def test_the_cron_entry_runs_the_tick_every_five_minutes_under_timeout():
    text = cron_line(upgrader="/usr/local/bin/upgrader")
    fields, argv = cron_entry(text)
    assert fields == ["*/5", "*", "*", "*", "*"]
    assert argv == [*TIMEOUT, "/usr/local/bin/upgrader", *TICK]
    assert "flock" not in argv and "No flock" in text  # the decision is explained, in comments
    assert all(line.startswith("#") for line in text.splitlines()[:-1])


@pytest.mark.parametrize(("minutes", "field"), [(1, "*"), (15, "*/15"), (60, "0")])
def test_the_interval_becomes_the_minute_field(minutes, field):
    fields, _ = cron_entry(cron_line(upgrader="/bin/upgrader", every_minutes=minutes))
    assert fields == [field, "*", "*", "*", "*"]


@pytest.mark.parametrize("minutes", [0, 7, 45, 61, -5, True])
def test_an_interval_that_does_not_divide_an_hour_is_refused(minutes):
    with pytest.raises(UsageError, match="invalid interval"):
        cron_line(upgrader="/bin/upgrader", every_minutes=minutes)


@given(program=paths, log=paths)
def test_any_program_and_log_path_reach_the_shell_as_single_words(program, log):
    if "\\%" in program + log:  # the one thing cron cannot pass
        with pytest.raises(UsageError, match="cron cannot pass"):
            cron_line(upgrader=program, log=log)
        return
    _, argv = cron_entry(cron_line(upgrader=program, log=log))
    assert argv == [*TIMEOUT, program, *TICK, ">>", log, "2>&1"]


def test_a_percent_sign_is_escaped_for_cron():
    _, argv = cron_entry(cron_line(upgrader="/opt/50%/upgrader", log="/var/log/%d.log"))
    assert argv == [*TIMEOUT, "/opt/50%/upgrader", *TICK, ">>", "/var/log/%d.log", "2>&1"]


@given(value=printable.filter(lambda v: not ('"' in v and "'" in v)))
def test_an_environment_value_comes_back_from_its_crontab_line(value):
    text = cron_line(upgrader="/bin/upgrader", env={"UPGRADER_DB": value, "UPGRADER_BUSY_TIMEOUT": "30"})
    assert cron_env(text) == {"UPGRADER_DB": value, "UPGRADER_BUSY_TIMEOUT": "30"}
    assert cron_entry(text)[1] == [*TIMEOUT, "/bin/upgrader", *TICK]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"upgrader": "upgrader"}, "absolute path"),
    ({"upgrader": "/bin/upgrader\n* * * * * rm -rf /"}, "control character"),
    ({"upgrader": "/bin/upgrader", "log": "/tmp/x\n"}, "control character"),
    ({"upgrader": "/opt/a\\%b/upgrader"}, "cron cannot pass"),
    ({"upgrader": "/bin/upgrader", "env": {"BAD NAME": "x"}}, "variable name"),
    ({"upgrader": "/bin/upgrader", "env": {"X": "a\nb"}}, "control character"),
    ({"upgrader": "/bin/upgrader", "env": {"X": "it's \"both\""}}, "both quote"),
])
def test_input_that_would_change_the_crontab_is_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        cron_line(**kwargs)


def test_the_systemd_units_are_a_oneshot_service_and_its_timer():
    made = systemd_units(upgrader="/usr/local/bin/upgrader", every_minutes=10, user="upgrader",
                         env={"UPGRADER_DB": "postgresql://ops@db/ledger"}, env_file="/etc/upgrader/tick.env")
    assert set(made) == {"upgrader-tick.service", "upgrader-tick.timer"}
    service, timer = units(made["upgrader-tick.service"]), units(made["upgrader-tick.timer"])
    settings = dict(service["Service"])
    assert set(service) == {"Unit", "Service"} and "Install" not in service  # the timer starts it
    assert (settings["Type"], settings["User"], settings["SuccessExitStatus"]) == ("oneshot", "upgrader", "7")
    assert systemd_words(settings["ExecStart"]) == ["/usr/local/bin/upgrader", *TICK]
    assert settings["EnvironmentFile"] == "/etc/upgrader/tick.env"
    assert settings["TimeoutStartSec"] == "1440min"
    assert dict(timer["Timer"]) == {"OnCalendar": "*-*-* *:00/10:00", "Persistent": "true",
                                    "RandomizedDelaySec": "30s", "AccuracySec": "1s"}
    assert dict(timer["Install"]) == {"WantedBy": "timers.target"}


@given(program=paths, value=printable)
def test_systemd_reads_back_the_program_and_every_environment_value(program, value):
    made = systemd_units(upgrader=program, env={"UPGRADER_DB": value, "A": "1"})
    settings = units(made["upgrader-tick.service"])["Service"]
    environment = [systemd_words(v) for k, v in settings if k == "Environment"]
    assert environment == [["A=1"], [f"UPGRADER_DB={value}"]]
    assert systemd_words(dict(settings)["ExecStart"]) == [program, *TICK]
    assert all("\n" not in v for _, v in settings)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"user": "root\nExecStartPre=/bin/sh"}, "invalid user"),
    ({"user": "a b"}, "invalid user"),
    ({"env_file": "relative.env"}, "absolute path"),
    ({"env_file": "/etc/my env"}, "no blanks"),
    ({"every_minutes": 9}, "invalid interval"),
])
def test_input_that_would_change_the_units_is_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        systemd_units(upgrader="/bin/upgrader", **kwargs)


def cronjob(**kwargs):
    base = {"name": "upgrader-tick", "namespace": "ops", "image": "registry.example.com/upgrader:0.1.0",
            "secret": "upgrader-ledger", "snapshot_claim": "upgrader-snapshots"}
    return cronjob_object(**{**base, **kwargs})


def test_the_cronjob_runs_the_tick_with_the_ledger_url_from_the_secret():
    made = cronjob(secret_key="postgres-url", secret_mounts={"kubeconfigs": "/etc/upgrader/kubeconfigs"},
                   env={"UPGRADER_BUSY_TIMEOUT": "30"})
    assert (made["apiVersion"], made["kind"]) == ("batch/v1", "CronJob")
    assert made["metadata"]["name"] == "upgrader-tick" and made["metadata"]["namespace"] == "ops"
    spec = made["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"]) == ("*/5 * * * *", "Forbid")
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 86400
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"] == TICK and container["image"] == "registry.example.com/upgrader:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["UPGRADER_DB"] == {"name": "UPGRADER_DB", "valueFrom": {
        "secretKeyRef": {"name": "upgrader-ledger", "key": "postgres-url"}}}
    assert "value" not in env["UPGRADER_DB"] and env["UPGRADER_BUSY_TIMEOUT"]["value"] == "30"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/upgrader/kubeconfigs"]]["secret"]["secretName"] == "kubeconfigs"
    assert volumes[mounts["/var/lib/upgrader"]]["persistentVolumeClaim"]["claimName"] == "upgrader-snapshots"
    assert env["UPGRADER_SNAPSHOT_DIR"]["value"].startswith("/var/lib/upgrader/")
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_cronjob_dumps_as_plain_yaml_and_json():
    made = cronjob()
    text = yaml.safe_dump(made, sort_keys=False)
    assert "&id" not in text and "*id" not in text  # no YAML aliases for the repeated labels
    assert yaml.safe_load(text) == made == json.loads(json.dumps(made))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"name": "x" * 53}, InvalidNameError, "at most 52"),
    ({"name": "Upgrader"}, InvalidNameError, "CronJob name"),
    ({"namespace": "ops/x"}, InvalidNameError, "namespace name"),
    ({"secret": "bad secret"}, InvalidNameError, "Secret name"),
    ({"secret_key": "a/b"}, InvalidNameError, "Secret key"),
    ({"snapshot_claim": ""}, InvalidNameError, "PersistentVolumeClaim"),
    ({"image": "reg/img:1 --privileged"}, UsageError, "invalid image"),
    ({"schedule": "*/5 * * *"}, UsageError, "invalid schedule"),
    ({"schedule": "TZ=UTC */5 * * * *"}, UsageError, "invalid schedule"),
    ({"env": {"UPGRADER_DB": "postgresql://x"}}, UsageError, "from the Secret"),
    ({"secret_mounts": {"kc": "relative"}}, UsageError, "mount directory"),
    ({"secret_mounts": {"kc": "/tmp"}}, UsageError, "mount directory"),
    ({"secret_mounts": {"kc": "/etc/../var/lib/upgrader"}}, UsageError, "mount directory"),
])
def test_bad_cronjob_input_names_the_part(kwargs, error, message):
    with pytest.raises(error, match=message):
        cronjob(**kwargs)


def test_a_macro_schedule_is_kept():
    assert cronjob(schedule="@hourly")["spec"]["schedule"] == "@hourly"
