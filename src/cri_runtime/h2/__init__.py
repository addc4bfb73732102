"""HTTP/2 framing, HPACK, and gRPC's message and status encoding on top of them.

The wire format shared by our gRPC server (`rpc/`) and our gRPC clients (`grpc_client/`);
nothing here opens a socket or imports grpcio, so a client can use it without the server.
"""
