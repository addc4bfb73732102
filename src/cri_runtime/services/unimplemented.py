"""Fill every RPC a servicer does not implement with an UNIMPLEMENTED answer.

An RPC no servicer method serves would be refused by the transport as an
unknown method; an explicit handler answers through the error mapping instead,
with a message naming the RPC, counted in the metrics like any call, so
kubelet's fallbacks (which key on UNIMPLEMENTED) work and operators see what is
missing.
"""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from cri_runtime.services import error_mapping


def fill(cls: type, service: ServiceDescriptor) -> type:
    """Give `cls` an UNIMPLEMENTED handler for each RPC of `service` it lacks."""
    for method in service.methods:
        if hasattr(cls, method.name):
            continue
        if method.server_streaming:
            handler = error_mapping.unimplemented_stream(method.name)
        else:
            handler = error_mapping.unimplemented(method.name)
        setattr(cls, method.name, handler)
    return cls
