"""crictl.messages: CRI classes built on first use are api_pb2's own classes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crictl import messages


def test_lazy_classes_enums_and_values_are_api_pb2s() -> None:
    """In a fresh interpreter, where api_pb2 is not imported until the end."""
    code = """
import sys
from crictl.messages import api
a = api()
raw = a.ListContainersResponse(containers=[a.Container(id="x", state=a.CONTAINER_RUNNING)]).SerializeToString()
assert a.ContainerState.Name(a.CONTAINER_EXITED) == "CONTAINER_EXITED"
assert a.DESCRIPTOR.services_by_name["RuntimeService"].methods_by_name["ListContainers"].output_type.name == \\
    "ListContainersResponse"
loaded = sorted(m for m in sys.modules if m.endswith("api_pb2") or m.startswith(
    ("google.protobuf.descriptor_pool", "google.protobuf.text_format", "google.protobuf.internal.python_message")))
from cri_protos.runtime.v1 import api_pb2
assert api_pb2.ListContainersResponse is a.ListContainersResponse
decoded = api_pb2.ListContainersResponse.FromString(raw)
assert type(decoded.containers[0]) is api_pb2.Container is a.Container
assert decoded.containers[0].state == api_pb2.CONTAINER_RUNNING
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_names_api_pb2_does_not_have_are_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        _ = messages.api().NoSuchMessage
