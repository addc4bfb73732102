"""The process part of a spec: image config, args and environment rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument


def _str_list(doc: Mapping[str, Any], key: str) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image config {key} must be a list of strings")
    return list(value)


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image config {key} must be a string")
    return value


@dataclass(frozen=True)
class ImageConfig:
    """The runtime-relevant part of an OCI image config (``config`` object)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    # The paths of config.Volumes (a Dockerfile's VOLUME), in the image's order.
    volumes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ImageConfig:
        """From the image config document (``{"config": {...}, "rootfs": ...}``) or its ``config`` object."""
        inner = doc.get("config") if "rootfs" in doc or "architecture" in doc else doc
        if inner is None:
            inner = {}
        if not isinstance(inner, Mapping):
            raise InvalidArgument("image config: config must be an object")
        return cls(
            entrypoint=_str_list(inner, "Entrypoint"),
            cmd=_str_list(inner, "Cmd"),
            env=_str_list(inner, "Env"),
            working_dir=_str(inner, "WorkingDir"),
            user=_str(inner, "User"),
            stop_signal=_str(inner, "StopSignal"),
            volumes=_volumes(inner),
        )


def _volumes(config: Mapping[str, Any]) -> list[str]:
    value = config.get("Volumes")
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise InvalidArgument("image config Volumes must be an object")
    return [str(path) for path in value]


def container_args(command: Sequence[str], args: Sequence[str], image: ImageConfig) -> list[str]:
    """Process args as the kubelet expects them.

    command replaces the image Entrypoint and drops its Cmd; args alone replace
    Cmd and keep Entrypoint; an Entrypoint of exactly [""] means "none".
    """
    cmd = list(command)
    rest = list(args)
    if not cmd:
        if not rest:
            rest = list(image.cmd)
        if image.entrypoint != [""]:
            cmd = list(image.entrypoint)
    result = cmd + rest
    if not result:
        raise InvalidArgument("no command specified: the container config and the image give neither command nor args")
    return result


def merge_env(base: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """``base`` with ``overrides`` applied by key: a replaced key keeps its position,
    a new key is appended, and a bare ``KEY`` (no "=") removes it."""
    result: list[str | None] = []
    index: dict[str, int] = {}
    for entry in base:
        key = entry.split("=", 1)[0]
        if key in index:
            result[index[key]] = entry
        else:
            index[key] = len(result)
            result.append(entry)
    for entry in overrides:
        key = entry.split("=", 1)[0]
        if "=" not in entry:
            if key in index:
                result[index.pop(key)] = None
            continue
        if key in index:
            result[index[key]] = entry
        else:
            index[key] = len(result)
            result.append(entry)
    return [e for e in result if e is not None]


def cri_env(envs: Iterable[api_pb2.KeyValue]) -> list[str]:
    """``KEY=value`` strings from CRI KeyValues (value bytes decoded as UTF-8)."""
    out = []
    for kv in envs:
        try:
            value = kv.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"env {kv.key!r}: value is not valid UTF-8") from exc
        out.append(f"{kv.key}={value}")
    return out
