"""Pod and container config files (JSON or YAML) for runp, create, run and pull --pod-config.

Field names may be the proto names (`log_directory`, as crictl's examples use) or their JSON
names (`logDirectory`). Unlike crictl, unknown fields and wrongly-typed values are rejected
with a message naming the file and the field path, instead of being silently ignored.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from crictl import log
from crictl.errors import CliError


def _read_document(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise CliError(f"config at {path} not found") from exc
    except OSError as exc:
        raise CliError(f"read config {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise CliError(f"{path}: malformed JSON/YAML: {detail}") from exc


def _check_fields(data: Any, descriptor: Any, where: str) -> None:
    """Walk the document against the message descriptor, naming the first unknown or mistyped field."""
    from google.protobuf.descriptor import FieldDescriptor

    if not isinstance(data, dict):
        raise CliError(f"{where}: expected an object, got {_kind(data)}")
    by_name = {}
    for field in descriptor.fields:
        by_name[field.name] = field
        by_name[field.json_name] = field
    for key, value in data.items():
        path = f"{where}.{key}"
        field = by_name.get(key)
        if field is None:
            raise CliError(f'{path}: unknown field "{key}" in {descriptor.name}')
        if value is None:
            continue
        is_map = field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
        if is_map:
            if not isinstance(value, dict):
                raise CliError(f"{path}: expected an object of key/value pairs, got {_kind(value)}")
            for map_key, map_value in value.items():
                if not isinstance(map_value, (str, int, float, bool)):
                    raise CliError(f"{path}.{map_key}: expected a scalar value, got {_kind(map_value)}")
            continue
        if field.is_repeated:
            if not isinstance(value, list):
                raise CliError(f"{path}: expected a list, got {_kind(value)}")
            for index, item in enumerate(value):
                _check_value(item, field, f"{path}[{index}]")
        else:
            _check_value(value, field, path)


def _check_value(value: Any, field: Any, path: str) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        _check_fields(value, field.message_type, path)
    elif kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise CliError(f"{path}: expected true or false, got {_kind(value)}")
    elif kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise CliError(f"{path}: expected a string, got {_kind(value)}")
    elif kind == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        if isinstance(value, str) and value not in names:
            raise CliError(f"{path}: unknown value {value!r}, expected one of {', '.join(names)}")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise CliError(f"{path}: expected one of {', '.join(names)}, got {_kind(value)}")
    elif kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CliError(f"{path}: expected a number, got {_kind(value)}")
    elif kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise CliError(f"{path}: expected base64 text, got {_kind(value)}")
    else:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
        if not ok:
            raise CliError(f"{path}: expected an integer, got {_kind(value)}")
        number = int(value)
        unsigned = kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                            FieldDescriptor.TYPE_FIXED64)  # fmt: skip
        if unsigned and number < 0:
            raise CliError(f"{path}: must not be negative, got {number}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _parse(path: str, message_name: str) -> Any:
    from google.protobuf import json_format

    from crictl.ops import pb

    data = _read_document(path)
    if data is None:
        data = {}
    message = getattr(pb(), message_name)()
    _check_fields(data, message.DESCRIPTOR, path)
    try:
        json_format.ParseDict(_drop_nulls(data), message)
    except json_format.ParseError as exc:
        raise CliError(f"{path}: {exc}") from exc
    return message


def _drop_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_nulls(v) for v in data]
    return data


def load_pod_config(path: str) -> Any:
    """crictl's loadPodSandboxConfig (a uid is generated when missing)."""
    config = _parse(path, "PodSandboxConfig")
    if not config.HasField("metadata"):
        raise CliError(f"load podSandboxConfig: {path}: metadata is not set")
    if not config.metadata.uid:
        config.metadata.uid = str(uuid.uuid4())
    if not config.metadata.name or not config.metadata.namespace:
        raise CliError(f"load podSandboxConfig: {path}: metadata.name and metadata.namespace must be set")
    if config.HasField("linux") and not config.linux.cgroup_parent:
        log.warning("cgroup_parent is not set. Use `runtime-config` to get the runtime cgroup driver")
    return config


def load_container_config(path: str) -> Any:
    """crictl's loadContainerConfig."""
    config = _parse(path, "ContainerConfig")
    if not config.HasField("metadata"):
        raise CliError(f"{path}: metadata is not set")
    if not config.metadata.name:
        raise CliError(f"{path}: metadata.name is not set")
    if not config.HasField("image"):
        raise CliError(f"{path}: image is not set")
    if not config.image.image:
        raise CliError(f"{path}: image.image is not set")
    return config
