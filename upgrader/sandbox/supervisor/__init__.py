"""The sandbox supervisor: one background process per running sandbox (``python -m upgrader.sandbox.supervisor``).

It runs what a kubeadm cluster runs besides etcd and the API servers' own processes: the load
balancer in front of the API servers, one simulated kubelet per node (which start etcd and the API
servers from their static pod manifests), the controllers, and it seeds a new cluster once.
:mod:`.state` is what it records for `sandbox status` and `sandbox down`.
"""
