"""ttrpc: containerd's lightweight RPC over one stream connection (no Python library exists).

`frames` is the wire format, `channel` a peer that issues calls and serves them.
"""
