"""Generated protobuf and gRPC modules (CRI v1 and the containerd v1 API). Do not edit: run scripts/gen_protos.py."""
