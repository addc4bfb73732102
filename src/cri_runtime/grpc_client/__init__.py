"""Our own gRPC clients over `h2/`, for local (unix socket) servers.

`aio` serves the server's unary calls to containerd inside grpc.aio stubs; `blocking` is
crictl's whole transport and never imports grpcio. Import the submodule you need: this
package imports neither, so one client's dependencies never load for the other.
"""
