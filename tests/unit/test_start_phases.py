"""bench/start_phases.py: container starts told apart in the kernel's exec/fork/exit events."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "start_phases.py"


@pytest.fixture(scope="module")
def phases() -> ModuleType:
    spec = importlib.util.spec_from_file_location("start_phases", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def fork(parent: int, child: int, at: float) -> str:
    return (f"  containerd-shim {parent}/{parent} {at / 1000:.6f}: sched:sched_process_fork: "
            f"comm=containerd-shim pid={parent} child_comm=containerd-shim child_pid={child}")


def run(pid: int, parent: int, filename: str, start: float, end: float) -> list[str]:
    """A fork, an exec and an exit, in `perf script -F comm,pid,tid,time,event,trace` form (ms in)."""
    name = filename.rsplit("/", 1)[-1]
    return [fork(parent, pid, start - 0.1),
            f"  {name} {pid}/{pid} {start / 1000:.6f}: sched:sched_process_exec: "
            f"filename={filename} pid={pid} old_pid={pid}",
            f"  {name} {pid}/{pid} {end / 1000:.6f}: sched:sched_process_exit: comm={name} pid={pid} prio=120"]


def init(pid: int, create: int, t: float, entrypoint: str, started: float) -> list[str]:
    """runc init, forked by runc create, then exec'ing the container's process at `runc start`."""
    name = entrypoint.rsplit("/", 1)[-1]
    return [*run(pid, create, "/proc/self/exe", t, t)[:2],
            f"  {name} {pid}/{pid} {started / 1000:.6f}: sched:sched_process_exec: "
            f"filename={entrypoint} pid={pid} old_pid={pid}",
            f"  {name} {pid}/{pid} {(started + 900) / 1000:.6f}: sched:sched_process_exit: "
            f"comm={name} pid={pid} prio=120"]


def pod(shim: int, t: float) -> list[str]:
    """A pod shim's runc commands: pause create (forks runc init) and start, container create and start."""
    return [*run(shim + 1, shim, "/usr/sbin/runc", t, t + 20),
            *init(shim + 2, shim + 1, t + 5, "/pause", t + 22),
            *run(shim + 3, shim, "/usr/sbin/runc", t + 22, t + 25),
            fork(shim + 3, shim + 9, t + 23),  # a thread: it execs nothing
            *run(shim + 4, shim, "/usr/sbin/runc", t + 30, t + 60),
            *init(shim + 5, shim + 4, t + 35, "/bin/top", t + 64),
            *run(shim + 6, shim, "/usr/sbin/runc", t + 64, t + 70),
            *run(shim + 7, shim, "/usr/sbin/runc", t + 200, t + 205)]  # kill, later


def test_phases_of_each_container_start(phases: ModuleType) -> None:
    lines = [*pod(100, 1000.0), *pod(200, 5000.0), "a line perf prints that is not an event"]
    starts = phases.container_starts(phases.parse(lines))
    assert len(starts) == 2
    for s in starts:
        assert s.pause_create == pytest.approx(20)
        assert s.create == pytest.approx(30)
        assert s.gap == pytest.approx(4)
        assert s.start == pytest.approx(6)
        assert s.overlap == {}  # the pod's own runc commands are not neighbours


def test_commands_overlapping_the_create_are_counted_by_name_and_daemons_are_not(phases: ModuleType) -> None:
    lines = [*pod(100, 1000.0),
             *run(300, 1, "/usr/lib/cni/bridge", 1050.0, 1070.0),  # 10 ms inside create (1030-1060)
             *run(301, 1, "/usr/bin/something", 1025.0, 1035.0),  # 5 ms inside
             *run(302, 1, "/pause", 900.0, 2000.0)]  # a daemon: alive throughout, not counted
    (start,) = phases.container_starts(phases.parse(lines))
    assert start.overlap == pytest.approx({"bridge": 10.0, "other": 5.0})
    summary = phases.summary([start])
    assert summary["runc create"] == pytest.approx(30)
    assert summary["overlap bridge (mean)"] == pytest.approx(10)


def test_a_pod_without_a_container_start_is_left_out(phases: ModuleType) -> None:
    lines = run(101, 100, "/usr/sbin/runc", 0.0, 20.0) + run(102, 101, "/proc/self/exe", 5.0, 30.0)
    assert phases.container_starts(phases.parse(lines)) == []
    assert phases.summary([]) == {}


def test_main_prints_a_column_per_file_and_fails_on_a_file_without_starts(
        phases: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "ours.txt"
    good.write_text("\n".join(pod(100, 1000.0)) + "\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert phases.main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "container starts" in out and "30.00" in out
    assert phases.main([str(good), str(empty)]) == 1
