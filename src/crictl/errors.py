"""The CLI's one error type: its message is printed as a single line and the exit code is 1."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing failure; `exit_code` lets `exec -s` propagate a command's status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ShowHelp(Exception):
    """Raised by a command whose arguments don't fit: print its help (crictl's ShowSubcommandHelp)."""
