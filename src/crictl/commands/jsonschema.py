"""`jsonschema` under pull, runp, create and run: the JSON Schema of the config files they take.

Upstream reflects its Go CRI types with invopop/jsonschema. The Go types are generated from the
same .proto as our Python messages, so the schema is derived here from our protobuf descriptors
with invopop's rules (fields in declaration order under their proto names, definitions sorted by
type name, enums as string-or-integer, maps as objects of strings, bytes as base64 strings
except KeyValue.value, which crictl strips) and printed with Go's json.MarshalIndent layout.
tests/golden/crictl holds upstream's output; the two must be byte-identical.
"""

from __future__ import annotations

import json
import re
from typing import Any

from crictl import cli
from crictl.errors import CliError

_SCALARS = {"string": "string", "bool": "boolean", "double": "number", "float": "number"}
_ID_BASE = "https://k8s.io/cri-api/pkg/apis/runtime/v1/"


def _go_type_name(descriptor: Any) -> str:
    """protoc-gen-go names a nested message Outer_Inner."""
    names = []
    while descriptor is not None:
        names.append(descriptor.name)
        descriptor = descriptor.containing_type
    return "_".join(reversed(names))


def _field_schema(field: Any, defs: dict[str, Any]) -> dict[str, Any]:
    from google.protobuf.descriptor import FieldDescriptor as FD

    if field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {"additionalProperties": _single(value_field, defs), "type": "object"}
    single = _single(field, defs)
    if field.is_repeated:
        return {"items": single, "type": "array"}
    return single


def _single(field: Any, defs: dict[str, Any]) -> dict[str, Any]:
    from google.protobuf.descriptor import FieldDescriptor as FD

    if field.type == FD.TYPE_MESSAGE:
        name = _go_type_name(field.message_type)
        _define(field.message_type, defs)
        return {"$ref": f"#/$defs/{name}"}
    if field.type == FD.TYPE_ENUM:
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    if field.type == FD.TYPE_BYTES:
        if field.containing_type is not None and field.containing_type.name == "KeyValue":
            return {"type": "string"}  # crictl strips the encoding: its KeyValue values are plain strings
        return {"type": "string", "contentEncoding": "base64"}
    kind = next((k for k, v in FD.__dict__.items() if k.startswith("TYPE_") and v == field.type), "")
    return {"type": _SCALARS.get(kind[5:].lower(), "integer")}


def _declaration_order(descriptor: Any) -> list[Any]:
    """The fields as the .proto declares them (Go's struct order); upb lists them by number."""
    from google.protobuf import descriptor_pb2

    file_proto = descriptor_pb2.FileDescriptorProto.FromString(descriptor.file.serialized_pb)
    path = _go_type_name(descriptor).split("_")
    messages = file_proto.message_type
    message = None
    for name in path:
        message = next(m for m in messages if m.name == name)
        messages = message.nested_type
    assert message is not None
    return [descriptor.fields_by_name[field.name] for field in message.field]


def _define(descriptor: Any, defs: dict[str, Any]) -> None:
    name = _go_type_name(descriptor)
    if name in defs:
        return
    schema: dict[str, Any] = {}
    defs[name] = schema  # before the fields: a message may refer to itself
    properties = {field.name: _field_schema(field, defs) for field in _declaration_order(descriptor)}
    if properties:
        schema["properties"] = properties
    schema["additionalProperties"] = False
    schema["type"] = "object"


def schema_of(message_name: str) -> str:
    """The schema document of a CRI message, as crictl prints it."""
    from cri_protos.runtime.v1 import api_pb2

    descriptor = api_pb2.DESCRIPTOR.message_types_by_name[message_name]
    defs: dict[str, Any] = {}
    _define(descriptor, defs)
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", message_name).lower()
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _ID_BASE + kebab,
        "$ref": f"#/$defs/{_go_type_name(descriptor)}",
        "$defs": dict(sorted(defs.items())),
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    # Go's encoder escapes these three for HTML safety.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _print_schema(message_name: str) -> None:
    try:
        print(schema_of(message_name))
    except KeyError as exc:
        raise CliError(f"marshal JSON schema: unknown message {exc}") from exc


_POD_USAGE_TEXT = (
    "The schema will be generated from the PodSandboxConfig of the CRI API compiled with this version of crictl"
)


def _pod_schema_command(usage: str) -> cli.Command:
    @cli.command("jsonschema", help=usage, aliases=["js"], usage_text=_POD_USAGE_TEXT)
    def pod_schema() -> None:
        _print_schema("PodSandboxConfig")

    return pod_schema


PULL_JSONSCHEMA = _pod_schema_command("Display the JSON schema for the pod-config.json, ")
RUNP_JSONSCHEMA = _pod_schema_command("Display the JSON schema for the pod-config.json")


@cli.command(
    "jsonschema", help="Display the JSON schema for the pod or container config", aliases=["js"],
    short_options=True, sort_flags=False,
)  # fmt: skip
@cli.option("-p", "--pod", is_flag=True, help="Print the pod JSON schema, which will be generated from the "
            "PodSandboxConfig of the CRI API compiled with this version of crictl")  # fmt: skip
@cli.option("-c", "--container", is_flag=True, help="Print the container JSON schema, which will be generated from "
            "the ContainerConfig of the CRI API compiled with this version of crictl")  # fmt: skip
@cli.pass_context
def config_jsonschema(ctx: cli.Context, pod: bool, container: bool) -> None:
    if not ctx.is_set("pod") and not ctx.is_set("container"):
        raise cli.ShowSubcommandHelp()
    if ctx.is_set("pod"):
        _print_schema("PodSandboxConfig")
    if ctx.is_set("container"):
        _print_schema("ContainerConfig")


CONFIG_JSONSCHEMA = config_jsonschema
