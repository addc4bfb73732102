"""Node facts: readiness conditions, the containerd probe, what this host supports.

The lowest layer of the runtime: managers, services and the server read
these facts; nothing here imports a manager.
"""
