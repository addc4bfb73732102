"""Task exit and OOM events from containerd, delivered to one handler.

Image record changes (by anyone) are reported too, as (topic, record name),
so an image cache can follow them; ("", "") means anything may have changed.
So are updates and deletions of container records, and the task state
changes someone else can cause (exit, delete, pause, resume), as (topic,
container ID), for the caches of `cached_state`.
While no subscription is live, `subscribed` is clear and nothing may be cached.

The subscription is re-established whenever the stream breaks (containerd
restarted, connection lost). Exits that happen while no stream is open would
be lost, so after every (re)subscription `on_resubscribe` runs: the owner
compares its records with containerd's task states and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf import any_pb2

from cri_protos.containerd.events import container_pb2, image_pb2, task_pb2
from cri_protos.containerd.services.events.v1 import events_pb2
from cri_runtime.containerd.connection import Containerd
from cri_runtime.grpc_client.status import RpcError

log = logging.getLogger(__name__)

TOPIC_EXIT = "/tasks/exit"
TOPIC_OOM = "/tasks/oom"
TOPIC_IMAGES = "/images/"  # create, update, delete
TOPIC_CONTAINER_UPDATE = "/containers/update"
TOPIC_CONTAINER_DELETE = "/containers/delete"
# Task state changes that do not come from us (a task's create and start do).
TASK_STATE_TOPICS = (TOPIC_EXIT, "/tasks/delete", "/tasks/paused", "/tasks/resumed")
# containerd sends no response headers on Subscribe, so nothing tells us the
# subscription is live. We publish a probe event on our own topic and treat
# its arrival as the proof; only then do we resync with task states.
TOPIC_PROBE = "/cri-runtime/subscription-probe"
PROBE_TYPE_URL = "cri-runtime.SubscriptionProbe"


@dataclass(frozen=True)
class TaskExit:
    container_id: str
    exec_id: str
    pid: int
    exit_status: int
    exited_at_ns: int

    @property
    def is_init(self) -> bool:
        """The container's main process (not an exec) exited."""
        return self.exec_id in ("", self.container_id)


@dataclass(frozen=True)
class TaskOOM:
    container_id: str


TaskEvent = TaskExit | TaskOOM
Handler = Callable[[TaskEvent], Awaitable[None]]
Resync = Callable[[], Awaitable[None]]
ImageChange = Callable[[str, str], None]  # (topic, image record name)
ContainerChange = Callable[[str, str], None]  # (topic, container ID)
TaskChange = Callable[[str, str], None]  # (topic, container ID)


def decode(topic: str, type_url: str, value: bytes) -> TaskEvent | None:
    """Decode an envelope's event; containerd's type_url has no URL prefix."""
    name = type_url.rsplit("/", 1)[-1]
    if topic == TOPIC_EXIT and name == "containerd.events.TaskExit":
        ev = task_pb2.TaskExit.FromString(value)
        exited = ev.exited_at.seconds * 1_000_000_000 + ev.exited_at.nanos
        return TaskExit(ev.container_id, ev.id, ev.pid, ev.exit_status, exited)
    if topic == TOPIC_OOM and name == "containerd.events.TaskOOM":
        return TaskOOM(task_pb2.TaskOOM.FromString(value).container_id)
    return None


def image_record_name(value: bytes) -> str:
    """The record name of an ImageCreate/ImageUpdate/ImageDelete (field 1 in all three)."""
    try:
        return str(image_pb2.ImageDelete.FromString(value).name)
    except Exception:  # undecodable: report no name, so the whole cache is dropped
        return ""


def container_record_id(value: bytes) -> str:
    """The container ID of a ContainerUpdate/ContainerDelete (field 1 in both)."""
    try:
        return str(container_pb2.ContainerDelete.FromString(value).id)
    except Exception:  # undecodable: report no ID, so every cached record is dropped
        return ""


def task_container_id(value: bytes) -> str:
    """The container ID of a task event (field 1 in all of them)."""
    try:
        return str(task_pb2.TaskPaused.FromString(value).container_id)
    except Exception:  # undecodable: report no ID, so every cached state is dropped
        return ""


