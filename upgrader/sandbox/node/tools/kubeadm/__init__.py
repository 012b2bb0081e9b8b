"""The simulated ``kubeadm`` of a sandbox node: its command line, certs, version, and the upgrade.

:mod:`.command` is the entry point; ``kubeadm upgrade`` (:mod:`.upgrade`) reads the cluster
(:mod:`.cluster`), checks kubeadm's version policy (:mod:`.policy`), moves the static pods
(:mod:`.static_pods`), uploads its config (:mod:`.config_api`) and the addons (:mod:`.addons`).
"""
