"""A sandbox node: its root directory, its machine state, its kubelet and static pods, how to reach it.

- :mod:`.provision` lays out a node root as ``kubeadm init``/``join`` would; :mod:`.manifests` are its
  static pods; :mod:`.machine` is the state its simulated tools share (packages, kubelet unit, certs).
- :mod:`.kubelet` and :mod:`.static_pods` run in the supervisor: the node's kubelet and containers.
- :mod:`.tools` are the node's simulated commands (kubeadm, apt-get, systemctl, ...), each its own
  short process, run through the wrappers of :mod:`.wrappers`.
- :mod:`.transport` reaches a node the way ssh reaches a real one, with :mod:`.paths` keeping every
  command inside the node root.
"""
