"""A sandbox's life as the CLI sees it: `up` (create or resume), `down`, `status`, faults.

Runs in the `upgrader` process; what keeps a sandbox running is the supervisor
(:mod:`upgrader.sandbox.supervisor`), which :mod:`.up` starts and :mod:`.teardown` stops by pid.
"""
