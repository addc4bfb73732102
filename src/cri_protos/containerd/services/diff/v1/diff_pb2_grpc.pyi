"""Types of cri_protos.containerd.services.diff.v1.diff_pb2_grpc; written by scripts/gen_protos.py."""

from typing import Any

from cri_protos.containerd.services.diff.v1 import diff_pb2 as _diff_pb2

class DiffStub:
    def __init__(self, channel: Any) -> None: ...
    Apply: Any
    Diff: Any

class DiffServicer:
    def Apply(self, request: _diff_pb2.ApplyRequest, context: Any) -> Any: ...
    def Diff(self, request: _diff_pb2.DiffRequest, context: Any) -> Any: ...

def add_DiffServicer_to_server(servicer: DiffServicer, server: Any) -> None: ...

class Diff:
    @staticmethod
    def Apply(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def Diff(*args: Any, **kwargs: Any) -> Any: ...
