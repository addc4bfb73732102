"""Our gRPC server transport (HTTP/2 + gRPC framing) for the CRI services."""

from .context import AbortError, Serialized, ServicerContext
from .server import RpcServer

__all__ = ["AbortError", "RpcServer", "Serialized", "ServicerContext"]
