"""CreateContainer: reserve the name, build the spec and record, let NRI adjust it, undo on failure."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import cdi, errors
from cri_runtime.config import RuntimeHandlerConfig
from cri_runtime.containerd import mounts as ctd_mounts
from cri_runtime.containerd import objects
from cri_runtime.containers import image_config_volumes, image_volumes, status_info
from cri_runtime.containers.model import (
    CREATED,
    METADATA_EXTENSION,
    METADATA_TYPE,
    METADATA_VERSION,
    RUNNING,
    Container,
    ContainerMetadata,
    ContainerStatus,
    container_name,
)
from cri_runtime.containers.store import ContainerStore
from cri_runtime.images.store import ImageRecord
from cri_runtime.nri import convert as nri_convert
from cri_runtime.oci import container_spec
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.rootfs import read_rootfs_file
from cri_runtime.oci.user import ImageAccounts
from cri_runtime.rollback import Rollback, remove_dir, run_or_undo
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.userns import rootfs as userns_rootfs
from cri_runtime.userns.mappings import pod_userns

log = logging.getLogger(__name__)


def _image_name(requested: str, image: ImageRecord) -> str:
    """The name to report: what was asked for when it names the image, else its first tag."""
    if requested and not requested.startswith("sha256:") and len(requested) != 64:
        for tag in image.repo_tags:
            if tag == requested or tag.endswith("/" + requested) or tag.endswith("/library/" + requested):
                return str(tag)
    if image.repo_tags:
        return str(image.repo_tags[0])
    return requested or str(image.id)


def _needs_mountinfo(cfg: api_pb2.ContainerConfig) -> bool:
    """Shared/slave propagation is checked against the host's mount table."""
    return any(m.propagation != api_pb2.PROPAGATION_PRIVATE for m in cfg.mounts)


def _log_path(sandbox: Sandbox, cfg: api_pb2.ContainerConfig) -> str:
    """The container's log file: `cfg.log_path` under the pod's log directory, which it may not leave."""
    if not (cfg.log_path and sandbox.config.log_directory):
        return ""
    log_path = os.path.normpath(os.path.join(sandbox.config.log_directory, cfg.log_path))
    if not log_path.startswith(os.path.normpath(sandbox.config.log_directory) + os.sep):
        raise errors.InvalidArgument(f"log_path {cfg.log_path!r} escapes the pod's log directory")
    return log_path


def _sandbox_context(sandbox: Sandbox) -> container_spec.SandboxContext:
    """What of its pod the container's spec needs: namespaces (through the pause PID) and the pod's files."""
    md_sb = sandbox.metadata
    return container_spec.SandboxContext(
        id=sandbox.id, config=sandbox.config, pid=sandbox.status.pid,
        hostname_path=md_sb.hostname_path, hosts_path=md_sb.hosts_path,
        resolv_conf_path=md_sb.resolv_conf_path, shm_path=md_sb.shm_path)


