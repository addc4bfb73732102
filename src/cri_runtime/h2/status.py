"""gRPC status codes and the error a failed call raises, without grpcio.

Both our server (`rpc/`) and our clients (`grpc_client/`) speak gRPC over
`h2/`; these types are what they share, so neither needs grpcio's C core (about
9 MiB of a process's memory) to name a status. `RpcError` answers `code()` and
`details()` as grpcio's call errors do.
"""

from __future__ import annotations

import enum


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
