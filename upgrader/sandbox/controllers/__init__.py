"""The sandbox's controllers: kube-controller-manager's and kube-scheduler's work, much reduced.

They run in the supervisor on one thread (:func:`.manager.start_controllers`) and write through the
API server package's :class:`~upgrader.sandbox.apiserver.storage.Store`, straight to etcd.
"""