class CreateOps(ContainerStore):
    """CreateContainer: reserve the name, build the spec and record, let NRI adjust it, undo on failure."""

    async def create(self, request: api_pb2.CreateContainerRequest) -> str:
        """CreateContainer; the request has passed `validation.containers.create_container`."""
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        cfg = request.config
        cdi_devices = self._cdi_devices(cfg)
        name = container_name(cfg.metadata, sandbox.config.metadata)
        container_id = secrets.token_hex(32)
        self.names.reserve(name, container_id)
        undo = Rollback(f"container {container_id}")
        undo.add_sync("name", self.names.release, name)
        return await run_or_undo(self._create_steps(container_id, name, sandbox, cfg, undo, cdi_devices), undo)

    def _cdi_devices(self, cfg: api_pb2.ContainerConfig) -> list[cdi.ResolvedDevice]:
        """The CDI devices the config asks for, resolved now so a bad name fails before anything is made."""
        names = cdi.requested_devices([d.name for d in cfg.CDI_devices], cfg.annotations)
        if not names or self.cdi is None:
            return []
        return self.cdi.resolve(names)

    async def _create_steps(self, container_id: str, name: str, sandbox: Sandbox, cfg: api_pb2.ContainerConfig,
                            undo: Rollback, cdi_devices: list[cdi.ResolvedDevice]) -> str:
        """The steps of CreateContainer; each registers its undo on `undo`."""
        target_pid = self._target_pid(cfg)
        log_path = _log_path(sandbox, cfg)
        container_dir = self._make_state_dir(container_id, undo)
        image = await self.images.resolve(cfg.image.image)
        build = _RecordBuilder(manager=self, container_id=container_id, name=name, sandbox=sandbox, cfg=cfg,
                               image=image, sandbox_ctx=_sandbox_context(sandbox), log_path=log_path,
                               io_dir=str(container_dir / "io"), target_pid=target_pid,
                               cdi_devices=tuple(cdi_devices))
        accounts = self._cached_accounts(image)
        volumes_mode = self.config.image.image_volumes
        config_volumes = image_config_volumes.wanted(ImageConfig.from_json(image.config).volumes, cfg, volumes_mode)
        if accounts is None or config_volumes or any(m.HasField("image") for m in cfg.mounts):
            metadata, mounts = await self._create_under_lease(build, accounts, config_volumes, container_dir, undo)
        else:
            metadata, mounts = await self._create_record_first(build, accounts, undo)
        container = Container(metadata, ContainerStatus(state=CREATED), self.status_path(container_id))
        container.rootfs_mounts = mounts
        container.effective_resources = status_info.effective_resources(build.spec)
        # No status file yet: a record without one is a created container (see _recover_one).
        return await self._publish(container, sandbox)

    def _target_pid(self, cfg: api_pb2.ContainerConfig) -> int | None:
        """The PID of the container whose PID namespace this one joins (namespace mode TARGET), if any."""
        ns = cfg.linux.security_context.namespace_options
        if ns.pid != api_pb2.TARGET:
            return None
        target = self.index.get(ns.target_id)
        if target.state != RUNNING:
            raise errors.FailedPrecondition(f"target container {target.id} of the PID namespace is not running")
        return target.status.pid

    def _make_state_dir(self, container_id: str, undo: Rollback) -> Path:
        """The container's state dir (its IO fifos, status file, image accounts' mount point)."""
        container_dir = self.state / container_id
        undo.add_sync("state dir", remove_dir, str(container_dir))
        container_dir.mkdir(parents=True, exist_ok=True)
        return container_dir

    async def _create_under_lease(self, build: _RecordBuilder, accounts: ImageAccounts | None,
                                  config_volumes: list[str], container_dir: Path,
                                  undo: Rollback) -> tuple[ContainerMetadata, list[Any]]:
        """Snapshot first, then the record, under a lease; returns the metadata and the rootfs mounts.

        Needed for the image's first container (its passwd/group are read from
        the snapshot before the spec is built), image volumes or VOLUMEs of the
        image config.
        """
        container_id, image = build.container_id, build.image
        async with self.ctd.lease(f"container-{container_id[:12]}", expire_seconds=600) as lease:
            mounts = await self._prepare_snapshot(container_id, image, lease, undo)
            if accounts is None:
                accounts = ImageAccounts.from_rootfs(await self._image_accounts(image, mounts, container_dir))
            extra_mounts, volumes = await self._prepare_volumes(build, mounts, container_dir, config_volumes,
                                                                lease, undo)
            metadata, record = build(accounts, extra_mounts, volumes)
            await self._let_nri_adjust(build, build.sandbox, record, undo)
            await self._create_record(record, lease, undo)
        return metadata, mounts

    async def _prepare_volumes(self, build: _RecordBuilder, mounts: list[Any], container_dir: Path,
                               config_volumes: list[str], lease: str,
                               undo: Rollback) -> tuple[list[api_pb2.Mount], list[image_volumes.ImageVolume]]:
        """Image volumes (mounts of an image) and the image config's VOLUMEs: the extra mounts and the volumes."""
        volumes: list[image_volumes.ImageVolume] = []
        undo.add("image volumes", lambda: image_volumes.release(self.ctd, self.snapshotter, volumes))
        extra_mounts = await image_volumes.prepare(self.ctd, self.images, self.snapshotter, build.container_id,
                                                   container_dir, build.cfg, lease, volumes)
        if config_volumes:
            extra_mounts += await self._image_config_volumes(build.container_id, build.image, mounts, container_dir,
                                                             config_volumes, undo)
        return extra_mounts, volumes

    async def _create_record_first(self, build: _RecordBuilder, accounts: ImageAccounts,
                                   undo: Rollback) -> tuple[ContainerMetadata, list[Any]]:
        """The record, then the snapshot it names; returns the metadata and the rootfs mounts.

        The record names the snapshot before it exists, so containerd's GC keeps
        the snapshot from its creation on without a lease: two round trips fewer.
        """
        metadata, record = build(accounts, [], [])
        await self._let_nri_adjust(build, build.sandbox, record, undo)
        await self._create_record(record, None, undo)
        mounts = await self._prepare_snapshot(build.container_id, build.image, None, undo)
        return metadata, mounts

    async def _publish(self, container: Container, sandbox: Sandbox) -> str:
        """List the container, then tell NRI plugins and the event listeners."""
        self.index.add(container.id, container)
        self.nri.published(container.id)
        log.info("container created",
                 extra={"fields": {"id": container.id, "name": container.metadata.name, "pod": sandbox.id}})
        await self.nri.post_create_container(sandbox, container)
        await self._emit("created", container)
        return container.id

    async def _let_nri_adjust(self, build: _RecordBuilder, sandbox: Sandbox, record: containers_pb2.Container,
                              undo: Rollback) -> None:  # fmt: skip
        """NRI plugins see the container before anyone may, and may adjust its spec (the record then carries it).

        An objection fails CreateContainer and undoes it; nothing of it stays listed or pending.
        """
        undo.add_sync("NRI pending entry", self.nri.published, build.container_id)
        proposed = nri_convert.new_container(build.container_id, sandbox.id, build.cfg, build.spec)
        adjusted = await self.nri.create_container(sandbox, proposed, build.spec)
        if adjusted.cdi_devices:
            if self.cdi is None:
                raise errors.FailedPrecondition(f"an NRI plugin added CDI devices {adjusted.cdi_devices} "
                                                "but CDI is disabled (runtime.enable_cdi)")
            cdi.apply_edits(build.spec, self.cdi.resolve(adjusted.cdi_devices))
        if adjusted.changed:
            record.spec.CopyFrom(objects.spec_any(build.spec))

    async def _image_config_volumes(self, container_id: str, image: ImageRecord, mounts: list[Any], container_dir: Path,
                                    paths: list[str], undo: Rollback) -> list[api_pb2.Mount]:
        """The image config's VOLUMEs, set up against the container's rootfs mounted briefly."""
        mode = self.config.image.image_volumes
        undo.add_sync("image config volumes", remove_dir, str(self.root / container_id))
        with ctd_mounts.mounted(mounts, parent=str(container_dir),
                                readonly=mode != image_config_volumes.MKDIR) as rootfs:
            return await image_config_volumes.prepare(paths, mode, rootfs, self.root / container_id / "volumes",
                                                      str(image.id))

    async def _prepare_snapshot(self, container_id: str, image: ImageRecord, lease: str | None,
                                undo: Rollback) -> list[Any]:
        mounts = await objects.prepare_snapshot(self.ctd, self.snapshotter, container_id, image.chain_id, lease)
        undo.add("snapshot", lambda: objects.remove_snapshot(self.ctd, self.snapshotter, container_id))
        return mounts

    async def _create_record(self, record: containers_pb2.Container, lease: str | None, undo: Rollback) -> None:
        with self.records.watching(record.id) as watch:
            await objects.create_container(self.ctd, record, lease)
            undo.add("containerd container", lambda: objects.delete_container(self.ctd, record.id))
            self.records.seed(record, watch)

    def _accounts_dir(self, image: ImageRecord) -> Path:
        return Path(self.config.server.state_dir) / "image-accounts" / str(image.id).removeprefix("sha256:")

    def forget_image(self, image_id: str) -> None:
        """The image is gone: drop its cached users and groups."""
        self._accounts.pop(image_id, None)
        remove_dir(str(Path(self.config.server.state_dir) / "image-accounts" / image_id.removeprefix("sha256:")))

    async def _prune_image_accounts(self) -> None:
        """Drop cached users and groups of images removed while we were not watching."""
        root = Path(self.config.server.state_dir) / "image-accounts"
        try:
            cached = os.listdir(root)
        except FileNotFoundError:
            return
        try:
            present = {image.id.removeprefix("sha256:") for image in await self.images.list()}
        except errors.CriError as exc:
            log.warning("cannot list images to prune cached image accounts: %s", exc.message)
            return
        for name in cached:
            if name not in present:  # also a temporary dir of a create cut short
                remove_dir(str(root / name))

    def _cached_accounts(self, image: ImageRecord) -> ImageAccounts | None:
        """The image's users and groups, parsed once per image (None: not read from it yet)."""
        accounts = self._accounts.get(image.id)
        if accounts is None:
            cache = self._accounts_dir(image)
            if not cache.is_dir():
                return None
            accounts = self._accounts[image.id] = ImageAccounts.from_rootfs(str(cache))
        return accounts

    async def _image_accounts(self, image: ImageRecord, mounts: list[Any], container_dir: Path) -> str:
        """A directory holding the image's /etc/passwd and /etc/group (what user resolution reads).

        A fresh container rootfs is the image's, so these files are the same for
        every container of an image: they are read once per image (mounting the
        snapshot briefly) and kept, which keeps CreateContainer from mounting.
        """
        cache = self._accounts_dir(image)
        if cache.is_dir():
            return str(cache)
        tmp = cache.with_name(f".{cache.name}.{secrets.token_hex(4)}")
        (tmp / "etc").mkdir(parents=True)
        try:
            with ctd_mounts.mounted(mounts, parent=str(container_dir)) as rootfs:
                for name in ("passwd", "group"):
                    text = read_rootfs_file(rootfs, f"/etc/{name}")
                    if text is not None:
                        (tmp / "etc" / name).write_text(text)
            with contextlib.suppress(OSError):  # a concurrent create may have cached it first
                os.rename(tmp, cache)
        finally:
            remove_dir(str(tmp))
        return str(cache)


