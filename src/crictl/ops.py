"""The client layer: CRI calls plus crictl's client-side filtering and ordering.

Commands parse flags and call these; these never print tables (they may print the one-line
confirmations crictl prints for mutating calls, e.g. the ID of a stopped container).
"""

from __future__ import annotations

import re
from typing import Any

from crictl.cmdutil import AppContext
from crictl.errors import CliError

POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"


def pb() -> Any:
    """The CRI messages (api_pb2's names), loaded on first use."""
    from crictl.messages import api

    return api()


class ListOptions:
    """crictl's listOptions (shared by ps, pods, inspect*, exec filters); not a dataclass, for start-up time."""

    def __init__(self, id: str = "", pod_id: str = "", name_regexp: str = "", namespace_regexp: str = "",
                 state: str = "", verbose: bool = False, labels: dict[str, str] | None = None, quiet: bool = False,
                 output: str = "table", all: bool = False, latest: bool = False, last: int = 0,
                 no_trunc: bool = False, image: str = "", resolve_image_path: bool = False) -> None:  # fmt: skip
        self.id = id
        self.pod_id = pod_id
        self.name_regexp = name_regexp
        self.namespace_regexp = namespace_regexp
        self.state = state
        self.verbose = verbose
        self.labels = labels if labels is not None else {}
        self.quiet = quiet
        self.output = output
        self.all = all
        self.latest = latest
        self.last = last
        self.no_trunc = no_trunc
        self.image = image
        self.resolve_image_path = resolve_image_path


