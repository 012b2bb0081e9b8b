"""The simulated ``kubeadm`` of a sandbox node: its command line, certs, version, and the upgrade.

:mod:`.command` is the entry point; ``kubeadm upgrade`` (:mod:`.upgrade` for plan and apply,
:mod:`.node_upgrade` for node) reads the cluster (:mod:`.cluster`), runs the preflight checks
(:mod:`.preflight`), checks kubeadm's version policy (:mod:`.policy`), then runs the shared phases
(:mod:`.phases`): the static pods (:mod:`.static_pods`), its config (:mod:`.config_api`), and the
addons (:mod:`.addons`). The kubeadm binary's version decides the wording (v1.32+ or older).
"""