class EventMonitor:
    """Runs the subscription loop as a background task."""

    def __init__(self, ctd: Containerd, handler: Handler, on_resubscribe: Resync,
                 on_image_change: ImageChange | None = None,
                 on_container_change: ContainerChange | None = None,
                 on_task_change: TaskChange | None = None) -> None:
        self._ctd = ctd
        self._on_task_change = on_task_change
        self._on_image_change = on_image_change
        self._on_container_change = on_container_change
        self._handler = handler
        self._resync = on_resubscribe
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="containerd-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        ns = self._ctd.namespace
        request = events_pb2.SubscribeRequest(filters=[
            f'topic=="{TOPIC_EXIT}",namespace=="{ns}"',
            f'topic=="{TOPIC_OOM}",namespace=="{ns}"',
            f'topic=="{TOPIC_PROBE}",namespace=="{ns}"',
        ] + ([f'topic~="^{TOPIC_IMAGES}",namespace=="{ns}"'] if self._on_image_change else [])
          + ([f'topic=="{TOPIC_CONTAINER_UPDATE}",namespace=="{ns}"',
              f'topic=="{TOPIC_CONTAINER_DELETE}",namespace=="{ns}"'] if self._on_container_change else [])
          + ([f'topic=="{topic}",namespace=="{ns}"' for topic in TASK_STATE_TOPICS if topic != TOPIC_EXIT]
             if self._on_task_change else []))
        backoff = 0.1
        while True:
            stream = self._ctd.events.Subscribe(request, metadata=self._ctd.metadata())
            probe = uuid.uuid4().hex
            prober = asyncio.create_task(self._publish_probe(probe))
            try:
                async for envelope in stream:
                    if envelope.topic == TOPIC_PROBE:
                        if envelope.event.value.decode(errors="replace") == probe and not self.subscribed.is_set():
                            self._image_changed("", "")  # anything may have changed while unsubscribed
                            self._container_changed("", "")
                            self._task_changed("", "")
                            self.subscribed.set()
                            log.info("containerd events: subscribed; state kept from events is trusted again")
                            await self._resync_safely()
                            backoff = 0.1
                        continue
                    if envelope.topic.startswith(TOPIC_IMAGES):
                        self._image_changed(envelope.topic, image_record_name(envelope.event.value))
                        continue
                    if envelope.topic in (TOPIC_CONTAINER_UPDATE, TOPIC_CONTAINER_DELETE):
                        self._container_changed(envelope.topic, container_record_id(envelope.event.value))
                        continue
                    if envelope.topic in TASK_STATE_TOPICS:
                        self._task_changed(envelope.topic, task_container_id(envelope.event.value))
                        if envelope.topic != TOPIC_EXIT:
                            continue
                    event = decode(envelope.topic, envelope.event.type_url, envelope.event.value)
                    if event is not None:
                        await self._dispatch(event)
            except RpcError as exc:
                log.warning("containerd event stream broke; resubscribing",
                            extra={"fields": {"code": exc.code().name, "details": exc.details()}})
            finally:
                self.subscribed.clear()
                prober.cancel()
                stream.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _image_changed(self, topic: str, name: str) -> None:
        if self._on_image_change is not None:
            self._on_image_change(topic, name)

    def _container_changed(self, topic: str, container_id: str) -> None:
        if self._on_container_change is not None:
            self._on_container_change(topic, container_id)

    def _task_changed(self, topic: str, container_id: str) -> None:
        if self._on_task_change is not None:
            self._on_task_change(topic, container_id)

    async def _publish_probe(self, probe: str) -> None:
        """Publish probes until one comes back through our subscription."""
        request = events_pb2.PublishRequest(
            topic=TOPIC_PROBE, event=any_pb2.Any(type_url=PROBE_TYPE_URL, value=probe.encode()))
        delay = 0.02
        while not self.subscribed.is_set():
            try:
                await self._ctd.events.Publish(request, metadata=self._ctd.metadata(), timeout=5)
            except RpcError as exc:
                log.debug("probe publish failed: %s", exc.details())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _dispatch(self, event: TaskEvent) -> None:
        try:
            await self._handler(event)
        except Exception:
            log.exception("handling %s failed", event)

    async def _resync_safely(self) -> None:
        try:
            await self._resync()
        except Exception:
            log.exception("resync after (re)subscribing to events failed")