def _compile(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CliError(f"invalid regular expression {pattern!r}: {exc}") from exc


def _matches(regex: re.Pattern[str] | None, text: str) -> bool:
    return regex is None or regex.search(text) is not None


def _truncate_count(total: int, latest: bool, last: int) -> int:
    count = total
    if latest:
        count = 1
    if last > 0:
        count = last
    return min(count, total)


def label_value(labels: Any, key: str) -> str:
    return str(labels[key]) if key in labels else "unknown"


# ---------------------------------------------------------------- runtime info


def version(app: AppContext) -> Any:
    return app.runtime().call("Version", pb().VersionRequest(version="v1"))


def status(app: AppContext, verbose: bool) -> Any:
    return app.runtime().call("Status", pb().StatusRequest(verbose=verbose))


def runtime_config(app: AppContext) -> Any:
    return app.runtime().call("RuntimeConfig", pb().RuntimeConfigRequest())


def update_runtime_config(app: AppContext, pod_cidr: str | None) -> None:
    config = pb().RuntimeConfig()
    if pod_cidr is not None:
        config.network_config.pod_cidr = pod_cidr
    app.runtime().call("UpdateRuntimeConfig", pb().UpdateRuntimeConfigRequest(runtime_config=config))


# ---------------------------------------------------------------- images


def list_images(app: AppContext, name_filter: str, condition_filters: list[str]) -> list[Any]:
    request = pb().ListImagesRequest(filter=pb().ImageFilter(image=pb().ImageSpec(image=name_filter)))
    images = list(app.image().call("ListImages", request).images)
    images.sort(key=_image_sort_key_fn(images))
    if condition_filters and images:
        images = filter_images(images, condition_filters)
    return images


def _image_sort_key_fn(images: list[Any]) -> Any:
    import functools

    def compare(a: Any, b: Any) -> int:
        if a.repo_tags and b.repo_tags:
            x, y = a.repo_tags[0], b.repo_tags[0]
        elif a.repo_digests and b.repo_digests:
            x, y = a.repo_digests[0], b.repo_digests[0]
        else:
            x, y = a.id, b.id
        return int(x > y) - int(x < y)

    return functools.cmp_to_key(compare)


def normalize_repo_digest(repo_digests: Any) -> tuple[str, str]:
    if not repo_digests:
        return "<none>", "<none>"
    parts = repo_digests[0].split("@")
    if len(parts) != 2:
        return "errorName", "errorRepoDigest"
    return parts[0], parts[1]


def normalize_repo_tag_pairs(repo_tags: Any, image_name: str) -> list[tuple[str, str]]:
    if not repo_tags:
        return [(image_name, "<none>")]
    pairs = []
    for repo_tag in repo_tags:
        idx = repo_tag.rfind(":")
        if idx == -1:
            pairs.append(("errorRepoTag", "errorRepoTag"))
            continue
        name = repo_tag[:idx]
        if name == "<none>":
            name = image_name
        pairs.append((name, repo_tag[idx + 1 :]))
    return pairs


def filter_images(images: list[Any], filters: list[str]) -> list[Any]:
    filtered = list(images)
    for spec in filters:
        if spec.startswith("before="):
            reversed_list = list(reversed(filtered))
            filtered = list(reversed(_before_since(spec[len("before=") :], reversed_list)))
        elif spec.startswith("dangling="):
            value = spec[len("dangling=") :]
            filtered = [
                i for i in filtered if (value == "true" and not i.repo_tags) or (value == "false" and i.repo_tags)
            ]
        elif spec.startswith("reference="):
            value = spec[len("reference=") :]
            regex = _compile(value)
            out = []
            for img in filtered:
                name, _ = normalize_repo_digest(img.repo_digests)
                if (regex is not None and regex.search(name)) or name == value:
                    out.append(img)
            filtered = out
        elif spec.startswith("since="):
            filtered = _before_since(spec[len("since=") :], filtered)
        else:
            raise CliError(f"filter images: unknown filter flag: {spec}")
    return filtered


def _before_since(value: str, images: list[Any]) -> list[Any]:
    out = []
    for img in images:
        if ":" in value and "@" not in value:
            name, _ = normalize_repo_digest(img.repo_digests)
            pair = normalize_repo_tag_pairs(img.repo_tags, name)[0]
            if ":".join(pair) == value:
                break
            out.append(img)
        if ":" not in value and "@" not in value:
            if img.id.startswith(value):
                break
            out.append(img)
        if ":" in value and "@" in value and img.repo_digests:
            if img.repo_digests[0].startswith(value):
                break
            out.append(img)
    return out


def image_status(app: AppContext, image: str, verbose: bool) -> Any:
    request = pb().ImageStatusRequest(image=pb().ImageSpec(image=image), verbose=verbose)
    return app.image().call("ImageStatus", request)


def remove_image(app: AppContext, image: str) -> None:
    app.image().call("RemoveImage", pb().RemoveImageRequest(image=pb().ImageSpec(image=image)))


def image_fs_info(app: AppContext) -> Any:
    return app.image().call("ImageFsInfo", pb().ImageFsInfoRequest())


def pull_image(
    app: AppContext,
    image: str,
    auth: Any,
    sandbox: Any,
    annotations: dict[str, str] | None,
    timeout: float,
) -> Any:
    if timeout < 0:
        raise CliError("timeout should be bigger than 0")
    request = pb().PullImageRequest(image=pb().ImageSpec(image=image, annotations=annotations or {}))
    if auth is not None:
        request.auth.CopyFrom(auth)
    if sandbox is not None:
        request.sandbox_config.CopyFrom(sandbox)
    return app.image().call("PullImage", request, timeout=timeout if timeout > 0 else None)


# ---------------------------------------------------------------- pods


def run_pod(app: AppContext, config: Any, runtime_handler: str, cancel_timeout: float) -> str:
    service = app.runtime(cancel_timeout or None)
    request = pb().RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
    return str(service.call("RunPodSandbox", request, timeout=service.settings.timeout * 2).pod_sandbox_id)


def stop_pod(app: AppContext, pod_id: str) -> None:
    app.runtime().call("StopPodSandbox", pb().StopPodSandboxRequest(pod_sandbox_id=pod_id))


def remove_pod(app: AppContext, pod_id: str) -> None:
    app.runtime().call("RemovePodSandbox", pb().RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def pod_status(app: AppContext, pod_id: str, verbose: bool) -> Any:
    return app.runtime().call("PodSandboxStatus", pb().PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose))


def list_pods(app: AppContext, opts: ListOptions) -> list[Any]:
    api = pb()
    flt = api.PodSandboxFilter()
    if opts.id:
        flt.id = opts.id
    if opts.state:
        state = opts.state.lower()
        if state == "ready":
            flt.state.state = api.SANDBOX_READY
        elif state == "notready":
            flt.state.state = api.SANDBOX_NOTREADY
        else:
            raise CliError("--state should be ready or notready")
    for key, value in opts.labels.items():
        flt.label_selector[key] = value
    try:
        items = list(app.runtime().call("ListPodSandbox", api.ListPodSandboxRequest(filter=flt)).items)
    except CliError as exc:
        raise CliError(f"call list sandboxes RPC: {exc.message}") from exc
    name_re = _compile(opts.name_regexp)
    ns_re = _compile(opts.namespace_regexp)
    filtered = [
        p
        for p in items
        if p.HasField("metadata") and _matches(name_re, p.metadata.name) and _matches(ns_re, p.metadata.namespace)
    ]
    filtered.sort(key=lambda p: p.created_at, reverse=True)
    return filtered[: _truncate_count(len(filtered), opts.latest, opts.last)]


# ---------------------------------------------------------------- containers


_CONTAINER_STATES = {"created": 0, "running": 1, "exited": 2, "unknown": 3}


def list_containers(app: AppContext, opts: ListOptions, with_image_client: bool = True) -> list[Any]:
    api = pb()
    flt = api.ContainerFilter()
    if opts.id:
        flt.id = opts.id
    if opts.pod_id:
        flt.pod_sandbox_id = opts.pod_id
    if not opts.all and not opts.state:
        flt.state.state = api.CONTAINER_RUNNING
    if opts.state:
        state = _CONTAINER_STATES.get(opts.state.lower())
        if state is None:
            raise CliError("--state should be one of created, running, exited or unknown")
        flt.state.state = state
    if opts.latest or opts.last > 0:
        flt.ClearField("state")
    for key, value in opts.labels.items():
        flt.label_selector[key] = value
    try:
        containers = list(app.runtime().call("ListContainers", api.ListContainersRequest(filter=flt)).containers)
    except CliError as exc:
        raise CliError(f"call list containers RPC: {exc.message}") from exc
    name_re = _compile(opts.name_regexp)
    ns_re = _compile(opts.namespace_regexp)
    filtered = []
    image_ids: dict[str, str | None] = {}
    for ctr in containers:
        if opts.image and with_image_client:
            try:
                matched = _image_matches(app, opts.image, ctr.image.image, image_ids)
            except CliError as exc:
                raise CliError(f"check image match: {exc.message}") from exc
            if not matched:
                continue
        namespace = label_value(ctr.labels, POD_NAMESPACE_LABEL)
        if ctr.HasField("metadata") and _matches(name_re, ctr.metadata.name) and _matches(ns_re, namespace):
            filtered.append(ctr)
    filtered.sort(key=lambda c: c.created_at, reverse=True)
    return filtered[: _truncate_count(len(filtered), opts.latest, opts.last)]


def _image_matches(app: AppContext, wanted: str, container_image: str, cache: dict[str, str | None]) -> bool:
    for ref in (wanted, container_image):
        if ref not in cache:
            response = image_status(app, ref, False)
            cache[ref] = response.image.id if response.HasField("image") else None
    return cache[wanted] is not None and cache[wanted] == cache[container_image]


def repo_image(app: AppContext, image: str) -> str:
    response = image_status(app, image, False)
    if response.image.repo_tags:
        return str(response.image.repo_tags[0])
    return image


def container_status(app: AppContext, container_id: str, verbose: bool) -> Any:
    request = pb().ContainerStatusRequest(container_id=container_id, verbose=verbose)
    return app.runtime().call("ContainerStatus", request)


def create_container(app: AppContext, pod_id: str, config: Any, sandbox_config: Any, timeout: float) -> str:
    service = app.runtime(timeout or None)
    request = pb().CreateContainerRequest(pod_sandbox_id=pod_id, config=config)
    if sandbox_config is not None:
        request.sandbox_config.CopyFrom(sandbox_config)
    return str(service.call("CreateContainer", request).container_id)


def start_container(app: AppContext, container_id: str) -> None:
    app.runtime().call("StartContainer", pb().StartContainerRequest(container_id=container_id))


def stop_container(app: AppContext, container_id: str, timeout: int) -> None:
    service = app.runtime()
    request = pb().StopContainerRequest(container_id=container_id, timeout=timeout)
    service.call("StopContainer", request, timeout=service.settings.timeout + max(timeout, 0))


def remove_container(app: AppContext, container_id: str) -> None:
    app.runtime().call("RemoveContainer", pb().RemoveContainerRequest(container_id=container_id))


def update_container(app: AppContext, container_id: str, linux: Any) -> None:
    request = pb().UpdateContainerResourcesRequest(container_id=container_id, linux=linux)
    app.runtime().call("UpdateContainerResources", request)


def checkpoint_container(app: AppContext, container_id: str, location: str) -> None:
    request = pb().CheckpointContainerRequest(container_id=container_id, location=location)
    app.runtime().call("CheckpointContainer", request)


def exec_sync(app: AppContext, container_id: str, cmd: list[str], timeout: int) -> Any:
    service = app.runtime()
    request = pb().ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout)
    deadline = service.settings.timeout + timeout if timeout > 0 else None
    return service.call("ExecSync", request, timeout=deadline)


