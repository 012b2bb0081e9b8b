"""``schedule cronjob``: a Kubernetes CronJob that runs ticks from a management cluster.

:func:`cronjob_object` builds the batch/v1 CronJob as a plain dict (the CLI dumps it as YAML; the
domain imports no YAML library). The ledger's PostgreSQL URL comes from a Secret, never from the
manifest itself. The decisions:

- ``concurrencyPolicy: Forbid``: one tick Job at a time, as systemd's timer does; the snapshot
  volume is usually ReadWriteOnce, which two pods on two nodes could not both mount. A Job that
  drives an upgrade holds back the next ticks until it returns;
- ``startingDeadlineSeconds``: a tick that could not start within a few minutes of its time is
  skipped (the next one comes soon); it also keeps the controller counting missed starts over a
  short span only (past 100 missed starts it would stop scheduling the CronJob);
- ``backoffLimit: 0`` and ``restartPolicy: Never``: a failed tick is not retried by Kubernetes, the
  next tick resumes its run; ``activeDeadlineSeconds`` ends a stuck one (as ``timeout`` does under cron);
- snapshots go to a PersistentVolumeClaim (``snapshot_claim``): a rollback needs the file after the
  pod is gone; ``/tmp`` is an emptyDir (SSH control sockets, private copies of certificates), the root
  filesystem is read-only, no privilege escalation, no capabilities, the image's own non-root user;
- the pod gets no service-account token: the tick reaches the clusters it upgrades through the
  kubeconfigs registered in the ledger, mounted from Secrets (``secret_mounts``), not through the
  cluster it runs in.

The image's entrypoint is ``upgrader``; the container's args are ``schedule tick -o json``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from upgrader.domain.names import is_node_name, validate_name
from upgrader.domain.schedule_units import KILL_AFTER_MINUTES, MAX_TICK_MINUTES, TICK_ARGS, check_env
from upgrader.domain.text import excerpt
from upgrader.errors import InvalidNameError, UsageError

LEDGER_ENV = "UPGRADER_DB"  # the ledger's URL (the CLI's --db default)
DATA_DIR = "/var/lib/upgrader"  # XDG_DATA_HOME of the tick: the snapshot store lives under it
STARTING_DEADLINE_SECONDS = 180
HISTORY_LIMIT = 3
FS_GROUP = 65532  # group of the mounted volumes, so the image's non-root user can read and write them
MAX_CRONJOB_NAME = 52  # Kubernetes appends 11 characters to a CronJob's name for each Job

_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}", re.ASCII)
_SCHEDULE_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+", re.ASCII)
_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}", re.ASCII)


def cronjob_object(
    *, name: str, namespace: str, image: str, secret: str, snapshot_claim: str, secret_key: str = "url",
    schedule: str = "*/5 * * * *", secret_mounts: Mapping[str, str] = {},
    env: Mapping[str, str] = {},
) -> dict[str, Any]:
    """The CronJob running ``upgrader schedule tick -o json`` on ``schedule``, ``UPGRADER_DB`` from
    key ``secret_key`` of Secret ``secret``, snapshots on PVC ``snapshot_claim``; ``secret_mounts``
    maps more Secrets (kubeconfigs, an SSH directory) to read-only directories in the container."""
    validate_name(name, what="CronJob")
    if len(name) > MAX_CRONJOB_NAME:
        raise InvalidNameError(f"invalid CronJob name {excerpt(name)}: at most {MAX_CRONJOB_NAME} characters")
    validate_name(namespace, what="namespace")
    _object_name(secret, what="Secret")
    _object_name(snapshot_claim, what="PersistentVolumeClaim")
    if not isinstance(secret_key, str) or not _SECRET_KEY.fullmatch(secret_key):
        raise InvalidNameError(f"invalid Secret key {excerpt(secret_key)}: letters, digits, '-', '_' and '.'")
    if not isinstance(image, str) or not _IMAGE.fullmatch(image):
        raise UsageError(f"invalid image {excerpt(image)}: an image reference such as registry/upgrader:0.1.0")
    if LEDGER_ENV in check_env(env):
        raise UsageError(f"{LEDGER_ENV} comes from the Secret {secret!r}, not from a plain value")
    pod = _pod(image=image, secret=secret, secret_key=secret_key, claim=snapshot_claim,
               mounts=_mounts(secret_mounts), env=env)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels()},
        "spec": {
            "schedule": _schedule(schedule),
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "jobTemplate": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": MAX_TICK_MINUTES * 60,
                    "template": {"metadata": {"labels": _labels()}, "spec": pod},
                },
            },
        },
    }


def _labels() -> dict[str, str]:
    """A fresh dict each time: a dumper would write one dict met three times as a YAML alias."""
    return {"app.kubernetes.io/name": "upgrader", "app.kubernetes.io/component": "schedule-tick"}


def _pod(*, image: str, secret: str, secret_key: str, claim: str, mounts: list[tuple[str, str, str]],
         env: Mapping[str, str]) -> dict[str, Any]:
    container_env: list[dict[str, Any]] = [
        {"name": LEDGER_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}},
        {"name": "XDG_DATA_HOME", "value": DATA_DIR},
        {"name": "UPGRADER_SNAPSHOT_DIR", "value": f"{DATA_DIR}/snapshots"},
        *({"name": key, "value": value} for key, value in sorted(env.items())),
    ]
    volume_mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"},
                                           {"name": "data", "mountPath": DATA_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}},
                                     {"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    for volume, secret_name, path in mounts:
        volume_mounts.append({"name": volume, "mountPath": path, "readOnly": True})
        # 0440 and group-owned by fsGroup: readable by the image's user, and not "too open" for ssh
        # (it only refuses a key readable by others when the key is its own user's).
        volumes.append({"name": volume, "secret": {"secretName": secret_name, "defaultMode": 0o440}})
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": KILL_AFTER_MINUTES * 60,
        "securityContext": {"runAsNonRoot": True, "fsGroup": FS_GROUP, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "tick",
            "image": image,
            "args": list(TICK_ARGS),
            "env": container_env,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": volume_mounts,
        }],
        "volumes": volumes,
    }


def _mounts(secret_mounts: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(volume name, Secret, directory) for each mounted Secret; directories absolute and apart from ours."""
    taken = {"/tmp", DATA_DIR}
    out = []
    for index, (secret_name, path) in enumerate(sorted(secret_mounts.items())):
        _object_name(secret_name, what="Secret")
        if (not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path)
                or ".." in path.split("/") or path.rstrip("/") in taken or path == "/"):
            raise UsageError(f"invalid mount directory {excerpt(path)} for Secret {secret_name!r}: an absolute "
                             f"path without blanks or '..', not / and not one of {', '.join(sorted(taken))}")
        taken.add(path.rstrip("/"))
        out.append((f"secret-{index}", secret_name, path))
    return out


def _object_name(name: str, *, what: str) -> str:
    """A Secret's or claim's name: a DNS subdomain, as Kubernetes wants it."""
    if not is_node_name(name):
        raise InvalidNameError(f"invalid {what} name {excerpt(name)}: lowercase letters, digits, '-' and '.', "
                               "starting and ending with a letter or digit")
    return name


def _schedule(schedule: str) -> str:
    """A cron schedule: five fields, or a macro such as ``@hourly`` (no TZ= prefix: ticks read their
    windows in each cluster's own time zone)."""
    fields = schedule.split(" ") if isinstance(schedule, str) else []
    if (isinstance(schedule, str) and schedule in _MACROS) or (
            len(fields) == 5 and all(_SCHEDULE_FIELD.fullmatch(f) for f in fields)):
        return schedule
    raise UsageError(f"invalid schedule {excerpt(schedule)}: five cron fields (\"*/5 * * * *\") or a macro (@hourly)")
