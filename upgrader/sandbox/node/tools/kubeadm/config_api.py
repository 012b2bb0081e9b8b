"""kubeadm's config API: the ClusterConfiguration a kubeadm of some version uploads to ``kubeadm-config``.

kubeadm reads the stored document in whatever API it was written in and uploads it in its own:
v1beta3 up to v1.30, v1beta4 from v1.31 on. Operators and upgrader read that ConfigMap, so the
sandbox converts it as kubeadm does.
"""

from __future__ import annotations

from typing import Any

from upgrader.domain.versions import Version

V1BETA3, V1BETA4 = "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"
# v1beta4 defaults that v1beta3 did not have (cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go)
V1BETA4_DEFAULTS = {"caCertificateValidityPeriod": "87600h0m0s", "certificateValidityPeriod": "8760h0m0s",
                    "encryptionAlgorithm": "RSA-2048", "dns": {}, "proxy": {}}


def config_api_version(version: Version) -> str:
    """The kubeadm config API a kubeadm of that version writes (v1beta4 from v1.31 on)."""
    return V1BETA4 if (version.major, version.minor) >= (1, 31) else V1BETA3


def _args(extra: Any) -> list[dict[str, str]]:
    """v1beta3's extraArgs map as v1beta4's list of name/value pairs, sorted by name as kubeadm does."""
    if isinstance(extra, list):
        return extra
    return [{"name": str(k), "value": str(v)} for k, v in sorted((extra or {}).items())]


def migrate_cluster_configuration(conf: dict[str, Any], *, target: Version, kubeadm: Version) -> dict[str, Any]:
    """The ClusterConfiguration a kubeadm of version ``kubeadm`` uploads to the kubeadm-config ConfigMap
    after upgrading the cluster to ``target``.

    kubeadm reads the stored document with whatever API it was written in, converts it to its own
    and uploads that: from v1.31 on that is v1beta4, where ``extraArgs`` are lists of name/value
    pairs, ``apiServer.timeoutForControlPlane`` moved out of the ClusterConfiguration (to the
    Init/JoinConfiguration ``timeouts``), and new fields come with their defaults. Keys are sorted, as
    kubeadm's YAML marshalling sorts them.
    """
    out = dict(conf, kubernetesVersion=str(target))
    if config_api_version(kubeadm) == V1BETA4 and out.get("apiVersion") != V1BETA4:
        out["apiVersion"] = V1BETA4
        for component in ("apiServer", "controllerManager", "scheduler"):
            section = dict(out.get(component) or {})
            section.pop("timeoutForControlPlane", None)
            if "extraArgs" in section:
                section["extraArgs"] = _args(section["extraArgs"])
            out[component] = section
        local = dict((out.get("etcd") or {}).get("local") or {})
        if "extraArgs" in local:
            local["extraArgs"] = _args(local["extraArgs"])
        if "local" in (out.get("etcd") or {}):
            out["etcd"] = {**out["etcd"], "local": local}
        for key, default in V1BETA4_DEFAULTS.items():
            out.setdefault(key, default)
    return dict(sorted(out.items()))


SECTIONS = {"kube-apiserver": "apiServer", "kube-controller-manager": "controllerManager",
            "kube-scheduler": "scheduler"}


def extra_args(conf: dict[str, Any], component: str) -> list[tuple[str, str]]:
    """The ClusterConfiguration's extraArgs for a control-plane component as (name, value) pairs, in
    either API: v1beta4's list of ``{name, value}`` (a name may repeat) or v1beta3's map."""
    section = conf.get(SECTIONS.get(component, ""))
    extra = section.get("extraArgs") if isinstance(section, dict) else None
    if isinstance(extra, dict):
        return [(str(k), str(v)) for k, v in sorted(extra.items())]
    if isinstance(extra, list):
        return [(str(a["name"]), str(a.get("value", ""))) for a in extra if isinstance(a, dict) and a.get("name")]
    return []
