"""Real etcd for the sandbox: its member processes (:mod:`.members`), a KV client (:mod:`.kv`), its /health probe.

The sandbox runs the Debian ``etcd`` binary (3.4) as real processes so that snapshots, restores and
dead members behave exactly as in production; nothing here knows about Kubernetes objects.
"""
