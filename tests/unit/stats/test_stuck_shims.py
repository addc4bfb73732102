"""Stats answer with the tasks that answered: a fake Tasks.Metrics whose shim for one ID never answers."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import any_pb2

from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.containerd.types import metrics_pb2
from cri_runtime.containerd import shims
from cri_runtime.stats import collector as collector_mod
from cri_runtime.stats.collector import StatsCollector
from cri_runtime.stats.sample import V1_TYPE, v1


class FakeContainerd:
    """Only Tasks.Metrics: answers at once unless a filter names a frozen task (then never)."""

    def __init__(self, frozen: set[str]) -> None:
        self.frozen = frozen
        self.calls: list[list[str]] = []
        self.tasks = self

    async def Metrics(self, req: tasks_pb2.MetricsRequest) -> tasks_pb2.MetricsResponse:
        ids = [f.removeprefix("id==") for f in req.filters]
        self.calls.append(ids)
        if self.frozen & set(ids):
            await asyncio.Event().wait()
        data = any_pb2.Any(type_url=V1_TYPE, value=v1.Metrics().SerializeToString())
        return tasks_pb2.MetricsResponse(metrics=[metrics_pb2.Metric(id=i, data=data) for i in ids])

    async def call(self, rpc: Any, req: Any, action: str, **_: Any) -> Any:
        return await rpc(req)


def _collector(ctd: FakeContainerd) -> StatsCollector:
    async def mountpoint() -> str:
        return "/"

    return StatsCollector(ctd, "overlayfs", "cgroupfs", mountpoint)  # type: ignore[arg-type]


def test_a_frozen_shim_is_left_out_and_then_skipped(monkeypatch: Any) -> None:
    monkeypatch.setattr(collector_mod, "METRICS_CALL_TIMEOUT", 0.2)
    ctd = FakeContainerd(frozen={"b"})
    stats = _collector(ctd)
    before = shims.COUNTERS.stats_skipped

    async def run() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        samples, stuck = await stats.answered_samples(["a", "b", "c"])
        assert set(samples) == {"a", "c"} and stuck == {"b"}
        assert loop.time() - started < 0.2 * 2 + 0.3  # one batch deadline, then one per-task deadline
        assert stats.stuck == {"b"}
        # Next time the batch leaves the stuck task out; it is asked on its own, side by side.
        ctd.calls.clear()
        samples, stuck = await stats.answered_samples(["a", "b", "c"])
        assert set(samples) == {"a", "c"} and stuck == {"b"}
        assert sorted(map(sorted, ctd.calls)) == [["a", "c"], ["b"]]
        # Once it answers again it rejoins the batch.
        ctd.frozen.clear()
        samples, stuck = await stats.answered_samples(["a", "b", "c"])
        assert set(samples) == {"a", "b", "c"} and not stuck and not stats.stuck

    asyncio.run(run())
    assert shims.COUNTERS.stats_skipped == before + 2
