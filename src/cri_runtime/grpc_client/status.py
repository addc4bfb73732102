"""gRPC status codes and the error a failed call raises, without grpcio.

`RpcError` answers `code()` and `details()` as grpcio's call errors do, so code written
against grpcio's errors (crictl's error lines, its tracing) reads ours unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from cri_runtime.h2 import frames


class StatusCode(enum.IntEnum):
    """The gRPC status codes, named as grpcio names them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call that ended with a non-OK status (from the server, or decided here)."""

    def __init__(self, code: StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


# HTTP/2 error codes of a RST_STREAM, as grpc-go maps them to a status.
_RST_CODES = {
    frames.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    frames.CANCEL: StatusCode.CANCELLED,
    frames.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
}
_H2_ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}  # fmt: skip
# A response without grpc-status: its HTTP status says what went wrong (grpc-go's mapping).
_HTTP_CODES = {
    400: StatusCode.INTERNAL, 401: StatusCode.UNAUTHENTICATED, 403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED, 429: StatusCode.UNAVAILABLE, 502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE, 504: StatusCode.UNAVAILABLE,
}  # fmt: skip


def from_reset(error_code: int) -> RpcError:
    """The status of a stream the server reset, worded as grpc-go words it."""
    name = _H2_ERROR_NAMES.get(error_code, f"unknown error code {error_code:#x}")
    code = _RST_CODES.get(error_code, StatusCode.INTERNAL)
    return RpcError(code, f"stream terminated by RST_STREAM with error code: {name}")


def from_trailers(fields: Mapping[bytes, bytes]) -> RpcError | None:
    """The call's failure according to its trailers (or trailers-only headers); None when OK."""
    status = fields.get(b"grpc-status")
    if status is None:
        http = fields.get(b":status", b"")
        if http and http != b"200":
            code = _HTTP_CODES.get(int(http) if http.isdigit() else 0, StatusCode.UNKNOWN)
            return RpcError(code, f"unexpected HTTP status code received from server: {http.decode()}")
        return RpcError(StatusCode.INTERNAL, "server closed the stream without sending trailers")
    try:
        code = StatusCode(int(status))
    except ValueError:
        code = StatusCode.UNKNOWN
    if code is StatusCode.OK:
        return None
    message = fields.get(b"grpc-message", b"").decode("utf-8", "replace")
    if "%" in message:
        import urllib.parse  # not at start-up: only a failed call may need it

        message = urllib.parse.unquote(message)
    return RpcError(code, message)
