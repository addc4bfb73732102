"""RuntimeService RPCs about the runtime itself: Version, Status, RuntimeConfig."""

from __future__ import annotations

import json
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import RUNTIME_NAME, __version__
from cri_runtime.config import Config
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.conditions import Probe, collect
from cri_runtime.node.facts import NodeFacts
from cri_runtime.rpc import ServicerContext
from cri_runtime.services.error_mapping import unary
from cri_runtime.services.status_config import status_config
from cri_runtime.userns import support as userns_support

# The CRI "kubelet API version" this runtime speaks (VersionResponse.version).
KUBE_API_VERSION = "0.1.0"
CRI_API_VERSION = "v1"

_CGROUP_DRIVERS = {"systemd": api_pb2.SYSTEMD, "cgroupfs": api_pb2.CGROUPFS}


class RuntimeInfoRpcs:
    """Mixin for the runtime servicer; needs `config`, probes and `extra_info`."""

    config: Config
    runtime_probe: Probe
    network_probe: Probe
    network: PodNetworkManager
    node: NodeFacts

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    def runtime_handlers(self) -> list[api_pb2.RuntimeHandler]:
        """Handlers and their features; the default one is also listed under "" (as containerd does)."""
        features = api_pb2.RuntimeHandlerFeatures(
            recursive_read_only_mounts=self.node.recursive_read_only,
            user_namespaces=userns_support.result().supported)
        names = ["", *sorted(self.config.runtime.handlers)]
        return [api_pb2.RuntimeHandler(name=name, features=features) for name in names]

    def extra_info(self) -> dict[str, Any]:
        """More verbose Status info contributed by the composed servicer."""
        return {}

    @unary
    async def Version(
        self, request: api_pb2.VersionRequest, context: ServicerContext
    ) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(
            version=KUBE_API_VERSION,
            runtime_name=RUNTIME_NAME,
            runtime_version=__version__,
            runtime_api_version=CRI_API_VERSION,
        )

    @unary
    async def Status(
        self, request: api_pb2.StatusRequest, context: ServicerContext
    ) -> api_pb2.StatusResponse:
        conditions = await collect(self.runtime_probe, self.network_probe)
        status = api_pb2.RuntimeStatus(
            conditions=[
                api_pb2.RuntimeCondition(type=c.type, status=c.status, reason=c.reason, message=c.message)
                for c in conditions
            ]
        )
        response = api_pb2.StatusResponse(
            status=status, runtime_handlers=self.runtime_handlers(),
            features=api_pb2.RuntimeFeatures(supplemental_groups_policy=True))
        if request.verbose:
            config = status_config(self.config, restrict_oom_score_adj=self.node.restrict_oom_score_adj)
            info: dict[str, Any] = {"config": config, "configSource": self.config.source,
                                    "userNamespaces": userns_support.result().to_dict()}
            info.update(self.extra_info())
            response.info.update({key: json.dumps(value) for key, value in info.items()})
        return response

    @unary
    async def RuntimeConfig(
        self, request: api_pb2.RuntimeConfigRequest, context: ServicerContext
    ) -> api_pb2.RuntimeConfigResponse:
        driver = _CGROUP_DRIVERS[self.config.runtime.cgroup_driver]
        return api_pb2.RuntimeConfigResponse(
            linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=driver)
        )

    @unary
    async def UpdateRuntimeConfig(
        self, request: api_pb2.UpdateRuntimeConfigRequest, context: ServicerContext
    ) -> api_pb2.UpdateRuntimeConfigResponse:
        cidr = request.runtime_config.network_config.pod_cidr
        if cidr:
            self.network.update_pod_cidr(cidr)
        return api_pb2.UpdateRuntimeConfigResponse()
