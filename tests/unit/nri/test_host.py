"""NriHost against plugins over a real unix socket (the runtime's object lists are fakes: pure logic)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.message import Message

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_runtime.nri.adaptation import NriHost, NriSettings
from cri_runtime.nri.plugin import PluginError
from tests.nri_plugin import TestPlugin


class Runtime:
    """What the host asks of the runtime: its listed objects, and where updates go."""

    def __init__(self) -> None:
        self.pods: list[api.PodSandbox] = []
        self.containers: list[api.Container] = []
        self.updates: list[api.ContainerUpdate] = []
        self.evictions: list[api.ContainerEviction] = []

    async def sync(self) -> tuple[list[api.PodSandbox], list[api.Container]]:
        return list(self.pods), list(self.containers)

    async def update(self, updates: list[api.ContainerUpdate]) -> list[api.ContainerUpdate]:
        self.updates.extend(updates)
        return [u for u in updates if u.container_id == "missing"]

    async def evict(self, evictions: list[api.ContainerEviction]) -> None:
        self.evictions.extend(evictions)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[NriHost, Runtime]]:
    runtime = Runtime()
    settings = NriSettings(socket_path=str(tmp_path / "nri.sock"), plugin_path=str(tmp_path / "plugins"),
                           registration_timeout=1.0, request_timeout=0.5)
    nri = NriHost(settings, runtime_name="cri-runtime", runtime_version="test", sync_source=runtime.sync,
                  updater=runtime.update, evictor=runtime.evict)
    await nri.start()
    yield nri, runtime
    await nri.stop()


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def connect(nri: NriHost, **kwargs: object) -> TestPlugin:
    plugin = TestPlugin(nri.settings.socket_path, **kwargs)  # type: ignore[arg-type]
    before = len(nri.plugins)
    await plugin.start()
    await wait_for(lambda: len(nri.plugins) > before)
    return plugin


POD = api.PodSandbox(id="pod1", name="web", namespace="default", uid="u1")
CTR = api.Container(id="ctr1", pod_sandbox_id="pod1", name="app", env=["A=1"], args=["sleep", "1"])


async def test_a_plugin_is_configured_then_synchronized_with_what_exists(host: tuple[NriHost, Runtime]) -> None:
    nri, runtime = host
    runtime.pods, runtime.containers = [POD], [CTR]
    plugin = await connect(nri)
    assert plugin.methods() == ["Configure", "Synchronize"]
    configure = plugin.calls[0][1]
    assert isinstance(configure, api.ConfigureRequest)
    assert (configure.runtime_name, configure.request_timeout, configure.registration_timeout) == (
        "cri-runtime", 500, 1000)
    sync = plugin.calls[1][1]
    assert isinstance(sync, api.SynchronizeRequest)
    assert [p.id for p in sync.pods] == ["pod1"] and [c.id for c in sync.containers] == ["ctr1"]
    plugin.close()


async def test_events_reach_plugins_in_index_order_and_only_when_subscribed(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host
    order: list[str] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def handle(_request: Message) -> None:
            order.append(name)
        return handle

    late = await connect(nri, name="late", idx="90", handlers={"RunPodSandbox": recorder("90-late")})
    early = await connect(nri, name="early", idx="10", handlers={"RunPodSandbox": recorder("10-early")},
                          events=("CreateContainer",))
    mid = await connect(nri, name="mid", idx="50", handlers={"RunPodSandbox": recorder("50-mid")})
    await nri.run_pod_sandbox(POD)
    assert order == ["50-mid", "90-late"]  # 10-early did not subscribe to RunPodSandbox
    await nri.stop_pod_sandbox(lambda: POD)
    await nri.remove_pod_sandbox(POD.id, lambda: POD)
    assert mid.methods()[2:] == ["RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"]
    assert early.methods() == ["Configure", "Synchronize"]
    for plugin in (late, early, mid):
        plugin.close()


async def test_a_notification_nobody_subscribed_to_converts_nothing(host: tuple[NriHost, Runtime]) -> None:
    """Pods and containers become NRI messages only for a plugin that receives them (under the lock)."""
    nri, _ = host
    built: list[str] = []

    def pod() -> api.PodSandbox:
        built.append("pod")
        return POD

    def ctr() -> api.Container:
        built.append("container")
        return CTR

    await nri.post_start_container(pod, ctr)  # no plugin at all
    await nri.remove_container(CTR.id, pod, ctr)
    plugin = await connect(nri, events=("RemoveContainer",))
    await nri.post_start_container(pod, ctr)  # a plugin, but not subscribed to this event
    assert await nri.stop_container(pod, ctr) == []
    assert built == []
    await nri.remove_container(CTR.id, pod, ctr)
    assert built == ["pod", "container"]
    assert plugin.methods()[2:] == ["RemoveContainer"]
    plugin.close()


async def test_a_plugin_error_fails_the_operation_and_a_retry_works(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host
    failures = [True]

    async def refuse(_request: Message) -> None:
        if failures.pop(0) if failures else False:
            raise RuntimeError("no room on this node")

    plugin = await connect(nri, handlers={"RunPodSandbox": refuse})
    with pytest.raises(PluginError, match="50-test failed RunPodSandbox: no room on this node"):
        await nri.run_pod_sandbox(POD)
    await nri.run_pod_sandbox(POD)  # the retry goes through, and the plugin is still connected
    assert len(nri.plugins) == 1
    plugin.close()


async def test_a_hung_plugin_is_disconnected_and_never_blocks_past_the_timeout(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host

    async def hang(_request: Message) -> None:
        await asyncio.sleep(3600)

    hung = await connect(nri, name="hung", idx="10", handlers={"CreateContainer": hang})
    ok = await connect(nri, name="ok", idx="20")
    started = asyncio.get_running_loop().time()
    result = await nri.create_container(POD, CTR)
    assert asyncio.get_running_loop().time() - started < 2.0  # request timeout 0.5 s
    assert result.adjusted_container().id == "ctr1"
    assert [p.name for p in nri.plugins] == ["ok"]
    assert ok.methods()[-1] == "CreateContainer"
    hung.close()
    ok.close()


async def test_a_plugin_that_never_registers_is_dropped(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host
    reader, writer = await asyncio.open_unix_connection(nri.settings.socket_path)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the host closes it after 1 s
    writer.close()
    assert nri.plugins == []


async def test_adjustments_merge_and_conflicts_are_refused(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host

    def adjust(**env: str):  # type: ignore[no-untyped-def]
        async def handle(_request: Message) -> api.CreateContainerResponse:
            adj = api.ContainerAdjustment(env=[api.KeyValue(key=k, value=v) for k, v in env.items()])
            adj.annotations["from"] = "a" if "A" in env else "b"
            adj.linux.resources.memory.limit.value = 64 << 20
            return api.CreateContainerResponse(adjust=adj)
        return handle

    first = await connect(nri, name="first", idx="10", handlers={"CreateContainer": adjust(A="2", B="x")})
    second = await connect(nri, name="second", idx="20", handlers={"CreateContainer": adjust(C="y")})
    with pytest.raises(PluginError, match="conflict: plugins 10-first and 20-second both set"):
        await nri.create_container(POD, CTR)
    second.close()
    await wait_for(lambda: len(nri.plugins) == 1)
    result = await nri.create_container(POD, CTR)
    assert [(kv.key, kv.value) for kv in result.adjust.env] == [("A", "2"), ("B", "x")]
    assert result.adjust.linux.resources.memory.limit.value == 64 << 20
    assert list(result.adjusted_container().env) == ["A=2", "B=x"]
    first.close()


async def test_an_unsupported_adjustment_is_refused_by_name(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host

    async def sysctl(_request: Message) -> api.CreateContainerResponse:
        adj = api.ContainerAdjustment()
        adj.linux.sysctl["net.ipv4.ip_forward"] = "1"
        return api.CreateContainerResponse(adjust=adj)

    plugin = await connect(nri, handlers={"CreateContainer": sysctl})
    with pytest.raises(PluginError, match=r"linux\.sysctl is not supported"):
        await nri.create_container(POD, CTR)
    plugin.close()


async def test_objects_created_around_a_synchronize_are_never_lost(host: tuple[NriHost, Runtime]) -> None:
    nri, runtime = host
    runtime.pods = [POD]
    first = await connect(nri, name="first", idx="10")
    # a container whose hook completed but that the runtime does not list yet
    await nri.create_container(POD, CTR)
    release = asyncio.Event()

    async def slow_sync(_request: Message) -> None:
        await release.wait()

    second = TestPlugin(nri.settings.socket_path, name="second", idx="20", handlers={"Synchronize": slow_sync})
    await second.start()
    await wait_for(lambda: second.methods()[-1:] == ["Synchronize"])
    during = asyncio.create_task(nri.create_container(POD, api.Container(id="ctr2", pod_sandbox_id="pod1")))
    for _ in range(20):  # let ctr2's hook run as far as it can: to the lock the Synchronize holds
        await asyncio.sleep(0)
    assert not during.done()
    release.set()
    await during
    sync = second.calls[1][1]
    assert isinstance(sync, api.SynchronizeRequest)
    assert [c.id for c in sync.containers] == ["ctr1"]  # pending, not yet listed by the runtime
    created = [r.container.id for m, r in second.calls if m == "CreateContainer"]  # type: ignore[attr-defined]
    assert created == ["ctr2"]
    nri.published("ctr1")
    third = await connect(nri, name="third", idx="30")
    third_sync = third.calls[1][1]
    assert isinstance(third_sync, api.SynchronizeRequest)
    assert [c.id for c in third_sync.containers] == ["ctr2"]  # ctr1 is now the runtime's to list
    for plugin in (first, second, third):
        plugin.close()


async def test_unsolicited_updates_and_evictions_reach_the_runtime(host: tuple[NriHost, Runtime]) -> None:
    nri, runtime = host
    plugin = await connect(nri)
    update = api.ContainerUpdate(container_id="ctr1")
    update.linux.resources.cpu.shares.value = 512
    response = await plugin.update_containers([update, api.ContainerUpdate(container_id="missing")],
                                              [api.ContainerEviction(container_id="ctr9", reason="oom")])
    assert [u.container_id for u in response.failed] == ["missing"]
    assert runtime.updates[0].linux.resources.cpu.shares.value == 512
    assert [e.container_id for e in runtime.evictions] == ["ctr9"]
    plugin.close()


async def test_a_preinstalled_plugin_is_launched_with_its_socket_and_config(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "05-echo.conf").write_text("answer: 42\n")
    out = tmp_path / "seen"
    script = plugins / "05-echo"
    repo = Path(__file__).resolve().parents[3]
    script.write_text(f"""#!{sys.executable}
