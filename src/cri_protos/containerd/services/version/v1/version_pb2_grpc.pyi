"""Types of cri_protos.containerd.services.version.v1.version_pb2_grpc; written by scripts/gen_protos.py."""

from typing import Any

from google.protobuf import empty_pb2 as _empty_pb2

class VersionStub:
    def __init__(self, channel: Any) -> None: ...
    Version: Any

class VersionServicer:
    def Version(self, request: _empty_pb2.Empty, context: Any) -> Any: ...

def add_VersionServicer_to_server(servicer: VersionServicer, server: Any) -> None: ...

class Version:
    @staticmethod
    def Version(*args: Any, **kwargs: Any) -> Any: ...
