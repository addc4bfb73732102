"""Our own gRPC clients over `h2/`, for local (unix socket) servers; neither imports grpcio.

`aio` is the server process's client of containerd (every call shape); `blocking` is
crictl's whole transport. Import the submodule you need: this package imports
neither, so one client's dependencies never load for the other.
"""
