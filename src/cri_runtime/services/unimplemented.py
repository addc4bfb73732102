"""Fill every RPC a servicer does not implement with an UNIMPLEMENTED answer.

The generated base servicers answer with a synchronous handler and the
message "Method not implemented!". We replace them with async handlers whose
message names the RPC, so kubelet's fallbacks (which key on UNIMPLEMENTED)
work and operators see what is missing.
"""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from cri_runtime.services import error_mapping


def fill(cls: type, service: ServiceDescriptor) -> type:
    """Give `cls` an UNIMPLEMENTED handler for each RPC of `service` it lacks."""
    for method in service.methods:
        if _implemented(cls, method.name):
            continue
        if method.server_streaming:
            handler = error_mapping.unimplemented_stream(method.name)
        else:
            handler = error_mapping.unimplemented(method.name)
        setattr(cls, method.name, handler)
    return cls


def _implemented(cls: type, name: str) -> bool:
    """True when a class in the MRO other than the generated base defines it."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return not klass.__module__.endswith("_pb2_grpc")
    return False
