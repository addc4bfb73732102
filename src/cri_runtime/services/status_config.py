"""Status(verbose) ``config`` in containerd's shape, with our own sections kept.

containerd's CRI plugin puts its whole config into ``info["config"]`` (Go
``encoding/json`` of ``criconfig.Config``), and tools read its camelCase keys:
``stateDir``, ``rootDir``, ``containerdEndpoint``, ``maxContainerLogSize``
(containerd's JSON name for ``max_container_log_line_size``), ``cni``
(``binDir``, ``confDir``, ``confTemplate``, ``maxConfNum``), ``containerd``
(``snapshotter``, ``defaultRuntimeName``, ``runtimes``), ``sandboxImage``,
``streamServerAddress``/``Port``, ``restrictOOMScoreAdj``. Those keys carry
our equivalent values; our own config sections (``server``, ``runtime``,
``image``, ``network``, ``streaming``, ``logs``, ``imageVolumes`` …) stay
under their own names, and our ``containerd`` section's keys are merged into
containerd's ``containerd`` object (the names do not clash). Listed in
docs/verbose-info.md.
"""

from __future__ import annotations

from typing import Any

from cri_runtime.config import Config


def _runtimes(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, handler in sorted(config.runtime.handlers.items()):
        options: dict[str, Any] = {"SystemdCgroup": config.runtime.cgroup_driver == "systemd"}
        if handler.binary_name:
            options["BinaryName"] = handler.binary_name
        if handler.root:
            options["Root"] = handler.root
        out[name] = {"runtimeType": handler.runtime_type, "options": options,
                     "privileged_without_host_devices": handler.privileged_without_host_devices}
    return out


def status_config(config: Config, *, restrict_oom_score_adj: bool) -> dict[str, Any]:
    """The ``config`` document of Status(verbose)."""
    ours = config.to_dict()
    net = config.network
    containerd_keys = {
        "snapshotter": config.containerd.snapshotter,
        "defaultRuntimeName": config.runtime.default_handler,
        "runtimes": _runtimes(config),
    }
    doc: dict[str, Any] = {
        **ours,
        "containerd": {**ours["containerd"], **containerd_keys},
        "cni": {"binDir": net.cni_bin_dirs[0], "binDirs": list(net.cni_bin_dirs), "confDir": net.cni_conf_dir,
                "confTemplate": net.cni_conf_template, "maxConfNum": 1},
        "stateDir": config.server.state_dir,
        "rootDir": config.server.root_dir,
        "containerdEndpoint": config.containerd.address,
        "maxContainerLogSize": config.logs.max_container_log_line_size,
        "maxContainerLogLineSize": config.logs.max_container_log_line_size,
        "sandboxImage": config.image.sandbox_image,
        "streamServerAddress": config.streaming.address,
        "streamServerPort": str(config.streaming.port),
        "enableTLSStreaming": bool(config.streaming.tls_cert_file),
        "restrictOOMScoreAdj": restrict_oom_score_adj,
    }
    return doc
