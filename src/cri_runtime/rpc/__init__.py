"""Our gRPC server for the CRI services, on the HTTP/2 and gRPC wire format of `h2/`.

The server only: the clients live in `grpc_client/`, so importing one never loads the other.
"""

from .context import AbortError, Serialized, ServicerContext
from .server import RpcServer

__all__ = ["AbortError", "RpcServer", "Serialized", "ServicerContext"]