def exec_url(app: AppContext, container_id: str, cmd: list[str], tty: bool, stdin: bool) -> str:
    request = pb().ExecRequest(container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=True, stderr=not tty)
    return _streaming_url(app.runtime().call("Exec", request).url)


def attach_url(app: AppContext, container_id: str, tty: bool, stdin: bool) -> str:
    request = pb().AttachRequest(container_id=container_id, tty=tty, stdin=stdin, stdout=True, stderr=not tty)
    return _streaming_url(app.runtime().call("Attach", request).url)


def port_forward_url(app: AppContext, pod_id: str) -> str:
    return _streaming_url(app.runtime().call("PortForward", pb().PortForwardRequest(pod_sandbox_id=pod_id)).url)


def _streaming_url(url: str) -> str:
    if not url:
        raise CliError("URL is not set")
    return url


def reopen_container_log(app: AppContext, container_id: str) -> None:
    app.runtime().call("ReopenContainerLog", pb().ReopenContainerLogRequest(container_id=container_id))


# ---------------------------------------------------------------- stats and metrics


def container_stats(app: AppContext, flt: Any) -> list[Any]:
    response = app.runtime().call("ListContainerStats", pb().ListContainerStatsRequest(filter=flt))
    return sorted(response.stats, key=lambda s: s.attributes.id)


def pod_stats(app: AppContext, flt: Any) -> list[Any]:
    response = app.runtime().call("ListPodSandboxStats", pb().ListPodSandboxStatsRequest(filter=flt))
    return sorted(response.stats, key=lambda s: s.attributes.id)


def metric_descriptors(app: AppContext) -> list[Any]:
    return list(app.runtime().call("ListMetricDescriptors", pb().ListMetricDescriptorsRequest()).descriptors)


def pod_metrics(app: AppContext) -> list[Any]:
    return list(app.runtime().call("ListPodSandboxMetrics", pb().ListPodSandboxMetricsRequest()).pod_metrics)
