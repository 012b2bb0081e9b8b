"""Reaching a cluster's API: kubeconfig checks now, the live adapter in a later issue."""
