"""CNI plugin failures as domain errors.

A plugin reports failure with a non-zero exit and (ideally) a JSON error
`{"code", "msg", "details"}` on stdout. The spec's well-known codes say
whether retrying can help, so they decide the domain error class: a
transient condition (11, 50, 51) is Unavailable, a broken network config
(1, 2, 4, 6, 7) is FailedPrecondition, anything else Internal. Every class
also derives from `PluginError`, so callers can catch "a plugin failed" and
read the plugin, command and code.
"""

from __future__ import annotations

from cri_runtime import errors

#: Spec error codes (SPEC.md, section 5 "Error").
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO_FAILURE = 5
ERR_DECODING_FAILURE = 6
ERR_INVALID_NETWORK_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_PLUGIN_NOT_AVAILABLE = 50
ERR_PLUGIN_NOT_AVAILABLE_LIMITED = 51

_CONFIG_CODES = {ERR_INCOMPATIBLE_VERSION, ERR_UNSUPPORTED_FIELD, ERR_INVALID_ENV,
                 ERR_DECODING_FAILURE, ERR_INVALID_NETWORK_CONFIG}
_TRANSIENT_CODES = {ERR_TRY_AGAIN_LATER, ERR_PLUGIN_NOT_AVAILABLE, ERR_PLUGIN_NOT_AVAILABLE_LIMITED}


class PluginError(errors.CriError):
    """A CNI plugin call failed. Concrete classes below also carry the gRPC-relevant base."""

    plugin: str = ""
    command: str = ""
    #: The spec error code, or 0 when the plugin gave none (crash, timeout, missing binary).
    code: int = 0
    msg: str = ""
    details: str = ""
    #: For a failed ADD: whether the rollback DEL ran to completion, and why not.
    rolled_back: bool = False
    rollback_error: errors.CriError | None = None


class PluginFailed(PluginError, errors.Internal):
    """The plugin failed for a reason retrying will not fix on its own."""


class PluginConfigError(PluginError, errors.FailedPrecondition):
    """The plugin rejected the network configuration (or its version)."""


class PluginUnavailable(PluginError, errors.Unavailable):
    """The plugin asked to be retried later (code 11/50/51)."""


class PluginTimeout(PluginError, errors.DeadlineExceeded):
    """The plugin did not finish within the configured timeout and was killed."""


class PluginNotFound(PluginError, errors.FailedPrecondition):
    """No executable for the plugin's type in any CNI bin directory."""


def make_error(cls: type[PluginError], message: str, *, plugin: str, command: str, code: int = 0,
               msg: str = "", details: str = "") -> PluginError:
    """Build a PluginError of `cls` with its attributes set."""
    exc = cls(message)
    exc.plugin = plugin
    exc.command = command
    exc.code = code
    exc.msg = msg
    exc.details = details
    return exc


def class_for_code(code: int) -> type[PluginError]:
    """The domain error class for a spec error code."""
    if code in _TRANSIENT_CODES:
        return PluginUnavailable
    if code in _CONFIG_CODES:
        return PluginConfigError
    return PluginFailed


def describe(code: int, msg: str, details: str) -> str:
    """`msg: details (code N)` without repeating parts that are empty."""
    text = msg or "plugin failed without a message"
    if details and details != msg:
        text = f"{text}: {details}"
    if code:
        text = f"{text} (code {code})"
    return text
