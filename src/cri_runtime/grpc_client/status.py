"""How a client reads a call's status off the wire: trailers, resets, HTTP errors.

The status types themselves live in `h2.status`, shared with the server; `RpcError`
answers `code()` and `details()` as grpcio's call errors do, so code written against
grpcio's errors (crictl's error lines, its tracing) reads ours unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from cri_runtime.h2 import frames
from cri_runtime.h2.status import RpcError, StatusCode

__all__ = ["RpcError", "StatusCode", "from_reset", "from_trailers"]


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
