"""Which of the host's namespaces a pod shares, from its CRI config (NODE mode).

Asked by the spec builders, the pod's run steps and the pod model alike; one
place reads the nested namespace options.
"""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2


def _options(config: api_pb2.PodSandboxConfig) -> api_pb2.NamespaceOption:
    return config.linux.security_context.namespace_options


def host_network(config: api_pb2.PodSandboxConfig) -> bool:
    return _options(config).network == api_pb2.NODE


def host_ipc(config: api_pb2.PodSandboxConfig) -> bool:
    return _options(config).ipc == api_pb2.NODE


def host_pid(config: api_pb2.PodSandboxConfig) -> bool:
    return _options(config).pid == api_pb2.NODE
