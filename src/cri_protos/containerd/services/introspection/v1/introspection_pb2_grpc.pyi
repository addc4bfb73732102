"""Types of cri_protos.containerd.services.introspection.v1.introspection_pb2_grpc; written by scripts/gen_protos.py."""

from typing import Any

from cri_protos.containerd.services.introspection.v1 import introspection_pb2 as _introspection_pb2
from google.protobuf import empty_pb2 as _empty_pb2

class IntrospectionStub:
    def __init__(self, channel: Any) -> None: ...
    Plugins: Any
    Server: Any
    PluginInfo: Any

class IntrospectionServicer:
    def Plugins(self, request: _introspection_pb2.PluginsRequest, context: Any) -> Any: ...
    def Server(self, request: _empty_pb2.Empty, context: Any) -> Any: ...
    def PluginInfo(self, request: _introspection_pb2.PluginInfoRequest, context: Any) -> Any: ...

def add_IntrospectionServicer_to_server(servicer: IntrospectionServicer, server: Any) -> None: ...

class Introspection:
    @staticmethod
    def Plugins(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def Server(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def PluginInfo(*args: Any, **kwargs: Any) -> Any: ...
