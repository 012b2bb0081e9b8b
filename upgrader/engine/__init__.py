"""The run engine: what carries out a plan's steps on a cluster, through the ports only.

It records each step before and after its side effects (so a run can resume), drains and uncordons
nodes, and waits on health gates. It knows the outside world only as ports (upgrader.ports), so it
is tested on the in-package fakes; the services choose the adapters.
"""
