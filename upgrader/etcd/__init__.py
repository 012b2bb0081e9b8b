"""etcd adapters: the client tools (tool.py, capability-probed) and the snapshot store (store.py)."""
