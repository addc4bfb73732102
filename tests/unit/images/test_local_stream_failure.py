"""A write stream that grpc.aio failed on its own side: the full disk behind it is still reported."""

from __future__ import annotations

from cri_runtime import errors
from cri_runtime.images.content_store import LOCAL_STREAM_FAILURE, WRITE_CHUNK, explain_local_failure, free_bytes

LOCAL = errors.Internal(f"pull example/x:1: layer sha256:ab: write: {LOCAL_STREAM_FAILURE}")


def test_a_local_failure_with_no_room_left_is_a_full_disk() -> None:
    err = explain_local_failure(LOCAL, "/var/lib/containerd/io.containerd.content.v1.content", 4096)
    assert isinstance(err, errors.ResourceExhausted)
    assert LOCAL.message in err.message
    assert "no space left on device" in err.message
    assert "/var/lib/containerd/io.containerd.content.v1.content has 4096 bytes free" in err.message


def test_a_local_failure_with_room_left_stays_what_it_was() -> None:
    assert explain_local_failure(LOCAL, "/c", WRITE_CHUNK) is LOCAL
    assert explain_local_failure(LOCAL, "/c", None) is LOCAL  # the space is unknown: no guess


def test_containerd_statuses_are_never_reinterpreted() -> None:
    other = errors.Internal("pull example/x:1: write: failed to write: input/output error")
    assert explain_local_failure(other, "/c", 0) is other
    missing = errors.NotFound(f"blob: {LOCAL_STREAM_FAILURE}")
    assert explain_local_failure(missing, "/c", 0) is missing


def test_free_bytes_of_a_real_and_a_missing_path(tmp_path: object) -> None:
    assert (free_bytes(str(tmp_path)) or 0) > 0
    assert free_bytes("/nonexistent/cri-runtime-test") is None
