"""What a configuration reload (SIGHUP) may change while serving, and what needs a restart.

Live keys are those whose readers look them up on each use (log level and
format, registry hosts, CNI config, metrics and tracing settings). Every
other changed key is reported as "needs restart" rather than silently
ignored: the socket, state dirs, containerd address and runtime handlers
are baked into objects built at start-up.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cri_runtime.config import Config

LIVE_KEYS = frozenset({
    "server.log_level", "server.log_format", "server.metrics_address",
    "image.registry_config_path", "image.max_concurrent_downloads", "image.image_pull_progress_timeout_seconds",
})
LIVE_SECTIONS = frozenset({"network", "tracing"})


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}{key}.", out)
    else:
        out[prefix.rstrip(".")] = data


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted keys whose effective value differs (keys present on one side only included)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(old.to_dict(), "", before)
    _flatten(new.to_dict(), "", after)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def is_live(key: str) -> bool:
    return key in LIVE_KEYS or key.split(".", 1)[0] in LIVE_SECTIONS


def split(keys: list[str]) -> tuple[list[str], list[str]]:
    """(keys applied live, keys that need a restart)."""
    return [k for k in keys if is_live(k)], [k for k in keys if not is_live(k)]


def copy_live(running: Config, new: Config, keys: list[str]) -> None:
    """Set the live `keys` of `new` on the running config's section objects, in place.

    Components hold references to their section objects (e.g. the network
    manager's NetworkConfig), so in-place assignment reaches them.
    """
    for key in keys:
        section, _, name = key.partition(".")
        field_name = name.split(".", 1)[0]
        target = getattr(running, section)
        if field_name in {f.name for f in dataclasses.fields(target)}:
            setattr(target, field_name, getattr(getattr(new, section), field_name))
