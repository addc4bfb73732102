"""Domain errors raised by business logic.

Business code never imports grpc to report a failure: it raises one of these,
and `cri_runtime.services.error_mapping` maps each class to its gRPC status code in
one place. That keeps the code usable outside a gRPC handler (recovery,
benchmarks, tests) and makes the status an operator sees predictable.
"""

from __future__ import annotations


class CriError(Exception):
    """Base class: a failure the caller should see with a specific status code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(CriError):
    """The named object (pod, container, image, …) does not exist."""


class AlreadyExists(CriError):
    """An object with that name or ID is already there (e.g. a reserved name)."""


class InvalidArgument(CriError):
    """The request is malformed; retrying it unchanged will fail again."""


class FailedPrecondition(CriError):
    """The request is valid but the object is in the wrong state for it."""


class Unavailable(CriError):
    """A dependency (containerd, a registry) cannot be reached right now."""


class Unauthenticated(CriError):
    """A registry refused the request for lack of (valid) credentials."""


class PermissionDenied(CriError):
    """A registry or the kernel refused the request with the credentials given."""


class DataLoss(CriError):
    """Data arrived corrupted (digest or size mismatch, truncated stream)."""


class DeadlineExceeded(CriError):
    """An operation ran past its deadline (caller's or our own timeout)."""


class ResourceExhausted(CriError):
    """Out of disk, memory or another bounded resource."""


class Unimplemented(CriError):
    """The RPC or feature is not supported; kubelet falls back only on this code."""


class Internal(CriError):
    """A bug or an unexpected failure of a dependency; details are in the message."""


class Aborted(CriError):
    """A conflicting concurrent operation won; the caller may retry."""
