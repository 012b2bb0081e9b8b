"""upgrader: plan, apply and roll back upgrades of kubeadm-built Kubernetes clusters."""

__version__ = "0.1.0"
