"""The sandbox's Kubernetes API server, and the objects kubeadm and the kubelets write through its store.

Objects live in a real etcd (:mod:`upgrader.sandbox.etcd`) under ``/registry/<resource>/...``; the
server speaks enough of the Kubernetes REST API (discovery, tables, selectors, the three patch
types, eviction with PodDisruptionBudgets, watch) for the official python client, ``kubectl get``,
``kubectl drain`` and ``kubectl uncordon`` to work unchanged.

Typical wiring (what the sandbox supervisor does)::

    kv = EtcdKV(["http://127.0.0.1:2379", ...])
    seed_cluster(kv, nodes=[NodeSpec("cp-1", NodeRole.CONTROL_PLANE, "127.0.0.10"), ...],
                 version="v1.30.6", cluster_name="demo")
    # the controllers (upgrader.sandbox.controllers) keep Deployments, DaemonSets and PDBs going;
    # one server per control-plane node, as a process:
    #   python -m upgrader.sandbox.apiserver --etcd-endpoints URL,URL --listen 127.0.0.1:PORT \\
    #       --git-version v1.30.6 --node-name cp-1 [--unready]
    # or in this process (tests): server = serve_in_thread(ServerConfig(etcd_endpoints=(...)))
"""

from upgrader.sandbox.apiserver.mirror_pods import remove_mirror_pod, upsert_mirror_pod
from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec, upsert_node_status
from upgrader.sandbox.apiserver.seed import seed_cluster
from upgrader.sandbox.apiserver.server import ApiServer, ServerConfig, serve_in_thread

__all__ = [
    "ApiServer",
    "NodeRole",
    "NodeSpec",
    "ServerConfig",
    "remove_mirror_pod",
    "seed_cluster",
    "serve_in_thread",
    "upsert_mirror_pod",
    "upsert_node_status",
]
