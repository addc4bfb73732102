"""The CRI v1 messages and enums, each built when a command first names it.

Importing `cri_protos.runtime.v1.api_pb2` builds every class of the API and imports
protobuf's pure-Python machinery on the way (descriptor_pool, python_message, text_format):
about 15 ms of a `crictl ps` that uses four classes. With protobuf's upb backend (the
default) the serialized descriptor (`api_descriptor.py`, generated beside api_pb2) goes
into the default pool directly, and a class is made on first use. upb keeps one class per
descriptor, so these are the very classes api_pb2 holds if something imports it later
(json_format for `create`'s config files, the jsonschema commands). Any other backend, or
api_pb2 already imported, gets api_pb2 itself.
"""

from __future__ import annotations

import sys
from typing import Any

_PB2 = "cri_protos.runtime.v1.api_pb2"
_loaded: list[Any] = []


class _Api:
    """api_pb2's names, resolved on first access and then kept as attributes."""

    def __init__(self, file: Any, metaclass: Any, base: Any) -> None:
        self.DESCRIPTOR = file
        self._metaclass = metaclass
        self._base = base
        self._enum_values: dict[str, int] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        file = self.DESCRIPTOR
        value: Any
        if name in file.message_types_by_name:
            attrs = {"DESCRIPTOR": file.message_types_by_name[name], "__module__": _PB2}
            value = self._metaclass(name, (self._base,), attrs)
        elif name in file.enum_types_by_name:
            from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

            value = EnumTypeWrapper(file.enum_types_by_name[name])
        else:
            if self._enum_values is None:
                self._enum_values = {v.name: v.number for e in file.enum_types_by_name.values() for v in e.values}
            if name not in self._enum_values:
                raise AttributeError(f"module {_PB2!r} has no attribute {name!r}")
            value = self._enum_values[name]
        setattr(self, name, value)
        return value


def api() -> Any:
    """api_pb2, or an object that answers for it as cheaply as it can."""
    if _loaded:
        return _loaded[0]
    module: Any = sys.modules.get(_PB2)
    if module is None:
        from google.protobuf.internal import api_implementation

        if api_implementation.Type() == "upb":
            from google._upb import _message
            from google.protobuf.message import Message

            from cri_protos.runtime.v1.api_descriptor import SERIALIZED

            module = _Api(_message.default_pool.AddSerializedFile(SERIALIZED), _message.MessageMeta, Message)
        else:
            from cri_protos.runtime.v1 import api_pb2 as module
    _loaded.append(module)
    return module
