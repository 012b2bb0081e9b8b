"""What a runbook step that rolls back or restores shows before it runs (services/runbook_children.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOSS_SHOWN = 10

def rollback_lines(doc: Mapping[str, Any], verb: str) -> list[str]:
    """A rollback's (or restore's) preview for a person: the snapshot, the versions after, the loss, the steps."""
    snap = doc["snapshot"]
    lines = [f"{verb} to snapshot {snap['id']} taken {snap['created_at'][:19]} (etcd revision {snap['revision']}, "
             f"verified: {', '.join(snap['checked'])})",
             f"versions after: {doc['target']['version']}; control-plane nodes: {', '.join(doc['control_planes'])}"]
    loss = doc.get("loss")
    if loss:
        counts = loss.get("counts") or {}
        lines.append("what will be lost: " + ", ".join(f"{v} {k}" for k, v in counts.items())
                     + f" ({loss.get('revisions_since')} etcd revisions since the snapshot)")
        for o in (loss.get("objects") or [])[:LOSS_SHOWN]:
            ns = f"{o['namespace']}/" if o.get("namespace") else ""
            lines.append(f"  {o['change']}: {o['resource']} {ns}{o['name']}")
        more = len(loss.get("objects") or []) - LOSS_SHOWN
        if more > 0:
            lines.append(f"  ... and {more} more (`upgrader rollback --dry-run -o json` lists them all)")
    elif doc.get("loss_error"):
        lines.append(f"what will be lost: cannot tell ({doc['loss_error']})")
    for s in doc.get("steps") or []:
        lines.append(f"  {s['n']}. {s['action']} {s.get('node') or ''}".rstrip())
    return lines
