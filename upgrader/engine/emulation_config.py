"""The ``--emulated-version`` flag in kubeadm-config's ClusterConfiguration and in static pod manifests:
text in, text out, so the two-step steps (:mod:`upgrader.engine.emulation`) and their tests share one
reading of both formats (v1beta4's ``extraArgs`` list of ``{name, value}``, v1beta3's map)."""

from __future__ import annotations

from typing import Any

import yaml

from upgrader.domain.versions import Minor
from upgrader.errors import UpgraderError

FLAG = "emulated-version"
CONFIG_KEYS = {"kube-apiserver": "apiServer", "kube-controller-manager": "controllerManager",
               "kube-scheduler": "scheduler"}


class EmulationError(UpgraderError):
    """Step one or finalize found the cluster unable to do what the two-step hop needs."""

    exit_code = 6


def flag_value(minor: Minor | None) -> str | None:
    """The flag's value for a minor: ``1.33`` (None: no flag)."""
    return f"{minor.major}.{minor.minor}" if minor is not None else None


def config_with_flag(text: str, value: str | None) -> str:
    """The ClusterConfiguration with ``emulated-version`` set to ``value`` (or removed) in the extraArgs of
    apiServer, controllerManager and scheduler: v1beta4's ``[{name, value}]`` list, v1beta3's map."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise EmulationError("kubeadm-config's ClusterConfiguration is not a YAML mapping")
    listed = str(doc.get("apiVersion", "")).endswith("v1beta4")
    for key in CONFIG_KEYS.values():
        found = doc.get(key)
        section: dict[str, Any] = found if isinstance(found, dict) else {}
        args = section.get("extraArgs")
        if listed or isinstance(args, list):
            kept = [a for a in (args or []) if not (isinstance(a, dict) and a.get("name") == FLAG)]
            section["extraArgs"] = kept + ([{"name": FLAG, "value": value}] if value is not None else [])
        else:
            mapping = dict(args or {})
            mapping.pop(FLAG, None)
            if value is not None:
                mapping[FLAG] = value
            section["extraArgs"] = mapping
        if not section["extraArgs"]:
            section.pop("extraArgs")
        if section or key in doc:
            doc[key] = section
    return yaml.safe_dump(doc, sort_keys=False)


def config_flags(text: str) -> dict[str, str | None]:
    """Per component, the ``emulated-version`` its ClusterConfiguration extraArgs give (None: not set)."""
    doc = yaml.safe_load(text) or {}
    found: dict[str, str | None] = {}
    for component, key in CONFIG_KEYS.items():
        found_section = doc.get(key) if isinstance(doc, dict) else None
        args = found_section.get("extraArgs") if isinstance(found_section, dict) else None
        if isinstance(args, list):
            values = [str(a.get("value")) for a in args if isinstance(a, dict) and a.get("name") == FLAG]
            found[component] = values[-1] if values else None
        else:
            found[component] = str(args[FLAG]) if isinstance(args, dict) and FLAG in args else None
    return found


def manifest_with_flag(text: str, value: str | None) -> str:
    """The static pod manifest with ``--emulated-version=value`` in its container's command (or without it)."""
    pod = yaml.safe_load(text)
    try:
        container = pod["spec"]["containers"][0]
        command = list(container["command"])
    except (TypeError, KeyError, IndexError) as e:
        raise EmulationError("a control-plane manifest has no container command to carry the flag") from e
    kept = [a for a in command if not str(a).startswith(f"--{FLAG}=")]
    container["command"] = kept + ([f"--{FLAG}={value}"] if value is not None else [])
    return yaml.safe_dump(pod, sort_keys=False)


def manifest_flag(text: str) -> str | None:
    pod = yaml.safe_load(text) or {}
    try:
        command = pod["spec"]["containers"][0]["command"]
    except (TypeError, KeyError, IndexError):
        return None
    values = [str(a).split("=", 1)[1] for a in command if str(a).startswith(f"--{FLAG}=")]
    return values[-1] if values else None
