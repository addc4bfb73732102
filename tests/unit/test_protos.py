"""The generated protobuf/gRPC stubs: fresh, importable, and wire-correct where it matters most."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import any_pb2, timestamp_pb2

REPO = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


API_FACTS_CHECKER = REPO.parent / "shared" / "api-facts" / "check.py"


@pytest.mark.skipif(not API_FACTS_CHECKER.exists(), reason="api-facts checker not beside the repo")
def test_protos_match_wire_facts() -> None:
    """Wrong field numbers compile fine and fail only at the far end; the checker catches them."""
    result = subprocess.run(
        [sys.executable, str(API_FACTS_CHECKER), str(REPO / "api")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 mismatches" in result.stdout


def test_cri_service_stubs_import() -> None:
    from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc

    assert callable(api_pb2_grpc.RuntimeServiceStub)
    assert callable(api_pb2_grpc.ImageServiceStub)
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert {s.full_name for s in api_pb2.DESCRIPTOR.services_by_name.values()} == {
        "runtime.v1.RuntimeService",
        "runtime.v1.ImageService",
    }


def test_containerd_service_stubs_import() -> None:
    from cri_protos.containerd.services.containers.v1 import containers_pb2_grpc
    from cri_protos.containerd.services.events.v1 import events_pb2_grpc
    from cri_protos.containerd.services.tasks.v1 import tasks_pb2_grpc

    assert callable(containers_pb2_grpc.ContainersStub)
    assert callable(tasks_pb2_grpc.TasksStub)
    assert callable(events_pb2_grpc.EventsStub)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    if wire_type == 2:
        payload = _varint(len(payload)) + payload
    return _varint(number << 3 | wire_type) + payload


def test_task_exit_envelope_decodes_from_wire_bytes() -> None:
    """Decode an Events.Subscribe envelope encoded by hand, as containerd puts it on the wire.

    Hand-encoding pins the field numbers independently of the generated code. containerd
    (typeurl) sends the bare message name as type_url, without a type.googleapis.com/ prefix.
    """
    from cri_protos.containerd.events import task_pb2
    from cri_protos.containerd.types import event_pb2

    exited = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    task_exit_bytes = (
        _field(1, 2, b"ctr-1")  # container_id
        + _field(2, 2, b"exec-7")  # id
        + _field(3, 0, _varint(4242))  # pid
        + _field(4, 0, _varint(137))  # exit_status
        + _field(5, 2, exited.SerializeToString())  # exited_at
    )
    any_bytes = _field(1, 2, b"containerd.events.TaskExit") + _field(2, 2, task_exit_bytes)
    envelope_bytes = _field(2, 2, b"k8s.io") + _field(3, 2, b"/tasks/exit") + _field(4, 2, any_bytes)

    envelope = event_pb2.Envelope.FromString(envelope_bytes)
    assert envelope.namespace == "k8s.io"
    assert envelope.topic == "/tasks/exit"
    # Any.Is/Unpack insist on a "/" in type_url, so containerd's bare names must be matched by
    # TypeName() and the value parsed directly.
    assert not envelope.event.Is(task_pb2.TaskExit.DESCRIPTOR)
    assert envelope.event.TypeName() == task_pb2.TaskExit.DESCRIPTOR.full_name

    task_exit = task_pb2.TaskExit.FromString(envelope.event.value)
    assert task_exit.container_id == "ctr-1"
    assert task_exit.id == "exec-7"
    assert task_exit.pid == 4242
    assert task_exit.exit_status == 137
    assert task_exit.exited_at == exited


def test_task_exit_any_round_trip() -> None:
    from cri_protos.containerd.events import task_pb2
    from cri_protos.containerd.types import event_pb2

    original = task_pb2.TaskExit(container_id="c", id="c", pid=1, exit_status=2)
    packed = any_pb2.Any()
    packed.Pack(original)
    wire = event_pb2.Envelope(topic="/tasks/exit", event=packed).SerializeToString()

    decoded = event_pb2.Envelope.FromString(wire)
    assert decoded.event.type_url == "type.googleapis.com/containerd.events.TaskExit"
    unpacked = task_pb2.TaskExit()
    assert decoded.event.Unpack(unpacked)
    assert unpacked == original
