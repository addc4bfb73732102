"""Joined pre-encoded fields decode as the message protobuf itself would build."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.protowire import message_field


def test_joined_entries_equal_the_message_built_normally() -> None:
    items = [api_pb2.PodSandbox(id=f"{i:064x}", labels={"k": "v" * (i * 50)}, state=i % 2,
                                metadata=api_pb2.PodSandboxMetadata(name=f"p{i}", namespace="n", uid="u"))
             for i in range(5)]  # sizes span one- and two-byte length varints
    joined = b"".join(message_field(1, item) for item in items)
    assert joined == api_pb2.ListPodSandboxResponse(items=items).SerializeToString()
    assert list(api_pb2.ListPodSandboxResponse.FromString(joined).items) == items


def test_empty_message_and_large_field_numbers() -> None:
    assert message_field(1, api_pb2.PodSandbox()) == b"\x0a\x00"
    resp = api_pb2.ContainerStatusResponse(status=api_pb2.ContainerStatus(id="x"))
    assert message_field(1, resp.status) == resp.SerializeToString()
    assert message_field(16, api_pb2.PodSandbox(id="y"))[:2] == b"\x82\x01"
