"""Check a kubeconfig file before it is stored, without contacting the cluster.

Registration must not need the cluster to be reachable (the operator may be preparing from a
laptop), but a typo in the path or the context name should be caught now, not at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path

from upgrader.domain.text import excerpt
from upgrader.errors import KubeconfigError
from upgrader.inputs import read_text


def validate_kubeconfig(path: Path, context: str | None) -> tuple[Path, str]:
    """Return the absolute path and the context that will be used."""
    import yaml  # here, not at the top: `cluster list` and `cluster show` import this module too

    resolved = path.expanduser().resolve()
    text = read_text(resolved, kind="kubeconfig", error=KubeconfigError)
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # a bad date, a 5000-digit int, "[" x 20000
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML") from e
    if not isinstance(doc, dict) or doc.get("kind", "Config") != "Config":
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (expected kind: Config)")
    contexts = _named(doc, "contexts", path)
    clusters = _named(doc, "clusters", path)
    chosen = context or doc.get("current-context")
    if not chosen:
        raise KubeconfigError(f"kubeconfig {path}: no current-context; pass --context")
    if not isinstance(chosen, str):
        raise KubeconfigError(f"kubeconfig {path}: current-context must be a string")
    if chosen not in contexts:
        names = sorted(contexts)
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        known = (", ".join(excerpt(n, 40) for n in names[:10]) + more) or "none"
        raise KubeconfigError(f"kubeconfig {path}: no context named {excerpt(chosen)} (contexts: {known})")
    cluster = (contexts[chosen] or {}).get("cluster")
    if not isinstance(cluster, str) or cluster not in clusters:
        raise KubeconfigError(
            f"kubeconfig {path}: context {excerpt(chosen)} names cluster {excerpt(cluster)}, which is not defined")
    if not (clusters[cluster] or {}).get("server"):
        raise KubeconfigError(f"kubeconfig {path}: cluster {excerpt(cluster)} has no server")
    return resolved, chosen


def _named(doc: dict[str, object], key: str, path: Path) -> dict[str, dict[str, object]]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise KubeconfigError(f"kubeconfig {path}: {key} must be a list")
    result: dict[str, dict[str, object]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise KubeconfigError(f"kubeconfig {path}: every entry of {key} needs a name")
        body = item.get(key[:-1])
        result[item["name"]] = body if isinstance(body, dict) else {}
    return result