@dataclass(kw_only=True)
class _RecordBuilder:
    """Builds the OCI spec, our metadata and the containerd record of a new container.

    Called once per attempt with what the snapshot gave (the image's users, extra
    mounts); keeps the spec last built, which NRI plugins may then adjust.
    """

    manager: ContainerStore
    container_id: str
    name: str
    sandbox: Sandbox
    cfg: api_pb2.ContainerConfig
    image: ImageRecord
    sandbox_ctx: container_spec.SandboxContext
    log_path: str
    io_dir: str
    target_pid: int | None
    cdi_devices: tuple[cdi.ResolvedDevice, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict)  # the OCI spec last built

    def __call__(self, accounts: ImageAccounts, extra_mounts: list[api_pb2.Mount],
                 volumes: list[image_volumes.ImageVolume]) -> tuple[ContainerMetadata, containers_pb2.Container]:
        m, cfg, image, sandbox = self.manager, self.cfg, self.image, self.sandbox
        handler = m.config.runtime.handlers[sandbox.metadata.runtime_handler]
        image_config = ImageConfig.from_json(image.config)
        image_name = _image_name(cfg.image.image, image)
        self.spec = spec = self._build_spec(handler, image_config, image_name, accounts, extra_mounts)
        metadata = ContainerMetadata(
            id=self.container_id, name=self.name, sandbox_id=sandbox.id, config=cfg.SerializeToString(),
            image_id=image.id, image_name=image_name,
            image_ref=image.repo_digests[0] if image.repo_digests else image.id,
            log_path=self.log_path, created_at=time.time_ns(), io_dir=self.io_dir,
            stop_signal=image_config.stop_signal, user=dict(spec["process"].get("user") or {}),
            image_volumes=[v.to_json() for v in volumes])
        record = containers_pb2.Container(
            id=self.container_id,
            labels={objects.KIND_LABEL: objects.KIND_CONTAINER, objects.SANDBOX_ID_LABEL: sandbox.id,
                    f"{objects.LABEL_PREFIX}.container.name": cfg.metadata.name},
            image=image.record_name,
            runtime=objects.runtime_of(handler, m.config.runtime.cgroup_driver),
            spec=objects.spec_any(spec), snapshotter=m.snapshotter, snapshot_key=self.container_id,
            extensions={METADATA_EXTENSION: objects.json_extension(METADATA_TYPE, METADATA_VERSION,
                                                                   metadata.to_json())})
        return metadata, record

    def _build_spec(self, handler: RuntimeHandlerConfig, image_config: ImageConfig, image_name: str,
                    accounts: ImageAccounts, extra_mounts: list[api_pb2.Mount]) -> dict[str, Any]:
        """The OCI spec: built from the request and image, then CDI edits and, in a user namespace, idmapped volumes."""
        cfg = self.cfg
        spec = container_spec.build_container_spec(
            self.container_id, cfg, image_config, image_name=image_name, sandbox=self.sandbox_ctx,
            options=self.manager.node.spec_options(handler, mountinfo=_needs_mountinfo(cfg)), rootfs=accounts,
            target_pid=self.target_pid, extra_mounts=extra_mounts)
        cdi.apply_edits(spec, self.cdi_devices)
        if pod_userns(self.sandbox.config.linux.security_context.namespace_options) is not None:
            userns_rootfs.idmap_volumes(spec, cfg, Path(self.io_dir).parent)
        return spec