import asyncio, os, socket, sys
sys.path[:0] = [{str(repo / "src")!r}, {str(repo)!r}]
from tests.nri_plugin import TestPlugin
from cri_protos.nri.v1alpha1 import api_pb2 as api

async def main():
    sock = socket.socket(fileno=int(os.environ["NRI_PLUGIN_SOCKET"]))
    r, w = await asyncio.open_unix_connection(sock=sock)
    p = TestPlugin("", name=os.environ["NRI_PLUGIN_NAME"], idx=os.environ["NRI_PLUGIN_IDX"])

    async def configure(req):
        open({str(out)!r}, "w").write(req.config)
        return api.ConfigureResponse()

    p.handlers["Configure"] = configure
    await p.start_on(r, w)
    await asyncio.sleep(30)  # killed by the host when it stops

asyncio.run(main())
""")
    script.chmod(0o755)
    runtime = Runtime()
    nri = NriHost(NriSettings(socket_path=str(tmp_path / "nri.sock"), plugin_path=str(plugins),
                              plugin_config_path=str(conf), registration_timeout=5.0, request_timeout=2.0),
                  runtime_name="cri-runtime", runtime_version="test", sync_source=runtime.sync,
                  updater=runtime.update, evictor=runtime.evict)
    try:
        await nri.start()
        assert [p.qualified_name for p in nri.plugins] == ["05-echo"]
        assert out.read_text() == "answer: 42\n"
    finally:
        await nri.stop()
    with contextlib.suppress(FileNotFoundError):
        out.unlink()


async def test_a_plugin_that_went_away_is_dropped_and_never_fails_an_event(host: tuple[NriHost, Runtime]) -> None:
    nri, _ = host
    plugin = await connect(nri)
    plugin.close()
    for _ in range(3):  # whether the host has noticed yet or finds out while writing
        await nri.stop_container(lambda: POD, lambda: CTR)
        await nri.run_pod_sandbox(POD)
    assert nri.plugins == []
