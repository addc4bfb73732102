"""Start-up recovery: the gate RPCs wait on, and the collector of leftovers.

Sits above the managers (it reads their indexes to tell what is an orphan)
and below the services (every RPC waits on the gate).
"""
