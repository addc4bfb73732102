"""Typed async access to containerd's gRPC API (namespace, leases, error mapping)."""
